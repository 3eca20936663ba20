"""Hessian and Gauss–Newton operators of a network over one batch, a subset or all data.

For a loss L(w) = (1/N) Σ_i ℓ_i(w) over the N samples in ``data``, :class:`HessianOperator`
multiplies by H = ∇²L = (1/N) Σ_i H_i and :class:`GGNOperator` by the generalised
Gauss–Newton G = (1/N) Σ_i J_iᵀ H_ℓ,i J_i. With ``data`` one batch of size B this is
H_batch of Granziol, Zohren & Roberts (2022, Eq. 4); with the whole training set it is
H_emp; ``batch_op - full_op`` is the noise matrix ε.

Weighting: ``loss_fn(output, y)`` must be the *mean* over the batch (PyTorch's default
``reduction="mean"``). Batch b of size n_b then contributes (n_b/N)·H_b, so an uneven last
batch is weighted by its size, not equally with the others.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from rmtlr.curvature.base import CurvatureOperator, all_finite
from rmtlr.curvature.hvp import BN_MODES, HVP_METHODS, BatchProducts, batch_norm_statistics
from rmtlr.progress import progress_bar

__all__ = ["GGNOperator", "HessianOperator", "model_state_preserved"]

# method="auto" decisions, measured once per (device type, model class, P, operator kind).
_AUTO_CHOICE: dict[tuple, str] = {}


class model_state_preserved:
    """Context manager: restore every module's train/eval flag, buffers and ``.grad``.

    The products never write ``.grad`` (they use ``torch.autograd.grad`` and ``torch.func``),
    so the gradients are kept by reference and put back as the same tensor objects: views
    into a flat gradient buffer (DDP buckets, fused optimisers) stay views.
    """

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        m = self.model
        self.flags = {mod: mod.training for mod in m.modules()}
        self.buffers = {k: b.detach().clone() for k, b in m.named_buffers()}
        self.grads = {k: p.grad for k, p in m.named_parameters()}
        return self

    def __exit__(self, *exc):
        m = self.model
        for mod, f in self.flags.items():
            mod.training = f
        with torch.no_grad():
            for k, b in m.named_buffers():
                if not torch.equal(b, self.buffers[k]):
                    b.copy_(self.buffers[k])
        for k, p in m.named_parameters():
            if p.grad is not self.grads[k]:
                p.grad = self.grads[k]
        return False


def _is_batch(data) -> bool:
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(t, torch.Tensor) for t in data))


# Fixed random directions of _DataFingerprint, per (sample size, device).
_DIRECTIONS: dict[tuple, torch.Tensor] = {}


class _DataFingerprint:
    """A cheap summary of one pass over a loader, to catch data that change between passes.

    A curvature operator must be one fixed matrix, so every product must see the same
    samples. A loader that augments at random (crops, flips) does not, and with
    ``bn_mode="frozen-train"`` neither does a shuffling one, since each batch's statistics
    enter the function; both would silently turn Lanczos into a method on a moving
    operator. Per batch: the samples projected on a fixed random direction, the labels'
    sum and the count, in float64; in eval mode only their totals are compared (the order
    of the samples does not change the mean Hessian), in frozen-train mode batch by batch.
    """

    def __init__(self, ordered: bool):
        self.ordered, self.parts = ordered, []

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        n = x.shape[0]
        flat = x.reshape(n, -1)
        key = (flat.shape[1], str(flat.device))
        if key not in _DIRECTIONS:
            r = torch.randn(flat.shape[1], dtype=torch.float64,
                            generator=torch.Generator().manual_seed(12345))
            _DIRECTIONS[key] = r.to(flat.device)
        self.parts.append(torch.stack([(flat.to(torch.float64) @ _DIRECTIONS[key]).sum(),
                                       y.to(torch.float64).sum(),
                                       torch.tensor(float(n), dtype=torch.float64,
                                                    device=flat.device)]))

    def value(self) -> torch.Tensor | None:
        if not self.parts:
            return None
        stacked = torch.stack(self.parts).cpu()
        return stacked if self.ordered else stacked.sum(dim=0)

    @staticmethod
    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        return a.shape == b.shape and bool(((a - b).abs()
                                            <= 1e-9 * (a.abs() + b.abs()) + 1e-12).all())


class _NetworkOperator(CurvatureOperator):
    _kind = "network"

    def __init__(self, model: nn.Module, loss_fn, data, params=None, *, dtype=None, device=None,
                 bn_mode: str = "eval", progress: bool = False):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError("loss_fn must be callable as loss_fn(output, y)")
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
        self.model, self.bn_mode, self.progress = model, bn_mode, progress
        self.param_names = self._select(model, params)
        named = dict(model.named_parameters())
        ref = named[self.param_names[0]]
        self._dtype = dtype if dtype is not None else ref.dtype
        if not self._dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating dtype, got {self._dtype}")
        self._device = torch.device(device) if device is not None else ref.device
        if self._device.type == "cuda" and self._device.index is None:
            self._device = torch.device("cuda", torch.cuda.current_device())
        tensors = {}
        for k, t in [*model.named_parameters(), *model.named_buffers()]:
            # A snapshot: later training of the model does not change this operator.
            t = t.detach().to(self._device, copy=True)
            tensors[k] = t.to(self._dtype) if t.is_floating_point() else t
            if t.is_floating_point() and not all_finite(tensors[k]):
                raise ValueError(f"model tensor {k!r} contains non-finite values (NaN or Inf)")
        if bn_mode == "eval":
            for name, m in model.named_modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None:
                    raise ValueError(f"BatchNorm layer {name!r} keeps no running statistics; "
                                     "use bn_mode='frozen-train'")
        if isinstance(loss_fn, nn.Module) and any(True for _ in loss_fn.state_dict()):
            # A copy: e.g. CrossEntropyLoss(weight=...) must follow the operator's dtype and
            # device, and the caller's loss module must not change.
            loss_fn = copy.deepcopy(loss_fn).to(device=self._device, dtype=self._dtype)
        self.loss_fn = loss_fn
        self.products = BatchProducts(model, loss_fn, self.param_names, tensors)
        self._P = sum(self.products.numels)
        self._has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                           for m in model.modules())
        if _is_batch(data):
            self.batches: Iterable = [tuple(data)]
        elif isinstance(data, (list, tuple)):
            bad = [i for i, b in enumerate(data) if not _is_batch(b)]
            if bad:
                raise TypeError(f"data[{bad[0]}] is not an (x, y) pair of tensors")
            self.batches = list(data)
        elif isinstance(data, Iterator):
            raise TypeError("data must be re-iterable (each product passes over it again): "
                            "a batch, a list of batches or a DataLoader, not a one-shot "
                            f"iterator or generator ({type(data).__name__})")
        elif isinstance(data, Iterable):
            self.batches = data
        else:
            raise TypeError("data must be an (x, y) batch, a list of batches or a DataLoader, "
                            f"got {type(data).__name__}")
        if isinstance(self.batches, list):
            # An empty list is accepted here so that a rank of a distributed job may hold no
            # data; a product over no samples raises (see accumulate).
            self.num_samples = sum(int(x.shape[0]) for x, _ in self.batches)
        else:
            self.num_samples = None
        self._stats_cache: dict[int, dict] = {}
        self._fingerprint: torch.Tensor | None = None

    @staticmethod
    def _select(model: nn.Module, params) -> list[str]:
        named = dict(model.named_parameters())
        if params is None:
            names = [k for k, p in named.items() if p.requires_grad]
        else:
            by_id = {id(p): k for k, p in named.items()}
            names = []
            for p in params:
                if isinstance(p, str):
                    if p not in named:
                        raise ValueError(f"params: {p!r} is not a parameter name of the model")
                    names.append(p)
                elif isinstance(p, torch.Tensor) and id(p) in by_id:
                    names.append(by_id[id(p)])
                else:
                    raise ValueError("params must be parameter names or parameters of the model")
            # A parameter named twice (or tied weights passed from two modules) is one
            # coordinate block, not two.
            names = list(dict.fromkeys(names))
        if not names:
            raise ValueError("the model has no trainable parameters to take curvature in "
                             "(params is empty or every parameter has requires_grad=False)")
        return names

    def _prepare(self, x, y):
        x = x.to(self._device)
        y = y.to(self._device)
        if x.is_floating_point():
            x = x.to(self._dtype)
        if y.is_floating_point():
            y = y.to(self._dtype)
        return x, y

    def _bn_stats(self, index, x):
        if self.bn_mode != "frozen-train" or not self._has_bn:
            return None
        cacheable = isinstance(self.batches, list)
        if cacheable and index in self._stats_cache:
            return self._stats_cache[index]
        stats = batch_norm_statistics(self.model, self.products.tensors, x)
        if cacheable:
            self._stats_cache[index] = stats
        return stats

    def iter_batches(self):
        """Yield (n_b, x, y, bn_stats) for every batch, on the operator's device and dtype."""
        total = len(self.batches) if hasattr(self.batches, "__len__") else None
        frozen = self.bn_mode == "frozen-train" and self._has_bn
        fingerprint = None if isinstance(self.batches, list) else _DataFingerprint(frozen)
        for i, batch in enumerate(progress_bar(self.batches, desc=self._kind, total=total,
                                                          progress=self.progress)):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                got = (f"a {type(batch).__name__} of {len(batch)}"
                       if isinstance(batch, (tuple, list)) else type(batch).__name__)
                raise ValueError(f"each batch of data must be an (x, y) pair, got {got} "
                                 "(wrap a loader that yields more, e.g. (x, y, index), so "
                                 "that it yields (x, y))")
            x, y = self._prepare(*batch)
            if x.shape[0] == 0:
                continue
            if fingerprint is not None:
                fingerprint.add(x, y)
            yield int(x.shape[0]), x, y, self._bn_stats(i, x)
        # Only a complete pass is compared (a consumer may stop early, e.g. method="auto").
        if fingerprint is not None and (value := fingerprint.value()) is not None:
            if self._fingerprint is None:
                self._fingerprint = value
            elif not _DataFingerprint.same(value, self._fingerprint):
                why = ("random augmentation (random crops or flips in the dataset's "
                       "transform), or shuffle=True with drop_last=True")
                if frozen:
                    why += ", or a shuffling loader (with bn_mode='frozen-train' each " \
                           "batch's statistics are part of the function)"
                raise ValueError(
                    "data changed between two passes over it, so the operator is not one "
                    f"fixed matrix: {why}. Pass the data without random transforms (e.g. "
                    "rmtlr.data.cifar(..., augment=False))"
                    + (" and with shuffle=False" if frozen else "")
                    + ", or a list of batches.")

    def _batch_product(self, v, x, y, stats, whole_batch=True):
        raise NotImplementedError

    def accumulate(self, v: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(Σ_b n_b·A_b v, Σ_b n_b): the unnormalised sum the distributed operator reduces."""
        total = torch.zeros_like(v)
        n = 0
        with model_state_preserved(self.model):
            self.model.eval()
            for n_b, x, y, stats in self.iter_batches():
                total.add_(self._batch_product(v, x, y, stats), alpha=float(n_b))
                n += n_b
        if n == 0:
            raise ValueError("data is empty (no samples)")
        return total, n

    def per_batch_products(self, v: torch.Tensor):
        """Yield (n_b, A_b v) batch by batch: the per-unit structure of Algorithm 1."""
        self.check_vector(v)
        with model_state_preserved(self.model):
            self.model.eval()
            for n_b, x, y, stats in self.iter_batches():
                out = self._batch_product(v, x, y, stats)
                _check_finite(out, self._kind)
                yield n_b, out

    def _matvec(self, v):
        total, n = self.accumulate(v)
        out = total.div_(n)
        _check_finite(out, self._kind)
        return out

    def gradient(self) -> tuple[float, torch.Tensor]:
        """Mean loss and its flat gradient over ``data`` (same weighting as the operator)."""
        g, loss, n = None, 0.0, 0
        with model_state_preserved(self.model):
            self.model.eval()
            for n_b, x, y, stats in self.iter_batches():
                lb, gb = self.products.loss_and_grad(x, y, stats)
                g = gb * n_b if g is None else g.add_(gb, alpha=float(n_b))
                loss += float(lb) * n_b
                n += n_b
        if n == 0:
            raise ValueError("data is empty (no samples)")
        return loss / n, g / n


def _check_finite(out: torch.Tensor, kind: str) -> None:
    if not all_finite(out):
        raise ValueError(f"the {kind} product is not finite: the loss, the parameters or the "
                         "data contain NaN/Inf (or overflow in this dtype)")


class HessianOperator(_NetworkOperator):
    r"""The Hessian H = ∇²L(w) of the mean loss over ``data``, as a P×P operator.

    H·v by Pearlmutter's R-operator (Pearlmutter 1994); over several batches
    H v = (1/N) Σ_b n_b H_b v (Granziol et al. 2022, Eq. 4 for one batch).

    Parameters
    ----------
    model: the network (its state — train/eval flags, buffers, ``.grad`` — is restored
        after every call). loss_fn: ``loss_fn(output, y)`` → scalar *mean* over the batch.
    data: one batch ``(x, y)``, a list of batches, or any re-iterable loader (it must
        yield the same samples each pass: no random augmentation; with
        ``bn_mode="frozen-train"`` also the same batches, so no shuffling. A product that
        sees other data than the first complete pass raises ``ValueError``).
    params: parameters (or their names) the Hessian is taken in; default all with
        ``requires_grad``. The others are held fixed.
    method: ``"forward-over-reverse"`` (``torch.func.jvp`` of ``torch.func.grad``),
        ``"double-backward"``, or ``"auto"`` (time both on the first batch, keep the
        faster; the choice is cached per device, model class and P).
    dtype, device: of the flat vectors (default: the model's). The model is evaluated
        with copies of its parameters in this dtype on this device.
    bn_mode: ``"eval"`` (BatchNorm uses running statistics) or ``"frozen-train"``
        (BatchNorm uses each batch's own statistics, measured once and then held fixed,
        so no derivative flows through them). Dropout is always off.
    progress: show a tqdm bar over batches (honours ``TQDM_DISABLE``).
    cache_graph: for a single-batch operator with ``"double-backward"``, keep the gradient
        graph between products (each product is then one backward pass, as in PyHessian);
        costs the graph's memory for the operator's lifetime.

    The operator is a snapshot: parameters and buffers are copied at construction, so
    training the model afterwards does not change it.
    """

    _kind = "Hessian-vector"

    def __init__(self, model, loss_fn, data, params=None, method: str = "auto", *, dtype=None,
                 device=None, bn_mode: str = "eval", progress: bool = False,
                 cache_graph: bool = True):
        if method not in (*HVP_METHODS, "auto"):
            raise ValueError(f"method must be one of {(*HVP_METHODS, 'auto')}, got {method!r}")
        super().__init__(model, loss_fn, data, params, dtype=dtype, device=device,
                         bn_mode=bn_mode, progress=progress)
        self.method = method
        self.cache_graph = cache_graph

    def _batch_product(self, v, x, y, stats, whole_batch=True):
        # Only a product over the operator's one whole batch may keep (or reuse) the graph:
        # a per-sample product (hessian_variance) must neither build nor read it.
        cache = (whole_batch and self.cache_graph and isinstance(self.batches, list)
                 and len(self.batches) == 1)
        if self.method == "auto":
            self.method = self._choose(v, x, y, stats, cache)
        return self.products.hvp(v, x, y, stats, self.method, cache=cache)

    def _choose(self, v, x, y, stats, cache) -> str:
        """Time both methods on this batch and keep the faster one that runs.

        A method can fail on some losses (torch 2.14 has no forward-mode derivative of
        ``mse_loss``'s and ``huber_loss``'s backward), so a failing one is skipped; the
        choice is remembered per (device, model class, P, dtype, single batch, loss type).
        """
        key = (self._device.type, type(self.model).__name__, self._P, self._dtype,
               isinstance(self.batches, list) and len(self.batches) == 1,
               type(self.loss_fn).__name__)
        if key not in _AUTO_CHOICE:
            times, errors = {}, {}
            for m in HVP_METHODS:
                best = float("inf")
                try:
                    for _ in range(2):  # the first call pays one-off costs (allocator, kernels)
                        t0 = time.perf_counter()
                        out = self.products.hvp(v, x, y, stats, m, cache=cache)
                        if self._device.type == "cuda":
                            torch.cuda.synchronize(self._device)
                        float(out[0])
                        best = min(best, time.perf_counter() - t0)
                except (RuntimeError, NotImplementedError) as err:
                    errors[m] = err
                    continue
                times[m] = best
            if not times:
                raise errors[HVP_METHODS[-1]]
            _AUTO_CHOICE[key] = min(times, key=times.get)
        return _AUTO_CHOICE[key]


class GGNOperator(_NetworkOperator):
    r"""The generalised Gauss–Newton G = (1/N) Σ_i J_iᵀ H_ℓ,i J_i over ``data`` (P×P, PSD
    for convex ℓ).

    J_i is the Jacobian of the network output for sample i in the parameters and H_ℓ,i
    the Hessian of the loss in the output (Schraudolph 2002; Granziol et al. 2022,
    Sec. 5 / Thm 7 use it as the PSD stand-in for H). G·v = Jᵀ(H_ℓ(J v)) by a JVP, an
    output-space HVP and a VJP. Parameters as :class:`HessianOperator` (no ``method``).
    """

    _kind = "GGN-vector"

    def _batch_product(self, v, x, y, stats, whole_batch=True):
        return self.products.ggnvp(v, x, y, stats)

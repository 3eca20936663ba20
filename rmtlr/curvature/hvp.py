"""Hessian- and Gauss–Newton-vector products of a network on one batch.

Pearlmutter's trick (Pearlmutter 1994): H·v = d/dt ∇L(w + t v)|_{t=0}, computed without
forming H, at the cost of a few gradients. Two ways are offered:

- forward-over-reverse: ``torch.func.jvp(torch.func.grad(L), (w,), (v,))`` — one forward-mode
  pass through the backward graph;
- double-backward: g = ∇L(w) with ``create_graph=True``, then H·v = ∇(g·v) — reverse over
  reverse.

The GGN (Schraudolph 2002; Martens 2020) of L(w) = ℓ(f(w), y) is G = Jᵀ H_ℓ J, with J the
Jacobian of the network output f and H_ℓ the Hessian of the loss in the output. G·v is a
JVP (J v), an output-space HVP (H_ℓ J v) and a VJP (Jᵀ ·).

BatchNorm: every product runs with the whole model in eval mode (dropout off), so the
forward pass is a fixed function of the weights. ``bn_mode="eval"`` normalises with the
running statistics; ``bn_mode="frozen-train"`` normalises with the statistics of the batch
itself, measured once per batch by :func:`batch_norm_statistics` and then held constant
(no derivative flows through the batch mean and variance).

In both modes a BatchNorm layer is, for the products, the per-channel affine map
x·(γ/√(v + ε)) + (β − m·γ/√(v + ε)) with constant m and v. :class:`_CurvatureForward`
evaluates it in that form: the same function as ``F.batch_norm`` in eval mode, whose
generic double-backward costs several more passes over every activation (measured: HVP /
gradient 2.22 → 1.78 on a BatchNorm CNN on the CPU). For the double-backward product it
also evaluates ReLU and max pooling with their on/off and arg-max patterns held constant
in the backward pass — exact, since both are piecewise linear — which spares the
activation-sized zero tensors torch otherwise propagates as their second derivatives
(a further ≈ 10% on the same CNN; ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vjp
from torch.func import jvp as _torch_jvp
from torch.overrides import TorchFunctionMode

__all__ = ["BN_MODES", "HVP_METHODS", "batch_norm_statistics", "ggn_vector_product",
           "hessian_vector_product"]

#: Supported HVP methods.
HVP_METHODS = ("forward-over-reverse", "double-backward")
#: Supported BatchNorm treatments.
BN_MODES = ("eval", "frozen-train")

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def jvp(*args, **kw):
    """torch.func.jvp without the FutureWarning torch itself raises on first use.

    Forward-mode AD loads its decompositions through ``torch.jit.script`` once per
    process, which warns in torch ≥ 2.10 about its own deprecated API; nothing in the
    caller can change that, and the warning would otherwise land in every chapter output.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated",
                                category=FutureWarning)
        return _torch_jvp(*args, **kw)


def _scalar_loss(loss: torch.Tensor) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError("loss_fn must return a scalar (a mean over the batch, e.g. "
                         f"reduction='mean'), got {shape}")
    return loss


def batch_norm_statistics(model: nn.Module, tensors: dict[str, torch.Tensor],
                          x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Train-mode batch statistics of every BatchNorm layer for the batch ``x``.

    Runs one train-mode forward pass without gradients, on copies of the buffers (the
    model's own running statistics are not touched), and records each BatchNorm input's
    per-channel mean and biased variance — exactly what train-mode BatchNorm normalises
    with. The returned dict maps ``"<layer>.running_mean"``/``"<layer>.running_var"`` to
    these statistics, so an eval-mode forward pass with them substituted reproduces the
    train-mode output while treating the statistics as constants.

    Parameters
    ----------
    model: the network. tensors: parameters and buffers by name (as for
    ``torch.func.functional_call``). x: the input batch (at least 2 samples).
    """
    if x.shape[0] < 2:
        raise ValueError("bn_mode='frozen-train' needs batches of at least 2 samples "
                         f"(batch statistics of 1 sample are degenerate), got {x.shape[0]}")
    stats: dict[str, torch.Tensor] = {}
    hooks = []

    def recorder(name):
        def hook(module, args):
            if f"{name}.running_mean" in stats:
                # The products substitute one mean and variance per layer by name, so a
                # layer applied twice cannot get each call's own statistics.
                raise ValueError(f"BatchNorm layer {name!r} is applied more than once per "
                                 "forward pass; bn_mode='frozen-train' needs one call per "
                                 "layer (use bn_mode='eval')")
            inp = args[0]
            dims = [d for d in range(inp.ndim) if d != 1]
            stats[f"{name}.running_mean"] = inp.mean(dim=dims)
            stats[f"{name}.running_var"] = inp.var(dim=dims, unbiased=False)
        return hook

    for name, m in model.named_modules():
        if isinstance(m, _BN_TYPES):
            hooks.append(m.register_forward_pre_hook(recorder(name)))
    buffers = {k for k, _ in model.named_buffers()}
    copies = {k: (v.clone() if k in buffers else v) for k, v in tensors.items()}
    flags = {m: m.training for m in model.modules()}
    try:
        # Only the BatchNorm layers in train mode: the products run with dropout off, so the
        # statistics must be those of the dropout-off activations (and not random).
        model.eval()
        for m in model.modules():
            if isinstance(m, _BN_TYPES):
                m.train()
        with torch.no_grad():
            functional_call(model, copies, (x,))
    finally:
        for h in hooks:
            h.remove()
        for m, f in flags.items():
            m.training = f
    return stats


class _PiecewiseLinearReLU(torch.autograd.Function):
    """ReLU whose backward treats the on/off pattern as a constant.

    The derivative of ReLU is a step function, so its own derivative is zero wherever it
    exists. torch's ``threshold_backward`` still returns that zero as a dense tensor when
    differentiated (and max-pooling's backward likewise), and the double-backward pass then
    fills, adds and propagates activation-sized zeros through every earlier layer. Taking
    the mask from a detached output gives the same products without them.
    """

    @staticmethod
    def forward(ctx, x, inplace):
        if inplace:  # a model may rely on the side effect (``relu(h, inplace=True)``; use h)
            out = x.relu_()
            ctx.mark_dirty(x)
        else:
            out = torch.relu(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(g, out.detach(), 0), None


class _ArgmaxPool2d(torch.autograd.Function):
    """2-d max pooling whose backward treats the arg-max pattern as a constant (see above)."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        out, idx = torch.ops.aten.max_pool2d_with_indices(x, kernel_size, stride, padding,
                                                           dilation, ceil_mode)
        ctx.save_for_backward(x, idx)
        ctx.args = (kernel_size, stride, padding, dilation, ceil_mode)
        return out

    @staticmethod
    def backward(ctx, g):
        x, idx = ctx.saved_tensors
        gx = torch.ops.aten.max_pool2d_with_indices_backward(g, x.detach(), *ctx.args, idx)
        return (gx,) + (None,) * 5


_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
              "return_indices")


class _CurvatureForward(TorchFunctionMode):
    """The network's function, written so that its second derivatives are cheap.

    Always: eval-mode ``F.batch_norm`` becomes the per-channel affine map it is.
    With ``piecewise_linear=True`` (the double-backward HVP): ReLU and 2-d max pooling
    become :class:`_PiecewiseLinearReLU` and :class:`_ArgmaxPool2d`. Both rewrites compute
    the same function and the same first and second derivatives (tested against dense
    Hessians); the second is left out of the ``torch.func`` paths, which would need
    forward-mode rules for the custom functions.
    """

    def __init__(self, piecewise_linear: bool = False):
        super().__init__()
        self.piecewise_linear = piecewise_linear

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.batch_norm:
            names = ("input", "running_mean", "running_var", "weight", "bias", "training",
                     "momentum", "eps")
            a = {**dict(zip(names, args)), **kwargs}
            if not a.get("training", False) and a.get("running_mean") is not None:
                x, eps = a["input"], a.get("eps", 1e-5)
                scale = torch.rsqrt(a["running_var"] + eps)
                if a.get("weight") is not None:
                    scale = a["weight"] * scale
                shift = -a["running_mean"] * scale
                if a.get("bias") is not None:
                    shift = shift + a["bias"]
                shape = (1, -1) + (1,) * (x.ndim - 2)
                return x * scale.reshape(shape) + shift.reshape(shape)
        elif self.piecewise_linear and func in (F.relu, torch.relu, torch.Tensor.relu):
            a = {**dict(zip(("input", "inplace"), args)), **kwargs}
            return _PiecewiseLinearReLU.apply(a["input"], bool(a.get("inplace", False)))
        elif self.piecewise_linear and func is F.max_pool2d:
            a = {**dict(zip(_POOL_ARGS, args)), **kwargs}
            x, k = a["input"], a["kernel_size"]
            if not a.get("return_indices", False) and x.ndim == 4:
                return _ArgmaxPool2d.apply(x, k, a.get("stride") or k, a.get("padding", 0),
                                           a.get("dilation", 1), a.get("ceil_mode", False))
        return func(*args, **kwargs)


def _split(v: torch.Tensor, names, shapes, numels) -> dict[str, torch.Tensor]:
    return {n: t.view(s) for n, t, s in zip(names, torch.split(v, numels), shapes)}


class BatchProducts:
    """Curvature-vector products of one model/loss pair, shared by the operators.

    Parameters
    ----------
    model, loss_fn: the network and a scalar (mean-reduced) loss ``loss_fn(output, y)``.
    params: names of the parameters the curvature is taken in.
    tensors: every parameter and buffer by name, already on the target device/dtype.
    """

    def __init__(self, model: nn.Module, loss_fn, params: list[str],
                 tensors: dict[str, torch.Tensor]):
        self.model, self.loss_fn, self.names = model, loss_fn, params
        self.tensors = tensors
        self.shapes = [tensors[n].shape for n in params]
        self.numels = [tensors[n].numel() for n in params]
        self.primals = {n: tensors[n] for n in params}
        self.fixed = {k: v for k, v in tensors.items() if k not in self.primals}
        self._graph = None

    def _forward(self, p: dict[str, torch.Tensor], x, bn_stats, piecewise_linear=False):
        fixed = self.fixed if not bn_stats else {**self.fixed, **bn_stats}
        with _CurvatureForward(piecewise_linear):
            return functional_call(self.model, {**fixed, **p}, (x,))

    def _loss(self, p, x, y, bn_stats, piecewise_linear=False):
        out = self._forward(p, x, bn_stats, piecewise_linear)
        return _scalar_loss(self.loss_fn(out, y))

    def flat(self, d: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([d[n].reshape(-1) for n in self.names])

    def hvp(self, v: torch.Tensor, x, y, bn_stats, method: str, cache: bool = False
            ) -> torch.Tensor:
        """H_b·v for the mean loss of the batch (x, y); see the module docstring.

        ``cache`` (double-backward only): keep the gradient graph of this batch and reuse
        it for later products, so each further product is one backward pass through it
        (for operators over a single batch; memory grows with the graph).
        """
        vd = _split(v, self.names, self.shapes, self.numels)
        if method == "forward-over-reverse":
            def g(p):
                return grad(lambda q: self._loss(q, x, y, bn_stats))(p)
            _, hv = jvp(g, (self.primals,), (vd,))
            return self.flat(hv)
        graph = self._graph if cache else None
        if graph is not None and graph[2] != (tuple(x.shape), tuple(y.shape)):
            graph = None  # a graph is only valid for the batch it was built on
        if graph is None:
            leaves = {n: t.detach().requires_grad_(True) for n, t in self.primals.items()}
            with torch.enable_grad():
                loss = self._loss(leaves, x, y, bn_stats, piecewise_linear=True)
                gs = torch.autograd.grad(loss, list(leaves.values()), create_graph=True,
                                         allow_unused=True)
            graph = (leaves, gs, (tuple(x.shape), tuple(y.shape)))
            if cache:
                self._graph = graph
        leaves, gs, _ = graph
        used = [(n, gi) for n, gi in zip(leaves, gs) if gi is not None and gi.requires_grad]
        if not used:
            return torch.zeros_like(v)
        with torch.enable_grad():
            hv = torch.autograd.grad([gi for _, gi in used], list(leaves.values()),
                                     grad_outputs=[vd[n] for n, _ in used],
                                     retain_graph=cache, allow_unused=True)
        return torch.cat([(h if h is not None else torch.zeros_like(leaves[n])).reshape(-1)
                          for n, h in zip(leaves, hv)])

    def ggnvp(self, v: torch.Tensor, x, y, bn_stats) -> torch.Tensor:
        """G_b·v = Jᵀ H_ℓ J v for the mean loss of the batch (x, y)."""
        vd = _split(v, self.names, self.shapes, self.numels)

        def f(p):
            return self._forward(p, x, bn_stats)

        out, jv = jvp(f, (self.primals,), (vd,))
        # H_ℓ·(Jv) in output space by double-backward: small, and it works for every loss
        # (torch 2.14 has no forward-mode derivative of mse_loss's or huber_loss's backward).
        with torch.enable_grad():
            o = out.detach().requires_grad_(True)
            (g_o,) = torch.autograd.grad(_scalar_loss(self.loss_fn(o, y)), o, create_graph=True)
            hjv = None
            if g_o.requires_grad:  # else the loss is linear in the output: H_ℓ = 0
                (hjv,) = torch.autograd.grad(g_o, o, grad_outputs=jv, allow_unused=True)
        if hjv is None:
            hjv = torch.zeros_like(out)
        _, pull = vjp(f, self.primals)
        return self.flat(pull(hjv)[0])

    def loss_and_grad(self, x, y, bn_stats):
        """The batch loss and its flat gradient (for timing and sanity checks)."""
        g, loss = torch.func.grad_and_value(lambda q: self._loss(q, x, y, bn_stats))(self.primals)
        return loss, self.flat(g)


def hessian_vector_product(model: nn.Module, loss_fn, x, y, v: torch.Tensor, *,
                           method: str = "forward-over-reverse", bn_mode: str = "eval"):
    """H·v of ``loss_fn(model(x), y)`` in all trainable parameters, flat (Pearlmutter 1994).

    A one-batch convenience around :class:`rmtlr.curvature.HessianOperator`, which handles
    parameter selection, several batches and model-state restoration.
    """
    from rmtlr.curvature.operators import HessianOperator
    return HessianOperator(model, loss_fn, (x, y), method=method, bn_mode=bn_mode) @ v


def ggn_vector_product(model: nn.Module, loss_fn, x, y, v: torch.Tensor, *,
                       bn_mode: str = "eval"):
    """G·v = Jᵀ H_ℓ J v of ``loss_fn(model(x), y)`` (Schraudolph 2002), flat."""
    from rmtlr.curvature.operators import GGNOperator
    return GGNOperator(model, loss_fn, (x, y), bn_mode=bn_mode) @ v

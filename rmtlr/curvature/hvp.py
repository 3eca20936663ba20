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
x·s + t, s = γ/√(v + ε), t = β − m·s, with constant m and v. :class:`_CurvatureForward`
evaluates the network so that its second derivatives are cheap, always as the same
function (``benchmarks/RESULTS.md`` has the measurements, on a BatchNorm CNN on the CPU):

- BatchNorm in that affine form, not through ``F.batch_norm``, whose generic
  double-backward makes several more passes over every activation (HVP / gradient 2.22 →
  1.78);
- for the double-backward product: ReLU and max pooling with their on/off and arg-max
  patterns held constant in the backward pass — exact, since both are piecewise linear —
  which spares the activation-sized zero tensors torch otherwise propagates as their
  second derivatives (≈ 0.93 of the HVP time); a BatchNorm of a convolution's output
  folded into the convolution, conv(x, W·s) + b·s + t, so that s and t meet only the
  weights, where the activations outnumber the weights; and a convolution of data
  differentiated without the input gradient that torch's generic second derivative
  computes anyway (these two together 0.75–0.86).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vjp
from torch.func import jvp as _torch_jvp
from torch.overrides import TorchFunctionMode

from rmtlr.curvature.params import params_to_vector, vector_to_params

__all__ = ["BN_MODES", "HVP_METHODS", "BatchProducts", "batch_norm_statistics"]

#: The two Hessian-vector product methods (see the module docstring).
HVP_METHODS = ("forward-over-reverse", "double-backward")
#: BatchNorm treatments: running statistics, or each batch's own statistics held fixed.
BN_MODES = ("eval", "frozen-train")

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def _jvp(*args, **kw):
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
        raise ValueError("loss_fn must return a scalar (a mean or a sum over the batch, "
                         f"reduction='mean' or 'sum'), got {shape}")
    return loss


def batch_norm_statistics(model: nn.Module, tensors: dict[str, torch.Tensor], x: Any, *,
                          num_samples: int | None = None) -> dict[str, torch.Tensor]:
    """Train-mode batch statistics of every BatchNorm layer for the batch ``x``.

    Runs one train-mode forward pass without gradients, on copies of the buffers (the
    model's own running statistics are not touched), and records each BatchNorm input's
    per-channel mean and biased variance — exactly what train-mode BatchNorm normalises
    with. The returned dict maps ``"<layer>.running_mean"``/``"<layer>.running_var"`` to
    these statistics, so an eval-mode forward pass with them substituted reproduces the
    train-mode output while treating the statistics as constants.

    Parameters
    ----------
    model : torch.nn.Module
        The network (its train/eval flags are restored afterwards).
    tensors : dict of str to torch.Tensor
        Parameters and buffers by name, as for ``torch.func.functional_call``.
    x : torch.Tensor or mapping of str to torch.Tensor
        The input batch, passed to the model as its one argument.
    num_samples : int or None, optional
        Samples in the batch; default ``x.shape[0]`` (required when x is a mapping).

    Returns
    -------
    dict of str to torch.Tensor
        ``"<layer>.running_mean"`` and ``"<layer>.running_var"`` of every BatchNorm layer.

    Raises
    ------
    ValueError
        If the batch has fewer than 2 samples, or a BatchNorm layer is applied twice.
    """
    n = x.shape[0] if num_samples is None else num_samples
    if n < 2:
        raise ValueError("bn_mode='frozen-train' needs batches of at least 2 samples "
                         f"(batch statistics of 1 sample are degenerate), got {n}")
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


class _DataConvWeightGrad(torch.autograd.Function):
    """∂L/∂W of a convolution whose input x is data, as a function of the output gradient g.

    Linear in g; its derivative is the forward convolution of x with the incoming weight
    gradient, and nothing else. (torch's generic second derivative of a convolution also
    computes the gradient with respect to the input x, a transposed convolution at full
    resolution, even when x needs none.)
    """

    @staticmethod
    def forward(ctx, g, x, w, stride, padding, dilation, groups):
        zeros = [0] * len(stride)
        _, gw, _ = torch.ops.aten.convolution_backward(g, x, w, None, stride, padding,
                                                       dilation, False, zeros, groups,
                                                       [False, True, False])
        ctx.save_for_backward(x)
        ctx.args = (stride, padding, dilation, groups)
        return gw

    @staticmethod
    def backward(ctx, ggw):
        (x,) = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.args
        gg = torch.convolution(x, ggw, None, stride, padding, dilation, False,
                               [0] * len(stride), groups)
        return (gg,) + (None,) * 6


class _DataConv(torch.autograd.Function):
    """Convolution of data x (no gradient) whose backward is :class:`_DataConvWeightGrad`."""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        ctx.save_for_backward(x, w)
        ctx.args = (stride, padding, dilation, groups)
        ctx.has_bias = b is not None
        return torch.convolution(x, w, b, stride, padding, dilation, False, [0] * len(stride),
                                 groups)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gw = _DataConvWeightGrad.apply(g, x, w, *ctx.args)
        gb = g.sum([0] + list(range(2, g.ndim))) if ctx.has_bias else None
        return (None, gw, gb) + (None,) * 4


class _FoldedBatchNorm(torch.autograd.Function):
    """BatchNorm x·s + t of a convolution's output, differentiated as the folded convolution.

    With out = conv(x, W) + b, BN(out) = conv(x, W·s) + b·s + t: the value is taken from
    ``out`` (no second convolution), the derivatives are those of the folded form, in which
    s and t meet only the weights and the per-channel sums of the incoming gradient, so
    neither derivative pass multiplies activation-sized tensors by s or sums their products.
    The gradient does not flow back through ``out`` itself.
    """

    @staticmethod
    def forward(ctx, out, x, w, b, s, t, stride, padding, dilation, groups):
        ctx.save_for_backward(x, w, b, s)
        ctx.args = (stride, padding, dilation, groups)
        shape = (1, -1) + (1,) * (out.ndim - 2)
        return out * s.reshape(shape) + t.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        x, w, b, s = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.args
        s_w = s.reshape((-1,) + (1,) * (w.ndim - 1))
        ws = w * s_w
        if ctx.needs_input_grad[1]:
            gx, gws, _ = torch.ops.aten.convolution_backward(
                g, x, ws, None, stride, padding, dilation, False, [0] * len(stride), groups,
                [True, True, False])
        else:
            gx, gws = None, _DataConvWeightGrad.apply(g, x, ws, stride, padding, dilation,
                                                      groups)
        gsum = g.sum([0] + list(range(2, g.ndim)))
        gs = (gws * w).sum(list(range(1, w.ndim)))
        if b is not None:
            gs = gs + b * gsum
        gb = gsum * s if b is not None else None
        return (None, gx, gws * s_w, gb, gs, gsum) + (None,) * 4


_CONVS = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


def _conv_args(func, args, kwargs):
    """Return a convolution call's (x, w, b, stride, padding, dilation, groups).

    Strides etc. as explicit per-dimension lists; None where the call is not one the
    rewrites handle (string padding).
    """
    a = {**dict(zip(_CONV_ARGS, args)), **kwargs}
    n = _CONVS[func]
    if a["input"].ndim != n + 2 or isinstance(a.get("padding", 0), str):
        return None

    def tup(v):
        return [int(v)] * n if isinstance(v, int) else [int(i) for i in v]
    return (a["input"], a["weight"], a.get("bias"), tup(a.get("stride", 1)),
            tup(a.get("padding", 0)), tup(a.get("dilation", 1)), int(a.get("groups", 1)))


_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
              "return_indices")


class _CurvatureForward(TorchFunctionMode):
    """The network's function, written so that its second derivatives are cheap.

    Every rewrite computes the same function, hence the same first and second derivatives
    (each is tested against dense Hessians in float64):

    - always: eval-mode ``F.batch_norm`` is the per-channel affine map x·s + t it is;
    - with ``double_backward=True`` (the double-backward HVP): a BatchNorm of a
      convolution's output becomes :class:`_FoldedBatchNorm`, a convolution of data
      :class:`_DataConv`, ReLU and 2-d max pooling :class:`_PiecewiseLinearReLU` and
      :class:`_ArgmaxPool2d`. The ``torch.func`` paths keep the built-in functions, which
      have the forward-mode rules these custom functions lack.
    """

    def __init__(self, double_backward: bool = False):
        super().__init__()
        self.double_backward = double_backward
        self._last_conv = None

    def __exit__(self, *exc):
        self._last_conv = None  # do not keep the last activation alive
        return super().__exit__(*exc)

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
                last = self._last_conv
                # Fold only into the very tensor the convolution returned, unmodified (an
                # in-place op in between bumps its version), and only where the activations
                # outnumber the weights: folding moves the work on s from the one to the
                # other (deep VGG layers, 512 channels at 2×2, are slower folded).
                if (last is not None and x is last[0] and x._version == last[1]
                        and x.numel() > last[2][1].numel()):
                    xin, w, b, *rest = last[2]
                    return _FoldedBatchNorm.apply(x, xin, w, b, scale, shift, *rest)
                shape = (1, -1) + (1,) * (x.ndim - 2)
                return x * scale.reshape(shape) + shift.reshape(shape)
        elif self.double_backward and func in _CONVS:
            conv = _conv_args(func, args, kwargs)
            if conv is not None:
                x, w, *rest = conv
                out = (_DataConv.apply(*conv) if not x.requires_grad and w.requires_grad
                       else torch.convolution(x, w, rest[0], *rest[1:4], False,
                                              [0] * len(rest[1]), rest[4]))
                self._last_conv = (out, out._version, conv)
                return out
        elif self.double_backward and func in (F.relu, torch.relu, torch.Tensor.relu):
            a = {**dict(zip(("input", "inplace"), args)), **kwargs}
            return _PiecewiseLinearReLU.apply(a["input"], bool(a.get("inplace", False)))
        elif self.double_backward and func is F.max_pool2d:
            a = {**dict(zip(_POOL_ARGS, args)), **kwargs}
            x, k = a["input"], a["kernel_size"]
            if not a.get("return_indices", False) and x.ndim == 4:
                return _ArgmaxPool2d.apply(x, k, a.get("stride") or k, a.get("padding", 0),
                                           a.get("dilation", 1), a.get("ceil_mode", False))
        return func(*args, **kwargs)


class BatchProducts:
    """Curvature-vector products of one model/loss pair on one batch at a time.

    The products are those of the batch loss exactly as ``loss_fn`` returns it (a mean or a
    sum over the batch): weighting batches against each other is the operators' business
    (:mod:`rmtlr.curvature.operators`), not this class's.

    Parameters
    ----------
    model : torch.nn.Module
        The network; it is only evaluated through ``torch.func.functional_call`` with
        ``tensors``, never modified.
    loss_fn : callable
        ``loss_fn(output, y)`` returning a scalar tensor.
    params : list of str
        Names of the parameters the curvature is taken in, in vector order.
    tensors : dict of str to torch.Tensor
        Every parameter and buffer by name, already on the target device and dtype.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor],
                 params: list[str], tensors: dict[str, torch.Tensor]):
        self.model, self.loss_fn, self.names = model, loss_fn, params
        self.tensors = tensors
        self.primals = {n: tensors[n] for n in params}
        self.fixed = {k: v for k, v in tensors.items() if k not in self.primals}
        self._graph = None

    def _forward(self, p: dict[str, torch.Tensor], x: Any, bn_stats: dict | None,
                 double_backward: bool = False) -> torch.Tensor:
        fixed = self.fixed if not bn_stats else {**self.fixed, **bn_stats}
        with _CurvatureForward(double_backward):
            return functional_call(self.model, {**fixed, **p}, (x,))

    def _loss(self, p: dict[str, torch.Tensor], x: Any, y: torch.Tensor,
              bn_stats: dict | None, double_backward: bool = False) -> torch.Tensor:
        out = self._forward(p, x, bn_stats, double_backward)
        return _scalar_loss(self.loss_fn(out, y))

    def _columns(self, V: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        cols = [V] if V.ndim == 1 else [V[:, i] for i in range(V.shape[1])]
        return [vector_to_params(c, self.primals) for c in cols]

    @staticmethod
    def _stack(V: torch.Tensor, outs: list[torch.Tensor]) -> torch.Tensor:
        return outs[0] if V.ndim == 1 else torch.stack(outs, dim=1)

    def hvp(self, V: torch.Tensor, x: Any, y: torch.Tensor, bn_stats: dict | None,
            method: str, cache: bool = False) -> torch.Tensor:
        """H_b·V for the batch loss of (x, y); see the module docstring.

        Parameters
        ----------
        V : torch.Tensor
            A flat vector (P,) or a block (P, k).
        x : torch.Tensor or mapping of str to torch.Tensor
            The batch's input, passed to the model as its one argument.
        y : torch.Tensor
            The batch's targets.
        bn_stats : dict or None
            Frozen BatchNorm statistics (:func:`batch_norm_statistics`), or None.
        method : str
            One of :data:`HVP_METHODS`.
        cache : bool, optional
            Double-backward only: keep the gradient graph of this batch and reuse it for
            later products, so that each further product is one backward pass through it
            (for operators over a single batch; memory grows with the graph).

        Returns
        -------
        torch.Tensor
            H_b·V, of V's shape.
        """
        cols = self._columns(V)
        if method == "forward-over-reverse":
            def g(p):
                return grad(lambda q: self._loss(q, x, y, bn_stats))(p)
            return self._stack(V, [params_to_vector(_jvp(g, (self.primals,), (c,))[1])
                                   for c in cols])
        graph = self._graph if cache else None
        if graph is not None and graph[2] != _shape_key(x, y):
            graph = None  # a graph is only valid for the batch it was built on
        if graph is None:
            leaves = {n: t.detach().requires_grad_(True) for n, t in self.primals.items()}
            with torch.enable_grad():
                loss = self._loss(leaves, x, y, bn_stats, double_backward=True)
                gs = torch.autograd.grad(loss, list(leaves.values()), create_graph=True,
                                         allow_unused=True)
            graph = (leaves, gs, _shape_key(x, y))
            if cache:
                self._graph = graph
        leaves, gs, _ = graph
        used = [(n, gi) for n, gi in zip(leaves, gs) if gi is not None and gi.requires_grad]
        if not used:
            return torch.zeros_like(V)
        outs = []
        for i, c in enumerate(cols):
            # The graph serves every column; only the last pass may free it (uncached).
            keep = cache or i < len(cols) - 1
            with torch.enable_grad():
                hv = torch.autograd.grad([gi for _, gi in used], list(leaves.values()),
                                         grad_outputs=[c[n] for n, _ in used],
                                         retain_graph=keep, allow_unused=True)
            outs.append(torch.cat([(h if h is not None else torch.zeros_like(leaves[n]))
                                   .reshape(-1) for n, h in zip(leaves, hv)]))
        return self._stack(V, outs)

    def ggnvp(self, V: torch.Tensor, x: Any, y: torch.Tensor, bn_stats: dict | None
              ) -> torch.Tensor:
        """G_b·V = Jᵀ H_ℓ J V for the batch loss of (x, y).

        Parameters
        ----------
        V : torch.Tensor
            A flat vector (P,) or a block (P, k).
        x : torch.Tensor or mapping of str to torch.Tensor
            The batch's input.
        y : torch.Tensor
            The batch's targets.
        bn_stats : dict or None
            Frozen BatchNorm statistics, or None.

        Returns
        -------
        torch.Tensor
            G_b·V, of V's shape.
        """
        cols = self._columns(V)

        def f(p):
            return self._forward(p, x, bn_stats)

        out, pull = vjp(f, self.primals)
        # H_ℓ·(Jv) in output space by double-backward: small, and it works for every loss
        # (torch 2.14 has no forward-mode derivative of mse_loss's or huber_loss's backward).
        with torch.enable_grad():
            o = out.detach().requires_grad_(True)
            (g_o,) = torch.autograd.grad(_scalar_loss(self.loss_fn(o, y)), o, create_graph=True)
        outs = []
        for c in cols:
            jv = _jvp(f, (self.primals,), (c,))[1]
            hjv = None
            if g_o.requires_grad:  # else the loss is linear in the output: H_ℓ = 0
                with torch.enable_grad():
                    (hjv,) = torch.autograd.grad(g_o, o, grad_outputs=jv, retain_graph=True,
                                                 allow_unused=True)
            if hjv is None:
                hjv = torch.zeros_like(out)
            outs.append(params_to_vector(pull(hjv)[0]))
        return self._stack(V, outs)

    def loss_and_grad(self, x: Any, y: torch.Tensor, bn_stats: dict | None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the batch loss and its flat gradient.

        Parameters
        ----------
        x : torch.Tensor or mapping of str to torch.Tensor
            The batch's input.
        y : torch.Tensor
            The batch's targets.
        bn_stats : dict or None
            Frozen BatchNorm statistics, or None.

        Returns
        -------
        tuple of torch.Tensor
            The scalar loss and the gradient (P,).
        """
        g, loss = torch.func.grad_and_value(lambda q: self._loss(q, x, y, bn_stats))(self.primals)
        return loss, params_to_vector(g)


def _shape_key(x: Any, y: torch.Tensor) -> tuple:
    xs = (tuple((k, tuple(t.shape)) for k, t in x.items()) if isinstance(x, Mapping)
          else tuple(x.shape))
    return xs, tuple(y.shape)

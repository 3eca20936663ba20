"""method="auto": chosen per model object, and replaced when it fails on a later batch.

The choice used to be cached globally by (device, model class name, P, ...), so a second,
unrelated model of the same class and size inherited a method it cannot run. Here two
models of one class and size differ in one custom ``autograd.Function``: one has a
forward-mode rule (``jvp``) but a backward that cannot be differentiated again, the other
the reverse. Each can run only one of the two methods.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from rmtlr.curvature import HessianOperator, params_to_vector, vector_to_params

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")


class _TwiceXG(torch.autograd.Function):
    """2·x·g, the backward of x²: forward-mode rule only (its own backward raises)."""

    @staticmethod
    def forward(x, g):
        return 2 * x * g

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_forward(*inputs)

    @staticmethod
    def jvp(ctx, dx, dg):
        x, g = ctx.saved_tensors
        return 2 * dx * g + 2 * x * dg

    @staticmethod
    def backward(ctx, grad_out):
        raise RuntimeError("no reverse-mode derivative of the backward of SquareFwd")


class SquareFwd(torch.autograd.Function):
    """x² with a jvp; its backward is not reverse-differentiable (no double-backward)."""

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return _TwiceXG.apply(x, g)

    @staticmethod
    def jvp(ctx, dx):
        (x,) = ctx.saved_tensors
        return 2 * x * dx


class SquareRev(torch.autograd.Function):
    """x² without a jvp (no forward-over-reverse), twice reverse-differentiable."""

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class Net(nn.Module):
    """Linear → square → linear; ``square`` picks the implementation, per batch size if a
    dict {batch size: Function} (plain x*x when None)."""

    def __init__(self, square):
        super().__init__()
        self.square = square
        self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        sq = self.square.get(x.shape[0]) if isinstance(self.square, dict) else self.square
        return self.b(h * h if sq is None else sq.apply(h))


def data(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, generator=g, dtype=torch.float64),
            torch.randint(0, 2, (n,), generator=g))


def dense_reference(net, batches):
    """Hessian of the mean loss over all batches, of the same weights with plain x*x."""
    plain = copy.deepcopy(net)
    plain.square = None
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])

    def loss(w):
        out = functional_call(plain, vector_to_params(w, plain), (x,))
        return nn.functional.cross_entropy(out, y)

    return hessian(loss)(params_to_vector(plain))


def densify(op):
    return op @ torch.eye(op.shape[0], dtype=op.dtype)


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_two_models_of_one_class_and_size_choose_separately():
    torch.manual_seed(0)
    fwd_only = Net(SquareFwd).double()
    rev_only = Net(SquareRev).double()
    batch = data()
    loss = nn.CrossEntropyLoss()
    op1 = HessianOperator(fwd_only, loss, batch)
    assert rel(densify(op1), dense_reference(fwd_only, [batch])) < 1e-10
    assert op1.method_used == "forward-over-reverse"  # the only one it can run
    # Same class, same P, same loss type, same device: it must measure for itself.
    op2 = HessianOperator(rev_only, loss, batch)
    assert rel(densify(op2), dense_reference(rev_only, [batch])) < 1e-10
    assert op2.method_used == "double-backward"
    # A new operator on the first model reuses that model's choice.
    op3 = HessianOperator(fwd_only, loss, data(seed=1))
    op3 @ torch.zeros(op3.shape[0], dtype=torch.float64)
    assert op3.method_used == "forward-over-reverse"


def test_auto_falls_back_when_the_chosen_method_fails_on_a_later_batch():
    # Batches of 5 go through SquareFwd (only forward-over-reverse runs), batches of 3
    # through SquareRev (only double-backward runs): 'auto' chooses on the first batch and
    # must switch at the second instead of failing.
    torch.manual_seed(1)
    net = Net({5: SquareFwd, 3: SquareRev}).double()
    x, y = data(n=8, seed=2)
    batches = [(x[:5], y[:5]), (x[5:], y[5:])]
    op = HessianOperator(net, nn.CrossEntropyLoss(), batches)
    assert rel(densify(op), dense_reference(net, batches)) < 1e-10
    # An explicit method does not fall back: the failure is the user's to see.
    pinned = HessianOperator(net, nn.CrossEntropyLoss(), batches,
                             method="forward-over-reverse")
    with pytest.raises(NotImplementedError, match="jvp"):
        pinned @ torch.zeros(pinned.shape[0], dtype=torch.float64)

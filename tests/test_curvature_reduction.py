"""Loss reductions: every operator is the curvature of the *mean* loss over samples.

A loss with ``reduction="sum"`` returns n_b times the batch mean, so its batch Hessian is
n_b times too large; the operators must divide it out (and weight uneven batches by size as
for the mean), refuse ``reduction="none"``, and take a plain function's reduction from
``loss_reduction=``. References: dense ``torch.func.hessian`` of the summed loss over all N
samples, divided by N, in float64.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian, jacrev

from rmtlr.curvature import GGNOperator, HessianOperator, params_to_vector, vector_to_params

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")

RTOL = 1e-10


def setup(n=11, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, x, y


def summed_loss_hessian(model, x, y):
    """∇² of Σ_i ℓ_i over all samples, dense."""
    w = params_to_vector(model)

    def total(w):
        out = functional_call(model, vector_to_params(w, model), (x,))
        return F.cross_entropy(out, y, reduction="sum")

    return hessian(total)(w)


def summed_loss_ggn(model, x, y):
    w = params_to_vector(model)

    def f(w):
        return functional_call(model, vector_to_params(w, model), (x,))

    out = f(w)
    J = jacrev(f)(w).reshape(out.numel(), -1)
    H_out = hessian(lambda o: F.cross_entropy(o, y, reduction="sum"))(out.detach())
    return J.T @ H_out.reshape(out.numel(), out.numel()) @ J


def densify(op):
    return op @ torch.eye(op.shape[0], dtype=op.dtype)


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_sum_reduction_gives_the_mean_loss_hessian_over_uneven_batches():
    model, x, y = setup()
    N = x.shape[0]
    H_mean = summed_loss_hessian(model, x, y) / N
    batches = [(x[:6], y[:6]), (x[6:], y[6:])]  # uneven: 6 and 5 samples
    for data in ((x, y), batches):
        op = HessianOperator(model, nn.CrossEntropyLoss(reduction="sum"), data)
        assert op.loss_reduction == "sum"
        assert rel(densify(op), H_mean) < RTOL
        mean_op = HessianOperator(model, nn.CrossEntropyLoss(), data)
        assert rel(densify(mean_op), H_mean) < RTOL
    # The summed loss's own Hessian is N times larger: the scale the bug returned.
    assert rel(densify(op), N * H_mean) > 0.5


def test_sum_reduction_ggn_gradient_and_per_batch_products():
    model, x, y = setup()
    N = x.shape[0]
    batches = [(x[:6], y[:6]), (x[6:], y[6:])]
    loss = nn.CrossEntropyLoss(reduction="sum")
    G = GGNOperator(model, loss, batches)
    assert rel(densify(G), summed_loss_ggn(model, x, y) / N) < RTOL
    H = HessianOperator(model, loss, batches)
    mean = HessianOperator(model, nn.CrossEntropyLoss(), batches)
    lv, g = H.gradient()
    lv_ref, g_ref = mean.gradient()
    assert abs(lv - lv_ref) < 1e-12 * abs(lv_ref) and rel(g, g_ref) < RTOL
    v = torch.randn(H.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for (n_s, hs), (n_m, hm) in zip(H.per_batch_products(v), mean.per_batch_products(v)):
        assert n_s == n_m and rel(hs, hm) < RTOL  # each is the batch's mean-loss product


def test_plain_function_losses_and_partials():
    model, x, y = setup()
    N = x.shape[0]
    H_mean = summed_loss_hessian(model, x, y) / N

    def summed(out, t):
        return F.cross_entropy(out, t, reduction="sum")

    # A plain function is taken to be a mean unless loss_reduction says otherwise.
    op = HessianOperator(model, summed, (x, y), loss_reduction="sum")
    assert rel(densify(op), H_mean) < RTOL
    assert rel(densify(HessianOperator(model, summed, (x, y))), N * H_mean) < RTOL
    partial = functools.partial(F.cross_entropy, reduction="sum")
    assert rel(densify(HessianOperator(model, partial, (x, y))), H_mean) < RTOL


def test_bad_reductions_are_refused_at_construction():
    model, x, y = setup()
    with pytest.raises(ValueError, match="reduction='none'.*'mean' or 'sum'"):
        HessianOperator(model, nn.CrossEntropyLoss(reduction="none"), (x, y))
    with pytest.raises(ValueError, match="reduction='none'"):
        GGNOperator(model, functools.partial(F.cross_entropy, reduction="none"), (x, y))
    with pytest.raises(ValueError, match="contradicts"):
        HessianOperator(model, nn.CrossEntropyLoss(), (x, y), loss_reduction="sum")
    with pytest.raises(ValueError, match="loss_reduction must be one of"):
        HessianOperator(model, lambda o, t: F.cross_entropy(o, t), (x, y),
                        loss_reduction="avg")
    # A plain function returning per-sample losses fails at the first product, by name.
    op = HessianOperator(model, lambda o, t: F.cross_entropy(o, t, reduction="none"), (x, y))
    with pytest.raises(ValueError, match="must return a scalar"):
        op @ torch.zeros(op.shape[0], dtype=torch.float64)


def test_kl_div_batchmean_is_a_mean():
    model, x, _ = setup()
    g = torch.Generator().manual_seed(3)
    target = torch.softmax(torch.randn(x.shape[0], 3, generator=g, dtype=torch.float64), 1)

    def kl(out, t):
        return nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(out, 1), t)

    batches = [(x[:6], target[:6]), (x[6:], target[6:])]
    op = HessianOperator(model, kl, batches)
    assert op.loss_reduction == "mean"
    ref = HessianOperator(model, kl, (x, target))  # one batch: its mean is the full mean
    assert rel(densify(op), densify(ref)) < RTOL
    wrapped = HessianOperator(model, _KL(), batches)
    assert wrapped.loss_reduction == "mean"
    assert rel(densify(wrapped), densify(ref)) < RTOL


class _KL(nn.Module):
    """A loss module with reduction='batchmean' (KLDivLoss's mean over samples)."""

    reduction = "batchmean"

    def forward(self, out, t):
        return nn.functional.kl_div(torch.log_softmax(out, 1), t, reduction="batchmean")

"""Gradient noise scale B_simple against independent references.

References: per-sample gradients by a plain autograd loop in float64 (no torch.func);
closed forms for linear regression (finite data, and the Gaussian population); the exact
values as the expectation of the two-batch estimator, over many random batches.

Tolerances: 1e-10 relative between float64 computations by different routes; sampling
checks within 5 standard errors (of the estimator's spread over batches, or of the
per-sample terms for the population law).
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from torch import nn

import rmtlr.noise_scale
from rmtlr.noise_scale import FlatLoss, GradientNoiseScale, gradient_noise_scale

CE = nn.CrossEntropyLoss()


def tiny_mlp(seed=0, dropout=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(3, 5), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(5, 3))
    return nn.Sequential(*layers).double()


def classification_data(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (n,), generator=g))


def loop_gradients(model, loss_fn, x, y):
    """Per-sample gradients, one autograd call per sample (the reference route)."""
    model.eval()
    rows = []
    for i in range(x.shape[0]):
        loss = loss_fn(model(x[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, [p for p in model.parameters()])
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows).numpy()


def exact_parts(g):
    G = g.mean(axis=0)
    return float(G @ G), float(((g - G) ** 2).sum(axis=1).mean())


def test_exact_matches_per_sample_autograd_loop():
    model = tiny_mlp(dropout=True)
    model.train()
    x, y = classification_data(23)
    g2, tr = exact_parts(loop_gradients(model, CE, x, y))
    model.train()
    batches = [(x[:10], y[:10]), (x[10:17], y[10:17]), (x[17:], y[17:])]
    for chunk in (1, 4, 256):
        res = gradient_noise_scale(model, CE, batches, chunk_size=chunk)
        assert isinstance(res, GradientNoiseScale)
        assert res.grad_norm2 == pytest.approx(g2, rel=1e-10)
        assert res.trace_sigma == pytest.approx(tr, rel=1e-10)
        assert res.b_simple == pytest.approx(tr / g2, rel=1e-10)
        assert (res.method, res.num_samples, res.num_batches) == ("exact", 23, 3)
        assert res.b_simple_stderr is None
    assert model.training  # dropout was off for the computation, the mode is restored
    assert all(p.grad is None for p in model.parameters())


def test_exact_is_accurate_in_float32_when_noise_is_small():
    """One-pass combination avoids mean|g|² − |G|² cancellation (|G|² ≫ tr Σ here)."""
    rng = np.random.default_rng(0)
    x = 1.0 + 1e-3 * rng.normal(size=(400, 1))  # nearly identical samples
    model = nn.Linear(1, 1, bias=False)
    nn.init.ones_(model.weight)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.zeros(400, 1)
    res = gradient_noise_scale(model, nn.MSELoss(), (xt, yt), chunk_size=64)
    g = 2 * x.astype(np.float32).astype(np.float64) ** 2  # ℓ_i = x_i², g_i = 2x_i²
    assert res.trace_sigma == pytest.approx(g.var(), rel=1e-3)


def test_linear_regression_closed_form():
    """ℓ_i = (w·x_i − y_i)²: g_i = 2r_i x_i, G = (2/N)Xᵀr, tr Σ = (4/N)Σ r_i²|x_i|² − |G|²."""
    rng = np.random.default_rng(1)
    X, yv, w = rng.normal(size=(31, 4)), rng.normal(size=31), rng.normal(size=4)
    r = X @ w - yv
    G = 2 * X.T @ r / 31
    tr = 4 * np.mean(r ** 2 * (X ** 2).sum(axis=1)) - G @ G
    model = nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w)[None])
    res = gradient_noise_scale(model, nn.MSELoss(),
                               (torch.from_numpy(X), torch.from_numpy(yv)[:, None]))
    assert res.grad_norm2 == pytest.approx(G @ G, rel=1e-12)
    assert res.trace_sigma == pytest.approx(tr, rel=1e-12)


def test_gaussian_linear_regression_population_law():
    """x ~ N(0, I_d), y = w*·x + σε, at w = w* + δ: G = 2δ, tr Σ = 4(|δ|²(d+1) + σ²d)."""
    d, n, sigma = 4, 20_000, 0.5
    rng = np.random.default_rng(2)
    X = rng.normal(size=(n, d))
    w_star, delta = rng.normal(size=d), rng.normal(size=d)
    yv = X @ w_star + sigma * rng.normal(size=n)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w_star + delta)[None])
    res = gradient_noise_scale(model, nn.MSELoss(),
                               (torch.from_numpy(X), torch.from_numpy(yv)[:, None]),
                               chunk_size=4096)
    g = 2 * (X @ (w_star + delta) - yv)[:, None] * X
    G = g.mean(axis=0)
    term = ((g - G) ** 2).sum(axis=1)
    tr_se = term.std(ddof=1) / math.sqrt(n)
    g2_se = 2 * math.sqrt(G @ np.cov(g.T) @ G / n)
    assert abs(res.trace_sigma - 4 * (delta @ delta * (d + 1) + sigma ** 2 * d)) < 5 * tr_se
    assert abs(res.grad_norm2 - 4 * delta @ delta) < 5 * g2_se


@pytest.mark.parametrize("replacement", [True, False])
def test_two_batch_estimator_is_unbiased(replacement):
    """Mean over 1000 random big batches (B_big = 8, B_small = 2) → the exact values.

    Drawn with replacement the paper's form (N = inf) applies; drawn without replacement
    from N = 12 samples the finite-population form with N = 12 does. At N = 12 the
    uncorrected form would be off by −tr(Σ)/(N − 1) in |G|², many standard errors.
    """
    model = tiny_mlp(seed=3)
    x, y = classification_data(12, seed=4)
    exact = gradient_noise_scale(model, CE, (x, y))
    gen = torch.Generator().manual_seed(5)
    batches = []
    for _ in range(1000):
        idx = (torch.randint(0, 12, (8,), generator=gen) if replacement
               else torch.randperm(12, generator=gen)[:8])
        batches.append((x[idx], y[idx]))
    N = math.inf if replacement else 12
    est = gradient_noise_scale(model, CE, batches, method="two-batch", small_batch_size=2, N=N)
    assert (est.method, est.num_batches, est.small_batch_size, est.big_batch_size) == \
        ("two-batch", 1000, 2, 8.0)
    assert abs(est.grad_norm2 - exact.grad_norm2) < 5 * est.grad_norm2_stderr
    assert abs(est.trace_sigma - exact.trace_sigma) < 5 * est.trace_sigma_stderr
    assert abs(est.b_simple - exact.b_simple) < 5 * est.b_simple_stderr
    if not replacement:
        wrong = gradient_noise_scale(model, CE, batches, method="two-batch", small_batch_size=2)
        assert abs(wrong.grad_norm2 - exact.grad_norm2) > 5 * wrong.grad_norm2_stderr


def test_two_batch_single_batch_has_no_stderr():
    model = tiny_mlp()
    x, y = classification_data(8)
    res = gradient_noise_scale(model, CE, (x, y), method="two-batch", small_batch_size=4)
    assert res.num_batches == 1 and res.b_simple_stderr is None
    assert res.trace_sigma_stderr is None and res.grad_norm2_stderr is None


def test_two_batch_non_positive_gradient_estimate_warns_infinite():
    # Two samples with opposite gradients: G = 0, so a noisy |G|² estimate can be <= 0.
    model = nn.Linear(1, 1, bias=False).double()
    nn.init.ones_(model.weight)
    x = torch.ones(4, 1, dtype=torch.float64)
    y = torch.tensor([[0.0], [2.0], [0.0], [2.0]], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="not positive"):
        res = gradient_noise_scale(model, nn.MSELoss(), (x, y), method="two-batch",
                                   small_batch_size=1)
    assert res.b_simple == math.inf


def test_bad_input():
    model = tiny_mlp()
    x, y = classification_data(8)
    with pytest.raises(ValueError, match="method must be one of"):
        gradient_noise_scale(model, CE, (x, y), method="simple")
    with pytest.raises(ValueError, match="small_batch_size applies"):
        gradient_noise_scale(model, CE, (x, y), small_batch_size=2)
    with pytest.raises(ValueError, match="N applies"):
        gradient_noise_scale(model, CE, (x, y), N=8)
    with pytest.raises(ValueError, match="needs small_batch_size"):
        gradient_noise_scale(model, CE, (x, y), method="two-batch")
    with pytest.raises(ValueError, match="small_batch_size must be an integer"):
        gradient_noise_scale(model, CE, (x, y), method="two-batch", small_batch_size=0)
    with pytest.raises(ValueError, match="multiple of small_batch_size=3"):
        gradient_noise_scale(model, CE, (x, y), method="two-batch", small_batch_size=3)
    with pytest.raises(ValueError, match="at least 16"):
        gradient_noise_scale(model, CE, (x, y), method="two-batch", small_batch_size=8)
    with pytest.raises(ValueError, match="more than N"):
        gradient_noise_scale(model, CE, (x, y), method="two-batch", small_batch_size=2, N=6)
    with pytest.raises(ValueError, match=r"N \(number of samples.*\) must be an integer >= 2"):
        gradient_noise_scale(model, CE, (x, y), method="two-batch", small_batch_size=2, N=1)
    with pytest.raises(ValueError, match="chunk_size"):
        gradient_noise_scale(model, CE, (x, y), chunk_size=0)
    with pytest.raises(ValueError, match="no samples"):
        gradient_noise_scale(model, CE, [])
    with pytest.raises(ValueError, match="mean of per-sample losses"):
        gradient_noise_scale(model, nn.CrossEntropyLoss(reduction="sum"), (x, y))
    with pytest.raises(ValueError, match="mean of per-sample losses"):
        weighted = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 5.0]))
        gradient_noise_scale(model, weighted, (x, y))
    with pytest.raises(ValueError, match="4 inputs but 8 targets"):
        gradient_noise_scale(model, CE, (x[:4], y))
    with pytest.raises(TypeError, match="data"):
        gradient_noise_scale(model, CE, x)
    with pytest.raises(TypeError, match="batch 1"):
        gradient_noise_scale(model, CE, [(x, y), x])
    with pytest.raises(TypeError, match="model"):
        gradient_noise_scale(lambda t: t, CE, (x, y))
    nan_x = x.clone()
    nan_x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        gradient_noise_scale(model, CE, (nan_x, y))


def test_flat_loss_matches_the_model():
    model = tiny_mlp()
    x, y = classification_data(5)
    flat = FlatLoss(model, CE)
    assert flat.P == sum(p.numel() for p in model.parameters())
    with flat.evaluation():
        assert flat(flat.w, x, y).item() == pytest.approx(CE(model(x), y).item(), rel=1e-14)


def test_docstring_examples():
    assert doctest.testmod(rmtlr.noise_scale, raise_on_error=False).failed == 0

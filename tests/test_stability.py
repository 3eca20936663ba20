"""Batch sharpness and the mean-square stability threshold against independent references.

References: dense float64 Hessians of tiny networks (torch.autograd.functional.hessian,
a different route from the library's HVPs and torch.func), closed forms (linear
regression, diagonal and isotropic per-sample Hessians), the second-moment map built by
enumerating every batch (independent of the finite-population factor p), and a
Monte-Carlo simulation of linearised SGD.

Tolerances: 1e-10 relative where both sides are exact float64 computations by different
routes (rounding only); 1e-12 for closed forms evaluated with eigendecompositions of small
matrices; Monte Carlo within 5 standard errors of the mean over the chains.
"""

from __future__ import annotations

import doctest
import itertools

import numpy as np
import pytest
import torch
from torch import nn

import rmtlr.results
import rmtlr.stability
from rmtlr.stability import (
    BatchSharpness,
    MeanSquareStability,
    Minimum,
    SharpnessTrajectory,
    batch_sharpness,
    expected_batch_sharpness,
    find_minimum,
    mean_square_stability_threshold,
    per_sample_hessians,
    sharpness_during_training,
    simulate_linearised_sgd,
)

# torch.func's forward-mode pieces warn about torch.jit.script inside torch itself.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")

CE = nn.CrossEntropyLoss()


def tiny_mlp(seed=0, dropout=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(3, 4), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(4, 3))
    return nn.Sequential(*layers).double()


def classification_data(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def flat_loss_reference(model, loss_fn):
    """Loss as a function of one flat vector, by hand (no torch.func): the reference route."""
    params = [p for p in model.parameters()]
    shapes = [p.shape for p in params]
    mods = [(m, name) for m in model.modules() for name, _ in m.named_parameters(recurse=False)]

    def f(w, x, y):
        i = 0
        saved = {}
        for (m, name), s in zip(mods, shapes):
            n = s.numel()
            saved[(m, name)] = getattr(m, name)
            delattr(m, name)
            setattr(m, name, w[i:i + n].view(s))
            i += n
        try:
            return loss_fn(model(x), y)
        finally:
            for (m, name), p in saved.items():
                delattr(m, name)
                setattr(m, name, p)

    w0 = torch.cat([p.detach().reshape(-1) for p in params])
    return f, w0


# --------------------------------------------------------------------------------------
# batch sharpness
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["forward-over-reverse", "double-backward"])
def test_batch_sharpness_matches_dense_hessian(method):
    model = tiny_mlp()
    x, y = classification_data(6)
    f, w0 = flat_loss_reference(model, CE)
    model.eval()
    H = torch.autograd.functional.hessian(lambda w: f(w, x, y), w0)
    w = w0.clone().requires_grad_(True)
    g = torch.autograd.grad(f(w, x, y), w)[0]
    expected = float(g @ H @ g / (g @ g))
    model.train()
    got = batch_sharpness(model, CE, (x, y), method=method)
    assert got == pytest.approx(expected, rel=1e-10)
    assert model.training  # state restored


def test_batch_sharpness_linear_regression_closed_form():
    # ℓ_i = (w·x_i − y_i)²: g = (2/B) Xᵀr, H_B = (2/B) XᵀX.
    rng = np.random.default_rng(3)
    X, yv, w = rng.normal(size=(5, 4)), rng.normal(size=5), rng.normal(size=4)
    model = nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w)[None])
    g = 2 / 5 * X.T @ (X @ w - yv)
    H = 2 / 5 * X.T @ X
    got = batch_sharpness(model, nn.MSELoss(), (torch.from_numpy(X), torch.from_numpy(yv)[:, None]))
    assert got == pytest.approx(g @ H @ g / (g @ g), rel=1e-12)


def test_expected_batch_sharpness_over_given_batches():
    model = tiny_mlp()
    x, y = classification_data(12)
    batches = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4)]
    parts = []
    f, w0 = flat_loss_reference(model, CE)
    for xb, yb in batches:
        H = torch.autograd.functional.hessian(lambda w, xb=xb, yb=yb: f(w, xb, yb), w0)
        w = w0.clone().requires_grad_(True)
        g = torch.autograd.grad(f(w, xb, yb), w)[0]
        parts.append((float(g @ H @ g), float(g @ g)))
    ghg, gg = np.array(parts).T
    res = expected_batch_sharpness(model, CE, batches)
    assert isinstance(res, BatchSharpness)
    np.testing.assert_allclose(res.values, ghg / gg, rtol=1e-10)
    assert res.value == pytest.approx(np.mean(ghg / gg), rel=1e-10)
    assert res.stderr == pytest.approx(np.std(ghg / gg, ddof=1) / np.sqrt(3), rel=1e-8)
    assert res.ratio_of_means == pytest.approx(ghg.mean() / gg.mean(), rel=1e-10)
    assert res.num_batches == 3 and res.batch_size == 4.0
    # A ratio of means is not a mean of ratios: the two definitions differ here.
    assert abs(res.value - res.ratio_of_means) > 1e-6 * abs(res.value)


def test_expected_batch_sharpness_draws_estimate_the_expectation():
    """Drawn batches (without replacement) average to the mean over all C(N, B) batches."""
    rng = np.random.default_rng(4)
    N, B = 5, 2
    X, yv, w = rng.normal(size=(N, 3)), rng.normal(size=N), rng.normal(size=3)
    model = nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w)[None])
    ratios = []
    for idx in itertools.combinations(range(N), B):
        Xb, yb = X[list(idx)], yv[list(idx)]
        g, H = 2 / B * Xb.T @ (Xb @ w - yb), 2 / B * Xb.T @ Xb
        ratios.append(g @ H @ g / (g @ g))
    data = (torch.from_numpy(X), torch.from_numpy(yv)[:, None])
    res = expected_batch_sharpness(model, nn.MSELoss(), data, batch_size=B, num_batches=400,
                                   seed=7)
    assert abs(res.value - np.mean(ratios)) < 5 * res.stderr
    assert set(np.round(res.values, 9)) <= set(np.round(ratios, 9))  # only real batches
    again = expected_batch_sharpness(model, nn.MSELoss(), data, batch_size=B, num_batches=400,
                                     seed=7)
    np.testing.assert_array_equal(res.values, again.values)
    # B = N without replacement: every draw is the whole data set.
    full = expected_batch_sharpness(model, nn.MSELoss(), data, batch_size=N, num_batches=3)
    g, H = 2 / N * X.T @ (X @ w - yv), 2 / N * X.T @ X
    np.testing.assert_allclose(full.values, g @ H @ g / (g @ g), rtol=1e-10)


def test_batch_sharpness_bad_input():
    model = tiny_mlp()
    x, y = classification_data(8)
    with pytest.raises(TypeError, match="batch must be one"):
        batch_sharpness(model, CE, [(x, y), (x, y)])
    with pytest.raises(ValueError, match="batch is empty"):
        batch_sharpness(model, CE, (x[:0], y[:0]))
    lin = nn.Linear(2, 1, bias=False).double()
    nn.init.zeros_(lin.weight)
    with pytest.raises(ValueError, match="exactly zero"):
        batch_sharpness(lin, nn.MSELoss(), (torch.ones(3, 2, dtype=torch.float64),
                                            torch.zeros(3, 1, dtype=torch.float64)))
    with pytest.raises(ValueError, match="batch_size and num_batches"):
        expected_batch_sharpness(model, CE, (x, y))
    with pytest.raises(ValueError, match="batch_size must be <="):
        expected_batch_sharpness(model, CE, (x, y), batch_size=9, num_batches=2)
    with pytest.raises(ValueError, match="num_batches must be an integer"):
        expected_batch_sharpness(model, CE, (x, y), batch_size=2, num_batches=0)
    with pytest.raises(ValueError, match="apply only when data"):
        expected_batch_sharpness(model, CE, [(x, y)], batch_size=2)
    with pytest.raises(ValueError, match="no .*batches"):
        expected_batch_sharpness(model, CE, [])
    with pytest.raises(TypeError, match="not an \\(x, y\\) pair"):
        expected_batch_sharpness(model, CE, [x, y, x])


# --------------------------------------------------------------------------------------
# per-sample Hessians
# --------------------------------------------------------------------------------------

def test_per_sample_hessians_match_brute_force_loop():
    model = tiny_mlp(dropout=True)
    model.train()
    x, y = classification_data(7)
    f, w0 = flat_loss_reference(model, CE)
    model.eval()
    ref = np.stack([torch.autograd.functional.hessian(
        lambda w, i=i: f(w, x[i:i + 1], y[i:i + 1]), w0).numpy() for i in range(7)])
    mean_ref = torch.autograd.functional.hessian(lambda w: f(w, x, y), w0).numpy()
    model.train()
    got = per_sample_hessians(model, CE, [(x[:3], y[:3]), (x[3:], y[3:])], chunk_size=2)
    assert model.training
    assert got.shape == (7, w0.numel(), w0.numel())
    scale = np.abs(ref).max()
    assert np.abs(got - ref).max() <= 1e-10 * scale
    assert np.abs(got.mean(axis=0) - mean_ref).max() <= 1e-10 * scale


def test_per_sample_hessians_bad_input():
    model = tiny_mlp()
    x, y = classification_data(4)
    with pytest.raises(ValueError, match="mean of per-sample losses"):
        per_sample_hessians(model, nn.CrossEntropyLoss(reduction="sum"), (x, y))
    with pytest.raises(ValueError, match="chunk_size"):
        per_sample_hessians(model, CE, (x, y), chunk_size=0)
    with pytest.raises(ValueError, match="no samples"):
        per_sample_hessians(model, CE, [])
    with pytest.raises(TypeError, match="data"):
        per_sample_hessians(model, CE, x)


# --------------------------------------------------------------------------------------
# mean-square stability threshold
# --------------------------------------------------------------------------------------

def second_moment_map(hs, B, eta, replacement):
    """𝔼[(I − ηH_B) ⊗ (I − ηH_B)] by enumerating every batch: no p, no derivation."""
    N, P = hs.shape[0], hs.shape[1]
    batches = (itertools.product(range(N), repeat=B) if replacement
               else itertools.combinations(range(N), B))
    T, count = np.zeros((P * P, P * P)), 0
    for b in batches:
        M = np.eye(P) - eta * hs[list(b)].mean(axis=0)
        T += np.kron(M, M)
        count += 1
    return T / count


def random_hessians(N, P, seed, indefinite=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, P))
    hs = np.einsum("ni,nj->nij", X, X)
    if indefinite:  # per-sample Hessians need not be PSD at a (non-interpolating) minimum
        S = rng.normal(size=(N, P, P))
        hs = hs + indefinite * (S + S.transpose(0, 2, 1))
    return hs


@pytest.mark.parametrize("replacement", [False, True])
def test_threshold_is_where_enumerated_second_moment_map_reaches_one(replacement):
    hs = random_hessians(5, 3, seed=0, indefinite=0.1)
    assert np.linalg.eigvalsh(hs.mean(axis=0)).min() > 0
    res = mean_square_stability_threshold(hs, 2, replacement=replacement)
    rho = [np.abs(np.linalg.eigvals(second_moment_map(hs, 2, f * res.eta_star,
                                                      replacement))).max()
           for f in (0.99, 1.0, 1.01)]
    assert rho[0] < 1 - 1e-3 and rho[2] > 1 + 1e-3
    assert rho[1] == pytest.approx(1.0, abs=1e-10)
    assert res.eta_star < res.gd_threshold


@pytest.mark.parametrize("replacement", [False, True])
def test_isotropic_linear_regression_closed_form(replacement):
    """H_i = x_i x_iᵀ with isotropic second and fourth moments (regular polygons in 2-D).

    Then H = sI and 𝔼_i[x_i x_iᵀ X x_i x_iᵀ] = κ(2X + tr(X) I) with κ = 𝔼|x|⁴/(P(P+2)), so
    the identity is the top eigenvector and η* = 2s / ((1 − p)s² + p·𝔼|x|⁴/P). With all
    |x_i| = r and B = 1 with replacement this is 2/r², where every step is a reflection.
    """
    P = 2
    rings = [(1.0, 5, 0.0), (2.0, 7, 0.3), (0.5, 6, 1.1)]  # radius, points, rotation
    x = np.concatenate([r * np.stack([np.cos(2 * np.pi * np.arange(n) / n + a),
                                      np.sin(2 * np.pi * np.arange(n) / n + a)], axis=1)
                        for r, n, a in rings])
    N = len(x)
    hs = np.einsum("ni,nj->nij", x, x)
    s = (x ** 2).sum(axis=1).mean() / P
    m4 = ((x ** 2).sum(axis=1) ** 2).mean()
    Bs = [1, 2, 5, 11, N]
    results = mean_square_stability_threshold(hs, Bs, replacement=replacement)
    for B, res in zip(Bs, results):
        p = 1 / B if replacement else (N - B) / (B * (N - 1))
        assert res.p == pytest.approx(p, rel=1e-15)
        assert res.eta_star == pytest.approx(2 * s / ((1 - p) * s ** 2 + p * m4 / P), rel=1e-12)
    ring = np.stack([np.cos(2 * np.pi * np.arange(5) / 5), np.sin(2 * np.pi * np.arange(5) / 5)], 1)
    one = mean_square_stability_threshold(np.einsum("ni,nj->nij", 3 * ring, 3 * ring), 1,
                                          replacement=True)
    assert one.eta_star == pytest.approx(2 / 9, rel=1e-12)


@pytest.mark.parametrize("replacement", [False, True])
def test_diagonal_hessians_closed_form(replacement):
    """Diagonal H_i decouple: η* = min_k 2h_k / 𝔼[(H_B)_kk²], 𝔼[(H_B)_kk²] = h_k² + p·Var_i."""
    rng = np.random.default_rng(5)
    d = rng.uniform(0.1, 2.0, size=(9, 4))
    hs = np.stack([np.diag(r) for r in d])
    h, var = d.mean(axis=0), d.var(axis=0)
    for B in (1, 3, 9):
        res = mean_square_stability_threshold(hs, B, replacement=replacement)
        p = 1 / B if replacement else (9 - B) / (B * 8)
        assert res.eta_star == pytest.approx(np.min(2 * h / (h ** 2 + p * var)), rel=1e-12)


def test_full_batch_without_replacement_is_gradient_descent():
    hs = random_hessians(8, 5, seed=2, indefinite=0.1)
    lam = np.linalg.eigvalsh(hs.mean(axis=0))
    assert lam.min() > 0
    lam1 = lam.max()
    res = mean_square_stability_threshold(hs, 8)
    assert res.p == 0.0
    assert res.eta_star == pytest.approx(2 / lam1, rel=1e-12)
    assert res.kappa == pytest.approx(lam1, rel=1e-12)


@pytest.mark.parametrize("replacement", [False, True])
def test_threshold_monotone_in_batch_size_and_below_bounds(replacement):
    hs = random_hessians(12, 4, seed=3, indefinite=0.05)
    Bs = list(range(1, 13)) + ([20, 50] if replacement else [])
    res = mean_square_stability_threshold(hs, Bs, replacement=replacement)
    eta = np.array([r.eta_star for r in res])
    assert np.all(np.diff(eta) >= -1e-12 * eta[1:])
    assert eta[-1] > 1.5 * eta[0]  # the batch size matters here
    for r in res:
        assert r.eta_star <= r.top_direction_bound * (1 + 1e-12)
        assert r.top_direction_bound <= r.gd_threshold * (1 + 1e-12)
        assert r.eta_star <= r.trace_bound * (1 + 1e-12)
    if not replacement:  # drawing without replacement is never less stable
        with_r = mean_square_stability_threshold(hs, Bs, replacement=True)
        assert all(a.eta_star >= b.eta_star * (1 - 1e-12) for a, b in zip(res, with_r))


def test_dense_and_lanczos_agree():
    hs = random_hessians(30, 9, seed=4, indefinite=0.05)
    lanczos = mean_square_stability_threshold(hs, [1, 4, 29], method="lanczos")
    for B, lz in zip((1, 4, 29), lanczos):
        dense = mean_square_stability_threshold(hs, B, method="dense")
        assert dense.method == "dense" and lz.method == "lanczos"
        assert lz.eta_star == pytest.approx(dense.eta_star, rel=1e-9)
    # "auto" switches to the matrix-free solver above rank 48.
    big = random_hessians(60, 50, seed=5)
    auto = mean_square_stability_threshold(big, 7)
    assert auto.method == "lanczos" and auto.rank == 50
    assert auto.eta_star == pytest.approx(
        mean_square_stability_threshold(big, 7, method="dense").eta_star, rel=1e-9)


def test_monte_carlo_second_moment_grows_just_above_and_decays_just_below():
    """Simulated linearised SGD, θ_{t+1} = (I − ηH_{B_t})θ_t, 20 000 chains.

    θ_0 ~ N(0, X) with X the top (PSD) eigenvector of the enumerated second-moment map at
    that η, so 𝔼|θ_t|² = ρ^t tr X exactly, with no transient. The horizon is short (t = 6)
    because the mean square is carried by rare large chains: over long horizons a finite
    sample misses them (the typical chain decays even above η*), while at t = 6 the
    chains' spread gives an honest standard error. η = 0.95η* and 1.05η* both lie far
    below gradient descent's 2/λ₁, where the mean 𝔼θ_t would still decay.
    """
    hs = random_hessians(6, 3, seed=1)
    N, P, B, t, M = 6, 3, 2, 6, 20_000
    res = mean_square_stability_threshold(hs, B)
    assert 1.05 * res.eta_star < 0.6 * res.gd_threshold
    rng = np.random.default_rng(0)
    for factor in (0.95, 1.05):
        eta = factor * res.eta_star
        ev, vec = np.linalg.eig(second_moment_map(hs, B, eta, replacement=False))
        i = np.argmax(np.abs(ev))
        rho = ev[i].real
        X = vec[:, i].real.reshape(P, P)
        X = (X + X.T) / 2
        X /= np.trace(X)
        lam, V = np.linalg.eigh(X)
        assert lam.min() > -1e-12  # Krein–Rutman: the top eigenvector is PSD
        theta = rng.normal(size=(M, P)) @ (V * np.sqrt(np.clip(lam, 0, None))).T
        for _ in range(t):
            idx = np.argsort(rng.random((M, N)), axis=1)[:, :B]
            theta -= eta * np.einsum("mij,mj->mi", hs[idx].mean(axis=1), theta)
        sq = (theta ** 2).sum(axis=1)
        mean, se = sq.mean(), sq.std(ddof=1) / np.sqrt(M)
        assert abs(mean - rho ** t) < 5 * se
        if factor < 1:
            assert rho < 1 and mean < 1 - 5 * se
        else:
            assert rho > 1 and mean > 1 + 5 * se


def test_null_space_is_dropped_and_leak_reported():
    rng = np.random.default_rng(6)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    x2 = rng.normal(size=(10, 2))
    x4 = x2 @ Q[:, :2].T  # samples in a 2-D subspace of R⁴
    hs4 = np.einsum("ni,nj->nij", x4, x4)
    hs2 = np.einsum("ni,nj->nij", x2, x2)
    for B in (1, 3):
        r4 = mean_square_stability_threshold(hs4, B)
        r2 = mean_square_stability_threshold(hs2, B)
        assert r4.rank == 2 and r4.P == 4 and r4.null_space_leak < 1e-12
        assert r4.eta_star == pytest.approx(r2.eta_star, rel=1e-10)
    # Per-sample curvature that cancels in the mean lies outside H's range: reported.
    leaky = hs4 + np.einsum("n,ij->nij", np.tile([1.0, -1.0], 5),
                            np.outer(Q[:, 3], Q[:, 3]))
    assert mean_square_stability_threshold(leaky, 2).null_space_leak > 0.1


def test_network_linear_regression_closed_form():
    """From (model, loss, data): nn.Linear + MSE has H_i = 2 x_i x_iᵀ, isotropic on a ring."""
    n = 7
    angles = 2 * np.pi * np.arange(n) / n
    x = 1.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    model = nn.Linear(2, 1, bias=False).double()
    y = torch.from_numpy(x @ np.array([0.3, -0.2]))[:, None]  # interpolating minimum
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.3, -0.2]], dtype=torch.float64))
    hs = per_sample_hessians(model, nn.MSELoss(), (torch.from_numpy(x), y))
    np.testing.assert_allclose(hs, 2 * np.einsum("ni,nj->nij", x, x), rtol=1e-12, atol=1e-12)
    res = mean_square_stability_threshold(hs, 3)
    assert isinstance(res, MeanSquareStability)
    p = (n - 3) / (3 * (n - 1))
    s, m4 = 2 * 1.5 ** 2 / 2, (2 * 1.5 ** 2) ** 2
    assert res.eta_star == pytest.approx(2 * s / ((1 - p) * s ** 2 + p * m4 / 2), rel=1e-12)


def test_threshold_bad_input():
    hs = random_hessians(4, 2, seed=0)
    with pytest.raises(ValueError, match="shape \\(N, P, P\\)"):
        mean_square_stability_threshold(hs[:, :, :1], 1)
    with pytest.raises(ValueError, match="symmetric"):
        mean_square_stability_threshold(hs + np.triu(np.ones((2, 2)), 1), 1)
    with pytest.raises(ValueError, match="non-finite"):
        mean_square_stability_threshold(hs * np.nan, 1)
    with pytest.raises(ValueError, match="B \\(batch size\\) must be <= N"):
        mean_square_stability_threshold(hs, 5)
    with pytest.raises(ValueError, match="B \\(batch size\\) must be an integer"):
        mean_square_stability_threshold(hs, 0)
    with pytest.raises(ValueError, match="B \\(batch size\\) must be an integer"):
        mean_square_stability_threshold(hs, 2.5)
    lam = np.linalg.eigvalsh(hs.mean(axis=0))
    with pytest.raises(ValueError, match="not a minimum"):  # a saddle
        mean_square_stability_threshold(hs - lam.mean() * np.eye(2), 1)
    with pytest.raises(ValueError, match="no positive eigenvalue"):
        mean_square_stability_threshold(np.zeros((3, 2, 2)), 1)
    with pytest.raises(ValueError, match="method"):
        mean_square_stability_threshold(hs, 1, method="qr")
    with pytest.raises(ValueError, match="null_tol"):
        mean_square_stability_threshold(hs, 1, null_tol=-1.0)
    with pytest.raises(ValueError, match="method='lanczos'"):
        mean_square_stability_threshold(np.eye(101)[None], 1, method="dense")
    assert mean_square_stability_threshold(hs, 7, replacement=True).B == 7  # B > N is fine


def test_docstring_examples():
    assert doctest.testmod(rmtlr.stability, raise_on_error=False).failed == 0


# --------------------------------------------------------------------------------------
# sharpness along an SGD run
# --------------------------------------------------------------------------------------

def dense_parts(f, w, x, y):
    """(loss, λ₁, gᵀHg/gᵀg) of the loss f(·, x, y) at w from its dense Hessian."""
    H = torch.autograd.functional.hessian(lambda v: f(v, x, y), w)
    wg = w.clone().requires_grad_(True)
    loss = f(wg, x, y)
    g = torch.autograd.grad(loss, wg)[0]
    return (float(loss.detach()), float(torch.linalg.eigvalsh(H)[-1]),
            float(g @ H @ g / (g @ g)), g)


def test_sharpness_during_training_full_batch_matches_dense_gradient_descent():
    """B = N is gradient descent: every batch is the data set, so all three curvatures
    and the trajectory follow from dense Hessians of the flat loss (a different route)."""
    model = tiny_mlp(seed=2)
    x, y = classification_data(8, seed=3)
    f, w = flat_loss_reference(model, CE)
    model.eval()
    P = w.numel()
    run = sharpness_during_training(model, CE, (x, y), lr=0.5, batch_size=8, steps=3,
                                    every=1, num_batches=2, sharpness_batches=2,
                                    num_steps=P)
    assert isinstance(run, SharpnessTrajectory)
    assert run.step.tolist() == [0, 1, 2, 3] and run.epoch.tolist() == [0, 1, 2, 3]
    assert run.P == P and run.N == 8 and run.diverged_at is None
    assert run.b_simple is None and run.sigma_eps is None
    for k in range(4):
        loss, lam1, sharp, g = dense_parts(f, w, x, y)
        assert run.loss[k] == pytest.approx(loss, rel=1e-10)
        assert run.lam1[k] == pytest.approx(lam1, rel=1e-8)
        assert run.lam1_batch[k] == pytest.approx(lam1, rel=1e-8)
        assert run.lam1_batch_std[k] == pytest.approx(0, abs=1e-8 * lam1)
        assert run.batch_sharpness[k] == pytest.approx(sharp, rel=1e-8)
        assert run.batch_sharpness_rom[k] == pytest.approx(sharp, rel=1e-8)
        assert run.lam1_residual[k] < 1e-8 * lam1
        if k < 3:
            w = (w - 0.5 * g).detach()
    trained = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(trained, w, rtol=1e-10, atol=1e-12)


def test_sharpness_during_training_draws_shuffled_epochs():
    """Batches are shuffled epochs without replacement (incomplete last batch dropped),
    drawn from a generator seeded with ``seed`` alone: the measurements do not move it."""
    model, ref = tiny_mlp(seed=4), tiny_mlp(seed=4)
    x, y = classification_data(8, seed=5)
    sharpness_during_training(model, CE, (x, y), lr=0.2, batch_size=3, steps=5, every=2,
                              num_batches=1, sharpness_batches=2, num_steps=4, seed=11)
    gen = torch.Generator().manual_seed(11)
    opt = torch.optim.SGD(ref.parameters(), lr=0.2)
    done = 0
    while done < 5:
        perm = torch.randperm(8, generator=gen)
        for i in (0, 3):  # two batches of 3 per epoch; 2 samples dropped
            if done == 5:
                break
            idx = perm[i:i + 3]
            opt.zero_grad()
            CE(ref(x[idx]), y[idx]).backward()
            opt.step()
            done += 1
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_sharpness_during_training_noise_scale_matches_per_sample_reference():
    model = tiny_mlp(seed=6)
    x, y = classification_data(24, seed=7)
    f, w = flat_loss_reference(model, CE)
    model.eval()
    grads = []
    for i in range(24):
        wg = w.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(f(wg, x[i:i + 1], y[i:i + 1]), wg)[0])
    grads = torch.stack(grads)
    G = grads.mean(0)
    b_simple = float(((grads - G) ** 2).sum(1).mean() / (G @ G))
    run = sharpness_during_training(model, CE, (x, y), lr=0.1, batch_size=4, steps=1,
                                    every=1, noise_scale=True, variance_vectors=200,
                                    num_steps=8)
    assert run.b_simple[0] == pytest.approx(b_simple, rel=1e-10)
    # σ_ε from Algorithm 1 over one random partition (6 units of 4) and 200 probes is an
    # estimate: within 30% of the exact entry variance of the dense per-sample Hessians.
    hs = np.stack([torch.autograd.functional.hessian(
        lambda v, i=i: f(v, x[i:i + 1], y[i:i + 1]), w).numpy() for i in range(24)])
    exact = np.sqrt(np.var(hs, axis=0, ddof=1).mean())
    assert run.sigma_eps[0] == pytest.approx(exact, rel=0.3)
    assert np.all(np.isfinite(run.b_simple)) and run.sigma_eps.shape == (2,)


def test_sharpness_during_training_results_file_reads_back(tmp_path):
    x, y = classification_data(12, seed=8)
    path = tmp_path / "eos.jsonl"
    kw = {"lr": 0.3, "batch_size": 4, "steps": 2, "every": 1, "num_batches": 2,
          "sharpness_batches": 2, "num_steps": 6, "results": path}
    first = sharpness_during_training(tiny_mlp(seed=9), CE, (x, y), **kw)
    again_model = tiny_mlp(seed=9)
    before = [p.detach().clone() for p in again_model.parameters()]
    again = sharpness_during_training(again_model, CE, (x, y), **kw)
    for name in ("step", "loss", "lam1", "lam1_batch", "batch_sharpness"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert again.wall_time_s == first.wall_time_s  # read back, not recomputed
    for p, q in zip(again_model.parameters(), before):  # so the model was not trained
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    sharpness_during_training(tiny_mlp(seed=9), CE, (x, y), **{**kw, "lr": 0.2})
    sharpness_during_training(tiny_mlp(seed=10), CE, (x, y), **kw)  # another initialisation
    assert len(rmtlr.results.ResultsFile(path).records()) == 3
    rec = first.to_record()
    rec["loss"][1] = None  # how a results file stores a non-finite number
    back = SharpnessTrajectory.from_record(rec)
    assert np.isnan(back.loss[1]) and back.step.dtype == np.int64
    with pytest.raises(ValueError, match="missing"):
        SharpnessTrajectory.from_record({"lr": 0.1})


def test_sharpness_during_training_stops_at_divergence():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(16, 3)) * 3)
    y = torch.from_numpy(rng.normal(size=(16, 1)))
    model = nn.Linear(3, 1).double()
    run = sharpness_during_training(model, nn.MSELoss(), (x, y), lr=5.0, batch_size=4,
                                    steps=50, every=1, num_steps=3)
    assert run.diverged_at is not None and run.diverged_at < 50
    assert len(run.step) == run.diverged_at + 1  # checkpoints up to the last finite step
    assert run.lam1[0] > 2 / 5.0  # unstable from the start


def test_sharpness_during_training_bad_input():
    model = tiny_mlp()
    x, y = classification_data(8)
    kw = {"lr": 0.1, "batch_size": 4, "steps": 1, "every": 1}
    with pytest.raises(TypeError, match="pair of tensors"):
        sharpness_during_training(model, CE, [(x, y)], **kw)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        sharpness_during_training(lambda t: t, CE, (x, y), **kw)
    with pytest.raises(ValueError, match="batch_size must be <= N = 8"):
        sharpness_during_training(model, CE, (x, y), **{**kw, "batch_size": 9})
    with pytest.raises(ValueError, match="lr must be"):
        sharpness_during_training(model, CE, (x, y), **{**kw, "lr": 0.0})
    with pytest.raises(ValueError, match="every must be"):
        sharpness_during_training(model, CE, (x, y), **{**kw, "every": 0})
    with pytest.raises(ValueError, match="sharpness_batches must be"):
        sharpness_during_training(model, CE, (x, y), **kw, sharpness_batches=1)
    with pytest.raises(ValueError, match="noise_scale=True needs at least two batches"):
        sharpness_during_training(model, CE, (x, y), **{**kw, "batch_size": 5},
                                  noise_scale=True)
    with pytest.raises(ValueError, match="inputs and .* targets"):
        sharpness_during_training(model, CE, (x, y[:5]), **kw)


# --------------------------------------------------------------------------------------
# simulated linearised SGD
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("replacement", [False, True])
def test_simulated_linearised_sgd_matches_enumerated_map(replacement):
    """𝔼‖θ_t‖² = tr Σ_t, Σ_{t+1} = 𝒯(Σ_t), Σ_0 = I, with 𝒯 built by enumerating every
    batch. 20 000 chains over t ≤ 4 steps: within 5 standard errors (the mean square is
    carried by rare large chains only over long horizons, see the Monte-Carlo test above)."""
    hs = random_hessians(5, 3, seed=2, indefinite=0.05)
    res = mean_square_stability_threshold(hs, 2, replacement=replacement)
    for factor in (0.7, 1.3):
        eta = factor * res.eta_star
        T = second_moment_map(hs, 2, eta, replacement)
        sq = simulate_linearised_sgd(hs, 2, eta, steps=4, num_chains=20_000,
                                     replacement=replacement, seed=3)
        assert sq.shape == (5, 20_000)
        mean, se = sq.mean(axis=1), sq.std(axis=1, ddof=1) / np.sqrt(20_000)
        sigma = np.eye(3).reshape(-1)
        for t in range(5):
            assert abs(mean[t] - np.trace(sigma.reshape(3, 3))) < 5 * se[t]
            sigma = T @ sigma
    # B = N without replacement is gradient descent on the mean Hessian: exact per chain.
    H = hs.mean(axis=0)
    sq = simulate_linearised_sgd(hs, 5, 0.1, steps=3, num_chains=4, seed=4)
    theta0 = np.random.default_rng(4).standard_normal((4, 3))  # the documented start
    M = np.linalg.matrix_power(np.eye(3) - 0.1 * H, 3)
    np.testing.assert_allclose(sq[3], ((theta0 @ M.T) ** 2).sum(axis=1), rtol=1e-12)


def test_simulate_linearised_sgd_bad_input():
    hs = random_hessians(4, 2, seed=0)
    with pytest.raises(ValueError, match="shape \\(N, P, P\\)"):
        simulate_linearised_sgd(hs[0], 1, 0.1, steps=1)
    with pytest.raises(ValueError, match="non-finite"):
        simulate_linearised_sgd(hs * np.nan, 1, 0.1, steps=1)
    with pytest.raises(ValueError, match="B \\(batch size\\) must be <= N"):
        simulate_linearised_sgd(hs, 5, 0.1, steps=1)
    with pytest.raises(ValueError, match="eta must be"):
        simulate_linearised_sgd(hs, 1, -0.1, steps=1)
    with pytest.raises(ValueError, match="num_chains must be"):
        simulate_linearised_sgd(hs, 1, 0.1, steps=1, num_chains=1)


# --------------------------------------------------------------------------------------
# a strict minimum
# --------------------------------------------------------------------------------------

def test_find_minimum_ridge_regression_closed_form():
    rng = np.random.default_rng(12)
    X, yv = rng.normal(size=(20, 4)), rng.normal(size=(20, 1))
    model = nn.Linear(4, 1, bias=False).double()
    # ‖w − w*‖ ≤ ‖∇F‖/λ_min(H): tol = 1e-13 puts w within ~1e-12 of the closed form.
    res = find_minimum(model, nn.MSELoss(), (torch.from_numpy(X), torch.from_numpy(yv)),
                       weight_decay=0.3, tol=1e-13)
    H = 2 * X.T @ X / 20 + 0.3 * np.eye(4)
    w = np.linalg.solve(H, 2 * X.T @ yv / 20)
    np.testing.assert_allclose(model.weight.detach().numpy().T, w, rtol=1e-10)
    lam = np.linalg.eigvalsh(H)
    assert isinstance(res, Minimum) and res.converged and res.grad_norm <= 1e-13
    assert res.min_eig == pytest.approx(lam[0], rel=1e-10)
    assert res.lam1 == pytest.approx(lam[-1], rel=1e-10)
    r = X @ w - yv
    assert res.loss == pytest.approx(float((r ** 2).mean() + 0.15 * (w ** 2).sum()), rel=1e-10)


def test_find_minimum_of_a_tanh_network_is_a_strict_minimum():
    """Gradient ~0 and Hessian positive definite, checked by a different route: the dense
    per-sample Hessians of the library's per_sample_hessians plus λ_wd I, and autograd."""
    model = tiny_mlp(seed=13)
    x, y = classification_data(30, seed=14)
    res = find_minimum(model, CE, (x, y), weight_decay=1e-2)
    assert res.converged and res.newton_steps <= 10
    f, w = flat_loss_reference(model, CE)
    model.eval()
    wg = w.clone().requires_grad_(True)
    g = torch.autograd.grad(f(wg, x, y) + 0.005 * (wg ** 2).sum(), wg)[0]
    assert float(g.norm()) < 1e-9
    H = per_sample_hessians(model, CE, (x, y)).mean(axis=0) + 1e-2 * np.eye(w.numel())
    lam = np.linalg.eigvalsh(H)
    assert lam[0] > 0 and lam[0] == pytest.approx(res.min_eig, rel=1e-8)
    # Without Newton (L-BFGS only, few iterations) the tolerance is not met: reported.
    loose = find_minimum(tiny_mlp(seed=13), CE, (x, y), weight_decay=1e-2, lbfgs_iters=2,
                         max_newton=0)
    assert not loose.converged and loose.grad_norm > 1e-10


def test_find_minimum_bad_input():
    model = tiny_mlp()
    x, y = classification_data(8)
    with pytest.raises(TypeError, match="pair of tensors"):
        find_minimum(model, CE, [x])
    with pytest.raises(ValueError, match="weight_decay must be"):
        find_minimum(model, CE, (x, y), weight_decay=-1.0)
    with pytest.raises(ValueError, match="tol must be"):
        find_minimum(model, CE, (x, y), tol=0.0)
    with pytest.raises(ValueError, match="max_newton must be"):
        find_minimum(model, CE, (x, y), max_newton=-1)

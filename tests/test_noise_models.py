"""rmtlr.noise_models: measurements against dense float64 references, predictions against
the closed forms of rmt, the noise-spectrum summary against exact Wigner and low-rank
spectra, and the results-file round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from rmtlr import noise_models as nm
from rmtlr.rmt.batch import batch_outlier, effective_batch_size
from rmtlr.rmt.ggn import ggn_batch_outlier
from rmtlr.train import TrainConfig

C = 3


def tiny_problem(n=60, seed=0):
    """A float64 tanh MLP (P = 51) and n samples of 3 classes in 4 dimensions."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (n,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, C)).double()
    return model, torch.utils.data.TensorDataset(x, y)


def dense_curvature(model, x, y, kind):
    """Dense Hessian or GGN of the mean cross-entropy over (x, y)."""
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    w0 = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def out(w):
        params = {k: t.reshape(s) for k, t, s in zip(names, torch.split(w, sizes), shapes)}
        return functional_call(model, params, (x,))

    if kind == "hessian":
        return hessian(lambda w: nn.functional.cross_entropy(out(w), y))(w0)
    J = torch.func.jacrev(out)(w0).reshape(-1, w0.numel())
    logits = out(w0).detach()
    H_out = hessian(lambda o: nn.functional.cross_entropy(o, y))(logits)
    H_out = H_out.reshape(logits.numel(), logits.numel())
    return J.T @ H_out @ J


MEASURE = {"full_samples": 40, "variance_samples": 16, "batch_sizes": [4, 10], "num_batches": 2,
               "noise_batch_sizes": [4], "full_steps": 51, "batch_steps": 51, "noise_steps": 51,
               "variance_vectors": 3, "variance_unit": 4, "trace_vectors": 400, "rank_samples": 2,
               "rank_steps": 51, "rank_tol": 1e-9}


@pytest.fixture(scope="module")
def measured():
    model, ds = tiny_problem()
    rec = nm.measure_noise_models(model, ds, **MEASURE)
    return model, ds, rec


@pytest.mark.parametrize("kind", nm.CURVATURES)
def test_measurements_match_dense_matrices(measured, kind):
    model, ds, rec = measured
    x, y = ds.tensors
    N, n_var, unit = 40, 16, 4
    r = rec["curvatures"][kind]
    A = dense_curvature(model, x[:N], y[:N], kind)
    w, U = torch.linalg.eigh(A)
    assert r["lam1_full"] == pytest.approx(float(w[-1]), rel=1e-9)
    assert r["lam1_change"] < 1e-8
    P = A.shape[0]
    # tr(A)/P: Hutchinson's error is sqrt(2(||A||_F^2 - sum A_ii^2)/n)/P
    sd = math.sqrt(2 * (float((A**2).sum()) - float((A.diagonal() ** 2).sum())) / 400) / P
    assert abs(r["trace_per_param"] - float(A.trace()) / P) < 4 * sd
    # batch top eigenvalues, on the batches the record names, all drawn from S
    for Bs, b in r["batch"].items():
        for idx, lam in zip(rec["batches"][Bs], b["lam1"]):
            assert max(idx) < N and len(set(idx)) == int(Bs)
            dense = torch.linalg.eigvalsh(dense_curvature(model, x[idx], y[idx], kind))
            assert lam == pytest.approx(float(dense[-1]), rel=1e-8)
    # the spectrum of eps = A_batch - A_emp for the first batch of B = 4
    idx = rec["batches"]["4"][0]
    eps = torch.linalg.eigvalsh(dense_curvature(model, x[idx], y[idx], kind) - A)
    assert r["noise"]["4"]["lam_max"] == pytest.approx(float(eps[-1]), rel=1e-7)
    assert r["noise"]["4"]["lam_min"] == pytest.approx(float(eps[0]), rel=1e-7)
    # tau^2: the per-sample variance along v1 over the units of S_var, times b(unit, n)
    v1 = U[:, -1]
    units = [dense_curvature(model, x[i:i + unit], y[i:i + unit], kind) @ v1
             for i in range(N, N + n_var, unit)]
    mean = sum(units) / len(units)
    tau2 = sum(float((a - mean) @ (a - mean)) for a in units) / len(units)
    tau2 *= float(effective_batch_size(unit, n_var))
    assert r["top_variance"] == pytest.approx(tau2, rel=1e-6)


def test_single_sample_ranks_match_dense(measured):
    model, ds, rec = measured
    x, y = ds.tensors
    for kind in nm.CURVATURES:
        for k, got in enumerate(rec["curvatures"][kind]["rank"]):
            i = 40 + k
            ev = torch.linalg.eigvalsh(dense_curvature(model, x[i:i + 1], y[i:i + 1], kind))
            big = ev.abs() > 1e-9 * ev.abs().max()
            assert got["rank"] == int(big.sum()) and got["exact"]
            assert got["positive"] == int((big & (ev > 0)).sum())
            if kind == "ggn":
                assert got["rank"] == C - 1  # the softmax Hessian has rank C - 1


def test_predictions_use_the_measured_inputs(measured):
    _, _, rec = measured
    P, N = rec["P"], rec["N"]
    nu = rec["curvatures"]["ggn"]["trace_per_param"]
    for r in rec["curvatures"].values():
        for Bs, b in r["batch"].items():
            want = nm.predict_batch_lam1(r["lam1_full"], P=P, B=int(Bs), N=N,
                                         sigma_eps=r["sigma_eps"], noise_var=nu,
                                         top_variance=r["top_variance"])
            assert b["predicted"] == want
    rows = nm.prediction_rows(rec, label="tiny")
    assert len(rows) == 4 and {r["network"] for r in rows} == {"tiny"}
    row = rows[0]
    assert row["ratio_theorem4"] == pytest.approx(row["theorem4"] / row["measured"])
    json.dumps(rec, allow_nan=False)  # a results record must be strict JSON


def test_predict_batch_lam1_closed_forms():
    kw = {"P": 10_000, "B": 10, "N": 2000}
    b = float(effective_batch_size(10, 2000))
    p = nm.predict_batch_lam1(2.0, sigma_eps=0.01, noise_var=1e-3, top_variance=40.0, **kw)
    assert p["theorem4"] == pytest.approx(batch_outlier(2.0, sigma_eps=0.01, **kw))
    # P > N: the Wishart model's leading order in P/N
    assert p["wishart"] == pytest.approx(float(ggn_batch_outlier(2.0, noise_var=1e-3,
                                                                 finite_N=False, **kw)))
    assert p["top_direction"] == pytest.approx(2.0 + 40.0 / (b * 2.0))
    # below its threshold the top-direction model gives the edge 2 tau / sqrt(b)
    low = nm.predict_batch_lam1(0.5, sigma_eps=0.01, top_variance=400.0, **kw)
    assert low["top_direction"] == pytest.approx(2 * math.sqrt(400.0 / b))
    assert low["wishart"] is None
    # P <= N: the finite-N form
    q = nm.predict_batch_lam1(3.0, P=400, B=200, N=1000, sigma_eps=0.0, noise_var=1.0)
    assert q["wishart"] == pytest.approx(float(ggn_batch_outlier(3.0, P=400, B=200, N=1000,
                                                                 noise_var=1.0)))
    assert q["theorem4"] == 3.0 and q["top_direction"] is None


@pytest.mark.parametrize("bad", [{"lam1": 0.0}, {"lam1": float("nan")},
                                 {"top_variance": -1.0}])
def test_predict_batch_lam1_rejects_bad_input(bad):
    args = {"lam1": 1.0, "top_variance": 1.0} | bad
    with pytest.raises(ValueError, match="lam1|top_variance"):
        nm.predict_batch_lam1(args.pop("lam1"), P=100, B=10, N=1000, sigma_eps=0.1, **args)


def test_noise_spectrum_of_a_wigner_matrix():
    # GOE, P = 600, entries of variance 1/P: semicircle on [-2, 2]. Edge fluctuations
    # are O(P^(-2/3)) ~ 1.4%; the stable rank P s^2/lam_max^2 then within ~3% of P/4.
    rng = np.random.default_rng(0)
    P = 600
    G = rng.standard_normal((P, P)) / math.sqrt(P)
    W = (G + G.T) / math.sqrt(2)
    ev = np.linalg.eigvalsh(W)
    s = nm.noise_spectrum(ev, np.ones(P), P=P)
    assert s.edge_ratio == pytest.approx(1.0, abs=0.05)
    assert s.asymmetry == pytest.approx(1.0, abs=0.05)
    assert s.stable_rank == pytest.approx(P / 4, rel=0.1)
    assert abs(s.skewness) < 0.05
    assert s.second_moment == pytest.approx(float((W**2).sum()) / P)


def test_noise_spectrum_of_a_low_rank_wishart_matrix():
    # eps = X X^T/k - (small) for k = 5 directions in P = 600: one-sided, stable rank <= 5
    rng = np.random.default_rng(1)
    P, k = 600, 5
    X = rng.standard_normal((P, k))
    ev = np.linalg.eigvalsh(X @ X.T / k - 0.01 * np.eye(P))
    s = nm.noise_spectrum(ev, np.ones(P), P=P)
    assert s.stable_rank <= k + 1e-9
    assert s.asymmetry > 100 and s.skewness > 5
    assert s.edge_ratio > 5  # far beyond the semicircle of the same Frobenius norm
    # an independent Frobenius estimate replaces the quadrature's second moment
    t = nm.noise_spectrum(ev, np.ones(P), P=P, frobenius2=4 * s.second_moment)
    assert t.wigner_edge == pytest.approx(2 * s.wigner_edge)


@pytest.mark.parametrize("args, match", [
    ({"nodes": [], "weights": []}, "non-empty"),
    ({"nodes": [1.0, 2.0], "weights": [1.0]}, "equal length"),
    ({"nodes": [1.0, float("nan")], "weights": [1.0, 1.0]}, "finite"),
    ({"nodes": [1.0, 2.0], "weights": [1.0, -1.0]}, ">= 0"),
])
def test_noise_spectrum_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        nm.noise_spectrum(args["nodes"], args["weights"], P=10)


@pytest.mark.parametrize("change, match", [
    ({"curvatures": ["fisher"]}, "curvatures"),
    ({"full_samples": 50}, "full_samples \\+ variance_samples"),
    ({"batch_sizes": [4, 40]}, "batch_sizes"),
    ({"noise_batch_sizes": [0]}, "noise_batch_sizes"),
    ({"num_batches": {4: 2}}, "num_batches"),
    ({"variance_samples": 6}, "variance_samples"),
    ({"rank_tol": 1.0}, "rank_tol"),
])
def test_measure_rejects_bad_sizes(change, match):
    model, ds = tiny_problem()
    with pytest.raises(ValueError, match=match):
        nm.measure_noise_models(model, ds, **(MEASURE | change))


def test_measure_needs_samples_in_memory():
    model, ds = tiny_problem()
    with pytest.raises(TypeError, match="tensors"):
        nm.measure_noise_models(model, list(ds), **MEASURE)


def test_run_is_stored_once_and_read_back(tmp_path, monkeypatch):
    x = torch.randn(80, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(80) % C
    ds = torch.utils.data.TensorDataset(x, y)
    cfg = TrainConfig(model="mlp", lr=0.05, batch_size=16, epochs=1,
                      model_kw={"in_dim": 4, "hidden": 5, "depth": 1})
    kw = MEASURE | {"full_steps": 20, "batch_steps": 10, "noise_steps": 10, "trace_vectors": 2,
                        "rank_samples": 0, "rank_steps": 0, "num_batches": {4: 2, 10: 1}}
    path = tmp_path / "noise.jsonl"
    first = nm.noise_models_run(cfg, train_set=ds, results=path, device="cpu", **kw)
    assert first["trained"] and first["train"]["train_loss"] > 0
    assert first["network"]["P"] == 4 * 5 + 5 + 5 * C + C
    calls = []
    monkeypatch.setattr(nm, "measure_noise_models", lambda *a, **k: calls.append(1))
    again = nm.noise_models_run(cfg, train_set=ds, results=path, device="cpu", **kw)
    assert again == first and not calls
    assert len(path.read_text().splitlines()) == 1
    with pytest.raises(TypeError, match="TrainConfig"):
        nm.noise_models_run(cfg.to_dict(), train_set=ds, results=path, **kw)


def test_paper_rank_bound_counts_relu_units():
    from rmtlr import models

    mlp = models.build("mlp", 10, in_dim=3072, hidden=128, depth=2)
    assert nm.paper_rank_bound(mlp, (3, 32, 32), 10) == 4 * 10 * (128 + 128 + 3072)
    cnn = models.build("small_cnn", 10, width=8)
    hidden = 8 * 32 * 32 + 16 * 16 * 16 + 32 * 8 * 8  # ReLU before each 2x2 pooling
    assert nm.paper_rank_bound(cnn, (3, 32, 32), 10) == 40 * (hidden + 3072)
    with pytest.raises(ValueError, match="nn.ReLU"):
        nm.paper_rank_bound(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), (4,), 2)

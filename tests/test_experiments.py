"""rmtlr.experiments: spectra against dense Hessians, Theorem 4 wrappers against closed
forms, resumable checkpoints and the results store."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from rmtlr import data, models
from rmtlr import experiments as ex
from rmtlr.rmt.batch import effective_batch_size, hessian_variance
from rmtlr.train import TrainConfig, eq23_lr

DS = data.gaussian_mixture(n=48, dim=4, num_classes=3, seed=0)
CFG = TrainConfig(model="mlp", model_kw={"in_dim": 4, "hidden": 6, "depth": 1}, optimizer="sgd",
                  lr=0.05, momentum=0.9, batch_size=8, epochs=3, schedule="eq23", probe=16)


def _net(seed=0):
    torch.manual_seed(seed)
    return models.build("mlp", 3, in_dim=4, hidden=6, depth=1)


def _dense_hessian(model, x, y):
    """Mean-loss Hessian in float64 by torch.func (an independent reference)."""
    net = _net()
    net.load_state_dict(model.state_dict())
    net = net.double()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def loss(w):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = w[i:i + s.numel()].reshape(s)
            i += s.numel()
        out = torch.func.functional_call(net, params, (x.double(),))
        return torch.nn.functional.cross_entropy(out, y)

    return torch.func.hessian(loss)(flat).numpy()


def test_spectrum_matches_dense_hessians_and_per_sample_variance():
    model = _net()
    P = models.count_parameters(model)  # 51: Lanczos with m = P steps is exact
    x, y = DS.tensors
    N, B = len(x), 1
    s = ex.spectrum_at(model, DS, batch_size=B, num_batches=2, lanczos_steps=P,
                       curvatures=("hessian",), variance_vectors=300, seed=3,
                       dtype=torch.float64)
    h = s["curvatures"]["hessian"]
    assert (s["P"], s["N"], s["B"]) == (P, N, B)
    # Full re-orthogonalised Lanczos run to m = P in float64 reproduces the spectrum to
    # rounding: 1e-8 relative leaves room for the Ritz value of a clustered top pair.
    top = np.linalg.eigvalsh(_dense_hessian(model, x, y))[-1]
    assert h["lam1_full"] == pytest.approx(top, rel=1e-8)
    rng = np.random.default_rng(3)  # the batches spectrum_at draws, as its docstring says
    for lam in h["lam1_batch"]:
        idx = np.sort(rng.choice(N, B, replace=False))
        assert lam == pytest.approx(np.linalg.eigvalsh(_dense_hessian(model, x[idx], y[idx]))[-1],
                                    rel=1e-8)
    # Units of one sample make Algorithm 1 exact up to the random directions z, so the
    # estimate is within 5 of its own standard errors of the dense ddof=1 variance.
    per = np.stack([_dense_hessian(model, x[i:i + 1], y[i:i + 1]) for i in range(N)])
    exact = hessian_variance(per, ddof=1)
    est = h["sigma_eps"] ** 2
    se = h["sigma2_stderr"] * effective_batch_size(1, N) / P
    assert abs(est - exact) < 5 * se
    assert se < 0.2 * exact  # the test has power: the error bar is not vacuous
    assert h["predicted"] == pytest.approx(ex.theorem4_prediction(h["lam1_full"], P, B, N, est))


def test_theorem4_prediction_closed_form():
    # 1/𝔟 = 1/10 − 1/1000, (P/𝔟)σ_ε² = 100·0.099·0.01 = 0.099 < λ² = 4: the outlier moves
    # to λ + 0.099/λ.
    assert ex.theorem4_prediction(2.0, 100, 10, 1000, 0.01) == pytest.approx(2.0 + 0.099 / 2)
    # Below threshold (λ = 0.1 < sqrt(0.099)) the top of the spectrum is the edge 2 sqrt(0.099).
    assert ex.theorem4_prediction(0.1, 100, 10, 1000, 0.01) == pytest.approx(2 * math.sqrt(0.099))
    assert ex.theorem4_prediction(2.0, 100, 1000, 1000, 0.01) == pytest.approx(2.0)  # B = N
    with pytest.raises(ValueError, match="sigma_eps2"):
        ex.theorem4_prediction(2.0, 100, 10, 1000, -1.0)


def test_ggn_prediction_closed_form():
    # γ = P/𝔟 = 100·(1/10 − 1/1000) = 9.9, a = P/N = 0.1; λ = 50 is above the threshold.
    lam, s2, g = 50.0, 1.0, 9.9
    assert ex.ggn_prediction(lam, 100, 10, 1000, s2) == pytest.approx(lam * (1 + g / (lam - 0.9)))
    # P > N (a network): the leading order in P/N, Baik–Silverstein with γ = 2000·(1/10 − 1/1000)
    g = 2000 * 0.099
    assert ex.ggn_prediction(lam, 2000, 10, 1000, s2) == pytest.approx(
        (1 + np.sqrt(g)) ** 2 if lam < 1 + np.sqrt(g) else lam * (1 + g / (lam - 1)))
    with pytest.raises(ValueError, match="bulk_level"):
        ex.ggn_prediction(lam, 100, 10, 1000, 0.0)


def test_paper_numbers_are_consistent_with_theorem4():
    # The paper's Hessian pair (11.41 → 80.15 at B = 128, P = 15,291,300, N = 45,000):
    # 80.15 > 2·11.41, so it can only be the bulk edge 2 sqrt(P/𝔟)σ_ε; the σ_ε implied by
    # that reading, fed back through Theorem 4, gives the batch value again.
    from rmtlr.scaling import implied_sigma

    h = next(r for r in ex.PAPER_SPECTRA if r["curvature"] == "hessian")
    P, N = 15_291_300, 45_000
    s = implied_sigma(h["lam1_full"], h["lam1_batch"], P, h["B"], N, threshold=True)
    assert ex.theorem4_prediction(h["lam1_full"], P, h["B"], N, s**2) == pytest.approx(h["lam1_batch"])
    assert ex.PAPER_ACCURACY["sgd"][0] > ex.PAPER_ACCURACY["adam"][0]


def test_checkpoints_follow_eq23_and_resume_to_identical_weights(tmp_path):
    a = ex.train_with_checkpoints(CFG, [0, 1, 3], tmp_path / "a", train_set=DS, device="cpu")
    assert sorted(a["checkpoints"]) == [0, 1, 3]
    assert a["history"]["lr"] == [eq23_lr(e - 1, 3, 0.05, 0.01) for e in (1, 2, 3)]
    # Interrupted after epoch 1, then resumed: the same weights as the straight run.
    ex.train_with_checkpoints(CFG, [1], tmp_path / "b", train_set=DS, device="cpu")
    b = ex.train_with_checkpoints(CFG, [1, 3], tmp_path / "b", train_set=DS, device="cpu")
    for k, v in a["model"].state_dict().items():
        assert torch.equal(v, b["model"].state_dict()[k]), k
    assert b["history"]["train_loss"] == a["history"]["train_loss"]
    with pytest.raises(ValueError, match="save_epochs"):
        ex.train_with_checkpoints(CFG, [4], tmp_path / "c", train_set=DS, device="cpu")


def test_divergence_stops_training(tmp_path):
    cfg = dataclasses.replace(CFG, lr=1e4)
    run = ex.train_with_checkpoints(cfg, [1, 3], tmp_path, train_set=DS, device="cpu")
    assert run["history"]["outcome"] == "diverged"
    assert 3 not in run["checkpoints"]


def test_spectra_across_training_resumes_and_loads_foreign_results(tmp_path, monkeypatch):
    kw = {"batch_size": 8, "num_batches": 1, "lanczos_steps": 10, "variance_vectors": 2}
    recs = ex.spectra_across_training(CFG, [0, 2], tmp_path / "here", train_set=DS, device="cpu",
                                      profile="quick", spectra_kw=kw)
    assert [r["epoch"] for r in recs] == [0, 2]
    assert {"config", "profile", "device", "versions", "wall_time_s"} <= set(recs[1])
    # Results copied from elsewhere (no checkpoints) are read back without any computing.
    there = tmp_path / "there"
    there.mkdir()
    (there / "spectra.jsonl").write_text((tmp_path / "here" / "spectra.jsonl").read_text())

    def boom(*a, **k):
        raise AssertionError("recomputed a stored result")

    monkeypatch.setattr(ex, "spectrum_at", boom)
    monkeypatch.setattr(ex, "train_with_checkpoints", boom)
    again = ex.spectra_across_training(CFG, [0, 2], there, train_set=DS, spectra_kw=kw)
    assert json.dumps(again, sort_keys=True) == json.dumps(recs, sort_keys=True)


def test_spectra_across_training_on_other_data_recomputes(tmp_path):
    kw = {"batch_size": 8, "num_batches": 1, "lanczos_steps": 5, "variance_vectors": 2}
    first = ex.spectra_across_training(CFG, [1], tmp_path, train_set=DS, device="cpu", spectra_kw=kw)
    other = data.gaussian_mixture(n=48, dim=4, num_classes=3, seed=1)
    again = ex.spectra_across_training(CFG, [1], tmp_path, train_set=other, device="cpu",
                                       spectra_kw=kw)
    assert again[0]["data"] == other.description != first[0]["data"]
    # Measuring on other data is a new record too, but reuses the training checkpoints.
    held_out = data.gaussian_mixture(n=40, dim=4, num_classes=3, seed=0)
    third = ex.spectra_across_training(CFG, [1], tmp_path, train_set=DS, spectra_set=held_out,
                                       device="cpu", spectra_kw=kw)
    assert third[0]["data"] == held_out.description
    assert len(ex.load_records(tmp_path / "spectra.jsonl")) == 3
    assert len(list((tmp_path / "checkpoints").glob("*/epoch0001.pt"))) == 2


def test_store_round_trip_torn_tail_and_filters(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    ex.append_record(path, {"config": {"batch_size": 8}, "x": 1})
    ex.append_record(path, {"config": {"batch_size": 16}, "x": 2})
    with open(path, "a") as fh:
        fh.write('{"config": {"batch_')  # a write torn by a kill
    assert [r["x"] for r in ex.load_records(path)] == [1, 2]
    assert [r["x"] for r in ex.load_records(path, config__batch_size=16)] == [2]
    assert ex.load_records(tmp_path / "missing.jsonl") == []
    monkeypatch.setenv("RMTLR_RESULTS", str(tmp_path / "env"))
    assert ex.results_dir(tmp_path / "default") == tmp_path / "env"
    monkeypatch.delenv("RMTLR_RESULTS")
    assert ex.results_dir(tmp_path / "default").is_dir()


def test_bad_input():
    model = _net()
    with pytest.raises(ValueError, match="batch_size"):
        ex.spectrum_at(model, DS, batch_size=len(DS))
    with pytest.raises(ValueError, match="curvatures"):
        ex.spectrum_at(model, DS, curvatures=("fisher",))
    with pytest.raises(ValueError, match="full_samples"):
        ex.spectrum_at(model, DS, full_samples=10**6)

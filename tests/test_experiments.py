"""rmtlr.experiments: spectra against dense Hessians, Theorem 4 wrappers against closed
forms, resumable checkpoints, and spectra files that survive kills."""

import dataclasses
import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rmtlr import data, models
from rmtlr import experiments as ex
from rmtlr.results import read_records
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
    N, B = 32, 1  # the first 32 samples are the full data; the other 16 are outside it
    s = ex.spectrum_at(model, DS, batch_sizes=[B], num_batches=2, lanczos_steps=P,
                       curvatures=("hessian",), full_samples=N, variance_unit=1,
                       variance_samples=40, variance_vectors=300, trace_vectors=400,
                       noise_steps=P, seed=3, dtype=torch.float64)
    h = s["curvatures"]["hessian"]
    hb = h["batch"][str(B)]
    assert (s["P"], s["N"], s["batch_sizes"]) == (P, N, [B])
    # Full re-orthogonalised Lanczos run to m = P in float64 reproduces the spectrum to
    # rounding: 1e-8 relative leaves room for the Ritz value of a clustered top pair.
    H_full = _dense_hessian(model, x[:N], y[:N])
    assert h["lam1_full"] == pytest.approx(np.linalg.eigvalsh(H_full)[-1], rel=1e-8)
    batches = s["batches"][str(B)]
    assert len(batches) == 2 and all(max(i) < N for i in batches)
    for lam, idx in zip(hb["lam1_batch"], batches):
        assert lam == pytest.approx(np.linalg.eigvalsh(_dense_hessian(model, x[idx], y[idx]))[-1],
                                    rel=1e-8)
    # ε = H_batch − H_emp of the first batch: its extreme eigenvalues, and ‖ε‖_F²/P as the
    # second moment of its (exact, m = P) spectral measure up to the one start vector.
    eps = _dense_hessian(model, x[batches[0]], y[batches[0]]) - H_full
    ev = np.linalg.eigvalsh(eps)
    assert hb["noise"]["lam_max"] == pytest.approx(ev[-1], rel=1e-6)
    assert hb["noise"]["lam_min"] == pytest.approx(ev[0], rel=1e-6)
    # Algorithm 1 runs on samples in no measured batch, here one sample per unit, so it is
    # exact up to the random directions z: within 5 of its standard errors of σ_ε², the
    # mean over entries of the dense per-sample Hessians' variance (ddof=1) over them.
    var_idx = s["variance"]["indices"]
    assert not set(var_idx) & {i for b in batches for i in b}
    assert len(var_idx) == 40 and s["variance"]["units"] == 40
    per = np.stack([_dense_hessian(model, x[i:i + 1], y[i:i + 1]) for i in var_idx])
    exact = per.var(axis=0, ddof=1).mean()
    est = h["sigma_eps"] ** 2
    b = 1 / (1 - 1 / 40)  # 𝔟(1, 40) of the variance samples, Eq. 7
    se = h["sigma2_stderr"] * b / P
    assert abs(est - exact) < 5 * se
    assert se < 0.2 * exact  # the test has power: the error bar is not vacuous
    # Hutchinson's tr(H)/P within 5 standard errors of the dense trace.
    assert abs(h["trace_per_param"] - np.trace(H_full) / P) < 5 * h["trace_stderr"]
    assert h["trace_stderr"] < 0.2 * abs(np.trace(H_full) / P)
    lam, noise = h["lam1_full"], P * (1 / B - 1 / N) * est  # Theorem 4 by hand
    expected = lam + noise / lam if lam > math.sqrt(noise) else 2 * math.sqrt(noise)
    assert hb["predicted_theorem4"] == pytest.approx(expected, rel=1e-12)
    assert hb["predicted_wishart"] == pytest.approx(
        ex.ggn_prediction(lam, P=P, B=B, N=N, noise_var=h["trace_per_param"]), rel=1e-12)
    assert set(h["timings"]) == {"full_s", "trace_s", "variance_s", "batches_s", "noise_s"}


def test_spectrum_batches_and_variance_samples_are_reproducible_and_disjoint():
    model = _net()
    kw = {"batch_sizes": [4, 8], "num_batches": 2, "lanczos_steps": 5, "full_samples": 40,
          "variance_unit": 4, "variance_vectors": 2, "trace_vectors": 2, "seed": 5}
    a = ex.spectrum_at(model, DS, **kw)
    b = ex.spectrum_at(model, DS, **kw)
    assert a["batches"] == b["batches"] and a["variance"] == b["variance"]
    used = {i for B in ("4", "8") for idx in a["batches"][B] for i in idx}
    assert all(len(idx) == int(B) and len(set(idx)) == int(B)
               for B in ("4", "8") for idx in a["batches"][B])
    assert not used & set(a["variance"]["indices"])
    # Default: as many variance samples as are left outside the batches (at most N),
    # rounded down to whole units.
    assert a["variance"]["samples"] == 4 * ((48 - len(used)) // 4)
    g = a["curvatures"]["ggn"]
    assert g["lam1_full"] > 0 and g["trace_per_param"] > 0
    for B in ("4", "8"):
        assert g["batch"][B]["predicted_wishart"] > g["lam1_full"]
        assert "noise" not in g["batch"][B]
    with pytest.raises(ValueError, match="variance_samples must be in"):
        ex.spectrum_at(model, DS, **{**kw, "variance_samples": 47})


def test_theorem4_prediction_closed_form():
    # 1/𝔟 = 1/10 − 1/1000, (P/𝔟)σ_ε² = 100·0.099·0.01 = 0.099 < λ² = 4: the outlier moves
    # to λ + 0.099/λ.
    kw = {"P": 100, "B": 10, "N": 1000, "sigma_eps": 0.1}
    assert ex.theorem4_prediction(2.0, **kw) == pytest.approx(2.0 + 0.099 / 2)
    # Below threshold (λ = 0.1 < sqrt(0.099)) the top of the spectrum is the edge 2 sqrt(0.099).
    assert ex.theorem4_prediction(0.1, **kw) == pytest.approx(2 * math.sqrt(0.099))
    assert ex.theorem4_prediction(2.0, **{**kw, "B": 1000}) == pytest.approx(2.0)  # B = N
    with pytest.raises(ValueError, match="sigma_eps must be finite and >= 0"):
        ex.theorem4_prediction(2.0, **{**kw, "sigma_eps": -1.0})
    with pytest.raises(TypeError):
        ex.theorem4_prediction(2.0, 100, 10, 1000, 0.1)  # P, B, N are keyword-only


def test_ggn_prediction_closed_form():
    # γ = P/𝔟 = 100·(1/10 − 1/1000) = 9.9, a = P/N = 0.1; λ = 50 is above the threshold.
    lam, s2, g = 50.0, 1.0, 9.9
    assert ex.ggn_prediction(lam, P=100, B=10, N=1000, noise_var=s2) == pytest.approx(
        lam * (1 + g / (lam - 0.9)))
    # P > N (a network): the leading order in P/N, Baik–Silverstein with γ = 2000·(1/10 − 1/1000)
    g = 2000 * 0.099
    assert ex.ggn_prediction(lam, P=2000, B=10, N=1000, noise_var=s2) == pytest.approx(
        (1 + np.sqrt(g)) ** 2 if lam < 1 + np.sqrt(g) else lam * (1 + g / (lam - 1)))
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="noise_var must be finite and > 0"):
            ex.ggn_prediction(lam, P=100, B=10, N=1000, noise_var=bad)
    with pytest.raises(TypeError):
        ex.ggn_prediction(lam, 100, 10, 1000, s2)  # keyword-only


def test_paper_hessian_pair_is_the_bulk_edge_of_theorem4():
    # The paper's Hessian pair (11.41 → 80.15 at B = 128, P = 15,291,300, N = 45,000):
    # 80.15 > 2·11.41 = 22.82, the largest value an outlier above threshold can reach from
    # 11.41 (λ + s²/λ ≤ 2λ when s < λ), so it can only be the bulk edge 2s, s = sqrt(P/𝔟)σ_ε.
    h = next(r for r in ex.PAPER_SPECTRA if r["curvature"] == "hessian")
    P, N, B = 15_291_300, 45_000, h["B"]
    assert h["lam1_batch"] > 2 * h["lam1_full"]
    s = h["lam1_batch"] / 2
    sigma_eps = s / math.sqrt(P * (1 / B - 1 / N))
    assert h["lam1_full"] < s  # that reading puts λ_1 below the threshold, as it must
    assert ex.theorem4_prediction(h["lam1_full"], P=P, B=B, N=N, sigma_eps=sigma_eps) == (
        pytest.approx(h["lam1_batch"], rel=1e-12))
    # Any σ_ε small enough to keep 11.41 an outlier predicts at most 2·11.41.
    below = 0.999 * h["lam1_full"] / math.sqrt(P * (1 / B - 1 / N))
    assert ex.theorem4_prediction(h["lam1_full"], P=P, B=B, N=N, sigma_eps=below) < (
        2 * h["lam1_full"])


def test_checkpoints_follow_eq23_and_resume_to_identical_weights(tmp_path):
    a = ex.train_with_checkpoints(CFG, [0, 1, 3], tmp_path / "a", train_set=DS, device="cpu")
    assert sorted(a["checkpoints"]) == [0, 1, 3]
    assert a["history"]["lr"] == [eq23_lr(e - 1, 3, alpha0=0.05, r=0.01) for e in (1, 2, 3)]
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
    kw = {"batch_sizes": [8], "num_batches": 1, "lanczos_steps": 10, "variance_vectors": 2,
          "variance_unit": 8, "trace_vectors": 2}
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
    kw = {"batch_sizes": [8], "num_batches": 1, "lanczos_steps": 5, "variance_vectors": 2,
          "variance_unit": 8, "trace_vectors": 2}
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
    assert len(read_records(tmp_path / "spectra.jsonl")) == 3
    assert len(list((tmp_path / "checkpoints").glob("*/epoch0001.pt"))) == 2


@pytest.mark.parametrize("torn_size", [10, 2 * 2**20])
def test_spectra_resume_after_a_torn_last_record_of_any_size(tmp_path, monkeypatch, torn_size):
    kw = {"batch_sizes": [8], "num_batches": 1, "lanczos_steps": 5, "variance_vectors": 2,
          "variance_unit": 8, "trace_vectors": 2}
    first = ex.spectra_across_training(CFG, [0, 1], tmp_path, train_set=DS, device="cpu",
                                       spectra_kw=kw)
    store = tmp_path / "spectra.jsonl"
    with open(store, "ab") as f:  # a kill while writing the next epoch's record
        f.write((b'{"config": {"model": "mlp"}, "curvatures": ' + b"1" * torn_size)[:torn_size])
    assert [r["epoch"] for r in read_records(store)] == [0, 1]
    calls = []
    real = ex.spectrum_at

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(ex, "spectrum_at", counted)
    recs = ex.spectra_across_training(CFG, [0, 1, 3], tmp_path, train_set=DS, device="cpu",
                                      spectra_kw=kw)
    assert [r["epoch"] for r in recs] == [0, 1, 3] and len(calls) == 1  # only epoch 3 is new
    assert recs[:2] == first
    lines = store.read_bytes().split(b"\n")
    assert lines[-1] == b"" and [json.loads(x)["epoch"] for x in lines[:-1]] == [0, 1, 3]


def test_spectra_check_the_results_folder_before_training(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("trained before the folder was checked")

    monkeypatch.setattr(ex, "train_with_checkpoints", boom)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="results must be a folder"):
        ex.spectra_across_training(CFG, [1], tmp_path / "afile", train_set=DS, device="cpu")
    with pytest.raises(ValueError, match="cannot create its folder"):
        ex.spectra_across_training(CFG, [1], tmp_path / "afile" / "sub", train_set=DS,
                                   device="cpu")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "spectra.jsonl").write_text("null\n")
    with pytest.raises(ValueError, match="line 1: a JSON NoneType, not a record"):
        ex.spectra_across_training(CFG, [1], tmp_path / "bad", train_set=DS, device="cpu")
    with pytest.raises(ValueError, match="epochs"):
        ex.spectra_across_training(CFG, [4], tmp_path, train_set=DS, device="cpu")
    with pytest.raises(ValueError, match="device 'meta' is not usable"):
        ex.spectra_across_training(CFG, [1], tmp_path, train_set=DS, device="meta")


def test_results_dir_prefers_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RMTLR_RESULTS", str(tmp_path / "env"))
    assert ex.results_dir(tmp_path / "default") == tmp_path / "env"
    monkeypatch.delenv("RMTLR_RESULTS")
    assert ex.results_dir(tmp_path / "default").is_dir()


def test_checkpoints_of_a_plain_tensor_dataset(tmp_path):
    plain = torch.utils.data.TensorDataset(*DS.tensors)  # no num_classes, no description
    run = ex.train_with_checkpoints(dataclasses.replace(CFG, epochs=1), [1], tmp_path,
                                    train_set=plain, device="cpu")
    assert run["history"]["outcome"] == "ok" and 1 in run["checkpoints"]


def test_bad_input():
    model = _net()
    with pytest.raises(ValueError, match="batch_sizes"):
        ex.spectrum_at(model, DS, batch_sizes=[len(DS)])
    with pytest.raises(ValueError, match="batch_sizes"):
        ex.spectrum_at(model, DS, batch_sizes=[8, 2.5])
    with pytest.raises(ValueError, match="batch_sizes"):
        ex.spectrum_at(model, DS, batch_sizes=[])
    with pytest.raises(TypeError, match="batch_sizes"):
        ex.spectrum_at(model, DS, batch_sizes=8)
    with pytest.raises(ValueError, match="noise_steps"):
        ex.spectrum_at(model, DS, batch_sizes=[8], noise_steps=-1)
    with pytest.raises(ValueError, match="noise_curvatures must be a subset"):
        ex.spectrum_at(model, DS, batch_sizes=[8], curvatures=["ggn"], noise_steps=2,
                       noise_curvatures=["hessian"])
    with pytest.raises(ValueError, match="curvatures"):
        ex.spectrum_at(model, DS, curvatures=("fisher",))
    with pytest.raises(ValueError, match="full_samples"):
        ex.spectrum_at(model, DS, full_samples=10**6)
    with pytest.raises(ValueError, match="seed must be an integer"):
        ex.spectrum_at(model, DS, batch_sizes=[8], seed=-1)
    with pytest.raises(ValueError, match="lanczos_steps must be an integer >= 1, got 2.5"):
        ex.spectrum_at(model, DS, batch_sizes=[8], lanczos_steps=2.5)
    with pytest.raises(TypeError, match="lanczos_steps must be an integer"):
        ex.spectrum_at(model, DS, batch_sizes=[8], lanczos_steps="5")


def test_docstring_examples_run():
    assert doctest.testmod(ex, raise_on_error=False).failed == 0


def test_missing_early_checkpoints_are_retrained_to_identical_weights(tmp_path):
    # Only the last checkpoint kept (as a repository keeps it): asking again for all
    # epochs retrains the earlier ones from the seed instead of returning paths that do
    # not exist, and the kept one is not overwritten.
    a = ex.train_with_checkpoints(CFG, [0, 1, 3], tmp_path, train_set=DS, device="cpu")
    want = {e: torch.load(p, weights_only=True)["state_dict"] for e, p in a["checkpoints"].items()}
    for e in (0, 1):
        a["checkpoints"][e].unlink()
    stamp = a["checkpoints"][3].stat().st_mtime_ns
    b = ex.train_with_checkpoints(CFG, [0, 1, 3], tmp_path, train_set=DS, device="cpu")
    assert sorted(b["checkpoints"]) == [0, 1, 3]
    assert all(p.exists() for p in b["checkpoints"].values())
    for e, p in b["checkpoints"].items():
        got = torch.load(p, weights_only=True)["state_dict"]
        assert all(torch.equal(got[k], v) for k, v in want[e].items()), e
    assert b["checkpoints"][3].stat().st_mtime_ns == stamp
    assert ex.weights_digest(b["model"]) == ex.weights_digest(want[3])
    assert len(b["history"]["epoch_time_s"]) == 3


def test_spectra_records_carry_weights_and_per_epoch_keywords(tmp_path):
    kw = {"batch_sizes": [8], "num_batches": 1, "lanczos_steps": 5, "variance_vectors": 2,
          "variance_unit": 8, "trace_vectors": 2}
    recs = ex.spectra_across_training(CFG, [1, 3], tmp_path, train_set=DS, device="cpu",
                                      spectra_kw=kw,
                                      epoch_kw={3: {"noise_steps": 4, "noise_curvatures": ["hessian"]}})
    assert "noise" not in recs[0]["curvatures"]["hessian"]["batch"]["8"]
    assert "noise" not in recs[1]["curvatures"]["ggn"]["batch"]["8"]
    assert len(recs[1]["curvatures"]["hessian"]["batch"]["8"]["noise"]["nodes"][0]) == 4
    assert recs[1]["spectra_kw"] == {**kw, "noise_steps": 4, "noise_curvatures": ["hessian"]}
    assert recs[0]["spectra_kw"] == kw
    for r in recs:
        state = torch.load(tmp_path / r["checkpoint"], weights_only=True)["state_dict"]
        assert r["weights_sha256"] == ex.weights_digest(state)
        assert r["train_time_s"] == pytest.approx(sum(r["history"]["epoch_time_s"]))
    assert recs[0]["weights_sha256"] != recs[1]["weights_sha256"]
    with pytest.raises(ValueError, match="epoch_kw must name epochs"):
        ex.spectra_across_training(CFG, [1], tmp_path, train_set=DS, device="cpu",
                                   spectra_kw=kw, epoch_kw={2: {"noise_steps": 4}})


def test_weights_digest_tells_weights_apart():
    a, b = _net(0), _net(1)
    assert ex.weights_digest(a) != ex.weights_digest(b)
    b.load_state_dict(a.state_dict())
    assert ex.weights_digest(a) == ex.weights_digest(b)
    with pytest.raises(TypeError, match="state must be"):
        ex.weights_digest([1, 2])


def test_per_sample_flops_of_a_convolution_and_its_products():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 8 * 8, 5))
    fwd = 2 * (3 * 4 * 9 * 64 + 256 * 5)  # multiply-adds of the convolution and the layer
    assert ex.per_sample_flops(conv, "forward", input_shape=(3, 8, 8)) == fwd
    # Backward: the weight gradients (and the input gradient of the second layer) are
    # each as costly as their forward product; the data convolution needs no input gradient.
    train_ = ex.per_sample_flops(conv, "train", input_shape=(3, 8, 8))
    assert 2 * fwd <= train_ <= 3 * fwd
    for kind in ("hessian", "ggn"):
        assert ex.per_sample_flops(conv, kind, input_shape=(3, 8, 8)) >= train_
    with pytest.raises(ValueError, match="kind must be one of"):
        ex.per_sample_flops(conv, "adam")


def test_estimate_cost_counts_every_product(monkeypatch):
    unit = {"forward": 1.0, "train": 3.0, "hessian": 10.0, "ggn": 5.0}
    monkeypatch.setattr(ex, "per_sample_flops", lambda model, kind, **kw: unit[kind])
    kw = {"batch_sizes": [16, 128], "num_batches": 5, "lanczos_steps": 40, "full_samples": 1024,
          "slq_vectors": 1, "trace_vectors": 10, "variance_vectors": 4,
          "variance_samples": 512}
    est = ex.estimate_cost(_net(), train_samples=9000, val_samples=1000, epochs=30,
                           checkpoints=4, noise_checkpoints=1, spectra_kw=kw,
                           noise_kw={"noise_steps": 30, "noise_curvatures": ["hessian"]},
                           flops_per_s=1e3, rate_source="assumed")
    per_ckpt = 40 * 1024 + 40 * 5 * (16 + 128) + 10 * 1024 + 4 * 512
    noise = 30 * (1024 + 16 + 1024 + 128)  # the Hessian's ε only
    assert est.spectra_flops == (10 + 5) * 4 * per_ckpt + 10 * noise
    assert est.train_flops == 30 * (9000 * 3 + 1000 * 1)
    assert est.seconds == pytest.approx((est.train_flops + est.spectra_flops) / 1e3)
    assert "assumed" in est.describe()
    with pytest.raises(ValueError, match="full_samples"):
        ex.estimate_cost(_net(), train_samples=9, val_samples=1, epochs=1, checkpoints=1,
                         spectra_kw={}, flops_per_s=1.0, rate_source="x")
    with pytest.raises(ValueError, match="flops_per_s"):
        ex.estimate_cost(_net(), train_samples=9, val_samples=1, epochs=1, checkpoints=1,
                         spectra_kw=kw, flops_per_s=0.0, rate_source="x")


def test_network_config_is_the_paper_recipe():
    spec = {"model": "vgg16", "model_kw": {"width": 0.125}, "lr": 0.05, "epochs": 30,
            "checkpoints": [0, 30]}
    cfg = ex.network_config(spec, dataset="images")
    assert (cfg.optimizer, cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.schedule,
            cfg.final_ratio, cfg.augment) == ("sgd", 0.9, 5e-4, 128, "eq23", 0.01, True)
    assert (cfg.model, cfg.model_kw, cfg.lr, cfg.epochs) == ("vgg16", {"width": 0.125}, 0.05, 30)
    with pytest.raises(ValueError, match="exactly the keys"):
        ex.network_config({**spec, "momentum": 0.5}, dataset="images")


# --- chapter 8's gpu and full profiles, which no CPU test can run at their real size ---

CHAPTER8 = Path(__file__).resolve().parents[1] / "book" / "08_spectra_across_training.ipynb"


def _tiny_images(name, split="train", **kw):
    """A stand-in for torchvision's CIFAR-100 (no download): 100 classes, 3×32×32."""
    n = {"train": 160, "val": 48, "test": 48}[split]
    ds = data.synthetic_images(n=n, num_classes=100, seed={"train": 0, "val": 1}.get(split, 2))
    return data.LabelledTensors(*ds.tensors, f"CIFAR100 (torchvision stand-in): {split} split, "
                                f"n={n}", 100)


def _chapter8_parameters(profile, monkeypatch, tmp_path):
    """Execute chapter 8's parameters cell as the given profile would, on the CPU."""
    cell = next("".join(c["source"]) for c in json.loads(CHAPTER8.read_text())["cells"]
                if "parameters" in c.get("metadata", {}).get("tags", []))
    monkeypatch.setenv("RMTLR_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(data, "load", _tiny_images)
    from rmtlr import notebook
    from rmtlr.profiles import get_profile

    g = {"prof": get_profile(profile, device="cpu"), "notebook": notebook}
    exec(compile(cell, str(CHAPTER8), "exec"), g)  # noqa: S102 (the chapter's own cell)
    return g


@pytest.mark.parametrize("profile", ["gpu", "full"])
def test_chapter8_gpu_and_full_settings_are_the_papers(profile, monkeypatch, tmp_path):
    g = _chapter8_parameters(profile, monkeypatch, tmp_path)
    assert g["DATASET"] == "cifar100" and g["C"] == 100
    assert g["RESULTS"] == tmp_path / "results"  # RMTLR_RESULTS (e.g. a Google Drive folder)
    vgg = next(k for k, n in g["NETWORKS"].items() if n["model"] == "vgg16")
    assert g["NETWORKS"][vgg]["model_kw"] == {} and g["P_OF"][vgg] == 15_291_300
    assert g["NETWORKS"][vgg]["lr"] == 0.05
    cfg = ex.network_config(g["NETWORKS"][vgg], dataset=g["DATASET"])
    assert (cfg.momentum, cfg.weight_decay, cfg.schedule, cfg.augment) == (0.9, 5e-4, "eq23", True)
    assert g["SPECTRA_KW"]["curvatures"] == ["hessian", "ggn"]
    if profile == "full":
        assert {n["model"] for n in g["NETWORKS"].values()} == {"vgg16", "wrn28_10"}
        assert all(n["epochs"] == 300 for n in g["NETWORKS"].values())
        assert g["SPECTRA_KW"]["lanczos_steps"] == 100 and g["SPECTRA_KW"]["full_samples"] == 45_000
        assert g["NOISE_KW"]["noise_steps"] == 100
    # 45k/5k: the data set the cell loaded through the torchvision branch, held in memory
    assert isinstance(g["train_set"], data.LabelledTensors)


def test_gpu_profile_estimate_is_about_half_an_hour_on_a_t4(monkeypatch, tmp_path):
    # The gpu profile is sized for ~30 minutes at the stated T4 rate, from counted FLOPs
    # of the real VGG-16 (P = 15,291,300) and the real CIFAR-100 sizes (45,000 / 5,000).
    g = _chapter8_parameters("gpu", monkeypatch, tmp_path)
    ((_, n),) = g["NETWORKS"].items()
    est = ex.estimate_cost(models.build(n["model"], 100, **n["model_kw"]), train_samples=45_000,
                           val_samples=5_000, epochs=n["epochs"],
                           checkpoints=len(n["checkpoints"]), spectra_kw=g["SPECTRA_KW"],
                           noise_kw=g["NOISE_KW"], noise_checkpoints=1,
                           flops_per_s=g["RATE"][0], rate_source=g["RATE"][1])
    assert 20 * 60 < est.seconds < 40 * 60, est.describe()
    assert "T4" in est.rate_source


@pytest.mark.parametrize("profile", ["gpu", "full"])
def test_chapter8_gpu_and_full_path_runs_end_to_end_on_tiny_stand_ins(profile, monkeypatch,
                                                                      tmp_path):
    g = _chapter8_parameters(profile, monkeypatch, tmp_path)
    real_build = models.build

    def tiny(name, num_classes, **kw):  # the full-width networks, shrunk to CPU size
        if name == "vgg16":
            return real_build("vgg16", num_classes, width=1 / 16)
        return real_build("wrn", num_classes, depth=10, width=1)

    monkeypatch.setattr(models, "build", tiny)
    nets = {k: {**n, "epochs": 2, "checkpoints": [0, 2]} for k, n in g["NETWORKS"].items()}
    kw = {**g["SPECTRA_KW"], "full_samples": 64, "lanczos_steps": 4, "num_batches": 2,
          "batch_sizes": [4, 16], "variance_samples": 32, "variance_unit": 8,
          "trace_vectors": 2, "variance_vectors": 2}
    noise = {**g["NOISE_KW"], "noise_steps": 3}
    run = {"dataset": g["DATASET"], "spectra_kw": kw, "noise_kw": noise,
           "results": g["RESULTS"], "train_set": g["train_set"], "val_set": g["val_set"],
           "device": "cpu", "profile": profile}
    recs = ex.run_spectra(nets, **run)
    assert set(recs) == set(nets)
    for label, rs in recs.items():
        assert [r["epoch"] for r in rs] == [0, 2] and rs[0]["profile"] == profile
        assert "noise" in rs[1]["curvatures"]["hessian"]["batch"]["16"]
        state = torch.load(g["RESULTS"] / rs[1]["checkpoint"], weights_only=True)["state_dict"]
        assert ex.weights_digest(state) == rs[1]["weights_sha256"]
        assert len(ex.spectra_table(rs, network=label)) == 2 * 2 * 2
    # A disconnect and a rerun: everything is read back, nothing recomputed.
    def boom(*a, **k):
        raise AssertionError("recomputed a stored result")

    monkeypatch.setattr(ex, "spectrum_at", boom)
    monkeypatch.setattr(ex, "train_with_checkpoints", boom)
    assert ex.run_spectra(nets, **run) == recs


def test_processes_share_the_checkpoints_of_one_job(tmp_path, monkeypatch):
    # Another worker holds the claim on epoch 1 (and writes its record when done): this
    # one measures only epoch 3, then waits for and returns the other's epoch-1 record.
    import threading

    from rmtlr.results import ResultsFile

    kw = {"batch_sizes": [8], "num_batches": 1, "lanczos_steps": 5, "variance_vectors": 2,
          "variance_unit": 8, "trace_vectors": 2}
    ref = ex.spectra_across_training(CFG, [1, 3], tmp_path / "ref", train_set=DS,
                                     device="cpu", spectra_kw=kw)
    store = ResultsFile(tmp_path / "par" / "spectra.jsonl")
    holding, failures = threading.Event(), []

    def other_worker():
        try:
            with store.claim(ref[0]["key"]) as held:
                assert held
                holding.set()
                for _ in range(600):  # until this worker has stored epoch 3
                    if store.find(ref[1]["key"]) is not None:
                        break
                    threading.Event().wait(0.1)
                store.append(ref[0])
        except Exception as err:  # noqa: BLE001 (reported by the main thread)
            failures.append(err)
            holding.set()

    calls = []
    real = ex.spectrum_at

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(ex, "spectrum_at", counted)
    t = threading.Thread(target=other_worker)
    t.start()
    holding.wait(60)
    recs = ex.spectra_across_training(CFG, [1, 3], tmp_path / "par", train_set=DS,
                                      device="cpu", spectra_kw=kw)
    t.join(60)
    assert not failures
    assert len(calls) == 1 and [r["epoch"] for r in recs] == [1, 3]
    assert recs[0] == ref[0] and recs[1]["weights_sha256"] == ref[1]["weights_sha256"]

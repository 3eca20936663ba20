"""rmtlr.predict_lr: the measured inputs are the curvature functions' own, the predictions
follow from them by the stated formulas, and bad input is refused by name."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rmtlr
from rmtlr.curvature import (
    GGNOperator,
    HessianOperator,
    hessian_variance,
    hutchinson_trace,
    top_eigenpairs,
)
from rmtlr.experiments import ggn_prediction
from rmtlr.predict import NOISE_MODELS, predict_lr
from rmtlr.rmt import batch_outlier, effective_batch_size

SIZES = [4, 8, 16, 32, 96]
# Small enough for a fraction of a second per call on one thread.
FAST = {"num_vectors": 3, "variance_samples": 48, "num_steps": 12, "batch_num_steps": 10,
        "batches_per_size": 3, "progress": False}


def tiny(seed=0, n=96):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, x, y


@pytest.fixture(scope="module")
def result():
    model, x, y = tiny()
    return model, x, y, predict_lr(model, nn.CrossEntropyLoss(), (x, y), SIZES, **FAST)


def test_rates_finite_positive_and_non_decreasing_for_every_noise_model(result):
    model, x, y, _ = result
    for noise in NOISE_MODELS:
        res = predict_lr(model, nn.CrossEntropyLoss(), (x, y), SIZES, noise_model=noise, **FAST)
        assert res.noise_model == noise and res.batch_sizes.tolist() == SIZES
        assert np.all(np.isfinite(res.lr)) and np.all(res.lr > 0)
        assert np.all(np.diff(res.lr) >= 0), (noise, res.lr)
        assert np.all(res.lr_low <= res.lr) and np.all(res.lr <= res.lr_high)
        np.testing.assert_allclose(res.lr, 2 / res.lam1_batch, rtol=1e-12)
        # At B = N there is no batch noise: the full-data λ₁ and no spread.
        assert res.lam1_batch[-1] == pytest.approx(res.inputs.lam1, rel=1e-12)
        assert res.lam1_batch_sd[-1] == 0


def test_measured_inputs_equal_direct_calls_to_the_curvature_functions(result):
    model, x, y, res = result
    loss = nn.CrossEntropyLoss()
    inp = res.inputs
    H = HessianOperator(model, loss, (x, y))
    top = top_eigenpairs(H, k=1, num_steps=12, seed=0, progress=False)
    assert inp.lam1 == inp.lam1_measured == pytest.approx(top.values[0], rel=1e-9)
    assert inp.P == H.shape[0] and inp.N == len(x) and inp.full_samples == len(x)
    idx = torch.from_numpy(inp.variance_indices)
    units = [(x[idx[i:i + 8]], y[idx[i:i + 8]]) for i in range(0, len(idx), 8)]
    assert len(units) == 6 and inp.variance_samples == 48 and inp.unit_size == 8
    hv = hessian_variance(HessianOperator(model, loss, units), 3, per_sample=False, seed=0,
                          progress=False)
    assert (inp.sigma2, inp.sigma_eps) == pytest.approx((hv.sigma2, hv.sigma_eps), rel=1e-9)
    along = hessian_variance(HessianOperator(model, loss, units), per_sample=False,
                             vectors=top.vectors[:, 0], progress=False)
    assert (inp.sigma2_top, inp.sigma_eps_top) == pytest.approx(
        (along.sigma2, along.sigma_eps), rel=1e-6)
    tr = hutchinson_trace(GGNOperator(model, loss, units), 3, seed=0, progress=False)
    assert inp.noise_var == pytest.approx(tr.trace / inp.P, rel=1e-9)
    for B, batches in inp.calibration_indices.items():
        for j, b_idx in enumerate(batches):
            assert len(b_idx) == B and len(set(b_idx.tolist())) == B
            Hb = HessianOperator(model, loss, (x[b_idx], y[b_idx]))
            ref = top_eigenpairs(Hb, k=1, num_steps=10, seed=j, progress=False).values[0]
            assert inp.calibration[B][j] == pytest.approx(ref, rel=1e-9)


def test_predictions_are_the_noise_models_of_the_measured_inputs(result):
    _, _x, _, res = result
    inp, B = res.inputs, res.batch_sizes.astype(float)
    kw = {"P": inp.P, "B": B, "N": inp.N}
    np.testing.assert_allclose(res.lam1_batch_models["directional"],
                               batch_outlier(inp.lam1, sigma_eps=inp.sigma_eps_top, **kw))
    np.testing.assert_allclose(res.lam1_batch_models["wigner"],
                               batch_outlier(inp.lam1, sigma_eps=inp.sigma_eps, **kw))
    np.testing.assert_allclose(res.lam1_batch_models["wishart"], [
        ggn_prediction(inp.lam1, P=inp.P, B=b, N=inp.N, noise_var=inp.noise_var) for b in B])
    np.testing.assert_array_equal(res.lam1_batch, res.lam1_batch_models[res.noise_model])
    # The spread: the pooled calibration variance × 𝔟, carried to every B as 1/𝔟.
    cal = sorted(inp.calibration)
    c2 = np.mean([np.var(inp.calibration[b], ddof=1) * effective_batch_size(b, inp.N)
                  for b in cal])
    np.testing.assert_allclose(res.lam1_batch_sd[:-1],
                               np.sqrt(c2 / effective_batch_size(B[:-1], inp.N)))
    # Calibration sizes are not fitted: predicting without them changes no λ'₁.
    assert res.lam1_batch_models["directional"][0] > inp.lam1  # noise pushes λ₁ out


def test_momentum_widens_the_sgd_rate_by_one_plus_rho(result):
    model, x, y, res = result
    mom = predict_lr(model, nn.CrossEntropyLoss(), (x, y), SIZES, momentum=0.9, **FAST)
    np.testing.assert_allclose(mom.lr, 1.9 * res.lr, rtol=1e-9)
    assert mom.momentum == 0.9


def test_adam_rates_finite_positive_with_measured_preconditioner(result):
    model, x, y, _ = result
    res = predict_lr(model, nn.CrossEntropyLoss(), (x, y), SIZES, optimizer="adam",
                     delta=1e-8, **FAST)
    assert res.optimizer == "adam"
    assert np.all(np.isfinite(res.lr)) and np.all(res.lr > 0)
    assert res.eta_edge.shape == res.eta_top.shape == (len(SIZES),)
    assert np.all(res.eta_edge > 0) and np.all(res.eta_top > 0)
    # Less gradient noise at larger B: the second-moment scale cannot grow with B.
    assert np.all(np.diff(res.eta_edge) <= 1e-15)
    # η² = m² + s²/𝔟, with m the full gradient.
    loss = nn.CrossEntropyLoss()
    _, g = HessianOperator(model, loss, (x, y)).gradient()
    np.testing.assert_allclose(res.inputs.grad_mean_sq, (g ** 2).numpy(), rtol=1e-9,
                               atol=1e-20)
    assert np.all(res.inputs.grad_var >= 0)
    assert "seconds" in res.to_dict() and res.seconds["gradients"] >= 0


def test_data_forms_and_loss_reductions_agree(result):
    model, x, y, res = result
    loss_sum = nn.CrossEntropyLoss(reduction="sum")
    forms = {
        "dataset": TensorDataset(x, y),
        "loader": DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True),
        "batches": [(x[i:i + 40], y[i:i + 40]) for i in range(0, len(x), 40)],
    }
    for name, data in forms.items():
        other = predict_lr(model, nn.CrossEntropyLoss(), data, SIZES, **FAST)
        assert other.inputs.lam1 == pytest.approx(res.inputs.lam1, rel=1e-9), name
        np.testing.assert_allclose(other.lr, res.lr, rtol=1e-8, err_msg=name)
    summed = predict_lr(model, loss_sum, (x, y), SIZES, **FAST)
    np.testing.assert_allclose(summed.lam1_batch, res.lam1_batch, rtol=1e-8)
    assert summed.inputs.sigma2 == pytest.approx(res.inputs.sigma2, rel=1e-8)


def test_subset_lambda1_is_inverted_through_the_noise_model(result):
    model, x, y, _ = result
    res = predict_lr(model, nn.CrossEntropyLoss(), (x, y), [8, 48, 96], full_samples=48,
                     **FAST)
    inp = res.inputs
    assert inp.full_samples == 48 and len(inp.full_indices) == 48
    # The λ₁ of 48 samples is the model's λ'₁(B = 48) of the inferred full-data λ₁.
    assert res.lam1_batch[1] == pytest.approx(inp.lam1_measured, rel=1e-9)
    assert inp.lam1 < inp.lam1_measured
    assert res.lam1_batch[2] == pytest.approx(inp.lam1, rel=1e-12)


def test_model_state_is_left_as_it_was(result):
    model, x, y, _ = result
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    predict_lr(model, nn.CrossEntropyLoss(), (x, y), [8], optimizer="adam", **FAST)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_result_serialises_prints_and_plots(result):
    *_, res = result
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["inputs"]["calibration"]
    assert d["noise_model"] == "directional" and d["world_size"] == 1
    assert set(d["seconds"]) >= {"lam1", "sigma2", "noise_var", "batch_lam1", "total"}
    assert res.lr_at(32) == res.lr[3]
    with pytest.raises(ValueError, match="B = 5 is not among"):
        res.lr_at(5)
    assert len(res.table().splitlines()) == len(SIZES) + 1
    import matplotlib

    matplotlib.use("Agg")
    fig = res.plot()
    assert len(fig.axes) == 2
    matplotlib.pyplot.close(fig)


def test_the_default_is_exported_and_documented():
    assert rmtlr.predict_lr is predict_lr
    assert NOISE_MODELS[0] == "directional"
    assert predict_lr.__kwdefaults__["noise_model"] == NOISE_MODELS[0]


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"model": "net"}, TypeError, "model must be"),
    ({"loss_fn": 3}, TypeError, "loss_fn must be callable"),
    ({"data": 5}, TypeError, "data must be"),
    ({"data": [(torch.ones(2, 4),)]}, TypeError, "data must be"),
    ({"data": (torch.ones(1, 4, dtype=torch.float64), torch.zeros(1, dtype=torch.long))},
     ValueError, "at least 2 samples"),
    ({"batch_sizes": [8, 97]}, ValueError, r"each of batch_sizes must be an integer in \[1, 96\]"),
    ({"batch_sizes": []}, ValueError, "batch_sizes must be a non-empty"),
    ({"batch_sizes": "8"}, TypeError, "batch_sizes must be"),
    ({"batch_sizes": [2.5]}, ValueError, "each of batch_sizes"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of"),
    ({"noise_model": "gaussian"}, ValueError, "noise_model must be one of"),
    ({"momentum": 1.0}, ValueError, "momentum"),
    ({"momentum": "0.9"}, TypeError, "momentum"),
    ({"optimizer": "adam", "momentum": 0.9}, ValueError, "momentum is SGD's"),
    ({"delta": 0.0}, ValueError, "delta"),
    ({"num_vectors": 1}, ValueError, "num_vectors"),
    ({"batches_per_size": 1}, ValueError, "batches_per_size"),
    ({"variance_samples": 8}, ValueError, "variance_samples"),
    ({"unit_size": 0}, ValueError, "unit_size"),
    ({"calibration_batch_sizes": [1, 8]}, ValueError, "calibration_batch_sizes must be >= 2"),
    ({"full_samples": 200}, ValueError, "full_samples"),
    ({"seed": -1}, ValueError, "seed"),
    ({"distributed": True}, ValueError, "distributed=True needs"),
])
def test_bad_input_names_the_argument(kwargs, exc, match):
    model, x, y = tiny(n=96)
    args = {"model": model, "loss_fn": nn.CrossEntropyLoss(), "data": (x, y),
            "batch_sizes": [8]}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        predict_lr(args.pop("model"), args.pop("loss_fn"), args.pop("data"),
                   args.pop("batch_sizes"), **{**FAST, **args})


def test_hessian_variance_along_given_vectors_is_exact():
    """Algorithm 1 with fixed directions: Σ_u (1/N)‖(A_u − A)v‖² for per-sample A_u = X_u."""
    P, N = 6, 10
    g = torch.Generator().manual_seed(3)
    X = torch.randn(N, P, P, generator=g, dtype=torch.float64)
    X = (X + X.transpose(1, 2)) / 2

    class Quadratic(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.linspace(-1, 1, P, dtype=torch.float64))

        def forward(self, A):
            return 0.5 * torch.einsum("p,npq,q->n", self.w, A, self.w)

    op = HessianOperator(Quadratic(), lambda out, y: out.mean(), (X, torch.zeros(N)))
    V = torch.randn(P, 2, generator=g, dtype=torch.float64)
    res = hessian_variance(op, per_sample=True, vectors=V * torch.tensor([3.0, 0.5]))
    D = X - X.mean(0)
    Q = torch.einsum("nij,njk->ik", D, D) / N
    U = V / V.norm(dim=0)
    exact = [float(U[:, j] @ Q @ U[:, j]) for j in range(2)]
    assert res.sigma2 == pytest.approx(np.mean(exact), rel=1e-12)
    assert res.num_vectors == 2 and res.stderr == pytest.approx(abs(exact[0] - exact[1]) / 2)
    one = hessian_variance(op, vectors=V[:, 0])
    assert one.sigma2 == pytest.approx(exact[0], rel=1e-12) and math.isnan(one.stderr)
    with pytest.raises(ValueError, match="vectors must have length P"):
        hessian_variance(op, vectors=torch.ones(P + 1))
    with pytest.raises(ValueError, match="non-zero columns"):
        hessian_variance(op, vectors=torch.zeros(P))
    with pytest.raises(TypeError, match="vectors must be a torch.Tensor"):
        hessian_variance(op, vectors=[1.0] * P)


def test_main_entry_points_show_an_example():
    from rmtlr.sweeps import lr_range_test

    for fn in (predict_lr, lr_range_test):
        assert ">>> " in fn.__doc__, fn.__name__


def test_chapter_12_plotting_helpers_draw_what_they_are_given(result):
    import matplotlib

    matplotlib.use("Agg")
    from rmtlr import plotting

    *_, res = result
    fig, axes = plotting.subplots(2)
    plotting.batch_lam1_models(axes[0], res, title="tiny")
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "directional (used)" in labels and "wishart" in labels
    B = res.batch_sizes
    plotting.stable_rates(axes[1], B, res.lr, np.r_[res.lr[:-1] * 1.2, np.inf],
                          predicted=res.lr, predicted_range=(res.lr_low, res.lr_high),
                          baselines={"linear": res.lr[0] * B / B[0]})
    lines = {ln.get_label(): ln for ln in axes[1].get_lines()}
    np.testing.assert_allclose(lines["linear"].get_ydata(), res.lr[0] * B / B[0])
    assert axes[1].get_xscale() == "log" and axes[1].get_yscale() == "log"
    matplotlib.pyplot.close(fig)

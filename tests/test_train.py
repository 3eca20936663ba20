"""Training loop: schedule (Eq. 23), convergence, divergence as an outcome, Adam's damping,
the largest-stable-rate search, and bad input."""

import json
import math

import pytest
import torch

from rmtlr import data
from rmtlr.train import TrainConfig, eq23_lr, max_stable_lr, train

DS = data.gaussian_mixture(n=512, seed=0)


def test_eq23_schedule_breakpoints():
    a, r, T = 0.1, 0.01, 300
    assert eq23_lr(0, T, a, r) == a
    assert eq23_lr(150, T, a, r) == a  # constant up to t/T = 0.5
    # Halfway through the linear decay (t/T = 0.7) the rate is α0(1 − (1 − r)/2).
    assert math.isclose(eq23_lr(210, T, a, r), a * (1 - (1 - r) / 2))
    assert math.isclose(eq23_lr(270, T, a, r), r * a)  # reaches r·α0 at t/T = 0.9
    assert eq23_lr(300, T, a, r) == r * a
    # Continuous at both breakpoints (to within one step's slope).
    assert abs(eq23_lr(150.001, T, a, r) - a) < 1e-5
    assert abs(eq23_lr(269.999, T, a, r) - r * a) < 1e-5
    for bad in ({"t": -1, "T": T, "alpha0": a}, {"t": 1, "T": 0, "alpha0": a}, {"t": 1, "T": T, "alpha0": 0}):
        with pytest.raises(ValueError):
            eq23_lr(**bad)


def test_sgd_trains_and_record_is_complete_json():
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=32, epochs=3)
    rec = train(cfg, train_set=DS, val_set=data.gaussian_mixture(n=256, seed=0), device="cpu")
    assert rec["outcome"] == "ok" and rec["diverged_at"] is None
    assert rec["final_loss"] < 0.5 * rec["initial_loss"]
    assert len(rec["curves"]["train_loss"]) == 3 and len(rec["curves"]["val_acc"]) == 3
    assert rec["curves"]["val_acc"][-1] > 0.8  # well-separated mixture, chance is 0.1
    assert rec["steps"] == 3 * (512 // 32) and rec["samples_per_s"] > 0
    assert "offline stand-in" in rec["data"]
    json.dumps(rec, allow_nan=False)


def test_same_seed_same_run_and_eq23_schedule_applied():
    cfg = TrainConfig(lr=0.1, batch_size=64, epochs=4, schedule="eq23", seed=3)
    a, b = train(cfg, train_set=DS, device="cpu"), train(cfg, train_set=DS, device="cpu")
    assert a["step_loss"] == b["step_loss"]
    # Rates logged at the last step of each epoch follow Eq. 23 with T = 4·8 = 32 steps.
    assert a["curves"]["lr"] == pytest.approx([eq23_lr(t, 32, 0.1) for t in (7, 15, 23, 31)])


def test_divergence_is_recorded_not_raised():
    rec = train(TrainConfig(lr=1e4, batch_size=64, epochs=2), train_set=DS, device="cpu")
    assert rec["outcome"] == "diverged"
    assert isinstance(rec["diverged_at"], int) and rec["diverged_at"] < 16
    assert rec["final_loss"] is None
    json.dumps(rec, allow_nan=False)  # non-finite losses are stored as null


def test_adam_with_huge_damping_is_sgd_with_rate_alpha_over_delta():
    # Adam's step is α m̂/(sqrt(v̂) + δ); with β1 = 0 and δ ≫ |g| it is α g/δ (Sec. 11:
    # δ → ∞ turns Adam into SGD). Relative deviation ≈ sqrt(v̂)/δ ≈ |g|/1e4 < 1e-3.
    common = {"batch_size": 64, "steps": 5, "model_kw": {"hidden": 16}}
    adam = TrainConfig(optimizer="adam", lr=1e3, eps=1e4, betas=(0.0, 0.999), **common)
    sgd = TrainConfig(optimizer="sgd", lr=0.1, **common)
    ra, rs = train(adam, train_set=DS, device="cpu"), train(sgd, train_set=DS, device="cpu")
    assert ra["step_loss"] == pytest.approx(rs["step_loss"], rel=1e-3)


def test_max_stable_lr_brackets_a_known_threshold():
    # With a predicate whose threshold is known (0.37), the search must bracket it and
    # resolve it to the grid ratio / 2**bisect_steps.
    cfg = TrainConfig(batch_size=64, steps=1, model_kw={"hidden": 4})
    res = max_stable_lr(cfg, train_set=DS, lr_min=1e-3, lr_max=10.0, grid_points=9,
                        bisect_steps=3, stable=lambda r: r["config"]["lr"] < 0.37)
    lo, hi = res.bracket
    assert lo < 0.37 <= hi and res.lr == lo and not res.censored
    # Grid ratio (1e4)^(1/8) = 10^0.5; three halvings in log space leave 10^(0.5/8).
    assert math.log10(hi / lo) == pytest.approx(0.5 / 8)


def test_max_stable_lr_on_a_real_run_is_stable_and_next_rate_is_not():
    cfg = TrainConfig(batch_size=128, steps=60, model_kw={"hidden": 32})
    res = max_stable_lr(cfg, train_set=DS, lr_min=1e-2, lr_max=1e3, grid_points=6, bisect_steps=2)
    by_lr = {lr: ok for lr, ok, _ in res.trials}
    assert by_lr[res.lr] and not by_lr[res.bracket[1]]


def test_max_stable_lr_reports_censoring_and_no_stable_rate():
    cfg = TrainConfig(batch_size=64, steps=1, model_kw={"hidden": 4})
    res = max_stable_lr(cfg, train_set=DS, lr_min=1e-3, lr_max=1e-2, grid_points=3,
                        stable=lambda r: True)
    assert res.censored and res.bracket[1] == math.inf
    with pytest.raises(ValueError, match="no stable rate"):
        max_stable_lr(cfg, train_set=DS, stable=lambda r: False, grid_points=2)


@pytest.mark.parametrize("kw,match", [({"lr": 0.0}, "lr must be"), ({"lr": -1.0}, "lr must be"),
                                      ({"lr": float("nan")}, "lr must be"),
                                      ({"optimizer": "lbfgs"}, "optimizer must be"),
                                      ({"batch_size": 0}, "batch_size"),
                                      ({"eps": 0.0}, "eps"), ({"momentum": 1.0}, "momentum"),
                                      ({"schedule": "cosine"}, "schedule"),
                                      ({"lr": math.inf}, "lr must be a finite"),
                                      ({"epochs": math.nan}, "epochs must be an integer >= 1"),
                                      ({"epochs": math.inf}, "epochs must be an integer"),
                                      ({"epochs": 2.5}, "epochs must be an integer"),
                                      ({"steps": math.nan}, "steps must be an integer >= 1"),
                                      ({"steps": math.inf}, "steps must be an integer"),
                                      ({"batch_size": math.nan}, "batch_size must be an integer"),
                                      ({"batch_size": 32.7}, "batch_size must be an integer"),
                                      ({"weight_decay": math.nan}, "weight_decay must be a finite"),
                                      ({"weight_decay": math.inf}, "weight_decay must be a finite"),
                                      ({"eps": math.inf}, "eps .* must be a finite"),
                                      ({"probe": math.nan}, "probe must be an integer"),
                                      ({"explode": math.inf}, "explode must be a finite")])
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


def test_batch_larger_than_data_and_unknown_names():
    with pytest.raises(ValueError, match="batch_size must be <= N = 512"):
        train(TrainConfig(batch_size=513), train_set=DS, device="cpu")
    with pytest.raises(ValueError, match="unknown model name"):
        train(TrainConfig(model="transformer"), train_set=DS, device="cpu")
    with pytest.raises(ValueError, match="unknown data set"):
        train(TrainConfig(dataset="mnist"), device="cpu")


def test_device_argument_is_respected():
    rec = train(TrainConfig(steps=2, batch_size=16), train_set=DS, device=torch.device("cpu"))
    assert rec["device"] == "cpu"

"""Training loop: schedule (Eq. 23), convergence, divergence as an outcome, Adam's damping,
augmentation, the largest-stable-rate search, and bad input."""

import dataclasses
import doctest
import json
import math

import numpy as np
import pytest
import torch

import rmtlr.models
import rmtlr.sweeps
import rmtlr.train
from rmtlr import data
from rmtlr.results import read_records, run_key
from rmtlr.sweeps import is_stable, max_stable_lr
from rmtlr.train import TrainConfig, eq23_lr, random_crop_flip, train

DS = data.gaussian_mixture(n=512, seed=0)


def test_eq23_schedule_breakpoints():
    a, r, T = 0.1, 0.01, 300
    assert eq23_lr(0, T, alpha0=a, r=r) == a
    assert eq23_lr(150, T, alpha0=a, r=r) == a  # constant up to t/T = 0.5
    # Halfway through the linear decay (t/T = 0.7) the rate is α0(1 − (1 − r)/2).
    assert math.isclose(eq23_lr(210, T, alpha0=a, r=r), a * (1 - (1 - r) / 2))
    assert math.isclose(eq23_lr(270, T, alpha0=a, r=r), r * a)  # reaches r·α0 at t/T = 0.9
    assert eq23_lr(300, T, alpha0=a, r=r) == r * a
    # Continuous at both breakpoints (to within one step's slope).
    assert abs(eq23_lr(150.001, T, alpha0=a, r=r) - a) < 1e-5
    assert abs(eq23_lr(269.999, T, alpha0=a, r=r) - r * a) < 1e-5
    for bad in ({"t": -1, "T": T, "alpha0": a}, {"t": 1, "T": 0, "alpha0": a}, {"t": 1, "T": T, "alpha0": 0}):
        with pytest.raises(ValueError):
            eq23_lr(**bad)
    with pytest.raises(TypeError):
        eq23_lr(0, T, a, r)  # α_0 and r are keyword-only: two small numbers are easy to swap


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
    assert a["curves"]["lr"] == pytest.approx([eq23_lr(t, 32, alpha0=0.1) for t in (7, 15, 23, 31)])


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


def test_whole_floats_and_numpy_integers_are_stored_as_ints_and_train():
    # batch_size=16.0 used to pass the check and then crash inside train (range() of a float).
    cfg = TrainConfig(batch_size=16.0, epochs=np.int64(1), steps=2.0, probe=np.float64(64),
                      seed=np.int32(3), lr=np.float32(0.05))
    assert (cfg.batch_size, cfg.epochs, cfg.steps, cfg.probe, cfg.seed) == (16, 1, 2, 64, 3)
    assert all(type(v) is int for v in (cfg.batch_size, cfg.epochs, cfg.steps, cfg.probe,
                                         cfg.seed)) and type(cfg.lr) is float
    assert cfg == TrainConfig(batch_size=16, steps=2, probe=64, seed=3, lr=float(np.float32(0.05)))
    assert run_key(cfg.to_dict()) == run_key(dataclasses.replace(cfg, batch_size=16).to_dict())
    assert train(cfg, train_set=DS, device="cpu")["steps"] == 2


@pytest.mark.parametrize("kw,match", [
    ({"probe": 10.5}, "probe must be an integer"),
    ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*63 - 1\]"),
    ({"seed": 0.5}, "seed must be an integer"),
    ({"seed": 2**63}, "seed must be an integer"),
    ({"betas": (1.5, 0.999)}, r"betas\[0\] \(β1\) must be a finite number in \[0, 1\)"),
    ({"betas": (0.9,)}, "betas must be two numbers"),
    ({"model": ""}, "model must be a non-empty string"),
    ({"model_kw": {"hidden": float("nan")}}, "model_kw must hold only JSON values"),
])
def test_bad_numbers_seeds_and_betas_are_rejected_when_the_config_is_made(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


@pytest.mark.parametrize("kw,match", [({"augment": 1}, "augment must be True or False"),
                                      ({"model_kw": [1]}, "model_kw must be a dict"),
                                      ({"batch_size": "16"}, "batch_size must be an integer"),
                                      ({"batch_size": True}, "batch_size must be an integer"),
                                      ({"epochs": "2"}, "epochs must be an integer"),
                                      ({"seed": []}, "seed must be an integer"),
                                      ({"seed": None}, "seed must be an integer"),
                                      ({"seed": np.random.default_rng(0)},
                                       "seed must be an integer"),
                                      ({"seed": torch.Generator()}, "seed must be an integer"),
                                      ({"betas": (0.9, "x")}, r"betas\[1\] \(β2\)"),
                                      ({"betas": 0.9}, "betas must be two numbers"),
                                      ({"model": None}, "model must be a non-empty string"),
                                      ({"lr": "0.1"}, "lr must be a real number")])
def test_wrong_types_are_a_type_error(kw, match):
    with pytest.raises(TypeError, match=match):
        TrainConfig(**kw)


def test_config_is_keyword_only_and_betas_a_tuple():
    with pytest.raises(TypeError):
        TrainConfig("mlp", "gaussian_mixture")  # fields in the wrong order would pass silently
    assert TrainConfig(betas=[0.5, 0.9]).betas == (0.5, 0.9)
    assert TrainConfig(betas=[0.5, 0.9]).to_dict()["betas"] == [0.5, 0.9]


@pytest.mark.parametrize("device", ["bogus", "meta", "cuda:99", "cpu:x"])
def test_devices_that_do_not_exist_are_a_value_error_naming_the_argument(device):
    with pytest.raises(ValueError, match=rf"device '{device}' is not usable here"):
        train(TrainConfig(steps=1, batch_size=16), train_set=DS, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a host without CUDA")
def test_cuda_without_cuda_is_a_value_error():
    with pytest.raises(ValueError, match="device 'cuda' is not usable here"):
        train(TrainConfig(steps=1, batch_size=16), train_set=DS, device="cuda")
    with pytest.raises(TypeError, match="device must be a string"):
        train(TrainConfig(steps=1, batch_size=16), train_set=DS, device=0)


def test_plain_tensor_dataset_without_num_classes_infers_them():
    x, y = DS.tensors
    plain = torch.utils.data.TensorDataset(x, y)
    assert not hasattr(plain, "num_classes")
    rec = train(TrainConfig(steps=3, batch_size=16), train_set=plain, device="cpu")
    assert rec["data"] == "TensorDataset" and rec["steps"] == 3
    assert rmtlr.train.num_classes_of(plain) == int(y.max()) + 1 == 10
    with pytest.raises(ValueError, match="labels must be a 1-D integer tensor"):
        rmtlr.train.num_classes_of(torch.utils.data.TensorDataset(x, y.float()))
    with pytest.raises(ValueError, match="has no num_classes attribute"):
        rmtlr.train.num_classes_of([(x[0], 1)])


def test_integer_inputs_are_a_clear_error():
    ints = torch.utils.data.TensorDataset((DS.tensors[0] * 10).long(), DS.tensors[1])
    with pytest.raises(ValueError, match="train_set inputs are torch.int64; models take floating"):
        train(TrainConfig(steps=1, batch_size=16), train_set=ints, device="cpu")


def test_random_crop_flip_is_a_crop_of_the_padded_image_possibly_mirrored():
    x = torch.randn(64, 2, 6, 5)
    out = random_crop_flip(x, generator=torch.Generator().manual_seed(0), padding=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    def crop(i, dy, dx, flip):
        c = padded[i, :, dy:dy + 6, dx:dx + 5]
        return c.flip(-1) if flip else c

    flips, seen = 0, set()
    for i in range(len(x)):
        found = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (0, 1)
                 if torch.equal(out[i], crop(i, dy, dx, f))]
        assert found, f"image {i} is not a (mirrored) crop of its padded original"
        flips += found[0][2]
        seen.add(found[0][:2])
    assert 16 <= flips <= 48  # a fair coin over 64 images (p ≈ 1e-4 to fall outside)
    assert len(seen) >= 12  # offsets cover the 5×5 grid, not one fixed crop
    assert torch.equal(random_crop_flip(x, generator=torch.Generator().manual_seed(0),
                                        padding=2), out)  # seeded: reproducible
    mirrored = random_crop_flip(x, generator=torch.Generator().manual_seed(1), padding=0)
    assert all(torch.equal(m, xi) or torch.equal(m, xi.flip(-1)) for m, xi in zip(mirrored, x))
    with pytest.raises(ValueError, match="batch of images"):
        random_crop_flip(x[0], generator=torch.Generator())


def test_augmentation_is_seeded_changes_the_batches_and_is_part_of_the_run_key():
    imgs = data.synthetic_images(n=64, num_classes=4, seed=0)
    cfg = TrainConfig(model="small_cnn", model_kw={"width": 4}, batch_size=16, steps=4, lr=0.05,
                      augment=True)
    a, b = (train(cfg, train_set=imgs, device="cpu") for _ in range(2))
    plain = train(dataclasses.replace(cfg, augment=False), train_set=imgs, device="cpu")
    other = train(dataclasses.replace(cfg, seed=1), train_set=imgs, device="cpu")
    assert a["step_loss"] == b["step_loss"]  # same seed, same augmented batches
    assert a["step_loss"][0] != plain["step_loss"][0]  # same weights and batch, other pixels
    assert a["initial_loss"] == plain["initial_loss"]  # the probe is never augmented
    assert other["step_loss"] != a["step_loss"]
    assert run_key(cfg.to_dict()) != run_key(dataclasses.replace(cfg, augment=False).to_dict())
    with pytest.raises(ValueError, match=r"augment=True needs image inputs \(C, H, W\)"):
        train(TrainConfig(augment=True, steps=1, batch_size=16), train_set=DS, device="cpu")


@pytest.mark.parametrize("kw,match", [({"grid_points": 2.5}, "grid_points must be an integer"),
                                      ({"grid_points": 1}, "grid_points must be an integer >= 2"),
                                      ({"bisect_steps": -1}, "bisect_steps must be an integer"),
                                      ({"lr_min": 1.0, "lr_max": 0.5}, "lr_min"),
                                      ({"lr_max": math.inf}, "lr_max must be a finite"),
                                      ({"lr_min": 0.0}, "lr_min")])
def test_max_stable_lr_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        max_stable_lr(TrainConfig(steps=1, batch_size=16), train_set=DS, device="cpu", **kw)


def test_max_stable_lr_non_numbers_are_a_type_error():
    with pytest.raises(TypeError, match="bisect_steps must be an integer >= 0, got '3'"):
        max_stable_lr(TrainConfig(steps=1, batch_size=16), train_set=DS, device="cpu",
                      bisect_steps="3")


def test_max_stable_lr_with_a_results_file_resumes_without_training(tmp_path, monkeypatch):
    cfg = TrainConfig(batch_size=64, steps=5, model_kw={"hidden": 8})
    kw = {"train_set": DS, "lr_min": 1e-2, "lr_max": 1e2, "grid_points": 5, "bisect_steps": 1,
          "device": "cpu", "results": tmp_path / "trials.jsonl"}
    first = max_stable_lr(cfg, **kw)

    def boom(*a, **k):
        raise AssertionError("trained a trial that is stored")

    monkeypatch.setattr(rmtlr.sweeps, "train", boom)
    again = max_stable_lr(cfg, **kw)
    assert again == first and not first.censored
    assert first.resolution == pytest.approx(10 ** 0.5)  # grid ratio 10, one halving
    assert len(read_records(tmp_path / "trials.jsonl")) == len(first.trials)


def test_is_stable_handles_missing_losses():
    assert is_stable({"outcome": "ok", "initial_loss": 2.0, "final_loss": 1.0})
    assert not is_stable({"outcome": "ok", "initial_loss": None, "final_loss": 1.0})
    assert not is_stable({"outcome": "diverged", "initial_loss": 2.0, "final_loss": None})


def test_docstring_examples_run():
    for module in (rmtlr.train, rmtlr.sweeps):
        assert doctest.testmod(module, raise_on_error=False).failed == 0


# --- callbacks, iterate averaging, checkpoints ------------------------------------------------

class Recorder:
    """A callback that logs its calls and sets lr = 0.01·(epoch + 1) from epoch 1 on."""

    def __init__(self):
        self.calls = []

    def on_epoch_end(self, epoch, model, optimizer):
        self.calls.append((epoch, model.training, float(optimizer.param_groups[0]["lr"])))
        if epoch >= 1:
            for g in optimizer.param_groups:
                g["lr"] = 0.01 * (epoch + 1)
        return {"epoch": epoch} if epoch % 2 == 0 else None


def test_callback_is_called_before_training_and_after_every_epoch_and_owns_a_constant_lr():
    cb = Recorder()
    rec = train(TrainConfig(lr=0.05, batch_size=64, epochs=3), train_set=DS, device="cpu",
                val_set=DS, callback=cb)
    assert [c[0] for c in cb.calls] == [0, 1, 2, 3] and all(c[1] for c in cb.calls)
    # Epoch 1 runs at cfg.lr; then at what the callback set after the epoch before.
    assert rec["curves"]["lr"] == pytest.approx([0.05, 0.02, 0.03])
    assert rec["callback"] == [{"epoch": 0}, {"epoch": 2}]
    assert 0 <= rec["callback_seconds"] <= rec["wall_time_s"] and rec["cpu_time_s"] > 0
    assert "averaged" not in rec
    # Under Eq. 23 the schedule sets lr before every step, over the callback's.
    rec = train(TrainConfig(lr=0.05, batch_size=64, epochs=2, schedule="eq23"), train_set=DS,
                device="cpu", callback=Recorder())
    assert rec["curves"]["lr"] == pytest.approx([eq23_lr(t, 16, alpha0=0.05) for t in (7, 15)])


def test_without_a_callback_the_record_is_unchanged_and_a_constant_lr_stays():
    rec = train(TrainConfig(lr=0.05, batch_size=64, epochs=2), train_set=DS, device="cpu")
    assert rec["curves"]["lr"] == [0.05, 0.05]
    assert not {"callback", "callback_seconds", "averaged", "resumed_at_epoch"} & set(rec)


class Snapshots(rmtlr.train.IterateAveraging):
    """Iterate averaging that also keeps a copy of the weights after every epoch."""

    def __init__(self, start):
        super().__init__(start)
        self.weights = {}

    def on_epoch_end(self, epoch, model, optimizer):
        self.weights[epoch] = [p.detach().clone() for p in model.parameters()]
        return super().on_epoch_end(epoch, model, optimizer)


def test_iterate_averaging_is_the_mean_of_the_last_epochs_and_is_evaluated():
    imgs = data.synthetic_images(n=96, num_classes=4, seed=0)
    val = data.synthetic_images(n=64, num_classes=4, seed=1)
    cb = Snapshots(start=2)  # 0-based: the ends of epochs 3 and 4
    cfg = TrainConfig(model="small_cnn", model_kw={"width": 4}, batch_size=32, epochs=4,
                      lr=0.05, momentum=0.9)
    rec = train(cfg, train_set=imgs, val_set=val, device="cpu", callback=cb)
    avg = cb.averaged_model
    assert int(avg.n_averaged) == rec["averaged"]["epochs_averaged"] == 2
    for p, a, b in zip(avg.module.parameters(), cb.weights[3], cb.weights[4]):
        torch.testing.assert_close(p, (a + b) / 2)
    # The reported accuracy is that of the average (its BatchNorm statistics recomputed).
    assert rec["averaged"]["val_acc"] == rmtlr.train.evaluate(avg, val)[1]
    with pytest.raises(ValueError, match="start must be an integer >= 0"):
        rmtlr.train.IterateAveraging(-1)
    assert rmtlr.train.IterateAveraging(3).config() == {"iterate_averaging": {"start": 3}}


class Interrupt(Exception):
    pass


class KilledAt(Snapshots):
    """Raises (a stand-in for a kill) at the end of epoch ``at``, once."""

    def __init__(self, start, at):
        super().__init__(start)
        self.at = at

    def on_epoch_end(self, epoch, model, optimizer):
        if epoch == self.at:
            self.at = None
            raise Interrupt
        return super().on_epoch_end(epoch, model, optimizer)


def test_a_run_resumed_from_its_checkpoint_equals_the_uninterrupted_run(tmp_path):
    imgs = data.synthetic_images(n=96, num_classes=4, seed=0)
    val = data.synthetic_images(n=32, num_classes=4, seed=1)
    # Augmentation, shuffling and momentum: every random stream and buffer must be restored.
    cfg = TrainConfig(model="small_cnn", model_kw={"width": 4}, batch_size=32, epochs=4,
                      lr=0.05, momentum=0.9, augment=True, seed=5)

    def model():
        torch.manual_seed(cfg.seed)
        return build_small()

    def build_small():
        return rmtlr.models.build("small_cnn", 4, width=4)

    m_ref = model()
    ref = train(cfg, train_set=imgs, val_set=val, model=m_ref, device="cpu",
                callback=KilledAt(1, at=None))
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        train(cfg, train_set=imgs, val_set=val, model=model(), device="cpu",
              callback=KilledAt(1, at=3), checkpoint=ckpt)
    assert ckpt.exists()
    torch.manual_seed(123)  # the global generator must come from the checkpoint, not here
    m_new = model()
    cb = KilledAt(1, at=None)
    rec = train(cfg, train_set=imgs, val_set=val, model=m_new, device="cpu", callback=cb,
                checkpoint=ckpt)
    assert rec["resumed_at_epoch"] == 2 and not ckpt.exists()
    assert rec["step_loss"] == ref["step_loss"] and rec["curves"] == ref["curves"]
    assert rec["steps"] == ref["steps"] and rec["averaged"] == ref["averaged"]
    for a, b in zip(m_new.state_dict().values(), m_ref.state_dict().values()):
        assert torch.equal(a, b)
    assert rec["wall_time_s"] > 0 and set(cb.weights) == {3, 4}  # epochs 1-2 not rerun


def test_a_checkpoint_of_another_run_or_a_callback_without_state_is_refused(tmp_path):
    cfg = TrainConfig(lr=0.05, batch_size=64, epochs=3)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        train(cfg, train_set=DS, device="cpu", callback=KilledAt(0, at=2), checkpoint=ckpt)
    with pytest.raises(ValueError, match="belongs to another run"):
        train(dataclasses.replace(cfg, lr=0.1), train_set=DS, device="cpu",
              callback=KilledAt(0, at=None), checkpoint=ckpt)
    with pytest.raises(TypeError, match="needs a callback with state_dict"):
        train(cfg, train_set=DS, device="cpu", callback=Recorder(), checkpoint=ckpt)
    with pytest.raises(TypeError, match="callback must have a method on_epoch_end"):
        train(cfg, train_set=DS, device="cpu", callback=object())


def test_train_stored_trains_once_resumes_a_killed_run_and_reads_back(tmp_path, monkeypatch):
    cfg = TrainConfig(lr=0.05, batch_size=64, epochs=3, momentum=0.5)
    val, test = data.gaussian_mixture(n=128, seed=1), data.gaussian_mixture(n=128, seed=2)
    store = tmp_path / "runs.jsonl"
    kw = {"train_set": DS, "val_set": val, "test_set": test, "device": "cpu"}
    with pytest.raises(Interrupt):
        rmtlr.train.train_stored(cfg, store, callback=KilledAt(1, at=2), **kw)
    assert len(list((tmp_path / "runs.checkpoints").iterdir())) == 1
    rec = rmtlr.train.train_stored(cfg, store, callback=KilledAt(1, at=None), profile="quick",
                                   **kw)
    assert rec["resumed_at_epoch"] == 1 and rec["profile"] == "quick"
    assert not list((tmp_path / "runs.checkpoints").iterdir())
    torch.manual_seed(cfg.seed)
    model = rmtlr.models.build(cfg.model, 10)
    fresh = train(cfg, train_set=DS, val_set=val, model=model, device="cpu",
                  callback=KilledAt(1, at=None))
    assert rec["step_loss"] == fresh["step_loss"]
    assert rec["test"]["final"] == list(rmtlr.train.evaluate(model, test))
    assert 0 <= rec["test"]["averaged"][1] <= 1 and rec["averaged"]["epochs_averaged"] == 2

    def boom(*a, **k):
        raise AssertionError("trained a run that is stored")

    monkeypatch.setattr(rmtlr.train, "train", boom)
    again = rmtlr.train.train_stored(cfg, store, callback=KilledAt(1, at=None), **kw)
    assert again == rec and len(read_records(store)) == 1
    with pytest.raises(TypeError, match=r"callback must have config\(\)"):
        rmtlr.train.train_stored(cfg, store, callback=Recorder(), **kw)

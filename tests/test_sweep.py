"""Batch-size sweeps: one JSONL line per run, skipping, torn lines, resuming after a kill,
two sweeps into one file, and checks that fail before any training."""

import dataclasses
import doctest
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import rmtlr.sweeps
from rmtlr import data
from rmtlr.results import read_records as read_results
from rmtlr.sweeps import sweep
from rmtlr.train import TrainConfig, train

DS = data.gaussian_mixture(n=512, seed=0)
BASE = TrainConfig(steps=5, model_kw={"hidden": 8})


def test_sweep_writes_one_line_per_run_with_metadata(tmp_path):
    out = tmp_path / "runs.jsonl"
    recs = sweep([16, 64], "linear:0.05:16", out, BASE, seeds=(0, 1), train_set=DS,
                 device="cpu", profile="quick")
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and len(recs) == 4
    first = json.loads(lines[0])
    assert first["config"]["batch_size"] == 16 and first["config"]["lr"] == pytest.approx(0.05)
    assert json.loads(lines[2])["config"]["lr"] == pytest.approx(0.2)  # linear rule: 0.05·64/16
    for key in ("profile", "device", "versions", "wall_time_s", "curves", "outcome", "data"):
        assert key in first
    assert first["profile"] == "quick" and first["versions"]["torch"]


def test_rerun_skips_finished_runs(tmp_path):
    out = tmp_path / "runs.jsonl"
    sweep([16, 32], "sqrt:0.01:16", out, BASE, train_set=DS, device="cpu")
    before = out.read_bytes()
    again = sweep([16, 32, 64], "sqrt:0.01:16", out, BASE, train_set=DS, device="cpu")
    assert out.read_bytes().startswith(before)  # old lines untouched
    assert len(read_results(out)) == 3 and len(again) == 3


def test_torn_last_line_is_ignored_and_overwritten(tmp_path):
    out = tmp_path / "runs.jsonl"
    sweep([16], "const:0.01", out, BASE, train_set=DS, device="cpu")
    with open(out, "a") as f:
        f.write('{"config": {"batch_size": 32, "lr"')  # a write cut short by a kill
    assert len(read_results(out)) == 1
    sweep([16, 32], "const:0.01", out, BASE, train_set=DS, device="cpu")
    assert [r["config"]["batch_size"] for r in read_results(out)] == [16, 32]
    assert all(json.loads(line) for line in out.read_text().splitlines())


def _no_training(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("trained before the input was checked")

    monkeypatch.setattr(rmtlr.sweeps, "train", boom)


@pytest.mark.parametrize("content,match", [('{"ok": 1}\nnot json\n', "line 2: not valid JSON"),
                                           ("[1, 2]\n", "line 1: a JSON list, not a record"),
                                           ("null\n", "line 1: a JSON NoneType, not a record")])
def test_corrupt_results_file_fails_before_training(tmp_path, monkeypatch, content, match):
    out = tmp_path / "runs.jsonl"
    out.write_text(content)
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match=match):
        sweep([16], "const:0.01", out, BASE, train_set=DS, device="cpu")


def test_records_of_other_kinds_in_the_file_are_left_alone(tmp_path):
    out = tmp_path / "runs.jsonl"
    out.write_text('{}\n{"note": "spectra live here too"}\n')
    recs = sweep([16], "const:0.01", out, BASE, train_set=DS, device="cpu")
    assert len(recs) == 1 and len(read_results(out)) == 3


def test_unwritable_results_path_fails_before_training(tmp_path, monkeypatch):
    _no_training(monkeypatch)
    (tmp_path / "afile").write_text("x")
    for bad, match in ((tmp_path, "is a directory"),
                       (tmp_path / "afile" / "runs.jsonl", "cannot create its folder"),
                       ("/proc/rmtlr-sweep.jsonl", "is not writable")):
        with pytest.raises(ValueError, match=match):
            sweep([16], "const:0.01", bad, BASE, train_set=DS, device="cpu")


def test_a_rule_giving_a_bad_rate_anywhere_on_the_grid_fails_before_training(tmp_path,
                                                                             monkeypatch):
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match="lr_rule gives lr = inf at B = 64"):
        sweep([16, 64], lambda B: 0.1 if B < 64 else float("inf"), tmp_path / "r.jsonl", BASE,
              train_set=DS, device="cpu")
    assert not (tmp_path / "r.jsonl").exists() or read_results(tmp_path / "r.jsonl") == []


@pytest.mark.parametrize("seeds,err", [([-1], ValueError), ([0.5], ValueError), ([], ValueError),
                                       (3, TypeError), ("01", TypeError),
                                       ([np.random.default_rng(0)], TypeError),
                                       ([torch.Generator()], TypeError)])
def test_bad_seeds(tmp_path, monkeypatch, seeds, err):
    _no_training(monkeypatch)
    with pytest.raises(err, match="seed"):
        sweep([16], "const:0.01", tmp_path / "r.jsonl", BASE, seeds=seeds, train_set=DS,
              device="cpu")


def test_nan_in_the_data_is_stored_as_null_not_a_crash(tmp_path):
    x, y = DS.tensors
    x = x.clone()
    x[0, 0] = float("nan")  # the first probe sample: the initial loss is NaN
    bad = data.LabelledTensors(x, y, "Gaussian mixture, one bad pixel", 10)
    out = tmp_path / "r.jsonl"
    rec = sweep([16], "const:0.01", out, BASE, train_set=bad, device="cpu")[0]
    assert rec["initial_loss"] is None and "initial_loss" in rec["nonfinite"]
    assert read_results(out) == [rec] and "NaN" not in out.read_text()


def test_profile_chooses_the_device(tmp_path, monkeypatch):
    # Simulate a host whose default device cannot train: the quick profile must not use it.
    monkeypatch.setattr(rmtlr.profiles, "default_device", lambda: torch.device("meta"))
    monkeypatch.setenv("RMTLR_PROFILE", "full")
    rec = sweep([16], "const:0.01", tmp_path / "r.jsonl", BASE, train_set=DS,
                profile="quick")[0]
    assert rec["device"] == "cpu" and rec["profile"] == "quick"
    with pytest.raises(ValueError, match="the full profile's device 'meta' is not usable"):
        sweep([16], "const:0.01", tmp_path / "r.jsonl", BASE, train_set=DS, profile="full")


def test_bad_sweep_input(tmp_path):
    with pytest.raises(ValueError, match="batch sizes must be <= N = 512"):
        sweep([1024], "const:0.1", tmp_path / "r.jsonl", BASE, train_set=DS)
    with pytest.raises(ValueError, match="lr rule must be"):
        sweep([16], "cosine:0.1", tmp_path / "r.jsonl", BASE, train_set=DS)
    with pytest.raises(ValueError, match="alpha0"):
        sweep([16], "linear:-0.1:128", tmp_path / "r.jsonl", BASE, train_set=DS)
    with pytest.raises(ValueError, match="batch_sizes"):
        sweep([], "const:0.1", tmp_path / "r.jsonl", BASE, train_set=DS)


def test_run_with_nonfinite_validation_loss_is_stored_as_diverged(tmp_path):
    # lr 1e20 at B = N: the single step of epoch 1 has a finite loss but leaves NaN weights,
    # so only the validation loss sees it.
    out = tmp_path / "r.jsonl"
    val = data.gaussian_mixture(n=64, seed=0)
    base = TrainConfig(epochs=2, model_kw={"hidden": 8})
    rule = lambda B: 0.05 if B < 512 else 1e20
    recs = sweep([64, 512, 128], rule, out, base, train_set=DS, val_set=val, device="cpu")
    assert [r["config"]["batch_size"] for r in read_results(out)] == [64, 512, 128]
    bad = recs[1]
    assert bad["outcome"] == "diverged" and bad["final_loss"] is None
    assert bad["curves"]["val_loss"] == [None]
    assert "NaN" not in out.read_text() and "Infinity" not in out.read_text()
    before = out.read_bytes()
    sweep([64, 512, 128], rule, out, base, train_set=DS, val_set=val, device="cpu")
    assert out.read_bytes() == before  # resume reuses all three, including the diverged one


def test_seeds_may_be_a_generator_and_batch_sizes_must_be_integral(tmp_path):
    out = tmp_path / "r.jsonl"
    recs = sweep([16, 32], "const:0.01", out, BASE, seeds=(s for s in (0, 1)), train_set=DS,
                 device="cpu")
    assert [(r["config"]["batch_size"], r["config"]["seed"]) for r in recs] == [
        (16, 0), (16, 1), (32, 0), (32, 1)]
    assert sweep([16.0], "const:0.01", out, BASE, train_set=DS)[0] == recs[0]
    for bad in ([16, 32.7], [16, float("nan")]):
        with pytest.raises(ValueError, match="each of batch_sizes must be an integer >= 1"):
            sweep(bad, "const:0.01", out, BASE, train_set=DS)
    for bad in ([16, "32"], [16, True]):
        with pytest.raises(TypeError, match="each of batch_sizes must be an integer >= 1"):
            sweep(bad, "const:0.01", out, BASE, train_set=DS)
    with pytest.raises(TypeError, match="batch_sizes must be a non-empty list of integers"):
        sweep(16, "const:0.01", out, BASE, train_set=DS)


def test_rerun_on_other_data_does_not_reuse_results(tmp_path):
    out = tmp_path / "r.jsonl"
    first = sweep([16], "const:0.01", out, BASE, train_set=DS, device="cpu")[0]
    other = data.gaussian_mixture(n=512, seed=1)
    second = sweep([16], "const:0.01", out, BASE, train_set=other, device="cpu")[0]
    assert second["data"] == other.description != first["data"]
    val = data.gaussian_mixture(n=64, seed=0)
    third = sweep([16], "const:0.01", out, BASE, train_set=DS, val_set=val, device="cpu")[0]
    assert third["curves"]["val_loss"]  # a validated run, not the unvalidated first one
    assert len(read_results(out)) == 3
    assert sweep([16], "const:0.01", out, BASE, train_set=other, device="cpu")[0] == second


SCRIPT = textwrap.dedent("""
    import sys
    from rmtlr import data
    from rmtlr.sweeps import sweep
    from rmtlr.train import TrainConfig
    ds = data.gaussian_mixture(n=512, seed=0)
    base = TrainConfig(steps=150, model_kw={"hidden": 32})
    sweep([8, 16, 32, 64, 128, 256], "linear:0.01:8", sys.argv[1], base, seeds=(0, 1),
          train_set=ds, device="cpu", profile="quick")
""")


def test_sweep_killed_by_a_signal_resumes_with_every_run_once(tmp_path):
    out = tmp_path / "runs.jsonl"
    script = tmp_path / "run_sweep.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the hardest interruption
    proc.wait()
    n_before = len(read_results(out))
    assert 3 <= n_before < 12, "the kill must land mid-sweep for this test to mean anything"
    with open(out, "a") as f:
        f.write('{"config": {"torn": tr')  # as if the kill had landed inside a write
    done = subprocess.run([sys.executable, str(script), str(out)], env=env, timeout=300, check=False)
    assert done.returncode == 0
    recs = read_results(out)
    keys = [r["key"] for r in recs]
    assert len(recs) == 12 and len(set(keys)) == 12
    assert sorted((r["config"]["batch_size"], r["config"]["seed"]) for r in recs) == sorted(
        (b, s) for b in (8, 16, 32, 64, 128, 256) for s in (0, 1))


CONCURRENT = textwrap.dedent("""
    import json, os, sys, time
    import rmtlr.sweeps
    from rmtlr import data
    from rmtlr.sweeps import sweep
    from rmtlr.train import TrainConfig

    results, log, me, other = sys.argv[1:5]
    trained = []
    real_train = rmtlr.sweeps.train

    def logged(cfg, **kw):  # which runs this process trained
        trained.append([cfg.batch_size, cfg.seed])
        return real_train(cfg, **kw)

    rmtlr.sweeps.train = logged
    ds = data.gaussian_mixture(n=512, seed=0)
    base = TrainConfig(steps=100, model_kw={"hidden": 32})
    open(me, "w").close()
    while not os.path.exists(other):  # both processes start the sweep together
        time.sleep(0.005)
    recs = sweep([8, 16, 32, 64], "linear:0.01:8", results, base, seeds=(0, 1), train_set=ds,
                 device="cpu")
    with open(log, "w") as f:
        json.dump({"trained": trained, "returned": [r["key"] for r in recs]}, f)
""")


def test_two_concurrent_sweeps_into_one_file_train_each_run_once(tmp_path):
    out = tmp_path / "runs.jsonl"
    script = tmp_path / "two_sweeps.py"
    script.write_text(CONCURRENT)
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1",
               PYTHONPATH=os.pathsep.join(sys.path))
    ready = [str(tmp_path / f"ready{i}") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, str(script), str(out), str(tmp_path / f"log{i}"),
                               ready[i], ready[1 - i]], env=env) for i in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    logs = [json.loads((tmp_path / f"log{i}").read_text()) for i in range(2)]
    trained = [tuple(r) for log in logs for r in log["trained"]]
    assert sorted(trained) == sorted((b, s) for b in (8, 16, 32, 64) for s in (0, 1))
    assert all(log["trained"] for log in logs), "both sweeps must have shared the work"
    recs = read_results(out)
    assert len(recs) == 8 and len({r["key"] for r in recs}) == 8
    assert logs[0]["returned"] == logs[1]["returned"] == [r["key"] for r in sorted(
        recs, key=lambda r: (r["config"]["batch_size"], r["config"]["seed"]))]


def test_docstring_examples_run():
    assert doctest.testmod(rmtlr.sweeps, raise_on_error=False).failed == 0


# --- budgets, thin records, the stability criterion (chapter 9) ---

def test_thin_step_loss_averages_windows_and_keeps_divergence():
    from rmtlr.sweeps import thin_step_loss
    losses = [float(i) for i in range(10)]
    means, at = thin_step_loss(losses, 3)
    # np.array_split(10, 3): windows of 4, 3, 3 -> means of 0..3, 4..6, 7..9
    assert means == [1.5, 5.0, 8.0] and at == [4, 7, 10]
    assert thin_step_loss(losses, 50) == (losses, list(range(1, 11)))  # short: kept whole
    assert thin_step_loss([2.0, None, 1.0], 2) == ([None, 1.0], [2, 3])
    assert thin_step_loss([], 5) == ([], [])
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="points"):
            thin_step_loss(losses, bad)
    with pytest.raises(TypeError, match="points"):
        thin_step_loss(losses, None)


def test_updates_config_makes_exactly_u_steps_and_shares_whole_epochs():
    from rmtlr.sweeps import num_updates, updates_config
    base = TrainConfig(epochs=3, model_kw={"hidden": 8})
    N = len(DS)  # 512
    same = updates_config(base, 64, N=N, updates=24)  # 8 steps an epoch: 3 whole epochs
    assert same == dataclasses.replace(base, batch_size=64)
    odd = updates_config(base, 48, N=N, updates=24)   # 10 steps an epoch
    assert (odd.steps, odd.epochs) == (24, 3)
    for cfg in (same, odd, updates_config(base, 512, N=N, updates=5)):
        assert num_updates(cfg, N) == 24 or cfg.batch_size == 512
        rec = train(cfg, train_set=DS, device="cpu", progress=False)
        assert rec["steps"] == num_updates(cfg, N)
    with pytest.raises(ValueError, match="updates"):
        updates_config(base, 64, N=N, updates=0)
    with pytest.raises(ValueError, match="N"):
        updates_config(base, 1024, N=N, updates=10)
    with pytest.raises(TypeError, match="TrainConfig"):
        updates_config({"epochs": 1}, 64, N=N, updates=10)


def test_equal_updates_sweep_gives_every_b_the_same_steps_and_reuses_shared_runs(tmp_path):
    out = tmp_path / "r.jsonl"
    base = TrainConfig(epochs=2, model_kw={"hidden": 8})
    epochs = sweep([32, 64], "const:0.05", out, base, train_set=DS, device="cpu")
    assert [r["steps"] for r in epochs] == [32, 16]  # equal epochs: 2·512/B
    upd = sweep([16, 32, 64, 128], "const:0.05", out, base, train_set=DS, device="cpu",
                updates=32)
    assert [r["steps"] for r in upd] == [32, 32, 32, 32]
    # B = 32: 32 updates are the 2 epochs of the equal-epochs sweep, the same stored run
    assert upd[1] == epochs[0]
    assert len(read_results(out)) == 5
    with pytest.raises(ValueError, match="updates"):
        sweep([16], "const:0.05", out, base, train_set=DS, device="cpu", updates=-3)


def test_step_loss_points_keeps_records_small_without_changing_the_run(tmp_path):
    base = TrainConfig(epochs=4, model_kw={"hidden": 8})
    full = sweep([16], "const:0.05", tmp_path / "a.jsonl", base, train_set=DS, device="cpu")[0]
    thin = sweep([16], "const:0.05", tmp_path / "b.jsonl", base, train_set=DS, device="cpu",
                 step_loss_points=8)[0]
    assert len(full["step_loss"]) == 128 and len(thin["step_loss"]) == 8
    assert thin["step_loss_at"][-1] == 128
    assert thin["step_loss"][0] == pytest.approx(np.mean(full["step_loss"][:16]))
    assert thin["key"] == full["key"] and thin["curves"] == full["curves"]
    # the thinned file resumes: a rerun (thinned or not) trains nothing
    again = sweep([16], "const:0.05", tmp_path / "b.jsonl", base, train_set=DS, device="cpu")
    assert again[0] == thin


def test_is_stable_with_min_val_acc_is_the_chapters_criterion():
    from rmtlr.sweeps import is_stable
    ok = {"outcome": "ok", "initial_loss": 2.3, "final_loss": 1.5,
          "curves": {"val_acc": [0.20, 0.35]}}
    at_chance = {**ok, "curves": {"val_acc": [0.10, 0.101]}}
    diverged = {**ok, "outcome": "diverged", "final_loss": None, "curves": {"val_acc": [0.3]}}
    no_progress = {**ok, "final_loss": 2.4}
    assert is_stable(ok, min_val_acc=0.15) and is_stable(at_chance)  # the old criterion
    assert not is_stable(at_chance, min_val_acc=0.15)  # a run that ends at chance
    assert not is_stable(diverged, min_val_acc=0.15) and not is_stable(no_progress)
    assert is_stable({**ok, "curves": {"val_acc": [0.15]}}, min_val_acc=0.15)  # inclusive
    with pytest.raises(ValueError, match="validation accuracies"):
        is_stable({**ok, "curves": {"val_acc": []}}, min_val_acc=0.15)
    with pytest.raises(ValueError, match="min_val_acc"):
        is_stable(ok, min_val_acc=1.5)


def test_max_stable_lr_can_use_validation_accuracy(tmp_path):
    import functools

    from rmtlr.sweeps import is_stable, max_stable_lr
    val = data.gaussian_mixture(n=128, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=32, model_kw={"hidden": 8})
    crit = functools.partial(is_stable, min_val_acc=0.3)
    res = max_stable_lr(cfg, lr_min=1e-3, lr_max=100.0, grid_points=6, bisect_steps=0,
                        train_set=DS, val_set=val, device="cpu", stable=crit,
                        results=tmp_path / "m.jsonl", step_loss_points=4)
    recs = read_results(tmp_path / "m.jsonl")
    assert all(r["curves"]["val_acc"] or r["outcome"] != "ok" for r in recs)
    assert all(len(r["step_loss"]) <= 4 for r in recs)
    best = next(r for r in recs if r["config"]["lr"] == pytest.approx(res.lr))
    assert best["curves"]["val_acc"][-1] >= 0.3


def test_summarize_sweep_groups_seeds_and_applies_the_criterion(tmp_path):
    import functools

    from rmtlr.sweeps import is_stable, summarize_sweep
    val = data.gaussian_mixture(n=128, seed=0)
    base = TrainConfig(epochs=2, model_kw={"hidden": 8})
    rule = lambda B: 0.3 if B < 64 else 1e4  # the second point diverges
    recs = sweep([16, 64], rule, tmp_path / "r.jsonl", base, seeds=(1, 0), train_set=DS,
                 val_set=val, device="cpu")
    pts = summarize_sweep(recs[::-1], stable=functools.partial(is_stable, min_val_acc=0.2))
    assert [p.batch_size for p in pts] == [16, 64] and pts[0].seeds == (0, 1)
    assert pts[0].updates == 64 and pts[1].updates == 16
    assert pts[0].all_stable and pts[0].val_acc == tuple(
        r["curves"]["val_acc"][-1] for r in sorted(recs[:2], key=lambda r: r["config"]["seed"]))
    assert pts[1].diverged == (True, True) and not any(pts[1].stable)
    assert np.isnan(pts[1].mean_acc) and pts[0].std_acc >= 0
    with pytest.raises(ValueError, match="mix rates"):
        summarize_sweep(recs + [{**recs[0], "config": {**recs[0]["config"], "lr": 9.0}}],
                        stable=is_stable)
    with pytest.raises(ValueError, match="none"):
        summarize_sweep([], stable=is_stable)
SHARDED = textwrap.dedent("""
    import json, sys
    import rmtlr.sweeps
    from rmtlr import data
    from rmtlr.sweeps import sweep
    from rmtlr.train import TrainConfig

    results, shard, log = sys.argv[1], tuple(int(v) for v in sys.argv[2].split("/")), sys.argv[3]
    real_train = rmtlr.sweeps.train

    def logged(cfg, **kw):  # append which run this process starts, before training it
        with open(log, "a") as f:
            f.write(json.dumps([cfg.batch_size, cfg.seed]) + "\\n")
        return real_train(cfg, **kw)

    rmtlr.sweeps.train = logged
    ds = data.gaussian_mixture(n=512, seed=0)
    base = TrainConfig(steps=150, model_kw={"hidden": 32})
    sweep([8, 16, 32, 64, 128, 256], "linear:0.01:8", results, base, seeds=(0, 1),
          train_set=ds, device="cpu", profile="quick", shard=shard)
""")
GRID = sorted((b, s) for b in (8, 16, 32, 64, 128, 256) for s in (0, 1))


def test_sweep_split_over_two_shards_one_killed_and_rerun_has_every_run_once(tmp_path):
    out = tmp_path / "runs.jsonl"
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED)
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1",
               PYTHONPATH=os.pathsep.join(sys.path))
    logs = [tmp_path / "log0", tmp_path / "log1"]

    def start(i):
        return subprocess.Popen([sys.executable, str(script), str(out), f"{i}/2", str(logs[i])],
                                env=env)

    procs = [start(0), start(1)]
    deadline = time.time() + 180
    # Kill shard 1 once it has finished at least one run and started another.
    while time.time() < deadline:
        done1 = [r for r in (read_results(out) if out.exists() else [])
                 if r["config"]["batch_size"] in (8, 32, 128) and r["config"]["seed"] == 1
                 or r["config"]["batch_size"] in (16, 64, 256) and r["config"]["seed"] == 1]
        started = logs[1].read_text().count("\n") if logs[1].exists() else 0
        if done1 and started > len(done1):
            break
        time.sleep(0.02)
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    finished_before = len(read_results(out))
    assert procs[0].wait(timeout=300) == 0
    mine = {(r["config"]["batch_size"], r["config"]["seed"]) for r in read_results(out)}
    assert len(mine) < 12, "the kill must leave shard 1 unfinished for this test to mean anything"
    assert finished_before >= 1
    assert start(1).wait(timeout=300) == 0  # the same command again
    recs = read_results(out)
    assert sorted((r["config"]["batch_size"], r["config"]["seed"]) for r in recs) == GRID
    assert len({r["key"] for r in recs}) == 12
    # Shards are disjoint: shard 0 trained only its own runs (grid positions 0, 2, 4, ...).
    trained0 = [tuple(json.loads(line)) for line in logs[0].read_text().splitlines()]
    order = [(b, s) for b in (8, 16, 32, 64, 128, 256) for s in (0, 1)]
    assert sorted(trained0) == sorted(order[0::2])


def test_shards_partition_the_grid_and_bad_shards_are_refused(tmp_path):
    out = tmp_path / "runs.jsonl"
    parts = [sweep([8, 16, 32], "const:0.01", out, BASE, seeds=(0, 1), train_set=DS,
                   device="cpu", shard=(i, 4)) for i in range(4)]
    got = [(r["config"]["batch_size"], r["config"]["seed"]) for p in parts for r in p]
    assert sorted(got) == sorted((b, s) for b in (8, 16, 32) for s in (0, 1))
    assert [len(p) for p in parts] == [2, 2, 1, 1]
    for shard, exc in [((2, 2), ValueError), ((0, 0), ValueError), ((1,), ValueError),
                       ("0/2", TypeError), ((0.5, 2), ValueError)]:
        with pytest.raises(exc, match="shard"):
            sweep([8], "const:0.01", out, BASE, train_set=DS, device="cpu", shard=shard)


def test_lr_range_test_follows_the_exponential_schedule_and_is_stored(tmp_path):
    cfg = TrainConfig(batch_size=32, model_kw={"hidden": 8})
    out = tmp_path / "range.jsonl"
    res = rmtlr.sweeps.lr_range_test(cfg, lr_min=1e-3, lr_max=1e3, steps=60, train_set=DS,
                                     device="cpu", results=out)
    n = res.steps
    assert 2 <= n <= 60 and len(res.losses) == n
    np.testing.assert_allclose(res.lrs, np.geomspace(1e-3, 1e3, 60)[:n], rtol=1e-12)
    # At 1e3 the loss blows up: the run stops there, above the rate of the lowest loss.
    assert res.lr_diverged is not None and res.lr_min_loss < res.lr_diverged
    i = int(np.argmin(res.smoothed))
    assert res.lr_min_loss == res.lrs[i]
    # Bias-corrected moving average of the losses (weight 0.9 on the past).
    avg, sm = 0.0, []
    for t, v in enumerate(res.losses[:len(res.smoothed)], 1):
        avg = 0.9 * avg + 0.1 * v
        sm.append(avg / (1 - 0.9 ** t))
    np.testing.assert_allclose(res.smoothed, sm, rtol=1e-12)
    # The first step is at the initial weights train() builds for this seed, on the first
    # batch of the seeded loader.
    torch.manual_seed(0)
    model = rmtlr.models.build("mlp", 10, in_dim=32, hidden=8)
    xb, yb = next(iter(data.make_loader(DS, 32, shuffle=True, seed=0, num_workers=0)))
    loss0 = torch.nn.functional.cross_entropy(model(xb), yb).item()
    assert res.losses[0] == pytest.approx(loss0, rel=1e-6)
    again = rmtlr.sweeps.lr_range_test(cfg, lr_min=1e-3, lr_max=1e3, steps=60, train_set=DS,
                                       device="cpu", results=out)
    assert again == res and len(read_results(out)) == 1
    with pytest.raises(ValueError, match="lr_min"):
        rmtlr.sweeps.lr_range_test(cfg, lr_min=2.0, lr_max=1.0, train_set=DS, device="cpu")
    with pytest.raises(ValueError, match="steps"):
        rmtlr.sweeps.lr_range_test(cfg, steps=1, train_set=DS, device="cpu")
    with pytest.raises(TypeError, match="cfg must be a TrainConfig"):
        rmtlr.sweeps.lr_range_test({"lr": 1}, train_set=DS, device="cpu")

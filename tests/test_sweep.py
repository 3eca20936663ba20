"""Batch-size sweeps: one JSONL line per run, skipping, torn lines, and resuming after a kill."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rmtlr import data
from rmtlr.train import TrainConfig, read_results, run_key, sweep

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


def test_corrupt_complete_line_is_an_error(tmp_path):
    out = tmp_path / "runs.jsonl"
    out.write_text('{"ok": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_results(out)


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
    for bad in (32.7, float("nan"), "32", True):
        with pytest.raises(ValueError, match="batch_sizes must be a non-empty list of integers"):
            sweep([16, bad], "const:0.01", out, BASE, train_set=DS)


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
    from rmtlr.train import TrainConfig, sweep
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
    keys = [run_key(r["config"]) for r in recs]
    assert len(recs) == 12 and len(set(keys)) == 12
    assert sorted((r["config"]["batch_size"], r["config"]["seed"]) for r in recs) == sorted(
        (b, s) for b in (8, 16, 32, 64, 128, 256) for s in (0, 1))

"""The one script a session with a GPU runs, kept working on a CPU.

`benchmarks/gpu_full_path.py` runs only when a GPU is lent, for ten minutes, once; if it
has rotted (a renamed function, a changed record), that chance is lost. Its `--smoke`
mode takes the same code path with CPU-sized networks, so running it here catches that.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_smoke_run_writes_every_stage_with_provenance(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_full_path.py"), "--smoke",
                           "--out", str(out), "--work", str(work)],
                          check=False, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    stages = {name: _records(out / f"{name}.jsonl") for name in ("throughput", "spectra", "sweep")}
    assert len(stages["throughput"]) == 2                     # both networks measured
    assert {r["network"] for r in stages["spectra"]} == {r["network"] for r in stages["throughput"]}
    assert len(stages["spectra"]) == 4                        # two checkpoints per network
    assert [r["config"]["batch_size"] for r in stages["sweep"]] == [16, 32, 64]
    for recs in stages.values():
        for r in recs:
            assert r["device"] == "cpu" and r["date"][:4].isdigit() and r["wall_time_s"] > 0
            assert {"rmtlr", "torch", "python"} <= set(r["versions"])
    for r in stages["throughput"]:
        assert r["train_samples_per_s"] > 0 and r["hessian_samples_per_s"] > 0
    assert not list(out.rglob("*.pt")), "checkpoints belong in --work, not in the results folder"

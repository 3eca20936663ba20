"""predict_lr, SLQ, Hutchinson and Algorithm 1 under torch.distributed (2 gloo processes on
the CPU) give the single-process numbers: the data is split over the ranks, the products
are all-reduced, and every rank returns the same result."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from rmtlr.curvature import (
    DistributedOperator,
    HessianOperator,
    hessian_variance,
    hutchinson_trace,
    slq_density,
)
from rmtlr.predict import predict_lr

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")

SIZES = [4, 16, 64, 90]
KW = {"num_vectors": 3, "variance_samples": 40, "num_steps": 12, "batch_num_steps": 10,
      "batches_per_size": 3, "calibration_batch_sizes": [4, 16], "progress": False}


def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(90, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (90,), generator=g)
    return model, x, y


def worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        model, x, y = setup()
        loss = nn.CrossEntropyLoss()
        res = predict_lr(model, loss, (x, y), SIZES, optimizer="adam", **KW)
        # Algorithms on an operator whose data is split unevenly over the ranks.
        lo, hi = (0, 61) if rank == 0 else (61, 90)
        local = HessianOperator(model, loss, [(x[i:min(i + 8, hi)], y[i:min(i + 8, hi)])
                                              for i in range(lo, hi, 8)])
        H = DistributedOperator(local)
        v = torch.linspace(-1, 1, H.shape[0], dtype=torch.float64)
        torch.save({"pred": res.to_dict(), "lam1_batch": res.lam1_batch,
                    "hv": H @ v, "slq": slq_density(H, 10, 3, seed=2, progress=False).nodes,
                    "trace": hutchinson_trace(H, 4, seed=1, progress=False).trace,
                    "var": hessian_variance(H, 3, per_sample=True, seed=5,
                                            progress=False).sigma2},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_give_the_single_process_prediction():
    model, x, y = setup()
    loss = nn.CrossEntropyLoss()
    single = predict_lr(model, loss, (x, y), SIZES, optimizer="adam", **KW)
    H = HessianOperator(model, loss, (x, y))
    v = torch.linspace(-1, 1, H.shape[0], dtype=torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2, join=True)
        outs = [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=False)
                for r in range(2)]
    for out in outs:
        d = out["pred"]
        assert d["world_size"] == 2
        # Same sums in another order: float64 rounding only, far below 1e-6.
        torch.testing.assert_close(out["hv"], H @ v, rtol=1e-6, atol=0)
        inp, ref = d["inputs"], single.inputs
        for name in ("lam1", "sigma2", "sigma2_top", "noise_var"):
            assert inp[name] == pytest.approx(getattr(ref, name), rel=1e-6), name
        for B, vals in ref.calibration.items():  # the same batches, shared out
            np.testing.assert_allclose(inp["calibration"][str(B)], vals, rtol=1e-9)
        np.testing.assert_allclose(out["lam1_batch"], single.lam1_batch, rtol=1e-6)
        np.testing.assert_allclose(d["lr"], single.lr, rtol=1e-6)
        np.testing.assert_allclose(d["eta_edge"], single.eta_edge, rtol=1e-6)
        np.testing.assert_allclose(
            out["slq"], slq_density(H, 10, 3, seed=2, progress=False).nodes, rtol=1e-6)
        assert out["trace"] == pytest.approx(hutchinson_trace(H, 4, seed=1).trace, rel=1e-6)
        assert out["var"] == pytest.approx(hessian_variance(H, 3, seed=5).sigma2, rel=1e-6)
    assert outs[0]["pred"]["lr"] == outs[1]["pred"]["lr"]  # all-reduce: the same everywhere


ENTRY = '''
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(90, 5, generator=g), torch.randint(0, 3, (90,), generator=g)
    return model, nn.CrossEntropyLoss(), torch.utils.data.TensorDataset(x, y)
'''
CMD = ("torchrun --standalone --nproc_per_node 2 -m rmtlr.cli predict --entry mynet:make "
       "--batch-sizes 16,64,90 --output pred.json")


def test_readme_torchrun_command_runs_and_equals_one_process(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert CMD.split(" --batch-sizes")[0] in readme  # the command the README shows
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    (tmp_path / "mynet.py").write_text(ENTRY)
    fast = ["--num-vectors", "2", "--variance-samples", "32", "--lanczos-steps", "10",
            "--batches-per-size", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1",
               PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    args = CMD.split()
    args[0] = str(torchrun)
    done = subprocess.run([*args, *fast], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on 2 processes" in done.stdout
    one = subprocess.run([sys.executable, "-m", "rmtlr.cli", *args[args.index("predict"):-2],
                          "--output", "one.json", *fast], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    assert one.returncode == 0, one.stderr
    import json

    two, ref = (json.loads((tmp_path / f).read_text()) for f in ("pred.json", "one.json"))
    assert two["world_size"] == 2 and ref["world_size"] == 1
    np.testing.assert_allclose(two["lr"], ref["lr"], rtol=1e-5)  # float32 model

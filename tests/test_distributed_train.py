"""Training under torch.distributed (2 gloo processes): DistributedDataParallel gives the
single-process run, and a sweep trains each run once with all ranks, written once."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rmtlr import data
from rmtlr.results import read_records
from rmtlr.sweeps import sweep
from rmtlr.train import TrainConfig, distributed_world, train

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")

DS = data.gaussian_mixture(n=256, seed=0)
CFG = TrainConfig(lr=0.2, batch_size=32, epochs=2, momentum=0.9, model_kw={"hidden": 16},
                  probe=128)


def worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        rec = train(CFG, train_set=DS, device="cpu", progress=False)
        recs = sweep([16, 32], "linear:0.1:16", os.path.join(out_dir, "runs.jsonl"),
                     TrainConfig(steps=6, model_kw={"hidden": 8}), seeds=(0, 1), train_set=DS,
                     device="cpu", profile="quick")
        torch.save({"world": distributed_world(), "rec": rec,
                    "sweep": [r["key"] for r in recs],
                    "sweep_final": [r["final_loss"] for r in recs]},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_over_two_processes_is_the_single_process_run_and_sweeps_write_once():
    single = train(CFG, train_set=DS, device="cpu", progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2, join=True)
        outs = [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=False)
                for r in range(2)]
        stored = read_records(os.path.join(tmp, "runs.jsonl"))
    assert [o["world"] for o in outs] == [(0, 2), (1, 2)]
    for out in outs:
        rec = out["rec"]
        assert rec["outcome"] == "ok" and rec["steps"] == single["steps"] == 16
        # Each rank computes 16 of the 32 samples; DDP averages the two halves' gradients,
        # so the steps are the single-process ones up to float32 summation order.
        np.testing.assert_allclose(rec["step_loss"], single["step_loss"], rtol=1e-4)
        assert rec["final_loss"] == pytest.approx(single["final_loss"], rel=1e-4)
        np.testing.assert_allclose(rec["curves"]["train_acc"], single["curves"]["train_acc"])
    assert outs[0]["rec"]["step_loss"] == outs[1]["rec"]["step_loss"]  # identical on ranks
    # The sweep: 4 runs, each trained by both ranks together and written once by rank 0.
    assert len(stored) == 4 and len({r["key"] for r in stored}) == 4
    assert outs[0]["sweep"] == outs[1]["sweep"] == [r["key"] for r in stored]
    assert outs[0]["sweep_final"] == outs[1]["sweep_final"]
    ref = sweep([16, 32], "linear:0.1:16", os.path.join(tempfile.mkdtemp(), "r.jsonl"),
                TrainConfig(steps=6, model_kw={"hidden": 8}), seeds=(0, 1), train_set=DS,
                device="cpu", profile="quick")
    np.testing.assert_allclose(outs[0]["sweep_final"], [r["final_loss"] for r in ref],
                               rtol=1e-4)


def test_single_process_is_not_distributed():
    assert distributed_world() == (0, 1)
    with pytest.raises(ValueError, match="distributed=True needs"):
        train(CFG, train_set=DS, device="cpu", distributed=True)

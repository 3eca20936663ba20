"""DistributedOperator with 2 gloo processes on CPU equals the single-process operator."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from rmtlr.curvature import GGNOperator, HessianOperator, lanczos
from rmtlr.curvature.distributed import DistributedOperator

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")


def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10), nn.Tanh(), nn.Linear(10, 3)).double()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(23, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (23,), generator=g)
    v = torch.randn(sum(p.numel() for p in model.parameters()), generator=g, dtype=torch.float64)
    return model, x, y, v


def block(v):
    """Three vectors as a P×3 block (one all-reduce for all three)."""
    return torch.stack([v, v.flip(0), v.roll(1)], dim=1)


def shard(rank, x, y):
    # Uneven shards (15 and 8 samples) in uneven batches: weighting must be by samples.
    lo, hi = (0, 15) if rank == 0 else (15, 23)
    return [(x[i:min(i + 4, hi)], y[i:min(i + 4, hi)]) for i in range(lo, hi, 4)]


def worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        model, x, y, v = setup()
        loss = nn.CrossEntropyLoss()
        h = DistributedOperator(HessianOperator(model, loss, shard(rank, x, y)))
        gg = DistributedOperator(GGNOperator(model, loss, shard(rank, x, y)))
        # All the data on rank 0, none on rank 1 (an empty list is a valid shard).
        lopsided = DistributedOperator(HessianOperator(model, loss, [(x, y)] if rank == 0 else []))
        res = lanczos(h, 12, seed=4)
        torch.save({"hv": h @ v, "gv": gg @ v, "ritz": torch.from_numpy(res.ritz_values),
                    "hv_lopsided": lopsided @ v, "hV": h @ block(v)},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_single_process():
    model, x, y, v = setup()
    loss = nn.CrossEntropyLoss()
    single_h = HessianOperator(model, loss, (x, y))
    single_g = GGNOperator(model, loss, (x, y))
    ritz = lanczos(single_h, 12, seed=4).ritz_values
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(worker, args=(2, init_file, tmp), nprocs=2, join=True)
        outs = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(2)]
    # Same sums in a different order: float64 rounding only (~1e-16 relative).
    for out in outs:
        assert torch.allclose(out["hv"], single_h @ v, rtol=1e-12, atol=1e-14)
        assert torch.allclose(out["gv"], single_g @ v, rtol=1e-12, atol=1e-14)
        assert torch.allclose(out["hv_lopsided"], single_h @ v, rtol=1e-12, atol=1e-14)
        assert torch.allclose(out["hV"], single_h @ block(v), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out["ritz"].numpy(), ritz, rtol=1e-9)
    assert torch.equal(outs[0]["hv"], outs[1]["hv"])  # all-reduce: identical on every rank


def test_requires_initialised_process_group():
    model, x, y, _ = setup()
    with pytest.raises(ValueError, match="not initialised"):
        DistributedOperator(HessianOperator(model, nn.CrossEntropyLoss(), (x, y)))
    with pytest.raises(TypeError, match="local must be"):
        DistributedOperator("op")

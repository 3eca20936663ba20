"""Cost of rmtlr.predict_lr against one epoch of training, and the distributed full-data HVP.

1. ``predict_lr`` on the README's small CNN (``models.build("small_cnn", 10)``) at
   initialisation, on the shipped CIFAR-10 subset (N = 9,000 training images by default),
   timed stage by stage (full-data λ₁ by Lanczos, Algorithm 1's σ², the GGN trace, the
   calibration batch λ₁), next to one epoch of SGD training on the same data at B = 128.
   Two settings: the defaults (every sample in the full-data operator) and a fast one
   (the full-data λ₁ on 1,024 samples, fewer steps and probes). The cost of the fast
   setting does not grow with N and an epoch's does, so the ratio is also given at the
   paper's N = 45,000 (CIFAR-100's training split), scaled by the measured per-sample
   epoch cost. Target: the prediction costs less than one epoch.
2. The full-data Hessian-vector product with the data split over 2 gloo processes
   (:class:`rmtlr.curvature.DistributedOperator`) against 1 process holding it all: the
   same product to 1e-6 relative, and the speed ratio.

Wall-clock and process CPU seconds are both printed; on a shared machine the CPU seconds
(one thread per process) are the steadier measure. One-off costs (torch.func's first
forward-over-reverse call, the method choice of ``method="auto"``) are paid in a warm-up
before timing. Asserts nothing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_predict.py [--n 9000] [--hvps 10]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from rmtlr import data, models
from rmtlr.curvature import DistributedOperator, HessianOperator
from rmtlr.predict import predict_lr

# Progress bars would add their own time to what is measured.
os.environ.setdefault("TQDM_DISABLE", "1")

PAPER_N = 45_000
GRID = [16, 32, 64, 128, 256, 512]
FAST = {"full_samples": 1024, "num_steps": 15, "batch_num_steps": 12, "num_vectors": 4,
        "variance_samples": 256, "batches_per_size": 3, "calibration_batch_sizes": [16, 64]}


class Clock:
    """Wall-clock and process CPU seconds since construction."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    for i in range(0, len(x) - batch_size + 1, batch_size):
        idx = perm[i:i + batch_size]
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def bench_predict(n: int) -> None:
    ds = data.load("images", "train")
    x, y = ds.tensors[0][:n], ds.tensors[1][:n]
    torch.manual_seed(0)
    model = models.build("small_cnn", 10)
    P = models.count_parameters(model)
    print(f"1. predict_lr vs one training epoch: small CNN (P = {P:,}), CIFAR-10 subset, "
          f"N = {len(x):,}, threads = {torch.get_num_threads()}")
    loss = nn.CrossEntropyLoss()
    predict_lr(model, loss, (x[:64], y[:64]), [8], num_vectors=2, variance_samples=32,
               num_steps=4, batch_num_steps=4, batches_per_size=2, progress=False)  # warm-up
    clock = Clock()
    epoch(models.build("small_cnn", 10), x, y, 128)
    ep_wall, ep_cpu = clock.stop()
    print(f"   one epoch at B = 128: {ep_wall:7.1f} s wall, {ep_cpu:7.1f} s CPU")
    for name, kw in (("defaults", {}), ("fast", FAST)):
        clock = Clock()
        res = predict_lr(model, loss, (x, y), GRID, progress=False, **kw)
        wall, cpu = clock.stop()
        split = ", ".join(f"{k} {v:.1f}" for k, v in res.seconds.items() if k != "total")
        print(f"   predict_lr ({name}): {wall:7.1f} s wall, {cpu:7.1f} s CPU = "
              f"{cpu / ep_cpu:5.2f} epochs (CPU); stages, s wall: {split}")
        if name == "fast":
            scale = PAPER_N / len(x)
            print(f"   at N = {PAPER_N:,} (epoch cost × {scale:.1f}, prediction unchanged): "
                  f"{cpu / (ep_cpu * scale):5.2f} epochs")
        print("   " + res.table().replace("\n", "\n   "))


def _dist_worker(rank: int, world: int, init: str, out: str, n: int, hvps: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        model, x, y, v = _hvp_setup(n)
        half = slice(rank * n // world, (rank + 1) * n // world)
        op = DistributedOperator(HessianOperator(model, nn.CrossEntropyLoss(),
                                                 _batches(x[half], y[half]),
                                                 method="double-backward"))
        op @ v  # warm-up
        dist.barrier()
        clock = Clock()
        for _ in range(hvps):
            hv = op @ v
        wall, cpu = clock.stop()
        torch.save({"hv": hv, "wall": wall, "cpu": cpu}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _hvp_setup(n: int):
    ds = data.load("images", "train")
    torch.manual_seed(0)
    model = models.build("small_cnn", 10)
    v = torch.randn(models.count_parameters(model), generator=torch.Generator().manual_seed(1))
    return model, ds.tensors[0][:n], ds.tensors[1][:n], v


def _batches(x: torch.Tensor, y: torch.Tensor, size: int = 256) -> list:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def bench_distributed(n: int, hvps: int) -> None:
    torch.set_num_threads(1)
    model, x, y, v = _hvp_setup(n)
    print(f"2. full-data HVP, small CNN, N = {n:,}, {hvps} products, 1 thread per process")
    op = HessianOperator(model, nn.CrossEntropyLoss(), _batches(x, y), method="double-backward")
    op @ v  # warm-up
    clock = Clock()
    for _ in range(hvps):
        hv1 = op @ v
    wall1, cpu1 = clock.stop()
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_dist_worker, args=(2, os.path.join(tmp, "init"), tmp, n, hvps), nprocs=2,
                 join=True)
        outs = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(2)]
    wall2 = max(o["wall"] for o in outs)
    rel = max(float((o["hv"] - hv1).norm() / hv1.norm()) for o in outs)
    print(f"   1 process : {wall1 / hvps * 1e3:8.1f} ms wall per product "
          f"({cpu1 / hvps * 1e3:.1f} ms CPU)")
    print(f"   2 processes: {wall2 / hvps * 1e3:8.1f} ms wall per product "
          f"({max(o['cpu'] for o in outs) / hvps * 1e3:.1f} ms CPU per process)")
    print(f"   speed-up (wall) {wall1 / wall2:.2f}×; relative difference of the products "
          f"{rel:.1e} ({'within' if rel <= 1e-6 else 'OUTSIDE'} 1e-6)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=9000, help="training samples (<= 9000)")
    parser.add_argument("--hvps", type=int, default=10, help="products timed in part 2")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in part 1")
    parser.add_argument("--part", choices=("all", "predict", "distributed"), default="all")
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    if a.part in ("all", "predict"):
        bench_predict(a.n)
    if a.part in ("all", "distributed"):
        bench_distributed(min(a.n, 4096), a.hvps)


if __name__ == "__main__":
    main()

"""Overhead of the Lanczos learner (rmtlr.learner) in percent of training time.

The paper's setting (Granziol et al. 2022, Sec. 10.2): m = 20 Lanczos steps on the
Hessian of a fixed 1,024-sample subset every E = 20 epochs. One estimate and one training
epoch are timed side by side in this process, on a reduced PreResNet (depth 8 by default)
on the shipped CIFAR-10 subset (9,000 training images), and the per-epoch overhead
estimate / (E × epoch) is printed for E = 1, 5, 20; target ≤ 5% at E = 20.

The estimate's cost does not depend on the training-set size N, an epoch's is
proportional to it, so the overhead falls as 1/N: the table also gives it at the paper's
N = 45,000 (CIFAR-100's training split), at the per-sample training cost measured here.
Wall-clock and process CPU seconds are both shown; on a shared machine the CPU seconds
(one thread) are the steadier measure. Asserts nothing.

The subset is passed as batches of the training batch size: on a CPU one batch of 1,024
costs about 1.6× as much per sample as eight of 128 (cache effects), and with BatchNorm in
``bn_mode="frozen-train"`` each batch is then normalised with its own statistics, as in
training. The estimate is timed twice, without and with ``keep_graphs=True`` (each batch's
gradient graph kept for the estimate's Lanczos steps, so that each step after the first is
one backward pass per batch), and the overhead table is printed for both.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_learner.py [--depth 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from rmtlr import data, models
from rmtlr.curvature import HessianOperator
from rmtlr.learner import LanczosLearner

# Progress bars would add their own time to what is measured.
os.environ.setdefault("TQDM_DISABLE", "1")

PAPER_N = 45_000


class Clock:
    """Wall-clock and process CPU seconds since construction."""

    def __init__(self, device: torch.device):
        self.device = device
        self._sync()
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def stop(self) -> tuple[float, float]:
        self._sync()
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def train_epoch(model, opt, x, y, batch_size: int, generator: torch.Generator) -> None:
    model.train()
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x) - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=8, help="PreResNet depth 6n + 2 (8, 20, …)")
    ap.add_argument("--subset", type=int, default=1024, help="samples of the estimate")
    ap.add_argument("--num-steps", type=int, default=20, help="Lanczos steps per estimate")
    ap.add_argument("--batch-size", type=int, default=128, help="training batch size")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    train_set = data.load("images", "train")
    x, y = (t.to(device) for t in train_set.tensors)
    N, B = len(x), args.batch_size
    if not B <= args.subset <= N:
        raise SystemExit(f"--subset must be between the batch size {B} and N = {N}")
    subset = [(x[i:i + B], y[i:i + B]) for i in range(0, args.subset, B)]
    model = models.build("preresnet", train_set.num_classes, depth=args.depth).to(device)
    P = models.count_parameters(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)

    # One-off costs out of the timings: allocator and kernel warm-up of a few training
    # steps, and the operator's one-time choice of HVP method (cached per model).
    train_epoch(model, opt, x[:4 * B], y[:4 * B], B, gen)
    # (The cached choice is keyed on whether the data are one batch, whose graph is kept:
    # make both choices, for the plain subset and for keep_graphs' single-batch operators.)
    for part in (subset[:2], subset[0]):
        HessianOperator(model, F.cross_entropy, part, bn_mode="frozen-train").matvec(
            torch.zeros(P, device=device))

    estimates = {}
    for keep in (False, True):
        clock = Clock(device)
        learner = LanczosLearner(opt, model, F.cross_entropy, subset, num_steps=args.num_steps,
                                 variant="nesterov", form="classical", keep_graphs=keep,
                                 progress=False)
        estimates[keep] = (*clock.stop(), learner.records[0])
    clock = Clock(device)
    train_epoch(model, opt, x, y, B, gen)
    epoch_wall, epoch_cpu = clock.stop()
    rec = estimates[True][2]
    same = np.allclose(estimates[False][2].ritz_values, rec.ritz_values, rtol=1e-4, atol=1e-6)

    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU "
          f"thread(s)")
    print(f"PreResNet-{args.depth} (P = {P:,}), {train_set.description}; training: SGD, "
          f"batch {B}, N = {N:,} per epoch")
    print(f"estimate: {args.num_steps} Lanczos steps on {args.subset} samples "
          f"({len(subset)} batches of {B}), bn_mode='frozen-train'; it set "
          f"lr = {rec.lr:.4g}, momentum = {rec.momentum:.4g} "
          f"(lam_max = {rec.result.lam_max:.4g}, lam_min = {rec.result.lam_min:.4g}); "
          f"same Ritz values with and without keep_graphs (rtol 1e-4): {same}")
    print()
    print(f"{'':<40}{'wall s':>10}{'CPU s':>10}")
    print(f"{'one training epoch':<40}{epoch_wall:>10.1f}{epoch_cpu:>10.1f}")
    products = args.num_steps * args.subset
    for keep, (est_wall, est_cpu, _) in estimates.items():
        name = f"keep_graphs={keep}"
        print(f"{'one estimate, ' + name:<40}{est_wall:>10.1f}{est_cpu:>10.1f}")
        print(f"{'  estimate / epoch':<40}{est_wall / epoch_wall:>10.2f}"
              f"{est_cpu / epoch_cpu:>10.2f}")
        print(f"{'  r = per Hessian-vector sample':<40}"
              f"{est_wall / (epoch_wall / N) / products:>10.2f}"
              f"{est_cpu / (epoch_cpu / N) / products:>10.2f}"
              f"   (training samples; ÷ {args.num_steps} steps × {args.subset} samples)")
    (w0, c0, _), (w1, c1, _) = estimates[False], estimates[True]
    print(f"{'speed-up of keep_graphs':<40}{w0 / w1:>10.2f}{c0 / c1:>10.2f}")
    print()
    print("per-epoch overhead = estimate / (E × epoch), CPU seconds "
          "(wall-clock in brackets)")
    print(f"{'E':>4}{'keep_graphs':>13}{f'N = {N:,} (measured)':>26}"
          f"{f'N = {PAPER_N:,} (paper)':>26}")
    for E in (1, 5, 20):
        for keep, (est_wall, est_cpu, _) in estimates.items():
            cells = []
            for n in (N, PAPER_N):
                cpu = est_cpu / (E * epoch_cpu * n / N)
                wall = est_wall / (E * epoch_wall * n / N)
                cells.append(f"{100 * cpu:.1f}% ({100 * wall:.1f}%)")
            print(f"{E:>4}{keep!s:>13}{cells[0]:>26}{cells[1]:>26}")
    print("target: <= 5% at E = 20 (the paper's setting)")


if __name__ == "__main__":
    main()

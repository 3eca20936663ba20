"""Speed of the random-matrix core: the vector Dyson solver and the Wigner sampler.

Prints (asserts nothing):

1. ``dyson_density`` on a 2000-point grid for a 2000×2000 smooth variance profile
   (target < 2 s), with the profile's numerical rank (eigenvalues of S/n above 1e−12 of
   the largest, the tolerance to which the solver compresses it), and for the 2-block
   profile of chapter 4;
2. ``rmtlr.rmt.wigner`` + ``numpy.linalg.eigvalsh`` at n = 4000 against a bare
   ``eigvalsh`` of a pre-made matrix, as a ratio (target ≤ 1.5).

Each time is the fastest of ``--repeats`` runs, as wall and CPU time (the machine may be
shared; CPU time is the less load-sensitive of the two).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_rmt.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rmtlr.rmt import dyson_density, wigner


def best_time(fn, repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeats`` runs. CPU time (all threads) is the
    less load-sensitive number on a shared machine."""
    best = (np.inf, np.inf)
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def smooth_profile(n: int) -> np.ndarray:
    """S_ij = 0.5 + (x_i + x_j)² + 0.5 cos 2π(x_i − x_j), x_i = (i + ½)/n."""
    x = (np.arange(n) + 0.5) / n
    return (
        0.5 + (x[:, None] + x[None, :]) ** 2 + 0.5 * np.cos(2 * np.pi * (x[:, None] - x[None, :]))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    args = ap.parse_args()

    n, grid = 2000, np.linspace(-4.0, 4.0, 2000)
    S = smooth_profile(n)
    lam = np.abs(np.linalg.eigvalsh(S / n))
    rank = int((lam > 1e-12 * lam.max()).sum())
    wall, cpu = best_time(lambda: dyson_density(S, grid), args.repeats)
    blocks, fractions = np.array([[1.0, 0.2], [0.2, 3.0]]), [0.5, 0.5]
    wall_b, _ = best_time(lambda: dyson_density(blocks, grid, fractions), args.repeats)
    print("1. vector Dyson density, 2000-point grid")
    print(
        f"   {n}x{n} smooth profile (numerical rank {rank}): {wall:.2f} s wall, {cpu:.2f} s CPU"
        "  (target < 2 s)"
    )
    print(f"   2-block profile [[1, .2], [.2, 3]]: {wall_b:.3f} s wall")

    m = 4000
    premade = wigner(m, seed=0)
    bare, bare_cpu = best_time(lambda: np.linalg.eigvalsh(premade), args.repeats)
    full, full_cpu = best_time(lambda: np.linalg.eigvalsh(wigner(m, seed=1)), args.repeats)
    print(f"2. Wigner n={m}: sample + eigvalsh vs bare eigvalsh (target ratio <= 1.5)")
    print(f"   wall {full:.2f} s / {bare:.2f} s = {full / bare:.2f}")
    print(f"   CPU  {full_cpu:.2f} s / {bare_cpu:.2f} s = {full_cpu / bare_cpu:.2f}")


if __name__ == "__main__":
    main()

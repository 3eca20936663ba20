"""Speed of the random-matrix core: the vector Dyson solver and the Wigner sampler.

Prints (asserts nothing):

1. ``dyson_density`` on a 2000-point grid for a 2000×2000 smooth variance profile
   (target < 2 s), with the numerical rank the solver compresses it to, and for the
   2-block profile of chapter 4;
2. ``rmtlr.rmt.wigner`` + ``numpy.linalg.eigvalsh`` at n = 4000 against a bare
   ``eigvalsh`` of a pre-made matrix, as a ratio (target ≤ 1.5).

Each time is the best of ``--repeats`` runs (the machine may be shared).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_rmt.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rmtlr.rmt import freeprob
from rmtlr.rmt.ensembles import wigner


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


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
    rank = freeprob._Operator(S, np.full(n, 1.0 / n)).rank
    t_smooth = best_time(lambda: freeprob.dyson_density(S, grid), args.repeats)
    blocks, fractions = np.array([[1.0, 0.2], [0.2, 3.0]]), [0.5, 0.5]
    t_block = best_time(lambda: freeprob.dyson_density(blocks, grid, fractions), args.repeats)
    print("1. vector Dyson density, 2000-point grid")
    print(f"   {n}x{n} smooth profile (numerical rank {rank}): {t_smooth:.2f} s  (target < 2 s)")
    print(f"   2-block profile [[1, .2], [.2, 3]]:            {t_block:.3f} s")

    m = 4000
    premade = wigner(m, seed=0)
    t_bare = best_time(lambda: np.linalg.eigvalsh(premade), args.repeats)
    t_full = best_time(lambda: np.linalg.eigvalsh(wigner(m, seed=1)), args.repeats)
    print(
        f"2. Wigner n={m}: sample + eigvalsh {t_full:.2f} s, bare eigvalsh {t_bare:.2f} s, "
        f"ratio {t_full / t_bare:.2f}  (target <= 1.5)"
    )


if __name__ == "__main__":
    main()

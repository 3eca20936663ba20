"""Curvature benchmarks: HVP cost, rmtlr vs PyHessian, Lanczos overhead (ratios, no asserts).

1. HVP time / gradient time for a CNN with BatchNorm, both HVP methods (target ≤ 2.0 on
   CPU for the better one).
2. rmtlr vs PyHessian 0.1 on the same model, batch and iteration count: top eigenvalue
   (rmtlr Lanczos vs PyHessian power iteration) and Hutchinson trace; time ratio
   rmtlr/PyHessian (target ≤ 0.7) and agreement; which PyHessian features fail on this torch.
3. Lanczos overhead (everything but the matvecs) in a 100-step run at P ≈ 1e6 (target < 10%),
   with the matvec of a batch of 32 and of 128.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_curvature.py [--quick]

Data: seeded synthetic CIFAR-shaped images (rmtlr.data.synthetic_images), an offline
stand-in; timings are wall-clock minima over repeats, on whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import scipy.linalg
import torch
from torch import nn

from rmtlr import data
from rmtlr.curvature import HessianOperator, hutchinson_trace, lanczos, top_eigenpairs

# Progress bars would add their own time to what is measured.
os.environ.setdefault("TQDM_DISABLE", "1")


class BNCNN(nn.Module):
    """conv-BN-ReLU ×3 with pooling and a linear head (CIFAR-shaped input)."""

    def __init__(self, widths=(32, 64, 128), num_classes=10):
        super().__init__()
        layers, c = [], 3
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, one-off kernel/decomposition loading
    out = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t0)
    return out


def model_and_batch(widths, B, seed=0):
    torch.manual_seed(seed)
    model = BNCNN(widths)
    ds = data.synthetic_images(n=B, num_classes=10, seed=seed)
    with torch.no_grad():  # non-trivial running statistics, as after some training
        model.train()
        model(ds.tensors[0])
    model.eval()
    return model, ds.tensors[0], ds.tensors[1]


def bench_hvp_ratio(repeats: int):
    model, x, y = model_and_batch((32, 64, 128), 128)
    loss = nn.CrossEntropyLoss()
    P = sum(p.numel() for p in model.parameters())
    params = list(model.parameters())
    t_grad = best_time(lambda: torch.autograd.grad(loss(model(x), y), params), repeats)
    v = torch.randn(P, generator=torch.Generator().manual_seed(0))
    print(f"\n[1] HVP / gradient time, CNN with BatchNorm (P = {P:,}, batch 128, 3x32x32, "
          "bn_mode='eval')")
    print(f"    gradient (forward + backward): {t_grad * 1e3:8.1f} ms")
    rows = {}
    for method in ("forward-over-reverse", "double-backward"):
        op = HessianOperator(model, loss, (x, y), method=method)
        t = best_time(lambda op=op: op @ v, repeats)
        rows[method] = t / t_grad
        print(f"    HVP {method:<22}: {t * 1e3:8.1f} ms   ratio {t / t_grad:5.2f}")
    op = HessianOperator(model, loss, (x, y), method="auto")
    op @ v
    print(f"    method='auto' chose: {op.method_used}; best ratio {min(rows.values()):.2f} "
          "(target <= 2.0)")


def bench_pyhessian(iters: int, trace_vectors: int):
    print(f"\n[2] rmtlr vs PyHessian 0.1 (same model, batch 128, {iters} iterations for the "
          f"top eigenvalue, {trace_vectors} Hutchinson vectors)")
    try:
        from pyhessian import hessian as pyh
    except ImportError as err:
        print(f"    PyHessian not installed ({err}); `make bench` installs it")
        return
    model, x, y = model_and_batch((16, 32, 64), 128)
    loss = nn.CrossEntropyLoss()
    op = HessianOperator(model, loss, (x, y))
    op @ torch.zeros(op.shape[0])  # auto-method trial outside the timings

    t0 = time.perf_counter()
    # Lanczos alone (top_eigenpairs would add one product for the residual): the same
    # product count as PyHessian's power iteration.
    res = lanczos(op, iters, seed=0)
    t_r_eig = time.perf_counter() - t0
    top = res.ritz_values[-1]
    t0 = time.perf_counter()
    tr = hutchinson_trace(op, trace_vectors, seed=0)
    t_r_tr = time.perf_counter() - t0
    # A converged reference for the top eigenvalue: 3× the steps, with its residual.
    conv = top_eigenpairs(op, k=1, num_steps=min(3 * iters, op.shape[0]), seed=1)
    ref = float(conv.values[0])

    # PyHessian calls loss.backward(create_graph=True), on which torch warns about a
    # parameter–gradient reference cycle; that is PyHessian's design, not this benchmark's.
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    comp = pyh(model, loss, data=(x, y), cuda=False)
    p_eigs, _ = comp.eigenvalues(maxIter=iters, tol=0.0)  # exactly `iters` power steps
    t_p_eig = time.perf_counter() - t0
    state = (f"training={model.training}, "
             f".grad set={all(p.grad is not None for p in model.parameters())}")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    comp = pyh(model, loss, data=(x, y), cuda=False)
    p_tr = comp.trace(maxIter=trace_vectors, tol=0.0)
    t_p_tr = time.perf_counter() - t0
    p_trace = float(np.mean(p_tr))
    print(f"    {'quantity':<26}{'rmtlr':>12}{'PyHessian':>12}{'converged ref':>15}"
          f"{'t rmtlr':>10}{'t PyH':>9}{'ratio':>7}")
    print(f"    {'top eigenvalue':<26}{top:>12.5f}{p_eigs[0]:>12.5f}{ref:>15.5f}"
          f"{t_r_eig:>9.2f}s{t_p_eig:>8.2f}s{t_r_eig / t_p_eig:>7.2f}")
    print(f"    {'trace (Hutchinson)':<26}{tr.trace:>12.3f}{p_trace:>12.3f}{'':>15}"
          f"{t_r_tr:>9.2f}s{t_p_tr:>8.2f}s{t_r_tr / t_p_tr:>7.2f}")
    p_err = abs(p_eigs[0] - ref) / ref
    print(f"    rel. error of top eigenvalue vs converged: rmtlr {abs(top - ref) / ref:.1e}, "
          f"PyHessian {p_err:.1e} (reference residual ‖Av − θv‖/θ = "
          f"{conv.residual_norms[0] / ref:.1e})")
    # The first k Lanczos steps of a run are a k-step run, so the leading k×k block of the
    # tridiagonal T gives the k-step estimate: the fewest steps that match PyHessian's error.
    k_match = next(k for k in range(1, iters + 1)
                   if abs(scipy.linalg.eigvalsh_tridiagonal(res.alpha[:k], res.beta[:k - 1])[-1]
                          - ref) / ref <= p_err)
    print(f"    equal accuracy: {k_match} Lanczos steps match PyHessian's {iters} power steps; "
          f"time ratio rmtlr/PyHessian ≈ {k_match / iters * t_r_eig / t_p_eig:.2f} (target <= 0.7)")
    # Both draw the Rademacher probes from a seed-0 Mersenne Twister in parameter order,
    # so the probes coincide and the traces agree to rounding.
    print(f"    trace: rmtlr {tr.trace:.3f} ± {tr.stderr:.3f} (s.e.); PyHessian − rmtlr = "
          f"{p_trace - tr.trace:+.2e} (same probe vectors)")
    for name, call in (("density (SLQ)", lambda: comp.density(iter=5, n_v=1)),
                       ("full-data (dataloader) HVP",
                        lambda: pyh(model, loss, dataloader=[(x[:64], y[:64]), (x[64:], y[64:])],
                                    cuda=False).eigenvalues(maxIter=2))):
        try:
            call()
            print(f"    PyHessian {name}: runs on torch {torch.__version__}")
        except Exception as err:  # noqa: BLE001  (report any failure: the point of the check)
            print(f"    PyHessian {name}: FAILS on torch {torch.__version__} "
                  f"({type(err).__name__}: {str(err).splitlines()[0][:80]})")
    print(f"    model state after PyHessian (was training=False, no .grad): {state}")


def bench_lanczos_overhead(steps: int, B: int):
    model, x, y = model_and_batch((64, 128, 256, 256), B)
    model.head = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))  # P ≈ 1e6
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    P = op.shape[0]
    op @ torch.zeros(P)
    res = lanczos(op, steps, seed=0)
    over = res.total_seconds - res.matvec_seconds
    print(f"\n[3] Lanczos overhead, {steps} steps, P = {P:,} (CNN, batch {B}, float32)")
    print(f"    total {res.total_seconds:.1f} s, matvecs {res.matvec_seconds:.1f} s, "
          f"overhead {over:.1f} s = {100 * over / res.total_seconds:.1f}% (target < 10%); "
          f"{1e3 * over / steps:.0f} ms/step, {1e3 * res.matvec_seconds / steps:.0f} ms/matvec")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and steps (smoke run)")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    bench_hvp_ratio(repeats=2 if a.quick else 5)
    bench_pyhessian(iters=10 if a.quick else 30, trace_vectors=10 if a.quick else 30)
    # Batch 128 is the paper's; batch 32 makes each matvec cheap, the hard case for the
    # target, since the overhead does not depend on the operator.
    for B in ((8,) if a.quick else (32, 128)):
        bench_lanczos_overhead(steps=10 if a.quick else 100, B=B)


if __name__ == "__main__":
    main()

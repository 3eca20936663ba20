"""One short GPU check of rmtlr.curvature (≤ 5 minutes on one H200).

1. Correctness on the device: HVPs of a small CNN with BatchNorm in float64, both methods
   and both BatchNorm modes, against the same operator on the CPU; GGN likewise.
2. Eigenpairs on the device: block-Lanczos ``top_eigenpairs`` (k = 3) of the same CNN in
   float64 against the CPU, and a bfloat16 copy's top eigenvalue (Lanczos basis in float32)
   against the float64 one.
3. Timing: gradient, HVP (both methods) and 100-step Lanczos for VGG-16 without BN
   (P = 15,291,300, 100 classes) on a 10k-sample CIFAR-shaped synthetic set (full-data
   operator over 10 batches of 1000), float32.

    .venv/bin/python benchmarks/gpu_check.py            # on a CUDA machine
    .venv/bin/python benchmarks/gpu_check.py --smoke    # tiny sizes, runs on the CPU

Prints device, date and numbers; asserts nothing (the tests do), but flags a mismatch.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch
from torch import nn

from rmtlr import data
from rmtlr.curvature import GGNOperator, HessianOperator, lanczos, top_eigenpairs
from rmtlr.models import VGG16, count_parameters

# Progress bars would add their own time to what is measured.
os.environ.setdefault("TQDM_DISABLE", "1")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats=3):
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def small_bn_cnn():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Tanh(),
                      nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).double()
    with torch.no_grad():
        for bn in (m[1], m[5]):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return m


def check_correctness(device):
    print(f"\n[1] float64 products on {device} vs CPU double-backward (relative max-norm diff.)")
    model = small_bn_cnn()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (32,), generator=g)
    loss = nn.CrossEntropyLoss()
    P = count_parameters(model)
    v = torch.randn(P, generator=g, dtype=torch.float64)
    worst = 0.0
    for bn_mode in ("eval", "frozen-train"):
        # Reference: double-backward on the CPU, so each device path is also checked
        # against the other HVP method.
        ref = HessianOperator(model, loss, (x, y), method="double-backward",
                              bn_mode=bn_mode) @ v
        for method in ("forward-over-reverse", "double-backward"):
            op = HessianOperator(model, loss, (x, y), method=method, bn_mode=bn_mode,
                                 device=device)
            out = (op @ v.to(device)).cpu()
            err = float((out - ref).abs().max() / ref.abs().max())
            worst = max(worst, err)
            print(f"    HVP {method:<22} bn_mode={bn_mode:<13} {err:.1e}")
        ref = GGNOperator(model, loss, (x, y), bn_mode=bn_mode) @ v
        out = (GGNOperator(model, loss, (x, y), bn_mode=bn_mode, device=device)
               @ v.to(device)).cpu()
        err = float((out - ref).abs().max() / ref.abs().max())
        worst = max(worst, err)
        print(f"    GGN-VP {'':<19} bn_mode={bn_mode:<13} {err:.1e}")
    # Different kernels (cuDNN vs CPU) reorder float64 sums: ~1e-15 relative is expected.
    print(f"    all within 1e-10: {worst < 1e-10}")


def check_eigenpairs(device):
    print(f"\n[2] top_eigenpairs on {device}: float64 vs CPU, bfloat16 vs float64")
    model = small_bn_cnn()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (32,), generator=g)
    loss = nn.CrossEntropyLoss()
    cpu = top_eigenpairs(HessianOperator(model, loss, (x, y)), k=3, num_steps=60, seed=0)
    dev = top_eigenpairs(HessianOperator(model, loss, (x, y), device=device), k=3,
                         num_steps=60, seed=0)
    err = float(abs(dev.values - cpu.values).max() / abs(cpu.values).max())
    print(f"    k=3 values {', '.join(f'{t:.6g}' for t in dev.values)}; max rel. diff. vs CPU "
          f"{err:.1e}; residuals/θ₁ {dev.residual_norms.max() / dev.values[0]:.1e}; "
          f"converged {dev.converged.tolist()}")
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    xb = x.to(torch.bfloat16)
    ref = top_eigenpairs(HessianOperator(bf16, loss, (xb, y), dtype=torch.float64,
                                         device=device), k=1, num_steps=60, seed=0)
    low = top_eigenpairs(HessianOperator(bf16, loss, (xb, y), device=device), k=1,
                         num_steps=60, seed=0)
    rel = abs(low.values[0] - ref.values[0]) / abs(ref.values[0])
    print(f"    bfloat16 top eigenvalue {low.values[0]:.5g} vs float64 {ref.values[0]:.5g}: "
          f"rel. diff. {rel:.1e} (products ~0.5% accurate; within 2%: {rel < 0.02}); "
          f"basis dtype {low.dtype}")


def time_vgg(device, n, batch, steps, num_classes):
    print(f"\n[3] VGG-16 (no BN), {n} CIFAR-shaped synthetic samples in batches of {batch}, "
          f"float32, {device}")
    torch.manual_seed(0)
    model = VGG16(num_classes, batch_norm=False).to(device)
    ds = data.synthetic_images(n=n, num_classes=num_classes, seed=0)
    x_all, y_all = ds.tensors[0].to(device), ds.tensors[1].to(device)
    batches = [(x_all[i:i + batch], y_all[i:i + batch]) for i in range(0, n, batch)]
    loss = nn.CrossEntropyLoss()
    P = count_parameters(model)
    print(f"    P = {P:,}")
    params = list(model.parameters())
    model.eval()
    t_grad = timed(lambda: [torch.autograd.grad(loss(model(xb), yb), params)
                            for xb, yb in batches], device)
    print(f"    full-data gradient: {t_grad:.3f} s")
    v = torch.randn(P, generator=torch.Generator().manual_seed(0)).to(device)
    for method in ("forward-over-reverse", "double-backward"):
        op = HessianOperator(model, loss, batches, method=method)
        t = timed(lambda op=op: op @ v, device)
        print(f"    full-data HVP {method:<22}: {t:.3f} s  (HVP/gradient {t / t_grad:.2f})")
    op = HessianOperator(model, loss, batches, method="auto")
    op @ v
    print(f"    method='auto' chose {op.method_used}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    res = lanczos(op, steps, seed=0)
    over = res.total_seconds - res.matvec_seconds
    print(f"    Lanczos {steps} steps: {res.total_seconds:.1f} s, matvecs {res.matvec_seconds:.1f} s, "
          f"overhead {100 * over / res.total_seconds:.1f}%")
    print(f"    top Ritz values: {', '.join(f'{t:.4g}' for t in res.ritz_values[::-1][:3])}")
    if device.type == "cuda":
        print(f"    peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes; runs on the CPU")
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not a.smoke else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"rmtlr gpu_check | {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | "
          f"device {device} ({name}) | torch {torch.__version__}")
    if device.type == "cpu" and not a.smoke:
        print("no CUDA device: run with --smoke for the CPU smoke test")
        return
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    check_correctness(device)
    check_eigenpairs(device)
    if a.smoke:
        time_vgg(device, n=16, batch=8, steps=3, num_classes=100)
    else:
        time_vgg(device, n=10_000, batch=1000, steps=100, num_classes=100)


if __name__ == "__main__":
    main()

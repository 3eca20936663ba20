"""Shortened `full` path of chapters 8–9 on one device, timed: VGG-16, a few epochs, a
CIFAR-shaped synthetic set, B in {32, 128, 512}, with the paper's augmentation (pad 4,
random crop, flip: ``TrainConfig(augment=True)``); then the chapter-8 spectra at one
checkpoint. Prints per-epoch and per-Lanczos-step times and extrapolates them to the
paper's scale (45,000 images, 300 epochs, m = 100), so the chapters' wall-time estimates
can be replaced by measurements (record them in benchmarks/RESULTS.md).

    .venv/bin/python benchmarks/gpu_full_path.py                 # on a GPU (minutes)
    .venv/bin/python benchmarks/gpu_full_path.py --smoke         # tiny, on CPU (a few minutes)

The synthetic images stand in for CIFAR-100 only for timing: the cost per step does not
depend on the pixel values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from rmtlr import data, experiments, get_profile, models
from rmtlr.train import TrainConfig, train

# Progress bars would add their own time to what is measured.
os.environ.setdefault("TQDM_DISABLE", "1")

PAPER_N, PAPER_EPOCHS, PAPER_M = 45_000, 300, 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, to check it runs")
    ap.add_argument("--device", default=None, help="default: the full profile's device")
    ap.add_argument("--n", type=int, default=10_000, help="training images (CIFAR-shaped)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--lanczos-steps", type=int, default=10, help="timed steps (extrapolated to 100)")
    ap.add_argument("--spectra-samples", type=int, default=2_000, help="full-data set of the spectra")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    if args.smoke:
        args.device = args.device or "cpu"
        args.n, args.epochs, args.batch_sizes = 64, 1, [16, 32]
        args.lanczos_steps, args.spectra_samples = 2, 16
    device = torch.device(args.device) if args.device else get_profile("full").device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(get_profile("full", device=device).describe())
    ds = data.synthetic_images(n=args.n, num_classes=100, seed=0)
    print(f"data: {ds.description}; VGG-16 without BN, P = 15,291,300")
    rows, out = [], {"device": str(device), "n": args.n, "epochs": args.epochs, "runs": []}
    for B in args.batch_sizes:
        cfg = TrainConfig(model="vgg16", dataset="synthetic_images", optimizer="sgd",
                          lr=0.01 * B / 128, momentum=0.9, batch_size=B, epochs=args.epochs,
                          schedule="eq23", probe=min(512, args.n), augment=True)
        train(dataclasses.replace(cfg, steps=2), train_set=ds, device=device,
              progress=False)  # warm-up (cuDNN autotuning)
        rec = train(cfg, train_set=ds, device=device, progress=False)
        per_epoch = rec["wall_time_s"] / args.epochs
        full_run_h = per_epoch * PAPER_N / args.n * PAPER_EPOCHS / 3600
        rows.append((B, rec["samples_per_s"], per_epoch, full_run_h, rec["outcome"]))
        out["runs"].append({"B": B, "samples_per_s": rec["samples_per_s"],
                            "epoch_s": per_epoch, "paper_run_h": full_run_h})
    print(f"\n{'B':>5} {'samples/s':>10} {'s/epoch':>9} {'300 epochs of 45k (h, est.)':>28}  outcome")
    for B, sps, ep, h, oc in rows:
        print(f"{B:>5} {sps:>10.0f} {ep:>9.2f} {h:>28.2f}  {oc}")

    torch.manual_seed(0)
    model = models.build("vgg16", 100).to(device)
    t0 = time.perf_counter()
    spec = experiments.spectrum_at(model, ds, batch_size=min(128, args.spectra_samples // 2),
                                   num_batches=1, lanczos_steps=args.lanczos_steps,
                                   full_samples=args.spectra_samples, variance_vectors=2,
                                   chunk=256, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    # A rough extrapolation: cost is dominated by full-data products: (m steps + 2 variance passes) × N samples per
    # curvature; scale that part to the paper's m = 100 and N = 45,000.
    sample_products = 2 * (args.lanczos_steps + 2) * args.spectra_samples
    per_sample = wall / sample_products
    checkpoint_h = per_sample * 2 * (PAPER_M + 2) * PAPER_N / 3600
    print(f"\nspectra at one checkpoint (Hessian + GGN, m = {args.lanczos_steps}, "
          f"N = {args.spectra_samples}): {wall:.1f} s; λ1 Hessian "
          f"{spec['curvatures']['hessian']['lam1_full']:.3g}")
    print(f"estimate for one checkpoint at m = {PAPER_M}, N = {PAPER_N:,}: {checkpoint_h:.2f} h")
    out.update(spectra_s=wall, spectra_steps=args.lanczos_steps, spectra_samples=args.spectra_samples,
               paper_checkpoint_h=checkpoint_h)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Training throughput (samples/s) of the networks the book trains, via rmtlr.train.

CPU: the quick-profile models (MLP on the Gaussian mixture, small CNN on 3x32x32 images).
GPU (when present): VGG-16 on CIFAR-shaped synthetic data, plain fp32 vs
cudnn.benchmark, channels-last and bf16 autocast. Prints a table; asserts nothing.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_train.py [--steps 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import torch

from rmtlr import data
from rmtlr.train import TrainConfig, train

# Progress bars would add their own time to what is measured.
os.environ.setdefault("TQDM_DISABLE", "1")


def throughput(cfg: TrainConfig, ds, device: str) -> float:
    """Samples/s over ``cfg.steps`` updates, after a short warm-up run."""
    train(dataclasses.replace(cfg, steps=3), train_set=ds, device=device, progress=False)
    return train(cfg, train_set=ds, device=device, progress=False)["samples_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="timed updates per measurement")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    gm = data.load("gaussian_mixture", n=4096)
    img = data.load("images", per_class=200)
    rows = []
    threads = torch.get_num_threads()
    for n in sorted({1, threads}):
        # Tiny matrices: intra-op threads can cost more in synchronisation than they save.
        torch.set_num_threads(n)
        for B in (32, 128, 512):
            cfg = TrainConfig(model="mlp", batch_size=B, steps=args.steps, lr=0.05,
                              model_kw={"hidden": 64})
            rows.append((f"MLP 32-64-64-10, Gaussian mixture, {n} thread(s)", "cpu", B,
                         throughput(cfg, gm, "cpu")))
    torch.set_num_threads(threads)
    for B in (32, 128, 512):
        cfg = TrainConfig(model="small_cnn", batch_size=B, steps=max(5, args.steps // 5), lr=0.05,
                          model_kw={"width": 16})
        rows.append((f"small CNN w=16, {img.description[:28]}…, {threads} thread(s)", "cpu", B,
                     throughput(cfg, img, "cpu")))
    if torch.cuda.is_available():
        vds = data.synthetic_images(n=4096, num_classes=100)
        base = TrainConfig(model="vgg16", batch_size=128, steps=args.steps, lr=0.01,
                           momentum=0.9)
        for label, kw, bench in (("fp32", {}, False), ("fp32 + cudnn.benchmark", {}, True),
                                 ("channels-last + benchmark", {"channels_last": True}, True),
                                 ("bf16 autocast + channels-last + benchmark",
                                  {"channels_last": True, "amp": True}, True)):
            torch.backends.cudnn.benchmark = bench
            rows.append((f"VGG-16 (CIFAR-shaped), {label}", "cuda", 128,
                         throughput(dataclasses.replace(base, **kw), vds, "cuda")))
    print(f"{'model / data':<72} {'device':>6} {'B':>5} {'samples/s':>11}")
    for name, dev, B, sps in rows:
        print(f"{name:<72} {dev:>6} {B:>5} {sps:>11.0f}")


if __name__ == "__main__":
    main()

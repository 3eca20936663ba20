"""Training throughput (samples/s) of the networks the book trains, via rmtlr.train.

CPU: the quick-profile models (MLP on the Gaussian mixture, small CNN on 3x32x32 images),
and the cost of the batch augmentation (`TrainConfig(augment=True)`: pad 4, random crop,
flip) next to a per-image loop doing the same and next to one training step.
GPU (when present): VGG-16 on CIFAR-shaped synthetic data, plain fp32 vs
cudnn.benchmark, channels-last and bf16 autocast, with and without augmentation.
Prints tables; asserts nothing.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_train.py [--steps 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch

from rmtlr import data
from rmtlr.train import TrainConfig, random_crop_flip, train

# Progress bars would add their own time to what is measured.
os.environ.setdefault("TQDM_DISABLE", "1")


def throughput(cfg: TrainConfig, ds, device: str) -> float:
    """Samples/s over ``cfg.steps`` updates, after a short warm-up run."""
    train(dataclasses.replace(cfg, steps=3), train_set=ds, device=device, progress=False)
    return train(cfg, train_set=ds, device=device, progress=False)["samples_per_s"]


def per_image_crop_flip(x: torch.Tensor, g: torch.Generator, padding: int = 4) -> torch.Tensor:
    """The same augmentation one image at a time, as a per-sample transform would do it."""
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    out = torch.empty_like(x)
    H, W = x.shape[-2:]
    for i in range(len(x)):
        dy, dx = torch.randint(0, 2 * padding + 1, (2,), generator=g).tolist()
        crop = padded[i, :, dy:dy + H, dx:dx + W]
        out[i] = crop.flip(-1) if torch.rand(1, generator=g).item() < 0.5 else crop
    return out


def seconds(fn, repeat: int = 20) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def augmentation_table(img) -> None:
    """Batch augmentation vs a per-image loop vs a small-CNN training step, on the CPU."""
    g = torch.Generator().manual_seed(0)
    print(f"\n{'augmentation, CPU, 3x32x32':<34} {'B':>5} {'batched ms':>11} "
          f"{'per-image ms':>13} {'ratio':>6} {'CNN step ms':>12} {'aug/step':>9}")
    for B in (128, 512):
        x = img.tensors[0][:B].contiguous()
        batched = seconds(lambda x=x: random_crop_flip(x, generator=g))
        looped = seconds(lambda x=x: per_image_crop_flip(x, g), repeat=5)
        cfg = TrainConfig(model="small_cnn", batch_size=B, steps=5, lr=0.05,
                          model_kw={"width": 16})
        rec = train(cfg, train_set=img, device="cpu", progress=False)
        step = rec["wall_time_s"] / rec["steps"]
        print(f"{'random_crop_flip vs loop':<34} {B:>5} {1e3 * batched:>11.2f} "
              f"{1e3 * looped:>13.2f} {looped / batched:>6.1f} {1e3 * step:>12.1f} "
              f"{batched / step:>9.3f}")


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
                                  {"channels_last": True, "amp": True}, True),
                                 ("bf16 + channels-last + benchmark + augment",
                                  {"channels_last": True, "amp": True, "augment": True}, True)):
            torch.backends.cudnn.benchmark = bench
            rows.append((f"VGG-16 (CIFAR-shaped), {label}", "cuda", 128,
                         throughput(dataclasses.replace(base, **kw), vds, "cuda")))
    print(f"{'model / data':<72} {'device':>6} {'B':>5} {'samples/s':>11}")
    for name, dev, B, sps in rows:
        print(f"{name:<72} {dev:>6} {B:>5} {sps:>11.0f}")
    augmentation_table(img)


if __name__ == "__main__":
    main()

"""The full path of chapters 8–9 at full width on one GPU, in at most about 9 minutes.

The ONE script a session with a GPU (e.g. an H200) runs. The machine has no internet, so
it trains on CIFAR-10 images: the JPEG subset shipped with rmtlr (9,000 training / 1,000
validation images), or the whole archive when ``RMTLR_CIFAR10_JPEG`` names it (45,000 /
5,000). In order, each stage only if the time left allows it:

1. **Throughput** (about a minute): for VGG-16 without BN (P = 15,245,130 for 10 classes;
   15,291,300 for the paper's 100) and WRN-28×10, samples per second of a training step
   (B = 128, augmentation), of Hessian- and GGN-vector products (batches of 128), and the
   time of one Lanczos step on a full-data operator, with the FLOPs per sample counted
   by ``torch.utils.flop_counter`` (achieved TFLOP/s). → ``throughput.jsonl``.
2. **Spectra across training** (``rmtlr.experiments.run_spectra``, the code of chapter 8):
   VGG-16 (α_0 = 0.05, 4 epochs) and WRN-28×10 (α_0 = 0.1, 2 epochs) trained with the
   paper's recipe; full-data and batch (B = 16, 128) Hessian and GGN spectra with m = 100
   Lanczos steps at two checkpoints each, both noise models' predictions, ε's spectrum at
   the last. The number of full-data samples is chosen from the measured throughput so
   the stage fits its share of the budget (printed). → ``spectra.jsonl``.
3. **A short sweep** (``rmtlr.sweeps.sweep``, the code of chapter 9): VGG-16, SGD with the
   paper's linear rule α = 0.01·B/128 at B = 128, 512, 2048, one epoch each.
   → ``sweep.jsonl``.

Every record carries its provenance (device, date, versions, wall time); the stages write
as they finish, so a run cut short still leaves what it measured. Checkpoints (60–150 MB
each) go to ``--work``, never to ``--out``.

    python benchmarks/gpu_full_path.py --out "$OUT/gpu"        # on the GPU machine
    cp -r <fetched>/gpu/*.jsonl book/results/gpu/             # then commit them
    python benchmarks/gpu_full_path.py --smoke                 # tiny, on the CPU (~2 min)

Afterwards, copy the printed throughput table into ``benchmarks/RESULTS.md``; chapter 8
shows ``book/results/gpu/spectra.jsonl`` beside its CPU run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from rmtlr import curvature, experiments, get_profile, models, sweeps
from rmtlr.results import ResultsFile, provenance
from rmtlr.train import TrainConfig, train

# Progress bars would add their own time to what is measured.
os.environ.setdefault("TQDM_DISABLE", "1")

NETWORKS = {
    "VGG-16, no BN": {"model": "vgg16", "model_kw": {}, "lr": 0.05, "epochs": 4,
                      "checkpoints": [1, 4]},
    "WRN-28-10": {"model": "wrn28_10", "model_kw": {}, "lr": 0.1, "epochs": 2,
                  "checkpoints": [1, 2]},
}
SMOKE_NETWORKS = {  # the same code path with CPU-sized networks
    "VGG-16 at 1/16 width": {"model": "vgg16", "model_kw": {"width": 1 / 16}, "lr": 0.02,
                             "epochs": 2, "checkpoints": [1, 2]},
    "WRN-10-1": {"model": "wrn", "model_kw": {"depth": 10, "width": 1}, "lr": 0.05,
                 "epochs": 1, "checkpoints": [0, 1]},
}
#: Spectra settings tried in order; the first whose estimated time fits is used.
FULL_SAMPLES = (4096, 2048, 1024, 512, 256)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int = 3) -> float:
    fn()  # warm-up (cuDNN autotuning, caches)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def throughput(label: str, spec: dict, train_set, device: torch.device, *, batch: int,
               lanczos_samples: int) -> dict:
    """Samples/s of training and of both curvature products, and one Lanczos step."""
    torch.manual_seed(0)
    C = train_set.num_classes
    model = models.build(spec["model"], C, **spec["model_kw"]).to(device)
    flops = {k: experiments.per_sample_flops(model, k) for k in ("train", "hessian", "ggn")}
    cfg = TrainConfig(model=spec["model"], model_kw=spec["model_kw"], lr=0.01, momentum=0.9,
                      batch_size=batch, steps=20, augment=True, probe=batch)
    train(dataclasses.replace(cfg, steps=3), train_set=train_set, model=model, device=device,
          progress=False)  # warm-up (cuDNN autotuning)
    rec = train(cfg, train_set=train_set, model=model, device=device, progress=False)
    x, y = train_set.tensors[0][:batch].to(device), train_set.tensors[1][:batch].to(device)
    out = {"network": label, "model": spec["model"], "model_kw": spec["model_kw"],
           "P": models.count_parameters(model), "batch": batch,
           "train_samples_per_s": rec["samples_per_s"], "flops_per_sample": flops}
    for name, Op in (("hessian", curvature.HessianOperator), ("ggn", curvature.GGNOperator)):
        op = Op(model, nn.functional.cross_entropy, (x, y))
        v = torch.randn(op.shape[0], device=device)
        out[f"{name}_samples_per_s"] = batch / timed(lambda op=op, v=v: op @ v, device)
    n = min(lanczos_samples, len(train_set))
    full = [(train_set.tensors[0][i:i + 512].to(device), train_set.tensors[1][i:i + 512].to(device))
            for i in range(0, n, 512)]
    op = curvature.HessianOperator(model, nn.functional.cross_entropy, full)
    curvature.lanczos(op, 2, seed=0, progress=False)  # warm-up
    out["lanczos_samples"] = n
    t0 = time.perf_counter()
    curvature.lanczos(op, 5, seed=1, progress=False)
    sync(device)
    out["lanczos_step_s"] = (time.perf_counter() - t0) / 5
    out["achieved_tflops"] = {
        "train": rec["samples_per_s"] * flops["train"] / 1e12,
        "hessian": out["hessian_samples_per_s"] * flops["hessian"] / 1e12,
        "ggn": out["ggn_samples_per_s"] * flops["ggn"] / 1e12}
    return out


def spectra_seconds(kw: dict, tp: dict, checkpoints: int, noise_kw: dict) -> float:
    """Time of the spectra at measured products/s (the count of estimate_cost)."""
    N, m = kw["full_samples"], kw["lanczos_steps"]
    per = (m * N + sum(m * B * kw["num_batches"] for B in kw["batch_sizes"])
           + kw["trace_vectors"] * N + kw["variance_vectors"] * kw["variance_samples"])
    noise = noise_kw["noise_steps"] * sum(N + B for B in kw["batch_sizes"])
    return sum(checkpoints * per / tp[f"{c}_samples_per_s"] for c in kw["curvatures"]) + (
        noise / tp["hessian_samples_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true",
                    help="CPU-sized networks and data, to check the path runs (~2 min)")
    ap.add_argument("--device", default=None, help="default: the gpu profile's device")
    ap.add_argument("--out", default=None,
                    help="folder of the small results files (default book/results/gpu; "
                         "a temporary folder with --smoke)")
    ap.add_argument("--work", default=None,
                    help="folder of the checkpoints (default: a temporary folder)")
    ap.add_argument("--budget-s", type=float, default=540.0,
                    help="wall-time budget in seconds; stages that would not fit are skipped")
    args = ap.parse_args()
    t_start = time.perf_counter()
    device = torch.device(args.device) if args.device else (
        torch.device("cpu") if args.smoke else get_profile("gpu").device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    out = Path(args.out or (tempfile.mkdtemp(prefix="gpu-smoke-") if args.smoke
                            else Path(__file__).resolve().parents[1] / "book/results/gpu"))
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-work-"))
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(device)
    prov["tf32"] = {"cudnn": torch.backends.cudnn.allow_tf32,
                    "matmul": torch.backends.cuda.matmul.allow_tf32}
    print(get_profile("gpu", device=device).describe())
    print("provenance:", json.dumps(prov))
    networks = SMOKE_NETWORKS if args.smoke else NETWORKS
    dataset = "cifar10_jpeg" if os.environ.get("RMTLR_CIFAR10_JPEG") else "images"
    train_set, val_set = experiments.spectra_datasets(dataset, device=device)
    if args.smoke:
        train_set, val_set = (type(d)(d.tensors[0][:n], d.tensors[1][:n], d.description + f" (first {n})",
                                      d.num_classes) for d, n in ((train_set, 192), (val_set, 64)))
    print(f"data: {train_set.description}; {len(train_set)} train / {len(val_set)} val")

    def left() -> float:
        return args.budget_s - (time.perf_counter() - t_start)

    # 1. Throughput.
    tp_file = ResultsFile(out / "throughput.jsonl")
    tps = {}
    print(f"\n{'network':<22}{'P':>12}{'train/s':>10}{'HVP/s':>9}{'GGN-VP/s':>10}"
          f"{'Lanczos step':>14}{'TFLOP/s train/HVP/GGN':>24}")
    for label, spec in networks.items():
        t0 = time.perf_counter()
        tp = throughput(label, spec, train_set, device, batch=32 if args.smoke else 128,
                        lanczos_samples=128 if args.smoke else 2048)
        tp_file.append({**tp, **prov, "wall_time_s": time.perf_counter() - t0,
                        "data": train_set.description})
        tps[label] = tp
        a = tp["achieved_tflops"]
        print(f"{label:<22}{tp['P']:>12,}{tp['train_samples_per_s']:>10.0f}"
              f"{tp['hessian_samples_per_s']:>9.0f}{tp['ggn_samples_per_s']:>10.0f}"
              f"{tp['lanczos_step_s']:>12.3f} s   {a['train']:.3g} / {a['hessian']:.3g} / "
              f"{a['ggn']:.3g}  (N = {tp['lanczos_samples']})")

    # 2. Spectra across training, sized to the time left (two thirds of it).
    noise_kw = {"noise_steps": 10 if args.smoke else 100, "noise_curvatures": ["hessian"]}
    share = {label: (left() - 60) * 2 / 3 / len(networks) for label in networks}
    for label, spec in networks.items():
        base = {"batch_sizes": [4, 16] if args.smoke else [16, 128], "num_batches": 5,
                "lanczos_steps": 8 if args.smoke else 100, "variance_samples": 64 if args.smoke
                else 1024, "variance_unit": 8 if args.smoke else 32, "variance_vectors": 4,
                "trace_vectors": 10, "curvatures": ["hessian", "ggn"]}
        chosen = None
        for N in ((96,) if args.smoke else FULL_SAMPLES):
            for nb in (5, 2):
                kw = {**base, "full_samples": min(N, len(train_set) // 2), "num_batches": nb}
                train_s = spec["epochs"] * len(train_set) / tps[label]["train_samples_per_s"]
                est = train_s + spectra_seconds(kw, tps[label], len(spec["checkpoints"]), noise_kw)
                if est < min(share[label], left() - 30) or args.smoke:
                    chosen = (kw, est)
                    break
            if chosen:
                break
        if chosen is None:
            print(f"\n[spectra] {label}: skipped, not even N = 256 fits in {share[label]:.0f} s")
            continue
        kw, est = chosen
        print(f"\n[spectra] {label}: N = {kw['full_samples']}, m = {kw['lanczos_steps']}, "
              f"{kw['num_batches']} batches of each B in {kw['batch_sizes']}, checkpoints "
              f"{spec['checkpoints']}; estimated {est:.0f} s ({left():.0f} s left)")
        t0 = time.perf_counter()
        recs = experiments.run_spectra({label: spec}, dataset=dataset, spectra_kw=kw,
                                       noise_kw=noise_kw, results=work, train_set=train_set,
                                       val_set=val_set, device=device, profile="gpu")[label]
        store = ResultsFile(out / "spectra.jsonl")
        have = {r.get("key") for r in store.records()}
        for r in recs:
            if r["key"] not in have:
                store.append({**r, "network": label, "tf32": prov["tf32"]})
        for row in experiments.spectra_table(recs, network=label):
            print(f"  epoch {row['epoch']:>3} {row['curvature']:<8} B={row['B']:<4} "
                  f"λ1 full {row['lam1_full']:9.3f}  batch {row['lam1_batch']:9.3f}  "
                  f"Thm 4 {row['theorem4']:9.3f}  Wishart {row['wishart'] or float('nan'):9.3f}")
        print(f"  took {time.perf_counter() - t0:.0f} s; val accuracy "
              f"{recs[-1]['history']['val_acc'][-1] if recs[-1]['history']['val_acc'] else None}")

    # 3. A short sweep (chapter 9's code): SGD, the paper's linear rule, one epoch each.
    label, spec = next(iter(networks.items()))
    grid = [16, 32, 64] if args.smoke else [128, 512, 2048]
    sweep_s = sum(len(train_set) / tps[label]["train_samples_per_s"] * 1.5 for _ in grid)
    if left() - 15 > sweep_s or args.smoke:
        t0 = time.perf_counter()
        base_cfg = TrainConfig(model=spec["model"], model_kw=spec["model_kw"], dataset=dataset,
                               optimizer="sgd", lr=0.01, momentum=0.9, batch_size=128,
                               epochs=1, schedule="eq23", augment=True, probe=512)
        recs = sweeps.sweep(grid, "linear:0.01:128", out / "sweep.jsonl", base_cfg,
                            train_set=train_set, val_set=val_set, device=device, profile="gpu")
        print(f"\n[sweep] {label}, linear 0.01·B/128, 1 epoch: " + ", ".join(
            f"B={r['config']['batch_size']}: {r['outcome']}, val {r['curves']['val_acc'][-1]:.3f}"
            for r in recs) + f" ({time.perf_counter() - t0:.0f} s)")
    else:
        print(f"\n[sweep] skipped: {sweep_s:.0f} s needed, {left():.0f} s left")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; results in {out}; checkpoints in {work}")


if __name__ == "__main__":
    main()

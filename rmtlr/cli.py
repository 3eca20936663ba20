"""Command line: ``rmtlr predict``, ``sweep``, ``spectrum``, ``lr-rule`` (for scripts and clusters).

Run ``rmtlr COMMAND --help`` for every option. Results are JSON/JSONL so that figures can
be redrawn without recomputing, and ``rmtlr sweep`` resumes where it stopped. Under
``torchrun`` (``WORLD_SIZE`` > 1) ``predict`` and ``sweep`` initialise ``torch.distributed``
themselves (NCCL on CUDA, else gloo) and share the work over the processes; only rank 0
prints and writes.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _int_list(text: str, lo: int = 1) -> list[int]:
    try:
        vals = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from err
    if not vals or min(vals) < lo:
        raise argparse.ArgumentTypeError(f"expected integers >= {lo}, got {text!r}")
    return vals


def _seed_list(text: str) -> list[int]:
    return _int_list(text, lo=0)


def _text(text: str) -> str:
    """Check a path argument is not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def _finite_number(text: str, *, strict: bool) -> float:
    """Parse a finite float > 0 (``strict``) or >= 0, for argparse ``type=``."""
    try:
        v = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from err
    if not np.isfinite(v) or not (v > 0 if strict else v >= 0):
        bound = "> 0" if strict else ">= 0"
        raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}")
    return v


def _positive(text: str) -> float:
    return _finite_number(text, strict=True)


def _nonnegative(text: str) -> float:
    return _finite_number(text, strict=False)


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from err
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from err
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def _shard(text: str) -> tuple[int, int]:
    """Parse ``I/N`` with 0 <= I < N (a job-array index and the array's size)."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/4), got {text!r}") from err
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return i, n


def _fraction(text: str) -> float:
    v = _nonnegative(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return v


def _json_dict(text: str) -> dict:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}") from err
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return d


def _common_model_data(p: argparse.ArgumentParser) -> None:
    from rmtlr.data import DATASET_NAMES
    from rmtlr.models import MODEL_NAMES

    p.add_argument("--model", default="mlp", choices=MODEL_NAMES,
                   help="network (rmtlr.models.build name; default: %(default)s)")
    p.add_argument("--model-kw", type=_json_dict, default={}, metavar="JSON",
                   help='extra model arguments as JSON, e.g. \'{"hidden": 128}\'')
    p.add_argument("--dataset", default="gaussian_mixture", choices=DATASET_NAMES,
                   help="data set (rmtlr.data.load name; 'images' = CIFAR-10 JPEG if present, "
                        "else the synthetic stand-in; default: %(default)s)")
    p.add_argument("--data-kw", type=_json_dict, default={}, metavar="JSON",
                   help='extra data arguments as JSON, e.g. \'{"n": 8192}\' or '
                        '\'{"per_class": 500}\'')
    p.add_argument("--download", action="store_true",
                   help="allow torchvision to download CIFAR when it is absent")
    p.add_argument("--device", default=None,
                   help="torch device, e.g. cpu, cuda, cuda:1 (default: the profile's)")
    p.add_argument("--profile", default=None, choices=("quick", "gpu", "full"),
                   help="run profile: its device (quick: cpu) and default sizes, recorded "
                        "with the results (default: $RMTLR_PROFILE, else full with CUDA)")


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="rmtlr",
        description="Learning rate vs batch size from random-matrix theory "
                    "(Granziol, Zohren & Roberts, JMLR 2022).")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sw = sub.add_parser(
        "sweep", help="train at several batch sizes with a learning-rate rule (resumable)",
        description="Train one run per (batch size, seed) with lr = RULE(B) and append each "
                    "finished run to a JSONL results file. Runs already in the file are "
                    "skipped, so re-running the same command after a kill resumes it.")
    _common_model_data(sw)
    sw.add_argument("--batch-sizes", type=_int_list, default=None, metavar="B1,B2,...",
                    help="comma-separated batch sizes, each <= the training-set size N "
                         "(default: the profile's grid, those <= N)")
    sw.add_argument("--lr-rule", required=True, metavar="RULE",
                    help="'linear:ALPHA0:B0' (lr = ALPHA0*B/B0, the SGD law), "
                         "'sqrt:ALPHA0:B0' (lr = ALPHA0*sqrt(B/B0), the Adam law) or "
                         "'const:ALPHA'")
    sw.add_argument("--optimizer", default="sgd", choices=("sgd", "adam", "adamw"),
                    help="optimiser (default: %(default)s)")
    sw.add_argument("--epochs", type=_count, default=1,
                    help="passes over the training set (default: %(default)s)")
    sw.add_argument("--steps", type=_count, default=None,
                    help="fixed number of updates instead of --epochs")
    sw.add_argument("--momentum", type=float, default=0.0,
                    help="SGD momentum rho in [0, 1) (paper: 0.9; default: %(default)s)")
    sw.add_argument("--weight-decay", type=float, default=0.0,
                    help="L2 coefficient (AdamW: decoupled; paper: 5e-4; default: %(default)s)")
    sw.add_argument("--eps", type=_positive, default=1e-8,
                    help="Adam damping delta (default: %(default)s)")
    sw.add_argument("--schedule", default="constant", choices=("constant", "eq23"),
                    help="constant rate or the paper's Eq. 23 schedule (default: %(default)s)")
    sw.add_argument("--augment", action="store_true",
                    help="pad-4 / random-crop / horizontal-flip augmentation of image batches")
    sw.add_argument("--seeds", type=_seed_list, default=None, metavar="S1,S2,...",
                    help="seeds (>= 0), one run per batch size and seed (default: the "
                         "profile's number of seeds, 0, 1, ...)")
    sw.add_argument("--results", type=_text, required=True, metavar="PATH",
                    help="JSONL results file (appended to; created if missing; several "
                         "sweeps may share it: each run is trained once)")
    sw.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                    help="run only shard I of N (0 <= I < N): the runs whose position in "
                         "the grid (batch size, then seed) is I mod N. For job arrays: N "
                         "jobs with --shard $SLURM_ARRAY_TASK_ID/N share one --results file; "
                         "a killed job is rerun with the same command and trains only what "
                         "is missing")

    pr = sub.add_parser(
        "predict", help="predict the largest stable learning rate per batch size for your "
                        "network (rmtlr.predict_lr)",
        description="Measure the curvature of your network on your data (full-data top "
                    "Hessian eigenvalue by Lanczos, Algorithm 1's Hessian variance in random "
                    "directions and along the top eigenvector, the Gauss-Newton bulk level, "
                    "and the batch top eigenvalue at a few calibration batch sizes) and "
                    "predict, per batch size, the batch top eigenvalue and the largest "
                    "stable learning rate: SGD 2(1+momentum)/lambda'_1(B), or Adam's bound. "
                    "Your code comes in through --entry: a function taking no arguments "
                    "that returns (model, loss_fn, dataset), with loss_fn(output, y) the "
                    "mean or sum over a batch and dataset a map-style torch Dataset (or a "
                    "DataLoader, or a list of (x, y) batches) without random augmentation. "
                    "Writes the result as JSON (--output) and prints a table. Under torchrun "
                    "the work is shared over the processes.")
    pr.add_argument("--entry", required=True, metavar="MODULE:FUNCTION",
                    help="where your model and data come from: an importable module "
                         "(the current directory is on the path), or a file path "
                         "'path/to/file.py:make', and the function to call")
    pr.add_argument("--batch-sizes", type=_int_list, required=True, metavar="B1,B2,...",
                    help="batch sizes to predict for, each <= the number of samples N")
    pr.add_argument("--checkpoint", type=_text, default=None, metavar="PATH",
                    help="a state_dict (or a dict with one under 'state_dict') loaded into "
                         "the model before measuring; default: the weights --entry returns")
    pr.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"),
                    help="optimiser the rates are for (default: %(default)s)")
    pr.add_argument("--momentum", type=_fraction, default=0.0,
                    help="SGD heavy-ball momentum rho in [0, 1): the stable rate is "
                         "2(1+rho)/lambda (default: %(default)s)")
    pr.add_argument("--delta", type=_positive, default=1e-8,
                    help="Adam damping delta (PyTorch's eps; default: %(default)s)")
    pr.add_argument("--noise-model", default="directional",
                    choices=("directional", "wigner", "wishart"),
                    help="model of the batch top eigenvalue (default: %(default)s, Theorem 4 "
                         "with the noise measured along the top eigenvector)")
    pr.add_argument("--calibration-batch-sizes", type=lambda t: _int_list(t, lo=2),
                    default=None, metavar="B1,B2,...",
                    help="batch sizes whose batch top eigenvalue is measured for the "
                         "spread (default: the smallest, middle and largest of "
                         "--batch-sizes up to N/4)")
    pr.add_argument("--batches-per-size", type=_count, default=4,
                    help="random batches per calibration size, >= 2 (default: %(default)s)")
    pr.add_argument("--lanczos-steps", type=_count, default=20,
                    help="Lanczos steps for the full-data eigenvalue (default: %(default)s)")
    pr.add_argument("--num-vectors", type=_count, default=8,
                    help="random vectors of Algorithm 1 and the trace, >= 2 "
                         "(default: %(default)s)")
    pr.add_argument("--variance-samples", type=_count, default=512,
                    help="samples of the subset for the variances (default: %(default)s)")
    pr.add_argument("--full-samples", type=_count, default=None,
                    help="samples of the full-data operator (default: all; fewer are "
                         "corrected through the noise model)")
    pr.add_argument("--recalibrate-bn", action="store_true",
                    help="first set BatchNorm running statistics to their average over the "
                         "data (for a network at initialisation)")
    pr.add_argument("--device", default=None,
                    help="torch device for the products (default: the model's; under "
                         "torchrun with CUDA, this process's GPU)")
    pr.add_argument("--seed", type=_seed, default=0, help="seed of subsets and batches (>= 0)")
    pr.add_argument("--output", type=_text, default=None, metavar="PATH",
                    help="write the result as JSON to this file")

    sp = sub.add_parser(
        "spectrum", help="top Hessian eigenvalues of a network: full data vs one batch",
        description="Build a network (at initialisation, or from --checkpoint), and compute "
                    "the top eigenvalues of the Hessian of the mean cross-entropy on the first "
                    "--n-full training samples and on batches of each --batch-sizes, by "
                    "Lanczos (rmtlr.curvature). Prints JSON; writes it to --output if given.")
    _common_model_data(sp)
    sp.add_argument("--batch-sizes", type=_int_list, default=[128], metavar="B1,B2,...",
                    help="batch sizes of the batch Hessians (default: 128)")
    sp.add_argument("--n-full", type=_count, default=2048,
                    help="samples that stand for the full data set (default: %(default)s)")
    sp.add_argument("--lanczos-steps", type=_count, default=None,
                    help="Lanczos iterations m (paper: 100; default: the profile's, "
                         "quick 40, full 100)")
    sp.add_argument("--top-k", type=_count, default=3,
                    help="how many top eigenvalues to report (default: %(default)s)")
    sp.add_argument("--checkpoint", type=_text, default=None, metavar="PATH",
                    help="a state_dict saved with torch.save, or a dict holding one under "
                         "'state_dict' (as rmtlr.experiments writes); default: random "
                         "initialisation")
    sp.add_argument("--seed", type=_seed, default=0, help="initialisation/batch seed (>= 0)")
    sp.add_argument("--output", type=_text, default=None, metavar="PATH",
                    help="also write the JSON to this file")

    lr = sub.add_parser(
        "lr-rule", help="print learning rates per batch size from a scaling rule or theory",
        description="Print lr(B) for the linear (SGD) or square-root (Adam) rule and, when "
                    "--lam1, --params and --sigma-eps are given, Theorem 4's SGD bound "
                    "2/lambda'_1 "
                    "and Adam's bulk-edge bound (Eq. 31) for comparison.")
    lr.add_argument("rule", choices=("linear", "sqrt"),
                    help="linear: ALPHA0*B/B0 (SGD, Sec. 10.1); sqrt: ALPHA0*sqrt(B/B0) "
                         "(Adam, Eq. 31)")
    lr.add_argument("--alpha0", type=_positive, required=True,
                    help="learning rate at the reference batch size B0 (> 0)")
    lr.add_argument("--b0", type=_positive, default=128.0,
                    help="reference batch size B0 (default: %(default)s)")
    lr.add_argument("--batch-sizes", type=_int_list, default=[16, 32, 64, 128, 256, 512, 1024],
                    metavar="B1,B2,...", help="batch sizes to tabulate")
    lr.add_argument("--n", type=_positive, default=float("inf"),
                    help="training-set size N for the effective batch size (default: inf)")
    lr.add_argument("--lam1", type=_positive, default=None,
                    help="top full-data Hessian eigenvalue lambda_1 (for the theory columns)")
    lr.add_argument("--params", type=_positive, default=None,
                    help="number of parameters P (for the theory columns)")
    lr.add_argument("--sigma-eps", type=_positive, default=None,
                    help="per-entry standard deviation sigma_eps of the per-sample Hessians "
                         "(Theorem 4; for the theory columns)")
    lr.add_argument("--delta", type=_positive, default=1e-8,
                    help="Adam damping delta for the Adam bound (default: %(default)s)")
    lr.add_argument("--eta", type=_nonnegative, default=0.0,
                    help="Adam preconditioner scale eta along bulk-edge directions, >= 0 "
                         "(default: %(default)s)")
    return top


def _profile_and_device(a):
    """Return the ``--profile`` (default: the active one) and the device it and ``--device`` give.

    An unusable ``--device`` (a typo, ``cuda`` without CUDA, ``meta``) is a ValueError.
    """
    from rmtlr.profiles import get_profile, resolve_device

    prof = get_profile(a.profile)
    dev = resolve_device(a.device, profile=prof, argument="--device")
    return get_profile(prof.name, device=dev), dev


def _load_data(a):
    from rmtlr import data

    kw = dict(a.data_kw)
    if a.dataset in ("cifar10", "cifar100"):
        kw["download"] = a.download
    try:
        return data.load(a.dataset, "train", **kw)
    except TypeError as err:
        raise ValueError(f"--data-kw {json.dumps(a.data_kw)} does not fit --dataset "
                         f"{a.dataset}: {err}") from err


def _build_model(a, ds):
    """Build ``--model`` for ``ds`` (in eval mode) and run one sample through it.

    Bad ``--model-kw`` or a model that does not take this data stop here with a message.
    """
    import torch

    from rmtlr import models
    from rmtlr.train import num_classes_of

    try:
        model = models.build(a.model, num_classes_of(ds), **a.model_kw)
    except TypeError as err:
        raise ValueError(f"--model-kw {json.dumps(a.model_kw)} does not fit --model "
                         f"{a.model}: {err}") from err
    model.eval()  # batch statistics need more than the one sample tried here
    try:
        with torch.no_grad():
            model(ds[0][0].unsqueeze(0))
    except RuntimeError as err:
        raise ValueError(f"--model {a.model} does not take --dataset {a.dataset} inputs "
                         f"(check --model-kw / --data-kw): {err}") from err
    return model


def _load_checkpoint(a, model, fits: str | None = None) -> None:
    """Load ``--checkpoint`` into ``model`` (``fits`` names the model in messages).

    A state_dict, or a dict with one under ``state_dict``; anything else, or another
    model's weights, is a ValueError.
    """
    import torch

    path = a.checkpoint
    if Path(path).is_dir():
        raise ValueError(f"--checkpoint {path!r} is a directory, not a checkpoint file")
    if not Path(path).exists():
        raise FileNotFoundError(f"--checkpoint {path!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any file may be given: pickle, zip and torch errors alike
        raise ValueError(f"--checkpoint {path!r} is not a PyTorch checkpoint that can be "
                         f"loaded safely ({type(err).__name__}: {str(err).splitlines()[0]})"
                         ) from err
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if not (isinstance(state, Mapping) and state and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())):
        raise ValueError(f"--checkpoint {path!r} holds no state_dict (a dict of tensors, "
                         f"or a dict with one under 'state_dict'); got a {type(obj).__name__}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        fits = fits or f"--model {a.model} with --model-kw {json.dumps(a.model_kw)}"
        raise ValueError(f"--checkpoint {path!r} does not fit {fits}: {detail[:400]}") from err


def _init_distributed(device: str | None) -> int:
    """Join the process group when launched by torchrun; return this process's rank.

    ``WORLD_SIZE`` > 1 in the environment means torchrun (or another launcher setting the
    ``env://`` variables) started several copies: NCCL when they use CUDA (each on the GPU
    ``LOCAL_RANK``), gloo otherwise.
    """
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.get_rank() if dist.is_initialized() else 0
    cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank()


def _load_entry(text: str):
    """Import ``module:function`` (or ``file.py:function``) and return what it returns."""
    mod_name, sep, fn_name = text.rpartition(":")
    if not sep or not mod_name or not fn_name:
        raise ValueError(f"--entry must be MODULE:FUNCTION or path/to/file.py:FUNCTION, got "
                         f"{text!r}")
    if mod_name.endswith(".py") or os.sep in mod_name:
        path = Path(mod_name)
        if not path.is_file():
            raise FileNotFoundError(f"--entry: no file {mod_name!r}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as err:
            raise ValueError(f"--entry: cannot import module {mod_name!r} ({err})") from err
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise ValueError(f"--entry: {mod_name!r} has no function {fn_name!r}")
    if not callable(fn):
        raise TypeError(f"--entry: {mod_name}.{fn_name} is not callable")
    out = fn()
    if not (isinstance(out, (tuple, list)) and len(out) == 3):
        raise ValueError(f"--entry: {text} must return (model, loss_fn, dataset), got "
                         f"{type(out).__name__}")
    return out


def _cmd_predict(a) -> int:
    from rmtlr.predict import predict_lr, recalibrate_batch_norm
    from rmtlr.results import check_writable

    rank = _init_distributed(a.device)
    if a.output and rank == 0:
        check_writable(a.output, what="--output")  # before the minutes of computing
    model, loss_fn, dataset = _load_entry(a.entry)
    if a.checkpoint:
        _load_checkpoint(a, model, fits=f"the model of --entry {a.entry}")
    if a.recalibrate_bn:
        recalibrate_batch_norm(model, dataset, device=a.device)
    res = predict_lr(model, loss_fn, dataset, a.batch_sizes, optimizer=a.optimizer,
                     momentum=a.momentum, delta=a.delta, noise_model=a.noise_model,
                     calibration_batch_sizes=a.calibration_batch_sizes,
                     batches_per_size=a.batches_per_size, num_steps=a.lanczos_steps,
                     num_vectors=a.num_vectors, variance_samples=a.variance_samples,
                     full_samples=a.full_samples, device=a.device, seed=a.seed,
                     progress=None if rank == 0 else False)
    if rank != 0:
        return 0
    inp = res.inputs
    print(f"P = {inp.P}, N = {inp.N}, full-data lambda_1 = {inp.lam1:.5g}, noise model: "
          f"{res.noise_model}, optimizer: {res.optimizer}, {res.seconds['total']:.1f} s"
          + (f" on {res.world_size} processes" if res.world_size > 1 else ""))
    print(res.table())
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            json.dump(res.to_dict(), f, indent=1, allow_nan=False)
            f.write("\n")
        print(f"written to {a.output}")
    return 0


def _cmd_sweep(a) -> int:
    from rmtlr.sweeps import sweep
    from rmtlr.train import TrainConfig

    base = TrainConfig(model=a.model, dataset=a.dataset, optimizer=a.optimizer,
                       epochs=a.epochs, steps=a.steps, momentum=a.momentum,
                       weight_decay=a.weight_decay, eps=a.eps, schedule=a.schedule,
                       augment=a.augment, model_kw=a.model_kw, data_kw=a.data_kw)
    rank = _init_distributed(a.device)
    prof, device = _profile_and_device(a)
    train_set = _load_data(a)
    _build_model(a, train_set)
    sizes = a.batch_sizes
    if sizes is None:
        sizes = [b for b in prof.batch_sizes if b <= len(train_set)]
        if not sizes:
            raise ValueError(f"no batch size of profile {prof.name} {prof.batch_sizes} is <= "
                             f"N = {len(train_set)}; give --batch-sizes")
    seeds = a.seeds if a.seeds is not None else list(range(prof.seeds))
    shard = "" if a.shard is None else f", shard {a.shard[0]}/{a.shard[1]}"
    if rank == 0:
        print(f"profile: {prof.name}, device: {device}, batch sizes: {sizes}, seeds: "
              f"{seeds}{shard}")
    recs = sweep(sizes, a.lr_rule, a.results, base, seeds=seeds, train_set=train_set,
                 device=device, profile=prof.name, shard=a.shard)
    if rank != 0:
        return 0
    print(f"data: {train_set.description}")
    print(f"{'B':>6} {'seed':>4} {'lr':>10} {'outcome':>9} {'final loss':>10}")
    for r in recs:
        c = r["config"]
        fl = "-" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
        print(f"{c['batch_size']:>6} {c['seed']:>4} {c['lr']:>10.4g} {r['outcome']:>9} {fl:>10}")
    print(f"{len(recs)} runs in {a.results}")
    return 0


def _cmd_spectrum(a) -> int:
    import torch

    from rmtlr import models
    from rmtlr.results import check_writable

    try:
        from rmtlr.curvature import HessianOperator, lanczos
    except ImportError as err:
        print(f"rmtlr spectrum needs rmtlr.curvature, which is not available here ({err})",
              file=sys.stderr)
        return 2
    prof, device = _profile_and_device(a)
    if a.output:
        check_writable(a.output, what="--output")  # before the minutes of computing
    steps = a.lanczos_steps if a.lanczos_steps is not None else prof.lanczos_steps
    ds = _load_data(a)
    if max(a.batch_sizes) > len(ds) or a.n_full > len(ds):
        raise ValueError(f"batch sizes and --n-full must be <= N = {len(ds)}")
    torch.manual_seed(a.seed)
    model = _build_model(a, ds)
    if a.checkpoint:
        _load_checkpoint(a, model)
    model = model.to(device).eval()
    loss = torch.nn.CrossEntropyLoss()

    def top(idx) -> list[float]:
        sub = torch.utils.data.Subset(ds, [int(i) for i in idx])
        xs, ys = zip(*(sub[i] for i in range(len(sub))))
        batch = (torch.stack(xs).to(device), torch.as_tensor(ys).to(device))
        ritz = lanczos(HessianOperator(model, loss, [batch]), steps, seed=a.seed).ritz_values
        return [float(v) for v in ritz[::-1][:a.top_k]]

    g = np.random.default_rng(a.seed)
    out = {"model": a.model, "P": models.count_parameters(model), "data": ds.description,
           "profile": prof.name, "device": str(device), "lanczos_steps": steps,
           "full": {"n": a.n_full, "top": top(range(a.n_full))}, "batch": {}}
    for B in a.batch_sizes:
        out["batch"][str(B)] = top(g.choice(len(ds), B, replace=False))
    text = json.dumps(out, indent=1)
    print(text)
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


def _cmd_lr_rule(a) -> int:
    from rmtlr.scaling import adam_max_lr, linear_rule, sgd_max_lr, sqrt_rule

    B = np.asarray(a.batch_sizes, dtype=float)
    rule = linear_rule if a.rule == "linear" else sqrt_rule
    lrs = np.atleast_1d(rule(B, alpha0=a.alpha0, B0=a.b0))
    theory = None not in (a.lam1, a.params, a.sigma_eps)
    cols = f"{'B':>7} {a.rule + ' lr':>12}"
    if theory:
        sgd = np.atleast_1d(sgd_max_lr(B, N=a.n, lam1=a.lam1, P=a.params, sigma_eps=a.sigma_eps))
        adam = np.atleast_1d(adam_max_lr(B, N=a.n, P=a.params, sigma_eps=a.sigma_eps,
                                         delta=a.delta, eta_edge=a.eta))
        cols += f" {'SGD 2/lam1_B':>13} {'Adam bound':>11}"
    print(cols)
    for i, b in enumerate(B):
        row = f"{int(b):>7} {lrs[i]:>12.5g}"
        if theory:
            row += f" {sgd[i]:>13.5g} {adam[i]:>11.5g}"
        print(row)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``rmtlr`` console script.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0, or 2 after an ``error:`` line for bad input.
    """
    args = _parser().parse_args(argv)
    handler = {"predict": _cmd_predict, "sweep": _cmd_sweep, "spectrum": _cmd_spectrum,
               "lr-rule": _cmd_lr_rule}
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if str(message) not in seen:  # the CLI and the library may both warn of one thing
            seen.add(str(message))
            print(f"rmtlr {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = show
            return handler[args.command](args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"rmtlr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``rmtlr sweep``, ``rmtlr spectrum``, ``rmtlr lr-rule`` (for scripts and clusters).

Run ``rmtlr COMMAND --help`` for every option. Results are JSON/JSONL so that figures can
be redrawn without recomputing, and ``rmtlr sweep`` resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

__all__ = ["main"]


def _int_list(text: str, lo: int = 1) -> list[int]:
    try:
        vals = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err
    if not vals or min(vals) < lo:
        raise argparse.ArgumentTypeError(f"expected integers >= {lo}, got {text!r}")
    return vals


def _seed_list(text: str) -> list[int]:
    return _int_list(text, lo=0)


def _finite_number(text: str, *, strict: bool) -> float:
    """A finite float > 0 (``strict``) or >= 0, for argparse ``type=``."""
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


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from err
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
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
                   help='extra data arguments as JSON, e.g. \'{"n": 8192}\' or \'{"per_class": 500}\'')
    p.add_argument("--download", action="store_true",
                   help="allow torchvision to download CIFAR when it is absent")
    p.add_argument("--device", default=None,
                   help="torch device, e.g. cpu, cuda, cuda:1 (default: the profile's)")
    p.add_argument("--profile", default=None, choices=("quick", "full"),
                   help="run profile recorded with the results (default: $RMTLR_PROFILE)")


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
    sw.add_argument("--batch-sizes", type=_int_list, required=True, metavar="B1,B2,...",
                    help="comma-separated batch sizes, each <= the training-set size N")
    sw.add_argument("--lr-rule", required=True, metavar="RULE",
                    help="'linear:ALPHA0:B0' (lr = ALPHA0*B/B0, the SGD law), "
                         "'sqrt:ALPHA0:B0' (lr = ALPHA0*sqrt(B/B0), the Adam law) or "
                         "'const:ALPHA'")
    sw.add_argument("--optimizer", default="sgd", choices=("sgd", "adam", "adamw"),
                    help="optimiser (default: %(default)s)")
    sw.add_argument("--epochs", type=int, default=1,
                    help="passes over the training set (default: %(default)s)")
    sw.add_argument("--steps", type=int, default=None,
                    help="fixed number of updates instead of --epochs")
    sw.add_argument("--momentum", type=float, default=0.0,
                    help="SGD momentum rho in [0, 1) (paper: 0.9; default: %(default)s)")
    sw.add_argument("--weight-decay", type=float, default=0.0,
                    help="L2 coefficient (AdamW: decoupled; paper: 5e-4; default: %(default)s)")
    sw.add_argument("--eps", type=_positive, default=1e-8,
                    help="Adam damping delta (default: %(default)s)")
    sw.add_argument("--schedule", default="constant", choices=("constant", "eq23"),
                    help="constant rate or the paper's Eq. 23 schedule (default: %(default)s)")
    sw.add_argument("--seeds", type=_seed_list, default=[0], metavar="S1,S2,...",
                    help="seeds (>= 0), one run per batch size and seed (default: 0)")
    sw.add_argument("--results", required=True, metavar="PATH",
                    help="JSONL results file (appended to; created if missing)")

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
    sp.add_argument("--lanczos-steps", type=_count, default=40,
                    help="Lanczos iterations m (paper: 100; default: %(default)s)")
    sp.add_argument("--top-k", type=_count, default=3,
                    help="how many top eigenvalues to report (default: %(default)s)")
    sp.add_argument("--checkpoint", default=None, metavar="PATH",
                    help="state_dict saved with torch.save (default: random initialisation)")
    sp.add_argument("--seed", type=int, default=0, help="initialisation/batch seed")
    sp.add_argument("--output", default=None, metavar="PATH", help="also write the JSON here")

    lr = sub.add_parser(
        "lr-rule", help="print learning rates per batch size from a scaling rule or theory",
        description="Print lr(B) for the linear (SGD) or square-root (Adam) rule and, when "
                    "--lam1, --params and --sigma are given, Theorem 4's SGD bound 2/lambda'_1 "
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
    lr.add_argument("--sigma", type=_positive, default=None,
                    help="per-entry Hessian noise sigma_eps (for the theory columns)")
    lr.add_argument("--delta", type=_positive, default=1e-8,
                    help="Adam damping delta for the Adam bound (default: %(default)s)")
    lr.add_argument("--eta", type=_nonnegative, default=0.0,
                    help="Adam preconditioner scale eta along bulk-edge directions, >= 0 "
                         "(default: %(default)s)")
    return top


def _device(a):
    """The ``--device`` as a torch.device, or None for the profile's; a ValueError (exit 2)
    if torch cannot place a tensor there (a typo, or cuda on a host without it)."""
    import torch

    if a.device is None:
        return None
    try:
        dev = torch.device(a.device)
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as err:  # torch says "not compiled with CUDA" by assert
        raise ValueError(f"--device {a.device!r} is not usable here: {err}") from err
    return dev


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
    """Build ``--model`` for ``ds`` (in eval mode) and run one sample through it, so that
    bad ``--model-kw`` or a model that does not take this data stop here with a message."""
    import torch

    from rmtlr import models

    try:
        model = models.build(a.model, ds.num_classes, **a.model_kw)
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


def _cmd_sweep(a) -> int:
    from rmtlr.train import TrainConfig, sweep

    base = TrainConfig(model=a.model, dataset=a.dataset, optimizer=a.optimizer,
                       epochs=a.epochs, steps=a.steps, momentum=a.momentum,
                       weight_decay=a.weight_decay, eps=a.eps, schedule=a.schedule,
                       model_kw=a.model_kw, data_kw=a.data_kw)
    device = _device(a)
    train_set = _load_data(a)
    _build_model(a, train_set)
    recs = sweep(a.batch_sizes, a.lr_rule, a.results, base, seeds=a.seeds, train_set=train_set,
                 device=device, profile=a.profile)
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
    from rmtlr.profiles import get_profile

    try:
        from rmtlr.curvature import HessianOperator, top_eigenpairs
    except ImportError as err:
        print(f"rmtlr spectrum needs rmtlr.curvature, which is not available here ({err})",
              file=sys.stderr)
        return 2
    prof = get_profile(a.profile, device=_device(a))
    ds = _load_data(a)
    if max(a.batch_sizes) > len(ds) or a.n_full > len(ds):
        raise ValueError(f"batch sizes and --n-full must be <= N = {len(ds)}")
    torch.manual_seed(a.seed)
    model = _build_model(a, ds)
    if a.checkpoint:
        model.load_state_dict(torch.load(a.checkpoint, map_location="cpu", weights_only=True))
    model = model.to(prof.device).eval()
    loss = torch.nn.CrossEntropyLoss()

    def top(idx) -> list[float]:
        sub = torch.utils.data.Subset(ds, [int(i) for i in idx])
        xs, ys = zip(*(sub[i] for i in range(len(sub))))
        batch = (torch.stack(xs).to(prof.device), torch.as_tensor(ys).to(prof.device))
        op = HessianOperator(model, loss, [batch])
        vals, _ = top_eigenpairs(op, k=a.top_k, steps=a.lanczos_steps, seed=a.seed)
        return [float(v) for v in vals]

    g = np.random.default_rng(a.seed)
    out = {"model": a.model, "P": models.count_parameters(model), "data": ds.description,
           "profile": prof.name, "device": str(prof.device), "lanczos_steps": a.lanczos_steps,
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
    lrs = np.atleast_1d(rule(B, a.alpha0, a.b0))
    theory = None not in (a.lam1, a.params, a.sigma)
    cols = f"{'B':>7} {a.rule + ' lr':>12}"
    if theory:
        sgd = np.atleast_1d(sgd_max_lr(B, a.n, a.lam1, a.params, a.sigma))
        adam = np.atleast_1d(adam_max_lr(B, a.n, a.params, a.sigma, a.delta, eta_edge=a.eta))
        cols += f" {'SGD 2/lam1_B':>13} {'Adam bound':>11}"
    print(cols)
    for i, b in enumerate(B):
        row = f"{int(b):>7} {lrs[i]:>12.5g}"
        if theory:
            row += f" {sgd[i]:>13.5g} {adam[i]:>11.5g}"
        print(row)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rmtlr`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    handler = {"sweep": _cmd_sweep, "spectrum": _cmd_spectrum, "lr-rule": _cmd_lr_rule}
    try:
        return handler[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"rmtlr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

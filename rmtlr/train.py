"""Training runs, batch-size sweeps that survive interruption, and the largest stable rate.

- :func:`train`: SGD (momentum, weight decay) or Adam/AdamW (damping δ = ``eps``) with a
  constant rate or the schedule of Eq. 23 (Granziol, Zohren & Roberts 2022); per-epoch
  loss/accuracy; divergence (a non-finite or exploding loss) is an *outcome*, not a crash.
- :func:`sweep`: one run per (batch size, seed) with α = lr_rule(B); each finished run is
  appended to a JSONL results file as one complete, fsync'ed line, runs already present are
  skipped, and a torn last line (a kill mid-write) is ignored and overwritten, so a sweep
  killed at any point resumes without losing or duplicating a run.
- :func:`max_stable_lr`: geometric grid then log-space bisection for the largest rate that
  trains stably (the empirical counterpart of α_max = 2/λ'_1, Eq. 24).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import numbers
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

import rmtlr
from rmtlr import data as rdata
from rmtlr import models
from rmtlr.progress import progress_bar
from rmtlr.scaling import linear_rule, sqrt_rule

__all__ = ["MaxLRResult", "TrainConfig", "data_id", "eq23_lr", "evaluate", "is_stable",
           "lr_rule_from_spec", "max_stable_lr", "read_results", "run_key", "sweep", "train"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "eq23")


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_count(x) -> bool:
    """An integer >= 1, possibly given as an integral float (32.0 but not 32.7)."""
    return _is_real(x) and math.isfinite(x) and x == int(x) and x >= 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (and its identity in a results file).

    model, model_kw: a name for :func:`rmtlr.models.build` and its keyword arguments.
    dataset, data_kw: a name for :func:`rmtlr.data.load` and its keyword arguments
        (``n`` sets the size of the stand-ins).
    optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``. lr: α_0 > 0. batch_size: B ≥ 1.
    epochs: passes over the data; ``steps`` (if set) fixes the number of updates instead.
    momentum, weight_decay: SGD's ρ and L2 coefficient (AdamW: decoupled decay).
    eps: Adam's damping δ. betas: Adam's (β1, β2).
    schedule: ``"constant"`` or ``"eq23"`` (Eq. 23 with final ratio ``final_ratio`` = r).
    explode: a batch loss above ``explode`` × the initial loss counts as divergence.
    probe: size of the fixed training subset (its first ``probe`` samples) on which the
        initial and final losses are measured.
    seed: seeds initialisation and batch order. amp / channels_last: GPU speed options.
    """

    model: str = "mlp"
    dataset: str = "gaussian_mixture"
    optimizer: str = "sgd"
    lr: float = 0.01
    batch_size: int = 128
    epochs: int = 1
    steps: int | None = None
    momentum: float = 0.0
    weight_decay: float = 0.0
    eps: float = 1e-8
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"
    final_ratio: float = 0.01
    explode: float = 10.0
    probe: int = 1024
    seed: int = 0
    model_kw: dict = field(default_factory=dict)
    data_kw: dict = field(default_factory=dict)
    amp: bool = False
    channels_last: bool = False

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (_is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not _is_count(self.batch_size):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        # Checked even when steps overrides it: the config is stored as strict JSON.
        if not _is_count(self.epochs):
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if self.steps is not None and not _is_count(self.steps):
            raise ValueError(f"steps must be an integer >= 1 (or None), got {self.steps!r}")
        if not (_is_real(self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not (_is_real(self.weight_decay) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if not (_is_real(self.eps) and math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps (Adam damping δ) must be a finite number > 0, got {self.eps!r}")
        if not (_is_real(self.final_ratio) and 0 < self.final_ratio <= 1):
            raise ValueError(f"final_ratio must be in (0, 1], got {self.final_ratio!r}")
        if not _is_count(self.probe):
            raise ValueError(f"probe must be an integer >= 1, got {self.probe!r}")
        if not (_is_real(self.explode) and math.isfinite(self.explode) and self.explode > 1):
            raise ValueError(f"explode must be a finite number > 1, got {self.explode!r}")

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))


def eq23_lr(t: float, T: float, alpha0: float, r: float = 0.01) -> float:
    r"""The paper's learning-rate schedule (Eq. 23).

    .. math:: α_t = α_0 \;(t/T ≤ 0.5),\quad
              α_0\Big(1 − \frac{(1 − r)(t/T − 0.5)}{0.4}\Big) \;(0.5 < t/T ≤ 0.9),\quad
              r α_0 \;(t/T > 0.9).
    """
    if not T > 0:
        raise ValueError(f"T must be > 0, got {T}")
    if not 0 <= t <= T:
        raise ValueError(f"t must be in [0, T={T}], got {t}")
    if not alpha0 > 0:
        raise ValueError(f"alpha0 must be > 0, got {alpha0}")
    if not 0 < r <= 1:
        raise ValueError(f"r must be in (0, 1], got {r}")
    u = t / T
    if u <= 0.5:
        return alpha0
    if u <= 0.9:
        return alpha0 * (1.0 - (1.0 - r) * (u - 0.5) / 0.4)
    return r * alpha0


def _finite_or_none(x: float) -> float | None:
    """Records are strict JSON (no NaN/Infinity literals), so a non-finite value is null."""
    return x if math.isfinite(x) else None


def _versions() -> dict:
    return {"rmtlr": rmtlr.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
               weight_decay=cfg.weight_decay)


def _batches(dataset, batch_size: int, generator: torch.Generator, device: torch.device):
    """One epoch of shuffled batches; in-memory tensors are indexed directly (no workers)."""
    if isinstance(dataset, torch.utils.data.TensorDataset):
        x, y = dataset.tensors
        perm = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            yield x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)
        return
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    for xb, yb in rdata.make_loader(dataset, batch_size, shuffle=True, seed=seed):
        yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


def _probe(dataset, size: int):
    """The first ``size`` training samples, in memory when the data set is."""
    size = min(size, len(dataset))
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return torch.utils.data.TensorDataset(*(t[:size] for t in dataset.tensors))
    return torch.utils.data.Subset(dataset, range(size))


@torch.no_grad()
def evaluate(model: nn.Module, dataset, device, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``dataset`` (eval mode)."""
    was_training = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    if isinstance(dataset, torch.utils.data.TensorDataset):
        x, y = dataset.tensors
        chunks = ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size))
    else:
        chunks = rdata.make_loader(dataset, min(batch_size, len(dataset)), shuffle=False,
                                   drop_last=False)
    for xb, yb in chunks:
        xb, yb = xb.to(device), yb.to(device)
        out = model(xb).float()
        loss_sum += nn.functional.cross_entropy(out, yb, reduction="sum").item()
        correct += (out.argmax(1) == yb).sum().item()
        total += len(yb)
    model.train(was_training)
    return loss_sum / total, correct / total


def train(cfg: TrainConfig, *, train_set=None, val_set=None, model: nn.Module | None = None,
          device: str | torch.device | None = None, progress: bool | None = None) -> dict:
    """Train one network and return a JSON-ready record.

    The record holds ``config``, ``outcome`` (``"ok"`` or ``"diverged"``), ``diverged_at``
    (step or None), ``curves`` (per epoch: train loss/accuracy over the epoch's batches,
    validation loss/accuracy when ``val_set`` is given, and the rate), ``step_loss`` (every
    batch loss), ``initial_loss`` and ``final_loss`` (on the fixed probe subset of the
    first ``cfg.probe`` training samples, before and after training), ``steps``,
    ``wall_time_s``, ``samples_per_s`` (training steps only), ``device``, ``data``, ``P``
    and versions. Divergence: a batch loss that is not finite or exceeds ``cfg.explode`` ×
    the initial probe loss.

    ``train_set``/``model`` default to ``rmtlr.data.load(cfg.dataset, **cfg.data_kw)`` and
    ``rmtlr.models.build(cfg.model, …)`` (built after seeding, so the same seed gives the
    same initial weights). ``progress`` None: on unless TQDM_DISABLE is set or under pytest.
    """
    device = torch.device(device) if device is not None else rmtlr.get_profile().device
    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    N = len(train_set)
    if cfg.batch_size > N:
        raise ValueError(f"batch_size must be <= N = {N} (training-set size), got {cfg.batch_size}")
    torch.manual_seed(cfg.seed)
    if model is None:
        model = models.build(cfg.model, train_set.num_classes, **cfg.model_kw)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = _make_optimizer(cfg, model.parameters())
    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = N // cfg.batch_size
    total = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp)
    curves = {k: [] for k in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")}
    step_loss: list[float] = []
    outcome, diverged_at = "ok", None
    bar = progress_bar(total=total, desc=f"{cfg.model} B={cfg.batch_size} lr={cfg.lr:.3g}",
                       progress=progress)
    probe = _probe(train_set, cfg.probe)
    initial = evaluate(model, probe, device)[0]
    t0, step, epoch = time.perf_counter(), 0, 0
    while step < total and outcome == "ok":
        epoch += 1
        loss_sum, seen = 0.0, 0
        correct = torch.zeros((), dtype=torch.long, device=device)  # summed on device: no sync
        for xb, yb in _batches(train_set, cfg.batch_size, gen, device):
            lr = cfg.lr if cfg.schedule == "constant" else eq23_lr(step, total, cfg.lr,
                                                                   cfg.final_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            if cfg.channels_last and xb.dim() == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with amp:
                out = model(xb)
                loss = nn.functional.cross_entropy(out.float(), yb)
            value = loss.item()
            step_loss.append(value)
            if not math.isfinite(value) or value > cfg.explode * initial:
                outcome, diverged_at = "diverged", step
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += value * len(yb)
            correct += (out.detach().argmax(1) == yb).sum()
            seen += len(yb)
            step += 1
            bar.update(1)
            if step >= total:
                break
        if seen:
            curves["epoch"].append(epoch)
            curves["lr"].append(lr)
            curves["train_loss"].append(loss_sum / seen)
            curves["train_acc"].append(correct.item() / seen)
            if val_set is not None and outcome == "ok":
                vl, va = evaluate(model, val_set, device)
                # The last step can blow the weights up after its (finite) loss was taken.
                if not math.isfinite(vl):
                    outcome, diverged_at = "diverged", step
                curves["val_loss"].append(_finite_or_none(vl))
                curves["val_acc"].append(va)
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    final = evaluate(model, probe, device)[0] if outcome == "ok" else None
    if final is not None and not math.isfinite(final):
        outcome, diverged_at, final = "diverged", step, None
    return {
        "config": cfg.to_dict(),
        "outcome": outcome,
        "diverged_at": diverged_at,
        "steps": step,
        "initial_loss": initial,
        "final_loss": final,
        "curves": curves,
        "step_loss": [_finite_or_none(v) for v in step_loss],
        "wall_time_s": wall,
        "samples_per_s": step * cfg.batch_size / wall if wall > 0 else None,
        "device": str(device),
        "data": getattr(train_set, "description", type(train_set).__name__),
        "data_id": data_id(train_set, val_set),
        "N": N,
        "P": models.count_parameters(model),
        "versions": _versions(),
    }


def lr_rule_from_spec(spec: str) -> Callable[[float], float]:
    """Parse ``"linear:α0:B0"``, ``"sqrt:α0:B0"`` or ``"const:α"`` into α(B).

    linear: α_0·B/B_0 (the SGD law, Sec. 10.1); sqrt: α_0·sqrt(B/B_0) (Eq. 31); const: α.
    """
    parts = str(spec).split(":")
    kind = parts[0].strip().lower()
    try:
        nums = [float(p) for p in parts[1:]]
    except ValueError:
        nums = []
    if kind in ("linear", "sqrt") and len(nums) == 2:
        rule = linear_rule if kind == "linear" else sqrt_rule
        rule(1, nums[0], nums[1])  # validates α0 > 0 and B0 > 0 now, not mid-sweep
        return lambda B: float(rule(B, nums[0], nums[1]))
    if kind == "const" and len(nums) == 1:
        if not nums[0] > 0:
            raise ValueError(f"lr rule const:α needs α > 0, got {spec!r}")
        return lambda B: nums[0]
    raise ValueError(f"lr rule must be 'linear:ALPHA0:B0', 'sqrt:ALPHA0:B0' or 'const:ALPHA', "
                     f"got {spec!r}")


def data_id(train_set, val_set=None) -> dict:
    """What a run trained and validated on (description and size of each set), so that a
    rerun on other data does not pick up results of the old one."""
    def one(ds):
        if ds is None:
            return None
        return {"description": getattr(ds, "description", type(ds).__name__), "n": len(ds)}

    return {"train": one(train_set), "val": one(val_set)}


def run_key(config: dict, data: dict | None = None) -> str:
    """Identity of a run in a results file: its config and :func:`data_id` as canonical
    JSON (records written before ``data_id`` existed have none and never match a run that
    has one)."""
    if data is None:
        return json.dumps(config, sort_keys=True)
    return json.dumps({"config": config, "data": data}, sort_keys=True)


def read_results(path: str | Path) -> list[dict]:
    """All complete records of a JSONL results file ([] if it does not exist).

    A last line without its newline is a write torn by a kill and is ignored; a malformed
    complete line is corruption and raises ValueError.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1]  # the text after the last newline is empty or torn
    records = []
    for i, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: line {i} is not valid JSON ({err})") from err
    return records


def _append_record(path: Path, record: dict) -> None:
    """Append one line atomically enough to survive a kill: drop a torn tail, write, fsync."""
    line = (json.dumps(record, allow_nan=False) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # other sweeps appending to the same file wait
        size = os.lseek(fd, 0, os.SEEK_END)
        if size:
            # Find the end of the last complete line; anything after it is a torn write.
            back = min(size, 1 << 20)
            os.lseek(fd, size - back, os.SEEK_SET)
            tail = os.read(fd, back)
            keep = size - back + tail.rfind(b"\n") + 1 if b"\n" in tail else size - back
            if keep != size:
                os.ftruncate(fd, keep)
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep(batch_sizes: Iterable[int], lr_rule: Callable[[float], float] | str,
          results: str | Path, base: TrainConfig, *, seeds: Iterable[int] = (0,),
          train_set=None, val_set=None, device=None, profile: str | None = None,
          progress: bool | None = None) -> list[dict]:
    """Train ``base`` at every batch size B with α = lr_rule(B), once per seed.

    Each finished run is appended to ``results`` (JSONL) with the profile; runs whose
    config is already there for the same data (:func:`data_id` of ``train_set`` and
    ``val_set``) are skipped, so calling it again after a kill resumes. Returns
    the records of this sweep (old and new) in grid order.
    """
    rule = lr_rule_from_spec(lr_rule) if isinstance(lr_rule, str) else lr_rule
    sizes = list(batch_sizes)
    if not sizes or not all(_is_count(b) for b in sizes):
        raise ValueError(f"batch_sizes must be a non-empty list of integers >= 1, got {sizes}")
    sizes = [int(b) for b in sizes]
    seeds = list(seeds)  # iterated once per batch size: a generator would be empty after B_1
    if train_set is None:
        train_set = rdata.load(base.dataset, "train", seed=0, **base.data_kw)
    if max(sizes) > len(train_set):
        raise ValueError(f"batch sizes must be <= N = {len(train_set)}, got {max(sizes)}")
    results = Path(results)
    prof = profile or rmtlr.get_profile().name
    data = data_id(train_set, val_set)
    done = {run_key(r["config"], r.get("data_id")): r for r in read_results(results)}
    out = []
    jobs = [(B, s) for B in sizes for s in seeds]
    for B, s in progress_bar(jobs, desc="sweep", progress=progress, leave=True):
        cfg = dataclasses.replace(base, batch_size=B, lr=float(rule(B)), seed=int(s))
        key = run_key(cfg.to_dict(), data)
        if key not in done:
            rec = train(cfg, train_set=train_set, val_set=val_set, device=device,
                        progress=False)
            rec["profile"] = prof
            _append_record(results, rec)
            done[key] = rec
        out.append(done[key])
    return out


@dataclass(frozen=True)
class MaxLRResult:
    """Result of :func:`max_stable_lr`: ``lr`` is the largest stable rate found; the true
    threshold lies in ``bracket`` = (lr, smallest unstable rate), or above ``lr`` when
    ``censored`` (every rate tried was stable). ``trials``: (rate, stable, final loss)."""

    lr: float
    bracket: tuple[float, float]
    censored: bool
    trials: tuple[tuple[float, bool, float | None], ...]


def is_stable(record: dict) -> bool:
    """Stable = no divergence and a final probe loss below the initial one."""
    return record["outcome"] == "ok" and record["final_loss"] < record["initial_loss"]


def max_stable_lr(cfg: TrainConfig, *, lr_min: float = 1e-4, lr_max: float = 10.0,
                  grid_points: int = 11, bisect_steps: int = 3, train_set=None, device=None,
                  stable: Callable[[dict], bool] = is_stable) -> MaxLRResult:
    """Largest learning rate at which ``cfg`` trains stably (empirical α_max, Eq. 24).

    Rates on a geometric grid from ``lr_max`` down to ``lr_min`` are tried in decreasing
    order until one is stable; the bracket (that rate, the next larger one) is then halved
    ``bisect_steps`` times in log space. Searching from above finds the *largest* stable
    rate even when tiny rates fail the criterion by noise (they barely move the loss), and
    is cheap because divergent runs stop at once. Every trial starts from the same initial
    weights and batch order (``cfg.seed``). Resolution: grid ratio^(1/2**bisect_steps).
    """
    if not 0 < lr_min < lr_max or not math.isfinite(lr_max):
        raise ValueError(f"need 0 < lr_min < lr_max < inf, got {lr_min}, {lr_max}")
    if grid_points < 2:
        raise ValueError(f"grid_points must be >= 2, got {grid_points}")
    if bisect_steps < 0:
        raise ValueError(f"bisect_steps must be >= 0, got {bisect_steps}")
    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    trials = []

    def trial(lr: float) -> bool:
        rec = train(dataclasses.replace(cfg, lr=float(lr)), train_set=train_set, device=device,
                    progress=False)
        ok = bool(stable(rec))
        trials.append((float(lr), ok, rec["final_loss"]))
        return ok

    good = bad = None
    for lr in np.geomspace(lr_max, lr_min, grid_points):
        if trial(lr):
            good = lr
            break
        bad = lr
    if good is None:
        raise ValueError(f"no stable rate at or above lr_min={lr_min:g} ({cfg.optimizer}, "
                         f"B={cfg.batch_size}); lower lr_min")
    if bad is None:
        return MaxLRResult(float(good), (float(good), math.inf), True, tuple(trials))
    for _ in range(bisect_steps):
        mid = math.sqrt(good * bad)
        if trial(mid):
            good = mid
        else:
            bad = mid
    return MaxLRResult(float(good), (float(good), float(bad)), False, tuple(trials))

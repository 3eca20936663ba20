"""Batch-size sweeps and the largest stable learning rate, resumable through a results file.

- :func:`sweep`: one training run per (batch size B, seed) with α = lr_rule(B). Each run
  is a record of a results file (:mod:`rmtlr.results`) keyed by its configuration and
  data; a run already there is read back, a run another process is training is waited
  for, a killed run is trained again. So a sweep resumes after a kill, and two sweeps
  (two notebooks, or the tasks of a cluster job array) into one file train each run once.
  A sweep has one of two budgets: equal epochs (every B makes the same passes over the
  data, so a large B makes fewer updates) or equal updates (``updates=``: every B makes
  the same number of optimiser steps; :func:`updates_config`).
- :func:`is_stable`: the one criterion for "this run trained stably";
  :func:`summarize_sweep` groups a sweep's runs by batch size under it (seeds together).
- :func:`max_stable_lr`: a geometric grid, then log-space bisection, for the largest rate
  that trains stably: the empirical counterpart of α_max = 2/λ'_1 (Eq. 24 of Granziol,
  Zohren & Roberts 2022). With ``results=`` its trials are stored and reused the same way.
- :func:`lr_range_test`: Smith's (2017) learning-rate range test, one short run with the
  rate growing exponentially, the practitioner's cheap estimate of the largest usable rate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist

from rmtlr import data as rdata
from rmtlr import models
from rmtlr.lr_rules import lr_rule_from_spec
from rmtlr.profiles import get_profile
from rmtlr.progress import progress_bar
from rmtlr.results import ResultsFile, data_id, provenance, run_key
from rmtlr.rmt.validation import finite_scalar, integer, random_seed
from rmtlr.train import TrainConfig, distributed_world, num_classes_of, train

__all__ = ["LRRangeResult", "MaxLRResult", "SweepPoint", "Trial", "is_stable",
           "lr_range_test", "max_stable_lr", "num_updates", "summarize_sweep", "sweep",
           "thin_step_loss", "updates_config"]


def _seed_list(seeds: Any) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be a non-empty sequence of integers >= 0 (e.g. range(3)), "
                         f"got {seeds!r}")
    out = [random_seed("each seed", s) for s in seeds]  # a generator is read once, here
    if not out:
        raise ValueError("seeds must be a non-empty sequence of integers >= 0, got none")
    return out


def _check_shard(shard: Any) -> tuple[int, int]:
    if isinstance(shard, (str, bytes)) or not isinstance(shard, Iterable):
        raise TypeError(f"shard must be a pair (i, n) with 0 <= i < n, got {shard!r}")
    pair = tuple(shard)
    if len(pair) != 2:
        raise ValueError(f"shard must be a pair (i, n) with 0 <= i < n, got {shard!r}")
    n = integer("shard n (number of shards)", pair[1], lo=1)
    return integer("shard i (this shard)", pair[0], lo=0, hi=n - 1), n


def _run_once(store: ResultsFile, key: str, compute: Callable[[], dict], *,
              wait: bool = True) -> dict | None:
    """:meth:`ResultsFile.run_once`, and under ``torchrun`` the same with every rank computing.

    Rank 0 looks the key up and holds the claim; its decision is broadcast, all ranks call
    ``compute`` together (a DistributedDataParallel run), rank 0 appends the record and
    every rank returns it.
    """
    rank, world = distributed_world()
    if world == 1:
        return store.run_once(key, compute, wait=wait)
    with contextlib.ExitStack() as stack:
        decision: list[Any] = [None]
        if rank == 0:
            rec = store.find(key)
            if rec is None:
                held = stack.enter_context(store.claim(key, wait=wait))
                rec = store.find(key) if held else None
                decision = [("done", rec) if rec is not None
                            else ("compute", None) if held else ("busy", None)]
            else:
                decision = [("done", rec)]
        dist.broadcast_object_list(decision, src=0)
        what, rec = decision[0]
        if what != "compute":
            return rec
        out = compute()
        final = [store.append({**out, "key": key}) if rank == 0 else None]
        dist.broadcast_object_list(final, src=0)
        return final[0]


def _run_record(cfg: TrainConfig, data: dict, profile: str, step_loss_points: int | None = None,
                **train_kw: Any) -> dict:
    """Train a run and return it as stored: the record with its profile and data id."""
    rec = {**train(cfg, progress=False, **train_kw), "profile": profile, "data_id": data}
    if step_loss_points is not None:
        rec["step_loss"], rec["step_loss_at"] = thin_step_loss(rec["step_loss"],
                                                               step_loss_points)
    return rec


def thin_step_loss(step_loss: list, points: int) -> tuple[list, list[int]]:
    """Average a run's batch losses over at most ``points`` equal windows (small records).

    A run at B = 16 makes thousands of updates; storing every batch loss would make a
    sweep's results file megabytes. The windows split the list into ``points`` contiguous
    pieces of nearly equal length (:func:`numpy.array_split`); each is replaced by its
    mean, or by None if it holds a None (a non-finite loss: the run diverged there).

    Parameters
    ----------
    step_loss : list of float or None
        The batch losses of a :func:`rmtlr.train.train` record, in step order.
    points : int
        The most windows to keep, >= 1 (a shorter list is kept whole).

    Returns
    -------
    (list of float or None, list of int)
        The window means, and for each window how many batch losses precede its end
        (the x-coordinate "updates" at which to plot it).

    Raises
    ------
    ValueError
        If ``points`` is not an integer >= 1.

    Examples
    --------
    >>> thin_step_loss([4.0, 2.0, 3.0, 1.0, None], 2)
    ([3.0, None], [3, 5])
    """
    points = integer("points", points)
    values = list(step_loss)
    if not values:
        return [], []
    means, ends, end = [], [], 0
    for piece in np.array_split(np.arange(len(values)), min(points, len(values))):
        window = [values[i] for i in piece]
        means.append(None if any(v is None for v in window) else float(np.mean(window)))
        end += len(piece)
        ends.append(end)
    return means, ends


def num_updates(cfg: TrainConfig, N: int) -> int:
    """Return how many optimiser steps a run of ``cfg`` on N samples makes (if it does not diverge).

    Parameters
    ----------
    cfg : TrainConfig
        The run.
    N : int
        Training-set size, >= ``cfg.batch_size``.

    Returns
    -------
    int
        ``cfg.steps`` if set, else ``cfg.epochs`` · ⌊N/B⌋ (an epoch drops its last,
        incomplete batch).

    Raises
    ------
    ValueError
        If N is not an integer >= the batch size.

    Examples
    --------
    >>> num_updates(TrainConfig(batch_size=128, epochs=6), 9000)
    420
    """
    N = integer(f"N (>= batch_size = {cfg.batch_size})", N, lo=cfg.batch_size)
    return cfg.steps if cfg.steps is not None else cfg.epochs * (N // cfg.batch_size)


def updates_config(base: TrainConfig, batch_size: int, *, N: int, updates: int) -> TrainConfig:
    """Return ``base`` at batch size B, set to make exactly ``updates`` optimiser steps.

    The equal-updates budget of a sweep: every B makes the same number of steps, so a
    run at B = 512 sees 32× the samples of one at B = 16 (with equal epochs it is the
    other way round: 32× fewer steps). A number of updates that is a whole number of
    epochs, U = E·⌊N/B⌋, is stored as ``epochs=E, steps=None``, the same configuration
    (and so the same run in a results file) as the equal-epochs budget at that B; any
    other U is stored as ``steps=U`` with ``epochs`` = ⌈U/⌊N/B⌋⌉, the passes it starts.
    The schedule (Eq. 23) is stretched over the U steps either way.

    Parameters
    ----------
    base : TrainConfig
        The run; its ``batch_size``, ``epochs`` and ``steps`` are replaced.
    batch_size : int
        B, in [1, N].
    N : int
        Training-set size.
    updates : int
        U >= 1.

    Returns
    -------
    TrainConfig
        The configuration.

    Raises
    ------
    ValueError
        If B is not in [1, N] or ``updates`` not an integer >= 1.
    TypeError
        If ``base`` is not a TrainConfig.

    Examples
    --------
    >>> cfg = updates_config(TrainConfig(epochs=6), 128, N=9000, updates=420)
    >>> cfg.epochs, cfg.steps   # 420 = 6 epochs of 70 steps: the equal-epochs run
    (6, None)
    >>> cfg = updates_config(TrainConfig(epochs=6), 512, N=9000, updates=420)
    >>> cfg.epochs, cfg.steps   # 17 steps an epoch: 24.7 passes
    (25, 420)
    """
    if not isinstance(base, TrainConfig):
        raise TypeError(f"base must be a TrainConfig, got {type(base).__name__}")
    B = integer("batch_size", batch_size)
    N = integer(f"N (>= batch_size = {B})", N, lo=B)
    U = integer("updates", updates)
    per_epoch = N // B
    if U % per_epoch == 0:
        return dataclasses.replace(base, batch_size=B, epochs=U // per_epoch, steps=None)
    return dataclasses.replace(base, batch_size=B, epochs=-(-U // per_epoch), steps=U)


def sweep(batch_sizes: Iterable[int], lr_rule: Callable[[float], float] | str,
          results: str | Path, base: TrainConfig, *, seeds: Iterable[int] = (0,),
          train_set: Any = None, val_set: Any = None, device: str | torch.device | None = None,
          profile: str | None = None, shard: tuple[int, int] | None = None,
          progress: bool | None = None, updates: int | None = None,
          step_loss_points: int | None = None) -> list[dict]:
    """Train ``base`` at every batch size B with α = lr_rule(B), once per seed; resumable.

    Every argument, the learning rates of the whole grid and the results path are checked
    before the first run trains. Each run's record (the :func:`rmtlr.train.train` record
    with ``profile``, ``data_id`` and ``key``) is appended to ``results`` when it ends.
    Runs already in the file for the same configuration and data are read back; runs
    another process is training are left to it and waited for at the end; a run killed
    mid-way is trained again.

    Parameters
    ----------
    batch_sizes : iterable of int
        The grid of B (each >= 1 and <= N).
    lr_rule : callable or str
        α(B), or a spec for :func:`rmtlr.lr_rules.lr_rule_from_spec` such as
        ``"linear:0.01:128"``.
    results : str or pathlib.Path
        The JSON Lines results file (created if missing; shared safely).
    base : TrainConfig
        The run; its ``batch_size``, ``lr`` and ``seed`` are replaced per run.
    seeds : iterable of int
        One run per seed (integers >= 0; a generator is read once).
    train_set : torch.utils.data.Dataset, optional
        The training data (default: ``rmtlr.data.load(base.dataset, **base.data_kw)``).
    val_set : torch.utils.data.Dataset, optional
        Held-out data evaluated after each run (default: none).
    device : str or torch.device, optional
        Default: the profile's device.
    profile : str, optional
        ``"quick"`` or ``"full"`` (default: the active profile): chooses the default
        device and is stored with every record.
    shard : tuple of int, optional
        (i, n): run only shard i of n, the runs whose position in the grid (B-major, then
        seed) is i modulo n; for the n tasks of a job array writing to one results file.
        Shards of one grid are disjoint and together cover it.
    progress : bool, optional
        A progress bar over the runs.
    updates : int, optional
        The budget. None (default): every run is ``base`` as given (equal epochs,
        ``base.epochs`` passes at every B, or ``base.steps`` updates if set). An integer
        U >= 1: every run makes U optimiser steps whatever B (equal updates; the configs
        of :func:`updates_config`, which coincide with the equal-epochs runs at the B
        where U is a whole number of epochs, so those are trained once).
    step_loss_points : int, optional
        Store the batch losses averaged over at most this many windows
        (:func:`thin_step_loss`, with ``step_loss_at``) instead of every one: small
        records for files kept in a repository. Does not change a run's key.

    Returns
    -------
    list of dict
        The records of this grid (or of its shard; old and new), in grid order: B-major,
        then seed.

    Raises
    ------
    ValueError
        For bad input (a batch size above N, a rate that is not finite and > 0, a bad
        seed or shard, a bad ``updates`` or ``step_loss_points``, an unwritable or corrupt
        results file, an unusable device), before any training.
    TypeError
        If ``base`` is not a TrainConfig, ``lr_rule`` not callable, or ``seeds`` or
        ``shard`` not a sequence.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from rmtlr import data
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sweep.jsonl"
    >>> recs = sweep([16, 64], "linear:0.05:16", path, TrainConfig(steps=5),
    ...              train_set=data.gaussian_mixture(n=256), device="cpu")
    >>> [(r["config"]["batch_size"], r["config"]["lr"]) for r in recs]
    [(16, 0.05), (64, 0.2)]
    """
    rule = lr_rule_from_spec(lr_rule) if isinstance(lr_rule, str) else lr_rule
    if not callable(rule):
        raise TypeError(f"lr_rule must be a callable α(B) or a spec string, got {lr_rule!r}")
    if not isinstance(base, TrainConfig):
        raise TypeError(f"base must be a TrainConfig, got {type(base).__name__}")
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Iterable):
        raise TypeError(f"batch_sizes must be a non-empty list of integers >= 1, got "
                        f"{batch_sizes!r}")
    sizes = [integer("each of batch_sizes", b) for b in batch_sizes]
    if not sizes:
        raise ValueError("batch_sizes must be a non-empty list of integers >= 1, got none")
    seed_list = _seed_list(seeds)
    if updates is not None:
        updates = integer("updates (optimiser steps per run)", updates)
    if step_loss_points is not None:
        step_loss_points = integer("step_loss_points", step_loss_points)
    part, parts = (0, 1) if shard is None else _check_shard(shard)
    prof = get_profile(profile, device=device)  # checks device; warns at most once
    prof_name, dev = prof.name, prof.device
    rates = []
    for B in sizes:
        lr = rule(B)
        try:
            dataclasses.replace(base, lr=lr)
        except ValueError as err:
            raise ValueError(f"lr_rule gives lr = {lr!r} at B = {B}: {err}") from err
        rates.append(lr)
    store = ResultsFile(results)
    store.check_writable()
    store.records()  # a corrupt file fails now, not after the first run
    if train_set is None:
        train_set = rdata.load(base.dataset, "train", seed=0, **base.data_kw)
    N = len(train_set)
    if max(sizes) > N:
        raise ValueError(f"batch sizes must be <= N = {N}, got {max(sizes)}")
    configs = []
    for B, lr in zip(sizes, rates):
        at_B = (dataclasses.replace(base, batch_size=B) if updates is None
                else updates_config(base, B, N=N, updates=updates))
        configs += [dataclasses.replace(at_B, lr=lr, seed=s) for s in seed_list]
    data = data_id(train_set, val_set)
    configs = configs[part::parts]
    keys = [run_key(cfg.to_dict(), data) for cfg in configs]
    out: dict[str, dict] = {}
    bar = progress_bar(total=len(configs), desc="sweep", progress=progress, leave=True)
    # First pass: runs no one else is training; then wait for those another process has.
    for wait in (False, True):
        for cfg, key in zip(configs, keys):
            if key in out:
                continue
            rec = _run_once(store, key, lambda cfg=cfg: _run_record(
                cfg, data, prof_name, step_loss_points, train_set=train_set,
                val_set=val_set, device=dev), wait=wait)
            if rec is not None:
                out[key] = rec
                bar.update(1)
    bar.close()
    return [out[key] for key in keys]


class Trial(NamedTuple):
    """One rate tried by :func:`max_stable_lr`.

    Attributes
    ----------
    lr : float
        The learning rate tried.
    stable : bool
        The verdict of the search's ``stable`` criterion on the run.
    final_loss : float or None
        The run's final probe loss (None when the run diverged).
    """

    lr: float
    stable: bool
    final_loss: float | None


@dataclass(frozen=True)
class MaxLRResult:
    """Result of :func:`max_stable_lr`.

    Attributes
    ----------
    lr : float
        The largest stable rate found.
    bracket : tuple of float
        (``lr``, the smallest unstable rate tried): the threshold lies in between; the
        upper end is ``inf`` when ``censored``.
    censored : bool
        True when every rate tried was stable (the threshold is above ``lr_max``).
    trials : tuple of Trial
        Every rate tried, in order, with its outcome.
    """

    lr: float
    bracket: tuple[float, float]
    censored: bool
    trials: tuple[Trial, ...]

    @property
    def resolution(self) -> float:
        """The bracket's ratio, upper / lower (``inf`` when censored)."""
        return self.bracket[1] / self.bracket[0]


def is_stable(record: dict, *, min_val_acc: float | None = None) -> bool:
    """Say whether a run trained stably: finite losses, its loss went down, and it learned.

    The criterion, in full: the run did not diverge (``outcome == "ok"``: every batch
    loss finite and below ``explode`` × the initial loss, and the validation loss after
    every epoch finite), its final loss on the probe subset is below the initial one,
    and, if ``min_val_acc`` is given, its final validation accuracy is at least
    ``min_val_acc`` (e.g. chance + a margin: a run that ends at chance did not train,
    whatever its loss did).

    Parameters
    ----------
    record : dict
        A :func:`rmtlr.train.train` record (with validation curves when ``min_val_acc``
        is given).
    min_val_acc : float, optional
        The smallest final validation accuracy of a stable run, in [0, 1].

    Returns
    -------
    bool
        Whether the run meets the criterion.

    Raises
    ------
    ValueError
        If ``min_val_acc`` is outside [0, 1], or is given for a record without
        validation accuracies (a run that did not diverge but was never validated).

    Examples
    --------
    >>> rec = {"outcome": "ok", "initial_loss": 2.30, "final_loss": 2.29,
    ...        "curves": {"val_acc": [0.10, 0.11]}}
    >>> is_stable(rec), is_stable(rec, min_val_acc=0.15)
    (True, False)
    """
    if min_val_acc is not None:
        min_val_acc = finite_scalar("min_val_acc", min_val_acc, lo=0, hi=1)
    initial, final = record.get("initial_loss"), record.get("final_loss")
    if not (record.get("outcome") == "ok" and initial is not None and final is not None
            and final < initial):
        return False
    if min_val_acc is None:
        return True
    accs = (record.get("curves") or {}).get("val_acc") or []
    if not accs or accs[-1] is None:
        raise ValueError("min_val_acc needs a record with validation accuracies "
                         "(train with val_set=...)")
    return accs[-1] >= min_val_acc


def max_stable_lr(cfg: TrainConfig, *, lr_min: float = 1e-4, lr_max: float = 10.0,
                  grid_points: int = 11, bisect_steps: int = 3, train_set: Any = None,
                  val_set: Any = None, device: str | torch.device | None = None,
                  stable: Callable[[dict], bool] = is_stable,
                  results: str | Path | None = None,
                  step_loss_points: int | None = None) -> MaxLRResult:
    """Find the largest learning rate at which ``cfg`` trains stably (empirical α_max, Eq. 24).

    Rates on a geometric grid from ``lr_max`` down to ``lr_min`` are tried in decreasing
    order until one is stable; the bracket (that rate, the next larger one) is then halved
    ``bisect_steps`` times in log space. Searching from above finds the *largest* stable
    rate even when tiny rates fail the criterion by noise (they barely move the loss), and
    is cheap because divergent runs stop at once. Every trial starts from the same initial
    weights and batch order (``cfg.seed``). Resolution: the grid ratio
    (lr_max/lr_min)^(1/(grid_points − 1)) to the power 1/2^bisect_steps.

    Parameters
    ----------
    cfg : TrainConfig
        The run; its ``lr`` is replaced per trial.
    lr_min : float
        The smallest rate tried, 0 < lr_min < lr_max.
    lr_max : float
        The largest rate tried (the grid starts here), lr_min < lr_max < inf.
    grid_points : int
        Grid size, >= 2.
    bisect_steps : int
        Halvings of the bracket, >= 0.
    train_set : torch.utils.data.Dataset, optional
        Default ``rmtlr.data.load(cfg.dataset, **cfg.data_kw)``.
    val_set : torch.utils.data.Dataset, optional
        Evaluated after every epoch of every trial (needed by a ``stable`` that reads
        validation accuracy, such as ``is_stable`` with ``min_val_acc``).
    device : str or torch.device, optional
        Default: the profile's.
    stable : callable
        record -> bool; default :func:`is_stable`.
    results : str or pathlib.Path, optional
        A results file: trials are stored there as runs (records like :func:`sweep`'s)
        and read back when the search is repeated, so a killed search resumes.
    step_loss_points : int, optional
        As for :func:`sweep`: stored trials keep their batch losses averaged over at
        most this many windows.

    Returns
    -------
    MaxLRResult
        The rate, its bracket, whether it is censored, and the trials.

    Raises
    ------
    ValueError
        For bad input, or when no rate down to ``lr_min`` is stable.
    TypeError
        If ``cfg`` is not a TrainConfig.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    lr_max = finite_scalar("lr_max", lr_max, lo=0, lo_open=True)
    lr_min = finite_scalar(f"lr_min (in (0, lr_max={lr_max:g}))", lr_min, lo=0, hi=lr_max, lo_open=True, hi_open=True)
    grid_points = integer("grid_points", grid_points, lo=2)
    bisect_steps = integer("bisect_steps", bisect_steps, lo=0)
    if step_loss_points is not None:
        step_loss_points = integer("step_loss_points", step_loss_points)
    prof = get_profile(None, device=device)
    prof_name, dev = prof.name, prof.device
    store = None
    if results is not None:
        store = ResultsFile(results)
        store.check_writable()
        store.records()
    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    data = data_id(train_set, val_set) if store is not None else None
    trials: list[Trial] = []

    def trial(lr: float) -> bool:
        run = dataclasses.replace(cfg, lr=float(lr))
        if store is None:
            rec = train(run, train_set=train_set, val_set=val_set, device=dev, progress=False)
        else:
            rec = _run_once(store, run_key(run.to_dict(), data), lambda: _run_record(
                run, data, prof_name, step_loss_points, train_set=train_set,
                val_set=val_set, device=dev))
        ok = bool(stable(rec))
        trials.append(Trial(float(lr), ok, rec["final_loss"]))
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


@dataclass(frozen=True)
class SweepPoint:
    """The runs of one sweep at one batch size (one per seed), judged by one criterion.

    Attributes
    ----------
    batch_size : int
        B.
    lr : float
        The rate α the rule gave at B.
    updates : int
        Optimiser steps each run was set to make (:func:`num_updates`).
    seeds : tuple of int
        The seeds, in the order of the other tuples.
    stable : tuple of bool
        Each run's verdict under the criterion.
    diverged : tuple of bool
        Whether each run diverged (a non-finite or exploding loss).
    val_acc : tuple of float or None
        Each run's final validation accuracy (None after divergence).
    wall_time_s : float
        The runs' training time, summed.
    """

    batch_size: int
    lr: float
    updates: int
    seeds: tuple[int, ...]
    stable: tuple[bool, ...]
    diverged: tuple[bool, ...]
    val_acc: tuple[float | None, ...]
    wall_time_s: float

    @property
    def all_stable(self) -> bool:
        """Whether every seed's run is stable."""
        return all(self.stable)

    @property
    def mean_acc(self) -> float:
        """Mean final validation accuracy over the seeds, a diverged run counted as NaN."""
        return float(np.mean([np.nan if a is None else a for a in self.val_acc]))

    @property
    def std_acc(self) -> float:
        """Standard deviation (ddof 1) of the final validation accuracy over the seeds."""
        accs = [np.nan if a is None else a for a in self.val_acc]
        return float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0


def summarize_sweep(records: Iterable[dict], *, stable: Callable[[dict], bool]
                    ) -> list[SweepPoint]:
    """Group a sweep's runs by batch size and judge each with one stability criterion.

    Parameters
    ----------
    records : iterable of dict
        Records of :func:`sweep` (one rule: one rate per batch size).
    stable : callable
        record -> bool, e.g. ``functools.partial(is_stable, min_val_acc=0.15)``.

    Returns
    -------
    list of SweepPoint
        One per batch size, in increasing B; seeds in increasing order.

    Raises
    ------
    ValueError
        If ``records`` is empty, or holds two rates at one batch size (two rules mixed).

    Examples
    --------
    >>> recs = [{"config": {"batch_size": 16, "lr": 0.1, "seed": s, "epochs": 1,
    ...                     "steps": None}, "N": 64, "outcome": "ok", "wall_time_s": 1.0,
    ...          "curves": {"val_acc": [0.3 + s / 10]}} for s in (0, 1)]
    >>> pt = summarize_sweep(recs, stable=lambda r: r["outcome"] == "ok")[0]
    >>> pt.batch_size, pt.updates, pt.all_stable, round(pt.mean_acc, 2)
    (16, 4, True, 0.35)
    """
    groups: dict[int, list[dict]] = {}
    for rec in records:
        groups.setdefault(int(rec["config"]["batch_size"]), []).append(rec)
    if not groups:
        raise ValueError("records must hold at least one run of a sweep, got none")
    out = []
    for B in sorted(groups):
        runs = sorted(groups[B], key=lambda r: r["config"]["seed"])
        rates = {r["config"]["lr"] for r in runs}
        if len(rates) != 1:
            raise ValueError(f"records mix rates {sorted(rates)} at B = {B}: pass one rule's "
                             "sweep at a time")
        cfg = runs[0]["config"]
        steps = cfg["steps"] if cfg.get("steps") is not None else cfg["epochs"] * (
            runs[0]["N"] // B)
        accs = tuple(None if r["outcome"] != "ok" or not r["curves"]["val_acc"]
                     else r["curves"]["val_acc"][-1] for r in runs)
        out.append(SweepPoint(B, float(cfg["lr"]), int(steps),
                              tuple(int(r["config"]["seed"]) for r in runs),
                              tuple(bool(stable(r)) for r in runs),
                              tuple(r["outcome"] != "ok" for r in runs), accs,
                              float(sum(r.get("wall_time_s") or 0.0 for r in runs))))
    return out


@dataclass(frozen=True)
class LRRangeResult:
    """Result of :func:`lr_range_test`.

    Attributes
    ----------
    lrs : tuple of float
        The rate of every step taken.
    losses : tuple of float
        The batch loss of every step (before its update).
    smoothed : tuple of float
        The bias-corrected exponential moving average of ``losses``.
    lr_min_loss : float
        The rate where the smoothed loss is lowest: beyond it a larger rate no longer
        lowers the loss, Smith's (2017) upper bound for the rate.
    lr_diverged : float or None
        The rate at which the run stopped because the loss diverged (non-finite, or above
        ``diverge_factor`` × the lowest smoothed loss); None if it never did.
    steps : int
        Steps taken.
    wall_time_s : float
        Seconds of training.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    lr_min_loss: float
    lr_diverged: float | None
    steps: int
    wall_time_s: float


def lr_range_test(cfg: TrainConfig, *, lr_min: float = 1e-4, lr_max: float = 10.0,
                  steps: int = 100, smoothing: float = 0.9, diverge_factor: float = 4.0,
                  train_set: Any = None, device: str | torch.device | None = None,
                  results: str | Path | None = None) -> LRRangeResult:
    r"""Smith's (2017) learning-rate range test: one run with the rate growing exponentially.

    From the initial weights of ``cfg`` (the same as :func:`rmtlr.train.train` builds for
    ``cfg.seed``), step t of T = ``steps`` uses

    .. math:: α_t = α_{\min}\,(α_{\max}/α_{\min})^{t/(T-1)}

    with ``cfg``'s optimiser (momentum, damping, weight decay) and batch size. The batch
    losses are smoothed by an exponential moving average with bias correction; the run
    stops when a loss is not finite or exceeds ``diverge_factor`` × the lowest smoothed
    loss. The estimate of the largest usable rate is where the smoothed loss is lowest.

    Parameters
    ----------
    cfg : TrainConfig
        The run; its ``lr``, ``schedule``, ``epochs`` and ``steps`` are not used.
    lr_min : float
        The first rate, 0 < lr_min < lr_max.
    lr_max : float
        The last rate, finite.
    steps : int
        Steps from ``lr_min`` to ``lr_max``, >= 2.
    smoothing : float
        Weight of the past in the moving average, in [0, 1).
    diverge_factor : float
        Stop when a loss exceeds this multiple of the lowest smoothed loss, > 1.
    train_set : torch.utils.data.Dataset, optional
        Default ``rmtlr.data.load(cfg.dataset, **cfg.data_kw)``.
    device : str or torch.device, optional
        Default: the profile's.
    results : str or pathlib.Path, optional
        A results file: the test is stored there and read back when repeated.

    Returns
    -------
    LRRangeResult
        Rates, losses, the estimate and where the run diverged.

    Raises
    ------
    TypeError
        If ``cfg`` is not a TrainConfig, or a number is not one.
    ValueError
        For an argument out of range, or a batch size above N.

    Examples
    --------
    >>> from rmtlr import data
    >>> res = lr_range_test(TrainConfig(batch_size=32), steps=40, lr_min=1e-3, lr_max=100.0,
    ...                     train_set=data.gaussian_mixture(n=512, seed=0), device="cpu")
    >>> 1e-3 < res.lr_min_loss < 100.0
    True
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    lr_max = finite_scalar("lr_max", lr_max, lo=0, lo_open=True)
    lr_min = finite_scalar("lr_min", lr_min, lo=0, hi=lr_max, lo_open=True, hi_open=True)
    steps = integer("steps", steps, lo=2)
    smoothing = finite_scalar("smoothing", smoothing, lo=0, hi=1, hi_open=True)
    diverge_factor = finite_scalar("diverge_factor", diverge_factor, lo=1, lo_open=True)
    dev = get_profile(None, device=device).device
    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    if cfg.batch_size > len(train_set):
        raise ValueError(f"batch_size must be <= N = {len(train_set)}, got {cfg.batch_size}")
    settings = {"lr_min": lr_min, "lr_max": lr_max, "steps": steps, "smoothing": smoothing,
                "diverge_factor": diverge_factor}

    def compute() -> dict:
        return _range_test(cfg, train_set, dev, **settings)

    if results is None:
        rec = compute()
    else:
        store = ResultsFile(results)
        store.check_writable()
        key = run_key(cfg.to_dict(), data_id(train_set), lr_range_test=settings)
        rec = _run_once(store, key, compute)
    return LRRangeResult(tuple(rec["lrs"]), tuple(rec["losses"]), tuple(rec["smoothed"]),
                         rec["lr_min_loss"], rec["lr_diverged"], rec["steps"],
                         rec["wall_time_s"])


def _range_test(cfg: TrainConfig, train_set: Any, device: torch.device, *, lr_min: float,
                lr_max: float, steps: int, smoothing: float, diverge_factor: float) -> dict:
    """Run the range test and return its record (JSON-ready)."""
    torch.manual_seed(cfg.seed)  # the initial weights train() builds for this seed
    model = models.build(cfg.model, num_classes_of(train_set), **cfg.model_kw).to(device)
    model.train()
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr_min, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
    else:
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        opt = cls(model.parameters(), lr=lr_min, betas=cfg.betas, eps=cfg.eps,
                  weight_decay=cfg.weight_decay)
    rates = np.geomspace(lr_min, lr_max, steps)
    lrs, losses, smoothed = [], [], []
    avg, best, diverged = 0.0, math.inf, None
    t0 = time.perf_counter()
    epoch = 0
    while len(lrs) < steps and diverged is None:
        loader = rdata.make_loader(train_set, cfg.batch_size, shuffle=True,
                                   seed=cfg.seed + epoch, num_workers=0)
        epoch += 1
        for xb, yb in loader:
            lr = float(rates[len(lrs)])
            for g in opt.param_groups:
                g["lr"] = lr
            loss = torch.nn.functional.cross_entropy(model(xb.to(device)).float(),
                                                     yb.to(device))
            value = loss.item()
            lrs.append(lr)
            losses.append(value if math.isfinite(value) else None)
            if not math.isfinite(value):
                diverged = lr
                break
            avg = smoothing * avg + (1 - smoothing) * value
            smooth = avg / (1 - smoothing ** len(lrs))
            smoothed.append(smooth)
            best = min(best, smooth)
            if value > diverge_factor * best:
                diverged = lr
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if len(lrs) >= steps:
                break
    i = int(np.argmin(smoothed))
    return {"config": cfg.to_dict(), "lrs": lrs, "losses": losses, "smoothed": smoothed,
            "lr_min_loss": lrs[i], "lr_diverged": diverged, "steps": len(lrs),
            "wall_time_s": time.perf_counter() - t0, "N": len(train_set),
            **provenance(device)}

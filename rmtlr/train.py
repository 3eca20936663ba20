"""One training run: its configuration, the paper's schedule, augmentation and the loop.

- :class:`TrainConfig`: everything that defines a run, checked when it is made, and its
  identity in a results file (:func:`rmtlr.results.run_key` of :meth:`TrainConfig.to_dict`).
- :func:`eq23_lr`: the learning-rate schedule of Eq. 23 (Granziol, Zohren & Roberts 2022).
- :func:`random_crop_flip`: the paper's augmentation (4-pixel pad, random 32×32 crop,
  horizontal flip) on a batch of in-memory images, vectorised and seeded.
- :func:`train`: SGD (momentum, weight decay) or Adam/AdamW (damping δ = ``eps``) with a
  constant rate or Eq. 23; per-epoch loss/accuracy; divergence (a non-finite or exploding
  loss) is an *outcome*, not a crash; an optional callback after every epoch (the Lanczos
  learner, :class:`rmtlr.learner.LearnerCallback`, or :class:`IterateAveraging`) and a
  per-epoch checkpoint from which an interrupted run continues exactly. Launched by
  ``torchrun`` (an initialised ``torch.distributed`` group of more than one process,
  :func:`distributed_world`), it trains with DistributedDataParallel: every rank draws the
  same global batch of B and trains on its B/world samples, so the run is the
  single-process run.
- :func:`train_stored`: one run, read back from a results file if it is there, else
  trained (resuming its checkpoint) and stored.

Batch-size sweeps and the largest-stable-rate search built on :func:`train` are in
:mod:`rmtlr.sweeps`; the rules α(B) in :mod:`rmtlr.lr_rules`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from rmtlr import data as rdata
from rmtlr import models
from rmtlr.profiles import resolve_device
from rmtlr.progress import progress_bar
from rmtlr.results import ResultsFile, data_id, provenance, run_key
from rmtlr.rmt.validation import finite_scalar, integer, random_seed

__all__ = ["OPTIMIZERS", "SCHEDULES", "IterateAveraging", "TrainConfig", "distributed_world",
           "eq23_lr", "evaluate", "num_classes_of", "random_crop_flip", "train", "train_stored"]

#: Optimisers :func:`train` knows.
OPTIMIZERS = ("sgd", "adam", "adamw")
#: Learning-rate schedules :func:`train` knows.
SCHEDULES = ("constant", "eq23")


def _as_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _as_json_dict(value: Any, name: str) -> dict:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of keyword arguments, got {value!r}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must hold only JSON values (str keys; numbers, strings, "
                         f"lists, dicts), got {value!r}: {err}") from err


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that defines a training run, and its identity in a results file.

    Every field is checked when the config is made; whole numbers given as floats
    (``batch_size=16.0``) and NumPy scalars are stored as Python ints and floats, so a
    config is strict JSON and equal settings give equal run keys.

    Attributes
    ----------
    model : str
        A name for :func:`rmtlr.models.build`.
    dataset : str
        A name for :func:`rmtlr.data.load` (used when :func:`train` gets no ``train_set``).
    optimizer : str
        ``"sgd"``, ``"adam"`` or ``"adamw"``.
    lr : float
        α_0 > 0, the (initial) learning rate.
    batch_size : int
        B >= 1.
    epochs : int
        Passes over the data (>= 1).
    steps : int or None
        If set, the number of updates instead of ``epochs`` passes.
    momentum : float
        SGD's ρ in [0, 1).
    weight_decay : float
        L2 coefficient >= 0 (AdamW: decoupled decay).
    eps : float
        Adam's damping δ > 0.
    betas : tuple of float
        Adam's (β1, β2), each in [0, 1).
    schedule : str
        ``"constant"`` or ``"eq23"`` (Eq. 23, decaying to ``final_ratio`` · α_0).
    final_ratio : float
        r in (0, 1] of Eq. 23.
    explode : float
        A batch loss above ``explode`` × the initial loss counts as divergence (> 1).
    probe : int
        Size of the fixed training subset (its first ``probe`` samples) on which the
        initial and final losses are measured.
    seed : int
        Seeds the initialisation, the batch order and the augmentation; in [0, 2**63 − 1].
    augment : bool
        Apply :func:`random_crop_flip` to every training batch (image data only).
    model_kw : dict
        Keyword arguments of :func:`rmtlr.models.build`.
    data_kw : dict
        Keyword arguments of :func:`rmtlr.data.load` (``n`` sets the stand-ins' size).
    amp : bool
        bfloat16 autocast (a GPU speed option).
    channels_last : bool
        Channels-last memory format (a GPU speed option).

    Examples
    --------
    >>> cfg = TrainConfig(optimizer="adam", lr=4e-4, batch_size=128.0)
    >>> cfg.batch_size
    128
    >>> TrainConfig(betas=(1.5, 0.999))
    Traceback (most recent call last):
        ...
    ValueError: betas[0] (β1) must be a finite number in [0, 1), got 1.5
    >>> TrainConfig(batch_size="128")
    Traceback (most recent call last):
        ...
    TypeError: batch_size must be an integer >= 1, got '128' (str)

    Raises
    ------
    TypeError
        If a field has the wrong kind: a string, bool or None for a number, a number for
        a name, a non-dict ``model_kw``/``data_kw``, a non-bool flag.
    ValueError
        If a field is out of range: an unknown name, a fractional or negative count, a
        rate or coefficient outside its interval, NaN or ∞, non-JSON keyword arguments.
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
    augment: bool = False
    model_kw: dict = field(default_factory=dict)
    data_kw: dict = field(default_factory=dict)
    amp: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        """Check every field and store it in its canonical type."""
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("model", "dataset"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a non-empty string, got {value!r}")
            if not value:
                raise ValueError(f"{name} must be a non-empty string, got ''")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        put("lr", finite_scalar("lr", self.lr, lo=0, lo_open=True))
        put("batch_size", integer("batch_size", self.batch_size))
        # Checked even when steps overrides it: the config is stored as strict JSON.
        put("epochs", integer("epochs", self.epochs))
        if self.steps is not None:
            put("steps", integer("steps", self.steps))
        put("momentum", finite_scalar("momentum", self.momentum, lo=0, hi=1, hi_open=True))
        put("weight_decay", finite_scalar("weight_decay", self.weight_decay, lo=0))
        put("eps", finite_scalar("eps (Adam damping δ)", self.eps, lo=0, lo_open=True))
        betas = self.betas
        if isinstance(betas, (str, bytes)) or not isinstance(betas, Iterable):
            raise TypeError(f"betas must be two numbers in [0, 1) (β1, β2), got {betas!r}")
        betas = tuple(betas)
        if len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1) (β1, β2), got {betas!r}")
        put("betas", tuple(finite_scalar(f"betas[{i}] (β{i + 1})", b, lo=0, hi=1, hi_open=True)
                           for i, b in enumerate(betas)))
        put("final_ratio", finite_scalar("final_ratio", self.final_ratio, lo=0, hi=1,
                                         lo_open=True))
        put("explode", finite_scalar("explode", self.explode, lo=1, lo_open=True))
        put("probe", integer("probe", self.probe))
        put("seed", random_seed("seed", self.seed))
        for name in ("augment", "amp", "channels_last"):
            put(name, _as_bool(getattr(self, name), name))
        put("model_kw", _as_json_dict(self.model_kw, "model_kw"))
        put("data_kw", _as_json_dict(self.data_kw, "data_kw"))

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict.

        Returns
        -------
        dict
            Every field; tuples become lists. Its :func:`rmtlr.results.run_key` is the
            run's identity in a results file.
        """
        return json.loads(json.dumps(asdict(self)))


def eq23_lr(t: float, T: float, *, alpha0: float, r: float = 0.01) -> float:
    r"""Return the learning rate of the paper's schedule (Eq. 23) at step t of T.

    .. math:: α_t = α_0 \;(t/T ≤ 0.5),\quad
              α_0\Big(1 − \frac{(1 − r)(t/T − 0.5)}{0.4}\Big) \;(0.5 < t/T ≤ 0.9),\quad
              r α_0 \;(t/T > 0.9).

    Parameters
    ----------
    t : float
        The step (or epoch), in [0, T].
    T : float
        The total number of steps (or epochs), > 0.
    alpha0 : float
        α_0 > 0.
    r : float
        The final ratio, in (0, 1].

    Returns
    -------
    float
        α_t.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> [round(eq23_lr(t, 100, alpha0=0.1), 6) for t in (0, 50, 70, 90, 100)]
    [0.1, 0.1, 0.0505, 0.001, 0.001]
    """
    T = finite_scalar("T", T, lo=0, lo_open=True)
    t = finite_scalar("t", t, lo=0, hi=T)
    alpha0 = finite_scalar("alpha0", alpha0, lo=0, lo_open=True)
    r = finite_scalar("r", r, lo=0, hi=1, lo_open=True)
    u = t / T
    if u <= 0.5:
        return alpha0
    if u <= 0.9:
        return alpha0 * (1.0 - (1.0 - r) * (u - 0.5) / 0.4)
    return r * alpha0


def random_crop_flip(x: torch.Tensor, *, generator: torch.Generator,
                     padding: int = 4) -> torch.Tensor:
    """Return a randomly translated and mirrored copy of a batch of images.

    Each image is zero-padded by ``padding`` pixels on every side, a crop of the original
    size is taken at a uniformly random offset, and the crop is mirrored left–right with
    probability 1/2: the paper's CIFAR augmentation (pad 4, random 32×32 crop, horizontal
    flip), done for the whole batch at once by gathers on its device. On standardised
    images zero padding is the mean colour.

    Parameters
    ----------
    x : torch.Tensor
        Images (B, C, H, W), on any device.
    generator : torch.Generator
        A CPU generator that draws the offsets and flips (seeded: reproducible).
    padding : int
        Pixels of padding, >= 0.

    Returns
    -------
    torch.Tensor
        The augmented batch, same shape, dtype and device as ``x``.

    Raises
    ------
    ValueError
        If ``x`` is not 4-dimensional or ``padding`` is not an integer >= 0.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> random_crop_flip(torch.ones(8, 3, 32, 32), generator=g).shape
    torch.Size([8, 3, 32, 32])
    """
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
    p = integer("padding", padding, lo=0)
    B, C, H, W = x.shape
    shift = torch.randint(0, 2 * p + 1, (B, 2), generator=generator).to(x.device)
    flip = (torch.rand(B, generator=generator) < 0.5).to(x.device)
    rows = shift[:, :1] + torch.arange(H, device=x.device)
    cols = shift[:, 1:] + torch.arange(W, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    padded = nn.functional.pad(x, (p, p, p, p))
    # Rows, then columns: two gathers with broadcast indices (4x faster on a CPU than one
    # gather indexing all four dimensions).
    picked = padded.gather(2, rows[:, None, :, None].expand(B, C, H, W + 2 * p))
    return picked.gather(3, cols[:, None, None, :].expand(B, C, H, W))


def num_classes_of(dataset: Any) -> int:
    """Return the number of classes of a labelled data set.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Its ``num_classes`` attribute is used when present; for a plain ``TensorDataset``
        of (inputs, integer labels) it is 1 + the largest label.

    Returns
    -------
    int
        The number of classes, >= 2.

    Raises
    ------
    ValueError
        If neither is available, or the labels are not integers >= 0.
    """
    n = getattr(dataset, "num_classes", None)
    if n is not None:
        return integer("num_classes of the data set", n, lo=2)
    if isinstance(dataset, torch.utils.data.TensorDataset) and len(dataset.tensors) >= 2:
        y = dataset.tensors[1]
        if y.dtype.is_floating_point or y.dtype == torch.bool or y.dim() != 1 or not len(y):
            raise ValueError(f"the data set's labels must be a 1-D integer tensor (class "
                             f"indices), got {y.dtype} of shape {tuple(y.shape)}")
        if int(y.min()) < 0:
            raise ValueError(f"class labels must be >= 0, got {int(y.min())}")
        return max(2, int(y.max()) + 1)
    raise ValueError(f"the data set ({type(dataset).__name__}) has no num_classes attribute "
                     "and its labels cannot be read; use rmtlr.data.LabelledTensors or pass "
                     "model=")


def _make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def _batches(dataset, batch_size: int, generator: torch.Generator,
             device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled batches; in-memory tensors are indexed directly (no workers)."""
    if isinstance(dataset, torch.utils.data.TensorDataset):
        x, y = dataset.tensors[:2]
        perm = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            yield x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)
        return
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    for xb, yb in rdata.make_loader(dataset, batch_size, shuffle=True, seed=seed):
        yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


def _probe(dataset, size: int):
    """Return the first ``size`` training samples, in memory when the data set is."""
    size = min(size, len(dataset))
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return torch.utils.data.TensorDataset(*(t[:size] for t in dataset.tensors))
    return torch.utils.data.Subset(dataset, range(size))


def _augment_seed(seed: int) -> int:
    """Derive the augmentation's seed, independent of the batch order's (same ``seed``)."""
    return int(np.random.SeedSequence((seed, 1)).generate_state(1, dtype=np.uint64)[0] >> 1)


def _finite_or_none(x: float) -> float | None:
    """Return ``x``, or None if it is not finite (records are strict JSON)."""
    return x if math.isfinite(x) else None


def _check_inputs(dataset, name: str, *, augment: bool) -> None:
    """Catch inputs that would fail deep inside the model: integer pixels, non-images."""
    if not len(dataset):
        raise ValueError(f"{name} is empty")
    x0 = dataset[0][0]
    if isinstance(x0, torch.Tensor) and not x0.is_floating_point():
        raise ValueError(f"{name} inputs are {x0.dtype}; models take floating-point inputs "
                         "(convert, e.g. x.float() / 255)")
    if augment and not (isinstance(x0, torch.Tensor) and x0.dim() == 3):
        shape = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise ValueError(f"augment=True needs image inputs (C, H, W); {name} has {shape}")


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Any, *, device: str | torch.device | None = None,
             batch_size: int = 1024) -> tuple[float, float]:
    """Return the mean cross-entropy and the accuracy of ``model`` on ``dataset``.

    Parameters
    ----------
    model : torch.nn.Module
        The network, evaluated in eval mode (its mode is restored afterwards).
    dataset : torch.utils.data.Dataset
        (input, label) samples.
    device : str or torch.device, optional
        Where to evaluate; default: where the model's parameters are.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    tuple of float
        (mean loss, accuracy in [0, 1]).

    Raises
    ------
    ValueError
        For a device that does not exist or a batch size below 1.
    """
    dev = next(model.parameters()).device if device is None else resolve_device(device)
    batch_size = integer("batch_size", batch_size)
    was_training = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    if isinstance(dataset, torch.utils.data.TensorDataset):
        x, y = dataset.tensors[:2]
        chunks = ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size))
    else:
        chunks = rdata.make_loader(dataset, min(batch_size, len(dataset)), shuffle=False,
                                   drop_last=False)
    for xb, yb in chunks:
        xb, yb = xb.to(dev), yb.to(dev)
        out = model(xb).float()
        loss_sum += nn.functional.cross_entropy(out, yb, reduction="sum").item()
        correct += (out.argmax(1) == yb).sum().item()
        total += len(yb)
    model.train(was_training)
    return loss_sum / total, correct / total


class IterateAveraging:
    r"""Average the weights over the last epochs of a run (stochastic weight averaging).

    A callback for :func:`train`: after every epoch e ≥ ``start`` (0-based, as
    ``swa_start`` of :class:`rmtlr.learner.LanczosLearner`) the parameters are added to a
    running mean w̄ = (1/n) Σ w_e, kept in
    :attr:`averaged_model` (a :class:`torch.optim.swa_utils.AveragedModel`). At the end of
    the run :func:`train` recomputes its BatchNorm statistics and evaluates it (Izmailov et
    al. 2018; Granziol et al. 2022, Sec. 10.2, average the iterates near the end).

    Parameters
    ----------
    start : int
        First epoch (0-based) whose end is averaged, >= 0: with T epochs, ``start=T - k``
        averages the last k.

    Raises
    ------
    ValueError
        If ``start`` is not an integer >= 0.

    Examples
    --------
    >>> from rmtlr import data
    >>> avg = IterateAveraging(start=1)  # the ends of the 2nd and 3rd epochs
    >>> rec = train(TrainConfig(lr=0.1, batch_size=32, epochs=3),
    ...             train_set=data.gaussian_mixture(n=256, seed=0),
    ...             val_set=data.gaussian_mixture(n=128, seed=1), device="cpu", callback=avg)
    >>> rec["averaged"]["epochs_averaged"], int(avg.averaged_model.n_averaged)
    (2, 2)
    """

    def __init__(self, start: int):
        self.start = integer("start", start, lo=0)
        self.averaged_model: AveragedModel | None = None

    def config(self) -> dict[str, Any]:
        """Return what sets this callback's effect on a run, for its run key.

        Returns
        -------
        dict
            ``{"iterate_averaging": {"start": start}}``.
        """
        return {"iterate_averaging": {"start": self.start}}

    def on_epoch_end(self, epoch: int, model: nn.Module,
                     optimizer: torch.optim.Optimizer) -> None:
        """Add the weights after ``epoch`` epochs to the average once ``epoch > start``.

        Parameters
        ----------
        epoch : int
            Epochs completed (0: before training).
        model : torch.nn.Module
            The network being trained.
        optimizer : torch.optim.Optimizer
            Its optimiser (not used).
        """
        if epoch - 1 < self.start:  # epoch counts completed epochs; start is 0-based
            return
        if self.averaged_model is None:
            self.averaged_model = AveragedModel(model)
        self.averaged_model.update_parameters(model)
        return

    def state_dict(self) -> dict[str, Any]:
        """Return the state a checkpoint needs to resume the average.

        Returns
        -------
        dict
            ``{"averaged": AveragedModel state dict or None}``.
        """
        avg = self.averaged_model
        return {"averaged": None if avg is None else avg.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any], model: nn.Module) -> None:
        """Restore the average from :meth:`state_dict` (on resuming a run).

        Parameters
        ----------
        state : Mapping
            What :meth:`state_dict` returned.
        model : torch.nn.Module
            The network being trained (the average is a copy of it).
        """
        self.averaged_model = None
        if state["averaged"] is not None:
            self.averaged_model = AveragedModel(model)
            self.averaged_model.load_state_dict(state["averaged"])


def _in_order_batches(dataset, batch_size: int, device: torch.device):
    """Yield the training set once, in order, not augmented (for BatchNorm statistics)."""
    if isinstance(dataset, torch.utils.data.TensorDataset):
        x, y = dataset.tensors[:2]
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        return
    for xb, yb in rdata.make_loader(dataset, batch_size, shuffle=False, drop_last=False):
        yield xb.to(device), yb.to(device)


def _evaluate_average(avg: AveragedModel, train_set, val_set, batch_size: int,
                      device: torch.device, n: int) -> dict[str, Any]:
    """Recompute the average's BatchNorm statistics on the training set and evaluate it."""
    update_bn(((xb, yb) for xb, yb in _in_order_batches(train_set, batch_size, device)),
              avg, device=device)
    out: dict[str, Any] = {"epochs_averaged": n}
    if val_set is not None:
        vl, va = evaluate(avg, val_set, device=device)
        out.update(val_loss=_finite_or_none(vl), val_acc=va)
    return out


def _checkpoint_key(cfg: TrainConfig, N: int, P: int, callback: Any) -> str:
    config = callback.config() if callback is not None and hasattr(callback, "config") else None
    cb = None if callback is None else [type(callback).__name__, config]
    return run_key(cfg.to_dict(), {"N": N, "P": P}, callback=cb)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a kill mid-write leaves the old file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, *, train_set: Any = None, val_set: Any = None,
          model: nn.Module | None = None, device: str | torch.device | None = None,
          progress: bool | None = None, callback: Any = None,
          checkpoint: str | os.PathLike | None = None,
          distributed: bool | None = None) -> dict[str, Any]:
    """Train one network and return a JSON-ready record of the run.

    Divergence, a batch loss that is not finite or exceeds ``cfg.explode`` × the initial
    probe loss, ends the run and is recorded as its outcome, not raised.

    **Callback.** ``callback.on_epoch_end(epoch, model, optimizer)`` is called with
    ``epoch=0`` before the first step and with the number of epochs completed after each
    epoch (after its validation), as long as the run has not diverged; what it returns, if
    not None, is appended to the record's ``"callback"`` list (it must be JSON-ready). It
    may set the optimiser's ``lr`` and ``momentum`` (the Lanczos learner,
    :class:`rmtlr.learner.LearnerCallback`, does): with ``schedule="constant"`` the loop
    leaves them as they are (it sets ``cfg.lr`` once, when the optimiser is made), while
    ``schedule="eq23"`` sets ``lr`` before every step and so overrides the callback's. If
    the callback has an ``averaged_model`` (a :class:`~torch.optim.swa_utils.AveragedModel`,
    e.g. :class:`IterateAveraging`) that is not None at the end, its BatchNorm statistics
    are recomputed on the training set (in order, not augmented) and it is evaluated on
    ``val_set``: the record's ``"averaged"``. Time spent in the callback is counted in
    ``wall_time_s`` and reported as ``callback_seconds`` (CPU: ``callback_cpu_seconds``).
    Optional methods: ``config()``
    (JSON, part of the run's identity), ``state_dict()`` and
    ``load_state_dict(state, model)`` (for ``checkpoint``).

    **Checkpoint.** With ``checkpoint=path`` the state after every completed epoch (model,
    optimiser, random generators, curves, the callback's ``state_dict()``) is written to
    ``path`` (atomically), and a run that finds ``path`` from an interrupted run of the
    same configuration continues after its last completed epoch, with the same batches,
    augmentation and updates as an uninterrupted run. The file is removed when the run
    ends.

    Parameters
    ----------
    cfg : TrainConfig
        The run.
    train_set : torch.utils.data.Dataset, optional
        Default ``rmtlr.data.load(cfg.dataset, **cfg.data_kw)``. A plain
        ``TensorDataset`` works (classes inferred from its labels).
    val_set : torch.utils.data.Dataset, optional
        Evaluated after every epoch when given.
    model : torch.nn.Module, optional
        Default ``rmtlr.models.build(cfg.model, …)``, built after seeding with
        ``cfg.seed``, so the same seed gives the same initial weights.
    device : str or torch.device, optional
        Default: the active profile's.
    progress : bool, optional
        A progress bar; None: on unless ``TQDM_DISABLE`` is set or under pytest.
    callback : object, optional
        An object with ``on_epoch_end(epoch, model, optimizer)`` (see above).
    checkpoint : str or os.PathLike, optional
        File for the per-epoch state (see above); None: no checkpoint.
    distributed : bool, optional
        Train with DistributedDataParallel over the initialised process group (every rank
        calls :func:`train` with the same arguments; each computes B/world samples of every
        batch, gradients are averaged, and the batch losses are all-reduced, so all ranks
        take the same steps and return the same record). None (default): whenever
        :func:`distributed_world` reports more than one process. BatchNorm statistics are
        then per rank, as in PyTorch's DDP; convert with ``nn.SyncBatchNorm`` for global
        ones.

    Returns
    -------
    dict
        ``config``, ``outcome`` (``"ok"`` or ``"diverged"``), ``diverged_at`` (step or
        None), ``steps``, ``initial_loss`` and ``final_loss`` (on the probe subset, before
        and after; None after divergence), ``curves`` (per epoch: ``epoch``, ``lr`` (at
        the epoch's last step), ``train_loss``, ``train_acc`` over the epoch's batches,
        ``val_loss``, ``val_acc``), ``step_loss`` (every batch loss), ``wall_time_s``,
        ``cpu_time_s`` (the process's CPU time, all threads), ``samples_per_s``, ``data``
        (description), ``N``, ``P``, ``device``, ``versions``, ``date``; with a callback
        also ``callback`` (its returns), ``callback_seconds`` and
        ``callback_cpu_seconds`` and, if it averaged, ``averaged`` (``epochs_averaged``,
        ``val_loss``, ``val_acc``); ``resumed_at_epoch`` when it continued a checkpoint.

    Raises
    ------
    ValueError
        For a batch size above N, a device that does not exist, integer inputs,
        ``augment`` on non-image data, a data set whose classes cannot be told, a
        checkpoint of another run (configuration, data size, model size or callback), or,
        when distributed, a batch size that is not a multiple of the number of processes.
    TypeError
        If ``cfg`` is not a :class:`TrainConfig`, or ``callback`` has no
        ``on_epoch_end``, or a checkpoint is asked for with a callback that has no
        ``state_dict``/``load_state_dict``.

    Examples
    --------
    >>> from rmtlr import data
    >>> ds = data.gaussian_mixture(n=256, seed=0)
    >>> rec = train(TrainConfig(lr=0.1, batch_size=32, epochs=2), train_set=ds, device="cpu")
    >>> rec["outcome"], rec["steps"], rec["final_loss"] < rec["initial_loss"]
    ('ok', 16, True)
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if callback is not None and not callable(getattr(callback, "on_epoch_end", None)):
        raise TypeError("callback must have a method on_epoch_end(epoch, model, optimizer), "
                        f"got {type(callback).__name__}")
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if callback is not None and not all(callable(getattr(callback, m, None)) for m in
                                            ("state_dict", "load_state_dict")):
            raise TypeError("checkpoint needs a callback with state_dict() and "
                            f"load_state_dict(state, model); {type(callback).__name__} "
                            "has not both")
    device = resolve_device(device)
    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    N = len(train_set)
    if cfg.batch_size > N:
        raise ValueError(f"batch_size must be <= N = {N} (training-set size), got {cfg.batch_size}")
    _check_inputs(train_set, "train_set", augment=cfg.augment)
    if val_set is not None:
        _check_inputs(val_set, "val_set", augment=False)
    rank, world = distributed_world() if distributed is not False else (0, 1)
    if distributed and world == 1:
        raise ValueError("distributed=True needs an initialised torch.distributed process "
                         "group with more than one process (launch with torchrun)")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size must be a multiple of the {world} processes, got "
                         f"{cfg.batch_size}")
    torch.manual_seed(cfg.seed)
    if model is None:
        model = models.build(cfg.model, num_classes_of(train_set), **cfg.model_kw)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    net = _ddp(model, device) if world > 1 else model
    opt = _make_optimizer(cfg, model.parameters())
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(_augment_seed(cfg.seed)) if cfg.augment else None
    per_epoch = N // cfg.batch_size
    total = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp)
    curves = {k: [] for k in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")}
    step_loss: list[float] = []
    returned: list[Any] = []
    outcome, diverged_at = "ok", None
    probe = _probe(train_set, cfg.probe)
    initial = evaluate(model, probe, device=device)[0]
    step, epoch, resumed_at = 0, 0, None
    # Wall-clock and process CPU seconds: of the run, and of those the callback spent.
    before, cb_seconds = [0.0, 0.0], [0.0, 0.0]
    P = models.count_parameters(model)
    ckpt_key = _checkpoint_key(cfg, N, P, callback) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("key") != ckpt_key:
            raise ValueError(f"checkpoint {checkpoint} belongs to another run (configuration, "
                             "data size, model size or callback differ); remove it or "
                             "pass another path")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["gen"])
        if aug_gen is not None:
            aug_gen.set_state(state["aug_gen"])
        torch.set_rng_state(state["torch_rng"])
        step, epoch, initial = state["step"], state["epoch"], state["initial"]
        curves, step_loss, returned = state["curves"], state["step_loss"], state["returned"]
        before, cb_seconds = list(state["seconds"]), list(state["callback_seconds"])
        if callback is not None:
            callback.load_state_dict(state["callback"], model)
        resumed_at = epoch
    bar = progress_bar(total=total, desc=f"{cfg.model} B={cfg.batch_size} lr={cfg.lr:.3g}",
                       progress=progress)
    bar.update(step)  # steps done before a resume
    t0, c0 = time.perf_counter(), time.process_time()

    def call_back(done: int) -> None:
        if callback is None:
            return
        t, c = time.perf_counter(), time.process_time()
        out = callback.on_epoch_end(done, model, opt)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        cb_seconds[0] += time.perf_counter() - t
        cb_seconds[1] += time.process_time() - c
        if out is not None:
            returned.append(out)

    if resumed_at is None:
        call_back(0)
    while step < total and outcome == "ok":
        epoch += 1
        loss_sum, seen = 0.0, 0
        correct = torch.zeros((), dtype=torch.long, device=device)  # summed on device: no sync
        for xb, yb in _batches(train_set, cfg.batch_size, gen, device):
            if cfg.schedule == "eq23":
                lr = eq23_lr(step, total, alpha0=cfg.lr, r=cfg.final_ratio)
                for g in opt.param_groups:
                    g["lr"] = lr
            if aug_gen is not None:
                xb = random_crop_flip(xb, generator=aug_gen)
            if world > 1:  # this rank's share of the global batch
                share = cfg.batch_size // world
                xb, yb = xb[rank * share:(rank + 1) * share], yb[rank * share:(rank + 1) * share]
            if cfg.channels_last and xb.dim() == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with amp:
                out = net(xb)
                loss = nn.functional.cross_entropy(out.float(), yb)
            value = loss.item() if world == 1 else _global_mean(loss, world)
            step_loss.append(value)
            if not math.isfinite(value) or value > cfg.explode * initial:
                outcome, diverged_at = "diverged", step
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += value * cfg.batch_size
            correct += (out.detach().argmax(1) == yb).sum()
            seen += cfg.batch_size
            step += 1
            bar.update(1)
            if step >= total:
                break
        if seen:
            if world > 1:
                dist.all_reduce(correct)
            curves["epoch"].append(epoch)
            curves["lr"].append(float(opt.param_groups[0]["lr"]))
            curves["train_loss"].append(loss_sum / seen)
            curves["train_acc"].append(correct.item() / seen)
            if val_set is not None and outcome == "ok":
                vl, va = evaluate(model, val_set, device=device)
                # The last step can blow the weights up after its (finite) loss was taken.
                if not math.isfinite(vl):
                    outcome, diverged_at = "diverged", step
                curves["val_loss"].append(_finite_or_none(vl))
                curves["val_acc"].append(va)
        if outcome == "ok" and seen:
            call_back(epoch)
            if checkpoint is not None and step < total:
                _save_checkpoint(checkpoint, {
                    "key": ckpt_key, "epoch": epoch, "step": step, "initial": initial,
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "gen": gen.get_state(),
                    "aug_gen": None if aug_gen is None else aug_gen.get_state(),
                    "torch_rng": torch.get_rng_state(), "curves": curves,
                    "step_loss": step_loss, "returned": returned,
                    "seconds": [before[0] + time.perf_counter() - t0,
                                before[1] + time.process_time() - c0],
                    "callback_seconds": list(cb_seconds),
                    "callback": None if callback is None else callback.state_dict()})
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = before[0] + time.perf_counter() - t0
    cpu = before[1] + time.process_time() - c0
    final = evaluate(model, probe, device=device)[0] if outcome == "ok" else None
    if final is not None and not math.isfinite(final):
        outcome, diverged_at, final = "diverged", step, None
    extra: dict[str, Any] = {}
    if callback is not None:
        extra = {"callback": returned, "callback_seconds": cb_seconds[0],
                 "callback_cpu_seconds": cb_seconds[1]}
        avg = getattr(callback, "averaged_model", None)
        if avg is not None and outcome == "ok":
            extra["averaged"] = _evaluate_average(avg, train_set, val_set, cfg.batch_size,
                                                  device, int(avg.n_averaged))
    if resumed_at is not None:
        extra["resumed_at_epoch"] = resumed_at
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
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
        "cpu_time_s": cpu,
        "samples_per_s": step * cfg.batch_size / wall if wall > 0 else None,
        "data": getattr(train_set, "description", type(train_set).__name__),
        "N": N,
        "P": P,
        **extra,
        **provenance(device),
    }


def train_stored(cfg: TrainConfig, results: str | os.PathLike, *, callback: Any = None,
                 train_set: Any = None, val_set: Any = None, test_set: Any = None,
                 device: str | torch.device | None = None, profile: str | None = None,
                 progress: bool | None = None) -> dict[str, Any]:
    """Train one run once: read it back from ``results`` if stored, else train and store it.

    The run's key (:func:`rmtlr.results.run_key`) is its config, its data
    (:func:`rmtlr.results.data_id` of the three sets) and ``callback.config()``. A run that
    is not stored is trained by :func:`train` with a checkpoint in the folder
    ``<results stem>.checkpoints`` next to the file, so a run killed mid-way continues
    from its last completed epoch when called again; the finished record is appended to
    ``results`` (and the checkpoint removed). Two processes asking for the same run train
    it once (:meth:`rmtlr.results.ResultsFile.run_once`).

    Parameters
    ----------
    cfg : TrainConfig
        The run.
    results : str or os.PathLike
        The JSON Lines results file.
    callback : object, optional
        As for :func:`train`; it must have ``config()`` (its part of the run's identity)
        and ``state_dict``/``load_state_dict`` (for the checkpoint).
    train_set : torch.utils.data.Dataset, optional
        Default ``rmtlr.data.load(cfg.dataset, "train", **cfg.data_kw)``.
    val_set : torch.utils.data.Dataset, optional
        Evaluated after every epoch.
    test_set : torch.utils.data.Dataset, optional
        Evaluated once at the end (the final model, and the average if there is one): the
        record's ``test`` (``final`` and ``averaged``, each ``[loss, accuracy]``).
    device : str or torch.device, optional
        Default: the active profile's.
    profile : str, optional
        The profile name, stored in the record.
    progress : bool, optional
        Progress bar of the training loop.

    Returns
    -------
    dict
        The :func:`train` record with ``key``, ``profile``, ``data_id`` and ``test``.

    Raises
    ------
    TypeError
        If ``callback`` lacks ``config``, or as :func:`train`.
    ValueError
        If ``results`` cannot be written, or as :func:`train`.
    """
    if callback is not None and not callable(getattr(callback, "config", None)):
        raise TypeError("callback must have config() (its settings, part of the run's key) "
                        f"to be stored; {type(callback).__name__} has none")
    store = ResultsFile(results)
    store.check_writable()
    device = resolve_device(device)
    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    data = data_id(train_set, val_set, test=test_set)
    key = run_key(cfg.to_dict(), data,
                  callback=None if callback is None else callback.config())
    folder = store.path.with_name(store.path.stem + ".checkpoints")

    def compute() -> dict[str, Any]:
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)  # as train() does, so the initial weights are the same
        model = models.build(cfg.model, num_classes_of(train_set), **cfg.model_kw)
        rec = train(cfg, train_set=train_set, val_set=val_set, model=model, device=device,
                    progress=progress, callback=callback,
                    checkpoint=folder / f"{key[:32]}.pt")
        test = None
        if test_set is not None and rec["outcome"] == "ok":
            avg = getattr(callback, "averaged_model", None)
            test = {"final": list(evaluate(model, test_set, device=device)),
                    "averaged": None if avg is None else list(evaluate(avg, test_set,
                                                                       device=device))}
        return {**rec, "test": test, "profile": profile, "data_id": data}

    return store.run_once(key, compute)


def distributed_world() -> tuple[int, int]:
    """Return (rank, number of processes) of the initialised ``torch.distributed`` group.

    Returns
    -------
    tuple of int
        (0, 1) unless ``torch.distributed`` is initialised (e.g. by ``torchrun``) with more
        than one process.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _ddp(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _global_mean(loss: torch.Tensor, world: int) -> float:
    """Return the batch loss over all ranks (equal shares), the same on every rank."""
    t = loss.detach().float().clone()
    dist.all_reduce(t)
    return t.item() / world

r"""Learning rate and momentum from a few Lanczos steps (Granziol et al. 2022, Sec. 10.2).

On a quadratic L(w) = ½ wᵀAw whose Hessian A has its spectrum in [λ_min, λ₁], the heavy
ball and Nesterov's method converge fastest with a learning rate α and a momentum ρ that
depend only on the two extreme eigenvalues (Polyak 1964; Nesterov 2004, Sec. 2.2). The
paper's learner reads these two numbers off the batch Hessian of a fixed subset of the
training data every E epochs (paper: E = 20, m = 20 Lanczos steps, 1,024 samples) and
sets α and ρ from them, instead of tuning them on a grid.

- :func:`lr_momentum_from_ritz` turns Ritz values and weights into (α, ρ): the rule that
  discards the Ritz values of the degenerate bulk, then the heavy-ball or Nesterov formula,
  as printed in the paper or in the classical form that is optimal on a quadratic.
- :class:`LanczosLearner` wraps a :class:`torch.optim.SGD` and does the above every E
  epochs on :class:`~rmtlr.curvature.HessianOperator` of the subset, recording every
  estimate as a :class:`LearnerRecord`; optionally it keeps an iterate average
  (stochastic weight averaging, Izmailov et al. 2018) near the end of training, as the paper.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.optim.swa_utils import AveragedModel

from rmtlr.curvature import BN_MODES, HVP_METHODS, HessianOperator, LinearCombination, lanczos
from rmtlr.rmt.validation import MAX_SEED, integer, random_seed

__all__ = ["FORMS", "VARIANTS", "LanczosLearner", "LearnerCallback", "LearnerRecord", "LrMomentum",
           "lr_momentum_from_ritz"]

#: Accelerated methods the learner sets parameters for.
VARIANTS = ("polyak", "nesterov")
#: Formulas: as printed in the paper (Eqs. 26–27) or the classical optimal ones.
FORMS = ("printed", "classical")


def _frozen_array(values) -> np.ndarray:
    a = np.array(values, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class LrMomentum:
    """Learning rate and momentum chosen from Ritz values by :func:`lr_momentum_from_ritz`.

    Attributes
    ----------
    lr : float
        α, the learning rate (``lr`` of :class:`torch.optim.SGD`).
    momentum : float
        ρ, the momentum (``momentum`` of :class:`torch.optim.SGD`), in [0, 1).
    lam_max : float
        λ₁, the largest |Ritz value| kept.
    lam_min : float
        λ_min, the smallest |Ritz value| kept (> 0).
    dropped_values : numpy.ndarray
        The |Ritz values| the degeneracy rule dropped, in the order dropped.
    dropped_weights : numpy.ndarray
        The weight each dropped value had when it was dropped (after the renormalisations
        before it); each is above 0.5.
    variant : str
        ``"polyak"`` (heavy ball) or ``"nesterov"``.
    form : str
        ``"printed"`` (the paper's Eqs. 26–27) or ``"classical"``.
    """

    lr: float
    momentum: float
    lam_max: float
    lam_min: float
    dropped_values: np.ndarray
    dropped_weights: np.ndarray
    variant: str
    form: str

    @property
    def kappa(self) -> float:
        """κ = λ₁ / λ_min, the condition number of the kept spectrum."""
        return self.lam_max / self.lam_min


def _check_choice(name: str, value, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _as_vector(name: str, values) -> np.ndarray:
    try:
        a = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values,
                       dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a 1-D sequence of real numbers") from err
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: at least one Ritz value is needed")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains non-finite values (NaN or Inf)")
    return a


def lr_momentum_from_ritz(ritz_values: ArrayLike, ritz_weights: ArrayLike, *, variant: str,
                          form: str) -> LrMomentum:
    r"""Learning rate α and momentum ρ from Lanczos Ritz values (Granziol et al. 2022, Sec. 10.2).

    **Degeneracy rule.** The values are replaced by their moduli |θ_k| and the weights
    normalised to sum to one. While the heaviest weight is above 0.5, its value is dropped
    and the rest renormalised: a weight above one half means the start vector saw one
    eigenvalue with the mass of most of the spectrum, the rank-degenerate bulk of a network
    Hessian near zero, which is not an extreme of the curvature to adapt to. Of the rest,
    λ₁ = max |θ_k| and λ_min = min |θ_k|; κ = λ₁/λ_min. Then, with the heavy ball
    w_{t+1} = w_t − α∇L(w_t) + ρ(w_t − w_{t−1}) (Polyak 1964) and Nesterov's method
    w_{t+1} = y_t − α∇L(y_t), y_t = w_t + ρ(w_t − w_{t−1}):

    ==========  ===========  ============================  ==============================
    variant     form         α                             ρ
    ==========  ===========  ============================  ==============================
    polyak      classical    4 / (√λ₁ + √λ_min)²           ((√λ₁ − √λ_min)/(√λ₁ + √λ_min))²
    polyak      printed      4 / (√λ₁ + √λ_min)  (Eq. 26)  ((√λ₁ − √λ_min)/(√λ₁ + √λ_min))²
    nesterov    classical    1 / λ₁                        (√λ₁ − √λ_min)/(√λ₁ + √λ_min)
    nesterov    printed      √(λ_min / λ₁)       (Eq. 27)  (√λ₁ − √λ_min)/(√λ₁ + √λ_min)
    ==========  ===========  ============================  ==============================

    The classical forms are the ones that are optimal on a quadratic with its spectrum in
    [λ_min, λ₁]: the heavy ball then converges as ((√κ − 1)/(√κ + 1))^t (Polyak 1964),
    which no first-order method beats in the worst case over such problems (Nesterov 2004,
    Thm 2.1.13), and Nesterov's method as (1 − 1/√κ)^t (Nesterov 2004, Sec. 2.2). The paper
    prints the heavy-ball α without the square (Eq. 26), which is not a learning rate in
    units of 1/curvature and exceeds the classical α by the factor √λ₁ + √λ_min, and
    prints Nesterov's α as √(λ_min/λ₁) = 1/√κ (Eq. 27), a dimensionless number. Both are
    offered, named, so that the two can be compared.

    In :class:`torch.optim.SGD` (with ``dampening=0``) ``lr`` is α and ``momentum`` is ρ
    for both methods (``nesterov=True`` for Nesterov's): PyTorch's buffer form
    b_t = ρ b_{t−1} + ∇L, w_{t+1} = w_t − α b_t is the heavy ball above with its velocity
    rescaled, and its Nesterov form has the same characteristic polynomial per eigenvalue.

    Parameters
    ----------
    ritz_values : array_like
        Ritz values θ_k (any sign; their moduli are used), 1-D, finite.
    ritz_weights : array_like
        Their Ritz weights τ_k (Gauss-quadrature weights: squared first components of the
        tridiagonal's eigenvectors), same length, finite, ≥ 0, not all zero; normalised here.
    variant : {"polyak", "nesterov"}
        Heavy ball or Nesterov's accelerated gradient.
    form : {"printed", "classical"}
        The paper's printed Eqs. 26–27, or the classical optimal choice.

    Returns
    -------
    LrMomentum
        α, ρ, λ₁, λ_min, the dropped values and their weights.

    Raises
    ------
    ValueError
        If the inputs are empty, not 1-D, of different lengths or not finite, a weight is
        negative or all are zero, every value was dropped (each held more than half the
        weight left, down to the last, whose weight alone is 1: typical of too few Lanczos
        steps), or λ_min = 0 (κ = ∞: the classical heavy ball
        and Nesterov would set ρ = 1, which never damps, and the printed Nesterov α = 0,
        which never moves; there is no finite optimum to set).
    TypeError
        If the inputs are not numeric.

    Examples
    --------
    >>> r = lr_momentum_from_ritz([1.0, 4.0, 9.0], [0.2, 0.3, 0.5],
    ...                           variant="polyak", form="classical")
    >>> r.lr, r.momentum, r.kappa   # 4/(3 + 1)², ((3 − 1)/(3 + 1))², 9/1
    (0.25, 0.25, 9.0)
    >>> r = lr_momentum_from_ritz([1e-4, -1.0, 9.0], [0.8, 0.1, 0.1],
    ...                           variant="nesterov", form="classical")
    >>> r.dropped_values.tolist(), r.lam_min, r.lr, r.momentum   # |−1| = 1 is λ_min
    ([0.0001], 1.0, 0.1111111111111111, 0.5)
    """
    _check_choice("variant", variant, VARIANTS)
    _check_choice("form", form, FORMS)
    values = np.abs(_as_vector("ritz_values", ritz_values))
    weights = _as_vector("ritz_weights", ritz_weights)
    if values.size != weights.size:
        raise ValueError(f"ritz_values and ritz_weights must have the same length, got "
                         f"{values.size} and {weights.size}")
    if (weights < 0).any():
        raise ValueError(f"ritz_weights must be >= 0, got {weights.min()!r}")
    total = weights.sum()
    if not total > 0:
        raise ValueError("ritz_weights are all zero: they cannot be normalised")
    weights = weights / total
    dropped_values, dropped_weights = [], []
    while values.size:
        k = int(np.argmax(weights))
        if not weights[k] > 0.5:
            break
        dropped_values.append(values[k])
        dropped_weights.append(weights[k])
        values, weights = np.delete(values, k), np.delete(weights, k)
        if values.size:
            weights = weights / weights.sum()
    if values.size == 0:
        raise ValueError(
            "the degeneracy rule dropped every Ritz value (|values| "
            f"{[float(v) for v in dropped_values]} with weights "
            f"{[float(w) for w in dropped_weights]}, each more than half the weight left): "
            "the spectral measure seen from the start vector is too concentrated for "
            f"{len(dropped_values)} Ritz values; run more Lanczos steps")
    lam_max, lam_min = float(values.max()), float(values.min())
    if lam_min == 0:
        raise ValueError("lam_min = 0 after the degeneracy rule (a kept Ritz value is zero): "
                         "kappa is infinite, so the momentum would be 1 (no damping) and "
                         "no finite learning rate and momentum are optimal")
    s_max, s_min = math.sqrt(lam_max), math.sqrt(lam_min)
    ratio = (s_max - s_min) / (s_max + s_min)
    if variant == "polyak":
        momentum = ratio ** 2
        lr = 4 / (s_max + s_min) ** 2 if form == "classical" else 4 / (s_max + s_min)
    else:
        momentum = ratio
        lr = 1 / lam_max if form == "classical" else s_min / s_max
    return LrMomentum(lr=float(lr), momentum=float(momentum), lam_max=lam_max,
                      lam_min=lam_min, dropped_values=_frozen_array(dropped_values),
                      dropped_weights=_frozen_array(dropped_weights), variant=variant,
                      form=form)


@dataclass(frozen=True)
class LearnerRecord:
    """One estimate of :class:`LanczosLearner`.

    Attributes
    ----------
    epoch : int
        Epochs completed when the estimate was taken (0: before training).
    seed : int
        Seed of the Lanczos start vector (``lanczos(op, num_steps, seed=seed)`` repeats it).
    ritz_values : numpy.ndarray
        The Ritz values θ_k of the subset's Hessian, ascending (signed, as Lanczos gives).
    ritz_weights : numpy.ndarray
        Their Ritz weights τ_k.
    result : LrMomentum
        What :func:`lr_momentum_from_ritz` chose from them (λ₁, λ_min, the dropped values).
    seconds : float
        Wall-clock time of the estimate: building the operator and the Lanczos run.
    cpu_seconds : float
        The process's CPU time over the same span (all its threads); steadier than
        wall-clock time on a shared machine. NaN in records made before it was kept.
    """

    epoch: int
    seed: int
    ritz_values: np.ndarray
    ritz_weights: np.ndarray
    result: LrMomentum
    seconds: float
    cpu_seconds: float = math.nan

    @classmethod
    def from_dict(cls, d: dict) -> LearnerRecord:
        """Rebuild a record from :meth:`as_dict` (e.g. read back from a results file).

        Parameters
        ----------
        d : dict
            What :meth:`as_dict` returned.

        Returns
        -------
        LearnerRecord
            The record, field by field (arrays read-only, as stored).
        """
        result = LrMomentum(lr=d["lr"], momentum=d["momentum"], lam_max=d["lam_max"],
                            lam_min=d["lam_min"],
                            dropped_values=_frozen_array(d["dropped_values"]),
                            dropped_weights=_frozen_array(d["dropped_weights"]),
                            variant=d["variant"], form=d["form"])
        return cls(epoch=d["epoch"], seed=d["seed"], ritz_values=_frozen_array(d["ritz_values"]),
                   ritz_weights=_frozen_array(d["ritz_weights"]), result=result,
                   seconds=d["seconds"], cpu_seconds=d.get("cpu_seconds", math.nan))

    @property
    def lr(self) -> float:
        """The learning rate set on the optimiser."""
        return self.result.lr

    @property
    def momentum(self) -> float:
        """The momentum set on the optimiser."""
        return self.result.momentum

    def as_dict(self) -> dict:
        """Return the record as plain JSON-serialisable types.

        Returns
        -------
        dict
            Every field; the :class:`LrMomentum` fields flattened in (``lr``,
            ``momentum``, ``lam_max``, ``lam_min``, ``dropped_values``,
            ``dropped_weights``, ``variant``, ``form``).
        """
        r = self.result
        return {"epoch": self.epoch, "seed": self.seed,
                "ritz_values": self.ritz_values.tolist(),
                "ritz_weights": self.ritz_weights.tolist(), "lr": r.lr,
                "momentum": r.momentum, "lam_max": r.lam_max, "lam_min": r.lam_min,
                "dropped_values": r.dropped_values.tolist(),
                "dropped_weights": r.dropped_weights.tolist(), "variant": r.variant,
                "form": r.form, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds}


def _check_settings(*, every_epochs, num_steps, variant, form, seed, bn_mode, swa_start,
                    keep_graphs, method, progress) -> dict:
    """Check the learner's settings; return them in canonical types."""
    if not isinstance(keep_graphs, (bool, np.bool_)):
        raise TypeError(f"keep_graphs must be True or False, got {keep_graphs!r}")
    return {"every_epochs": integer("every_epochs", every_epochs),
            "num_steps": integer("num_steps", num_steps),
            "variant": _check_choice("variant", variant, VARIANTS),
            "form": _check_choice("form", form, FORMS),
            "bn_mode": _check_choice("bn_mode", bn_mode, BN_MODES), "seed": random_seed("seed", seed),
            "swa_start": None if swa_start is None else integer("swa_start", swa_start, lo=0),
            "keep_graphs": bool(keep_graphs),
            "method": _check_choice("method", method, ("auto", *HVP_METHODS)),
            "progress": progress}


class LanczosLearner:
    r"""Set an SGD optimiser's learning rate and momentum from the batch Hessian's extremes.

    Granziol et al. (2022, Sec. 10.2): every ``every_epochs`` epochs, ``num_steps`` Lanczos
    steps on the Hessian of the mean loss over a fixed subset ``data`` of the training set
    (the batch Hessian H_batch of that subset; paper: 1,024 samples, E = 20, m = 20), then
    α and ρ from :func:`lr_momentum_from_ritz`, held until the next estimate. The first
    estimate is taken here, at construction, so training starts with it.

    Use it in your own loop::

        opt = torch.optim.SGD(model.parameters(), lr=0.1)   # lr and momentum are replaced
        learner = LanczosLearner(opt, model, loss_fn, (x_sub, y_sub), swa_start=150)
        for epoch in range(epochs):
            ...  # one epoch of opt.step()
            learner.epoch_end(epoch)
        torch.optim.swa_utils.update_bn(train_loader, learner.averaged_model)

    What an estimate changes: ``lr``, ``momentum`` and ``nesterov`` of every param group
    (the same values for all; a group's ``dampening`` must be 0, so that ``lr`` and
    ``momentum`` are α and ρ). The momentum buffers are kept. The model's parameters,
    buffers, train/eval flags and ``.grad`` are untouched, and so is the global random
    state (the start vector comes from its own generator). The learner owns ``lr`` and
    ``momentum``: do not step a learning-rate scheduler on the same optimiser.

    The Hessian is that of ``loss_fn`` alone, in the optimiser's parameters: SGD's weight
    decay c would add c to every eigenvalue, which the paper does not include (nor does
    this learner).

    BatchNorm: with ``bn_mode="frozen-train"`` (default) the subset is normalised with its
    own batch statistics, as SGD's training steps are, held fixed (no derivative through
    them); ``"eval"`` uses the running statistics, which lag the weights (after
    initialisation they are 0 and 1, whatever the activations). Without BatchNorm the two
    are the same. With ``"frozen-train"`` ``data`` must give the same batches on every
    pass: a tensor pair or a list of pairs, or a loader without shuffling.

    Iterate averaging: with ``swa_start=s``, after each epoch ``e ≥ s`` (0-based) the
    parameters are added to the running average :attr:`averaged_model`, a
    :class:`torch.optim.swa_utils.AveragedModel` made at the first such epoch; estimates
    continue on the trained model meanwhile. Its BatchNorm statistics must be recomputed
    before use with :func:`torch.optim.swa_utils.update_bn`.

    Parameters
    ----------
    optimizer : torch.optim.SGD
        The optimiser of ``model``; every param group needs ``dampening=0``.
    model : torch.nn.Module
        The network being trained.
    loss_fn : callable
        ``loss_fn(output, y)`` → scalar mean over the batch (as for training).
    data : tuple or list or iterable
        The fixed subset: one ``(x, y)`` batch, a list of batches, or a re-iterable loader
        yielding the same samples every pass (no random augmentation). Moved to the model's
        device batch by batch; the Hessian is that of the mean loss over all of it. On a
        CPU, batches of the training batch size are faster per sample than one large batch
        (cache effects; ``benchmarks/bench_learner.py``).
    every_epochs : int
        E ≥ 1: estimate after every E-th epoch (paper: 20).
    num_steps : int
        m ≥ 1: Lanczos steps per estimate (paper: 20); at most P.
    variant : {"nesterov", "polyak"}
        Nesterov's method (sets ``nesterov=True``) or the heavy ball (``nesterov=False``).
    form : {"classical", "printed"}
        The formulas of :func:`lr_momentum_from_ritz`.
    seed : int
        Estimate k (k = 0, 1, …) starts Lanczos from the Gaussian vector of seed
        ``seed + k``, a fresh direction each time, reproducible.
    bn_mode : {"frozen-train", "eval"}
        BatchNorm treatment of the Hessian (see above).
    swa_start : int, optional
        First epoch (0-based) whose end is averaged; ``None`` (default): no averaging.
    keep_graphs : bool, optional
        With ``data`` a list of batches, keep every batch's gradient graph for the
        estimate's Lanczos steps, so that each step after the first is one backward pass
        per batch instead of a forward and two backward passes (a single ``(x, y)`` batch
        always keeps its graph). 1.4× faster on a CPU (``benchmarks/bench_learner.py``),
        at the memory of the subset's double-backward graphs for the estimate's duration
        (≈ 0.9 GB for 1,024 images on PreResNet-8; it grows with depth and the subset).
        Default False.
    method : {"auto", "forward-over-reverse", "double-backward"}, optional
        The Hessian-vector product of :class:`~rmtlr.curvature.HessianOperator`.
        ``"auto"`` (default) times both on the first batch and keeps the faster, per model
        object: the choice can differ between processes (it is a timing), and the two
        products differ in the last float32 digits; fix it for runs that must repeat
        bit for bit, e.g. a run resumed from a checkpoint.
    progress : bool, optional
        Progress bar over the Lanczos steps (default: on outside pytest unless
        ``TQDM_DISABLE`` is set).

    Raises
    ------
    TypeError
        If ``optimizer`` is not a :class:`torch.optim.SGD`, ``model`` not a module, or
        ``seed`` not an integer.
    ValueError
        For counts out of range, an unknown variant, form, BatchNorm mode or method, a param group
        with ``dampening`` ≠ 0, optimiser parameters that are not the model's, or (from the
        first estimate) an estimate :func:`lr_momentum_from_ritz` rejects.

    Examples
    --------
    >>> from torch.nn.functional import cross_entropy
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> learner = LanczosLearner(opt, model, cross_entropy, (x, y), every_epochs=2,
    ...                          num_steps=10, progress=False)
    >>> for epoch in range(4):
    ...     opt.zero_grad(); cross_entropy(model(x), y).backward(); opt.step()
    ...     _ = learner.epoch_end(epoch)
    >>> [r.epoch for r in learner.records], opt.param_groups[0]["nesterov"]
    ([0, 2, 4], True)
    >>> opt.param_groups[0]["lr"] == learner.records[-1].lr
    True

    Attributes
    ----------
    records : list of LearnerRecord
        Every estimate so far, in order.
    averaged_model : torch.optim.swa_utils.AveragedModel or None
        The iterate average, once ``swa_start`` is reached.
    """

    def __init__(self, optimizer: torch.optim.SGD, model: nn.Module,
                 loss_fn: Callable[..., torch.Tensor], data: Any, *,
                 every_epochs: int = 20, num_steps: int = 20, variant: str = "nesterov",
                 form: str = "classical", seed: int = 0, bn_mode: str = "frozen-train",
                 swa_start: int | None = None, keep_graphs: bool = False,
                 method: str = "auto", progress: bool | None = None):
        self._setup(optimizer, model, loss_fn, data, every_epochs=every_epochs,
                    num_steps=num_steps, variant=variant, form=form, seed=seed,
                    bn_mode=bn_mode, swa_start=swa_start, keep_graphs=keep_graphs,
                    method=method, progress=progress)
        self.estimate(epoch=0)

    def _setup(self, optimizer, model, loss_fn, data, **settings) -> None:
        """Check and store everything; no estimate (shared by __init__ and a restore)."""
        if not isinstance(optimizer, torch.optim.SGD):
            raise TypeError("optimizer must be a torch.optim.SGD, got "
                            f"{type(optimizer).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for i, group in enumerate(optimizer.param_groups):
            if group.get("dampening", 0) != 0:
                raise ValueError(f"param group {i} has dampening={group['dampening']}; the "
                                 "learner needs dampening=0 (then lr and momentum are the "
                                 "heavy ball's alpha and rho)")
        for name, value in _check_settings(**settings).items():
            setattr(self, name, value)
        self.optimizer, self.model, self.loss_fn, self.data = optimizer, model, loss_fn, data
        self.records: list[LearnerRecord] = []
        self.averaged_model: AveragedModel | None = None
        self._params = [p for g in optimizer.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """Return the learner's state: its records and the iterate average.

        The optimiser's lr and momentum are part of the optimiser's own state dict.

        Returns
        -------
        dict
            ``records`` (each :meth:`LearnerRecord.as_dict`) and ``averaged`` (the
            :class:`~torch.optim.swa_utils.AveragedModel`'s state dict, or None).
        """
        avg = self.averaged_model
        return {"records": [r.as_dict() for r in self.records],
                "averaged": None if avg is None else avg.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`: the next estimate continues the seed sequence.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned.
        """
        self.records = [LearnerRecord.from_dict(r) for r in state["records"]]
        self.averaged_model = None
        if state["averaged"] is not None:
            self.averaged_model = AveragedModel(self.model)
            self.averaged_model.load_state_dict(state["averaged"])

    def _operator(self):
        """Return the subset's Hessian; with ``keep_graphs``, a sum of one operator per batch."""
        kw = {"params": self._params, "bn_mode": self.bn_mode, "method": self.method}
        batches = ([self.data] if isinstance(self.data, tuple) else self.data
                   if isinstance(self.data, list) else None)
        if not self.keep_graphs or batches is None or len(batches) < 2:
            return HessianOperator(self.model, self.loss_fn, self.data, **kw)
        # Each single-batch operator keeps its gradient graph between Lanczos steps (each
        # further product: one backward pass); H = Σ_b (n_b/n) H_b, the mean-loss Hessian.
        ops = [HessianOperator(self.model, self.loss_fn, b, **kw) for b in batches]
        n = sum(op.num_samples for op in ops)
        return LinearCombination([(op.num_samples / n, op) for op in ops])

    def estimate(self, epoch: int) -> LearnerRecord:
        """Estimate now, set lr and momentum on the optimiser, and record it.

        Parameters
        ----------
        epoch : int
            Epochs completed (stored in the record).

        Returns
        -------
        LearnerRecord
            The new record (also appended to :attr:`records`).

        Raises
        ------
        ValueError
            If :func:`lr_momentum_from_ritz` rejects the Ritz values (e.g. every one was
            dropped), or the model or subset gives a non-finite product; the optimiser then
            keeps its previous lr and momentum and no record is added.
        """
        t0, c0 = time.perf_counter(), time.process_time()
        seed = (self.seed + len(self.records)) % (MAX_SEED + 1)
        res = lanczos(self._operator(), self.num_steps, seed=seed, progress=self.progress)
        choice = lr_momentum_from_ritz(res.ritz_values, res.ritz_weights,
                                       variant=self.variant, form=self.form)
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(choice.lr)  # a tensor lr (capturable/fused) stays one
            else:
                group["lr"] = choice.lr
            group["momentum"] = choice.momentum
            group["nesterov"] = self.variant == "nesterov"
        record = LearnerRecord(epoch=int(epoch), seed=seed,
                               ritz_values=_frozen_array(res.ritz_values),
                               ritz_weights=_frozen_array(res.ritz_weights), result=choice,
                               seconds=time.perf_counter() - t0,
                               cpu_seconds=time.process_time() - c0)
        self.records.append(record)
        return record

    def epoch_end(self, epoch: int) -> LearnerRecord | None:
        """Call after each epoch: average (from ``swa_start``) and estimate every E epochs.

        Parameters
        ----------
        epoch : int
            0-based index of the epoch just finished; an estimate is taken when
            ``epoch + 1`` is a multiple of ``every_epochs``.

        Returns
        -------
        LearnerRecord or None
            The new record, or ``None`` when no estimate was due.

        Raises
        ------
        ValueError
            If ``epoch`` is not an integer >= 0, or as :meth:`estimate`.
        """
        epoch = integer("epoch", epoch, lo=0)
        self._average(epoch)
        if (epoch + 1) % self.every_epochs == 0:
            return self.estimate(epoch + 1)
        return None

    def _average(self, epoch: int) -> None:
        if self.swa_start is not None and epoch >= self.swa_start:
            if self.averaged_model is None:
                self.averaged_model = AveragedModel(self.model)
            self.averaged_model.update_parameters(self.model)


def _subset_id(data) -> dict | None:
    """Sample count and content digest of a subset given as tensors (None for a loader)."""
    batches = [data] if isinstance(data, tuple) else data if isinstance(data, list) else None
    if batches is None:
        return None
    h, n = hashlib.sha256(), 0
    for x, y in batches:
        for t in (x, y):
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        n += len(y)
    return {"samples": n, "sha256": h.hexdigest()[:16]}


class LearnerCallback:
    r"""Run a :class:`LanczosLearner` inside :func:`rmtlr.train.train`.

    :func:`~rmtlr.train.train` makes the model and the optimiser; this callback makes the
    learner on them when it is first called (``epoch=0``, before the first step: the first
    estimate), and afterwards calls :meth:`LanczosLearner.epoch_end` after every epoch.
    Each estimate's :meth:`LearnerRecord.as_dict` lands in the training record's
    ``"callback"`` list, and with ``swa_start`` the iterate average is evaluated at the end
    of the run (the record's ``"averaged"``). Use it with
    ``TrainConfig(optimizer="sgd", schedule="constant")``: the config's ``lr`` and
    ``momentum`` are replaced by the first estimate, and ``"eq23"`` would override the
    learner's rate at every step. It supports :func:`~rmtlr.train.train`'s
    ``checkpoint`` (state: the records and the average).

    An estimate after training has started that fails (:func:`lr_momentum_from_ritz`
    rejects its Ritz values, or the product is not finite) does not end the run: the
    optimiser keeps the previous lr and momentum, and the failure is recorded as
    ``{"epoch": e, "failed": message}``; a failure of the first estimate is raised.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(output, y)``, the training loss (``torch.nn.functional.cross_entropy``
        for :func:`~rmtlr.train.train`).
    data : tuple or list or iterable
        The fixed subset (see :class:`LanczosLearner`).
    every_epochs : int
        E ≥ 1 (paper: 20).
    num_steps : int
        m ≥ 1 (paper: 20).
    variant : {"nesterov", "polyak"}
        See :func:`lr_momentum_from_ritz`.
    form : {"classical", "printed"}
        See :func:`lr_momentum_from_ritz`.
    seed : int
        Seed of the first estimate's start vector.
    bn_mode : {"frozen-train", "eval"}
        BatchNorm treatment of the Hessian.
    swa_start : int, optional
        First epoch (0-based) averaged; None: no averaging.
    keep_graphs : bool, optional
        See :class:`LanczosLearner` (a speed option; not part of :meth:`config`).
    method : {"auto", "forward-over-reverse", "double-backward"}, optional
        See :class:`LanczosLearner` (not part of :meth:`config`).
    epochs : int, optional
        The run's length T: the estimate due after epoch T is skipped, as nothing would
        use it (the average is still updated). None: estimate whenever due.
    progress : bool, optional
        Progress bar over each estimate's Lanczos steps.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer or ``keep_graphs`` not a bool.
    ValueError
        For counts out of range or an unknown variant, form, BatchNorm mode or method.

    Examples
    --------
    >>> from torch.nn.functional import cross_entropy
    >>> from rmtlr import data
    >>> from rmtlr.train import TrainConfig, train
    >>> ds = data.gaussian_mixture(n=256, seed=0)
    >>> cb = LearnerCallback(cross_entropy, (ds.tensors[0][:64], ds.tensors[1][:64]),
    ...                      every_epochs=2, num_steps=10, progress=False)
    >>> rec = train(TrainConfig(lr=0.1, batch_size=32, epochs=4), train_set=ds,
    ...             device="cpu", callback=cb)
    >>> [r["epoch"] for r in rec["callback"]]  # estimates before training, after 2 and 4
    [0, 2, 4]
    >>> rec["curves"]["lr"] == [cb.records[0].lr] * 2 + [cb.records[1].lr] * 2
    True

    Attributes
    ----------
    learner : LanczosLearner or None
        The learner, once the run has started.
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor], data: Any, *,
                 every_epochs: int = 20, num_steps: int = 20,
                 variant: str = "nesterov", form: str = "classical", seed: int = 0,
                 bn_mode: str = "frozen-train", swa_start: int | None = None,
                 keep_graphs: bool = False, method: str = "auto", epochs: int | None = None,
                 progress: bool | None = None):
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        self.loss_fn, self.data = loss_fn, data
        self.settings = _check_settings(every_epochs=every_epochs, num_steps=num_steps,
                                        variant=variant, form=form, seed=seed,
                                        bn_mode=bn_mode, swa_start=swa_start,
                                        keep_graphs=keep_graphs, method=method,
                                        progress=progress)
        self.epochs = None if epochs is None else integer("epochs", epochs)
        self.learner: LanczosLearner | None = None
        self._pending: dict | None = None

    def config(self) -> dict:
        """Return the settings that decide the run, for its run key.

        Returns
        -------
        dict
            ``{"lanczos_learner": {every_epochs, num_steps, variant, form, seed, bn_mode,
            swa_start, epochs, subset}}``; ``subset`` is the sample count and a SHA-256 of the
            subset's tensors (None for a loader, which is not read here).
        """
        keys = ("every_epochs", "num_steps", "variant", "form", "seed", "bn_mode", "swa_start")
        return {"lanczos_learner": {**{k: self.settings[k] for k in keys},
                                    "epochs": self.epochs, "subset": _subset_id(self.data)}}

    @property
    def records(self) -> list[LearnerRecord]:
        """The learner's estimates so far ([] before the run starts)."""
        return [] if self.learner is None else self.learner.records

    @property
    def averaged_model(self) -> AveragedModel | None:
        """The iterate average (None before ``swa_start`` or without averaging)."""
        return None if self.learner is None else self.learner.averaged_model

    def on_epoch_end(self, epoch: int, model: nn.Module,
                     optimizer: torch.optim.SGD) -> dict | None:
        """Make the learner at ``epoch=0``; afterwards average and estimate as due.

        Parameters
        ----------
        epoch : int
            Epochs completed (0: before training).
        model : torch.nn.Module
            The network being trained.
        optimizer : torch.optim.SGD
            Its optimiser.

        Returns
        -------
        dict or None
            The new estimate's :meth:`LearnerRecord.as_dict`, a failure record, or None
            when no estimate was due.

        Raises
        ------
        ValueError
            If the first estimate fails, or ``epoch`` is not an integer >= 0.
        """
        epoch = integer("epoch", epoch, lo=0)
        if self.learner is None and epoch == 0:
            self.learner = LanczosLearner(optimizer, model, self.loss_fn, self.data,
                                          **self.settings)
            return self.learner.records[0].as_dict()
        if self.learner is None:  # resumed from a checkpoint: no estimate at construction
            learner = LanczosLearner.__new__(LanczosLearner)
            learner._setup(optimizer, model, self.loss_fn, self.data, **self.settings)
            if self._pending is not None:
                learner.load_state_dict(self._pending)
            self.learner, self._pending = learner, None
        if self.epochs is not None and epoch >= self.epochs:
            self.learner._average(epoch - 1)
            return None
        try:
            rec = self.learner.epoch_end(epoch - 1)
        except ValueError as err:
            return {"epoch": epoch, "failed": str(err)}
        return None if rec is None else rec.as_dict()

    def state_dict(self) -> dict:
        """Return the learner's :meth:`LanczosLearner.state_dict` (for a checkpoint).

        Returns
        -------
        dict
            Records and iterate average.
        """
        if self.learner is None:
            return {"records": [], "averaged": None} if self._pending is None else self._pending
        return self.learner.state_dict()

    def load_state_dict(self, state: dict, model: nn.Module) -> None:
        """Keep a checkpoint's state for the learner made at the next call.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned.
        model : torch.nn.Module
            The network (the learner is made with the optimiser, at the next call).
        """
        self.learner, self._pending = None, state

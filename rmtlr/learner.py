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

from rmtlr.curvature import BN_MODES, HessianOperator, lanczos
from rmtlr.rmt.validation import MAX_SEED, integer, random_seed

__all__ = ["FORMS", "VARIANTS", "LanczosLearner", "LearnerRecord", "LrMomentum",
           "lr_momentum_from_ritz"]

#: Accelerated methods the learner sets parameters for.
VARIANTS = ("polyak", "nesterov")
#: Formulas: as printed in the paper (Eqs. 26–27) or the classical optimal ones.
FORMS = ("printed", "classical")


def _frozen_array(values: ArrayLike) -> np.ndarray:
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


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _as_vector(name: str, values: ArrayLike | torch.Tensor) -> np.ndarray:
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


def lr_momentum_from_ritz(ritz_values: ArrayLike | torch.Tensor,
                          ritz_weights: ArrayLike | torch.Tensor, *, variant: str,
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
    """

    epoch: int
    seed: int
    ritz_values: np.ndarray
    ritz_weights: np.ndarray
    result: LrMomentum
    seconds: float

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
            ``epoch``, ``seed``, ``ritz_values``, ``ritz_weights`` (lists), ``lr``,
            ``momentum``, ``lam_max``, ``lam_min``, ``dropped_values``,
            ``dropped_weights``, ``variant``, ``form`` and ``seconds``.
        """
        r = self.result
        return {"epoch": self.epoch, "seed": self.seed,
                "ritz_values": self.ritz_values.tolist(),
                "ritz_weights": self.ritz_weights.tolist(), "lr": r.lr,
                "momentum": r.momentum, "lam_max": r.lam_max, "lam_min": r.lam_min,
                "dropped_values": r.dropped_values.tolist(),
                "dropped_weights": r.dropped_weights.tolist(), "variant": r.variant,
                "form": r.form, "seconds": self.seconds}


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
        ``seed + k`` (modulo 2**63), a fresh direction each time, reproducible.
    bn_mode : {"frozen-train", "eval"}
        BatchNorm treatment of the Hessian (see above).
    swa_start : int, optional
        First epoch (0-based) whose end is averaged; ``None`` (default): no averaging.
    progress : bool, optional
        Progress bar over the Lanczos steps (default: on outside pytest unless
        ``TQDM_DISABLE`` is set).

    Raises
    ------
    TypeError
        If ``optimizer`` is not a :class:`torch.optim.SGD`, ``model`` not a module, or
        a count or ``seed`` not a number.
    ValueError
        For counts or ``seed`` not whole numbers in range, an unknown variant, form or BatchNorm mode, a param group
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
                 swa_start: int | None = None, progress: bool | None = None):
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
        self.every_epochs = integer("every_epochs", every_epochs)
        self.num_steps = integer("num_steps", num_steps)
        self.variant = _check_choice("variant", variant, VARIANTS)
        self.form = _check_choice("form", form, FORMS)
        self.bn_mode = _check_choice("bn_mode", bn_mode, BN_MODES)
        self.seed = random_seed("seed", seed)
        self.swa_start = None if swa_start is None else integer("swa_start", swa_start, lo=0)
        self.optimizer, self.model, self.loss_fn, self.data = optimizer, model, loss_fn, data
        self.progress = progress
        self.records: list[LearnerRecord] = []
        self.averaged_model: AveragedModel | None = None
        self._params = [p for g in optimizer.param_groups for p in g["params"]]
        self.estimate(epoch=0)

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
        t0 = time.perf_counter()
        seed = (self.seed + len(self.records)) % (MAX_SEED + 1)
        op = HessianOperator(self.model, self.loss_fn, self.data, params=self._params,
                             bn_mode=self.bn_mode)
        res = lanczos(op, self.num_steps, seed=seed, progress=self.progress)
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
                               seconds=time.perf_counter() - t0)
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
        if self.swa_start is not None and epoch >= self.swa_start:
            if self.averaged_model is None:
                self.averaged_model = AveragedModel(self.model)
            self.averaged_model.update_parameters(self.model)
        if (epoch + 1) % self.every_epochs == 0:
            return self.estimate(epoch + 1)
        return None

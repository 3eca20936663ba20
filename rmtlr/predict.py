r"""The largest stable learning rate at any batch size, predicted from your network's curvature.

:func:`predict_lr` is the library's front door to Granziol, Zohren & Roberts (2022): given a
model, a loss and the training data, it measures what the theory needs and returns, for
each batch size B asked for, the predicted top eigenvalue λ'₁(B) of the batch Hessian and
the largest stable learning rate

.. math:: α_{\max}^{\mathrm{SGD}}(B) = \frac{2(1 + ρ)}{λ'_1(B)}

(paper Eq. 24; heavy-ball momentum ρ widens the stable interval of a quadratic to
2(1 + ρ)/λ), or Adam's bound (paper Eqs. 28–31, :func:`rmtlr.scaling.adam_max_lr`).

What is measured (all on the user's model and data, with :mod:`rmtlr.curvature`):

- λ₁ and its eigenvector v₁: block Lanczos (:func:`~rmtlr.curvature.top_eigenpairs`) on the
  full-data Hessian;
- Algorithm 1's σ² in random directions (:func:`~rmtlr.curvature.hessian_variance`), and
  the same variance along v₁, on a random subset split into units of a few samples;
- the GGN bulk level ν = tr(G)/P (:func:`~rmtlr.curvature.hutchinson_trace` of the
  Gauss–Newton matrix on the same subset), P and N;
- the batch λ₁ at a few calibration batch sizes, several batches each: their batch-to-batch
  spread is the uncertainty of the prediction, and their means check it;
- for Adam, the per-coordinate mean and variance of the gradient, from which Adam's
  second-moment scale η(B) follows at every B.

Noise models (:data:`NOISE_MODELS`) for λ'₁(B), none fitted to any batch λ₁:

- ``"directional"`` (default): Theorem 4 with the noise measured along the spike,
  λ' = batch_outlier(λ₁, σ_ε = σ_ε(v₁)), σ_ε(v₁)² = σ²(v₁)·𝔟(b, n)/P. In a rank-one spike
  plus Wigner noise (Lemma 5) the outlier moves by ‖εv₁‖²/λ₁, and σ²(v₁)/𝔟 is exactly
  E‖εv₁‖². Networks' batch noise is far from isotropic: the noise along v₁ is tens to
  hundreds of times the average over random directions, which is why Theorem 4 with
  Algorithm 1's random-direction σ² barely moves λ₁ on networks.
- ``"wigner"``: Theorem 4 as printed, with Algorithm 1's σ_ε in random directions.
- ``"wishart"``: the Gauss–Newton matrix as a spiked sample covariance (Thm 7,
  :func:`rmtlr.experiments.ggn_prediction`) with bulk level ν = tr(G)/P.

The uncertainty band is the batch-to-batch standard deviation of λ'₁, measured at the
calibration sizes and carried to other B as 1/√𝔟 (the first-order fluctuation v₁ᵀεv₁ of
the outlier has variance ∝ 1/𝔟). Only this spread — never a batch λ₁ itself — is taken from
the calibration batches, so every predicted λ'₁ is out of sample.

Under ``torch.distributed`` (e.g. launched by ``torchrun``) pass the same data on every
rank: the full-data and subset operators are split over the ranks
(:class:`~rmtlr.curvature.DistributedOperator`), the calibration batches are shared out,
and every rank returns the single-process result.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from rmtlr.curvature import (
    DistributedOperator,
    GGNOperator,
    HessianOperator,
    hessian_variance,
    hutchinson_trace,
    top_eigenpairs,
)
from rmtlr.experiments import ggn_prediction
from rmtlr.profiles import resolve_device
from rmtlr.progress import progress_bar
from rmtlr.rmt import batch_outlier, effective_batch_size
from rmtlr.rmt.ggn import ggn_batch_edge
from rmtlr.rmt.validation import finite_scalar, integer, random_seed
from rmtlr.scaling import adam_max_lr

__all__ = ["NOISE_MODELS", "OPTIMIZERS", "LRPrediction", "PredictionInputs", "predict_lr",
           "recalibrate_batch_norm"]

#: Noise models of the batch λ₁ (see the module docstring); the first is the default.
NOISE_MODELS = ("directional", "wigner", "wishart")
#: Optimisers :func:`predict_lr` predicts for.
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class PredictionInputs:
    """What :func:`predict_lr` measured on the network (the inputs of every prediction).

    Attributes
    ----------
    P : int
        Number of parameters the curvature is taken in.
    N : int
        Number of training samples.
    lam1 : float
        λ₁ of the full-data Hessian used by the prediction.
    lam1_measured : float
        λ₁ as measured on ``full_samples`` samples (equal to ``lam1`` when that is N;
        otherwise ``lam1`` is inferred from it by inverting the noise model at B = n).
    lam1_residual : float
        ‖Hv₁ − λ₁v₁‖ of the Lanczos pair (an eigenvalue lies within it).
    lam1_converged : bool
        Whether the pair met :func:`~rmtlr.curvature.top_eigenpairs`' tolerance.
    full_samples : int
        Samples of the full-data operator.
    sigma2 : float
        Algorithm 1's σ² in random directions, in units of ``unit_size`` samples.
    sigma2_stderr : float
        Its standard error over the random vectors.
    sigma_eps : float
        Theorem 4's per-entry noise σ_ε from ``sigma2`` (``"wigner"`` model).
    sigma2_top : float
        The same variance along v₁ (units of ``unit_size``).
    sigma_eps_top : float
        σ_ε from ``sigma2_top`` (``"directional"`` model).
    noise_var : float
        ν = tr(G)/P, the bulk level of the Gauss–Newton matrix (``"wishart"`` model).
    noise_var_stderr : float
        Its standard error (Hutchinson).
    variance_samples : int
        Samples of the subset the variances and the trace are measured on.
    unit_size : int
        Samples per unit of Algorithm 1 (the last unit may be smaller).
    num_vectors : int
        Random vectors of Algorithm 1 and of the trace.
    calibration : dict
        Calibration batch size B → the measured batch λ₁ of each of its batches.
    grad_mean_sq : numpy.ndarray or None
        Adam only: per-coordinate squared full-data gradient m_i².
    grad_var : numpy.ndarray or None
        Adam only: per-coordinate per-sample gradient variance s_i².
    variance_indices : numpy.ndarray
        The samples of the variance subset, in unit order (units are consecutive runs of
        ``unit_size``).
    full_indices : numpy.ndarray
        The samples of the full-data operator.
    calibration_indices : dict
        Calibration batch size B → the sample indices of each of its batches.
    """

    P: int
    N: int
    lam1: float
    lam1_measured: float
    lam1_residual: float
    lam1_converged: bool
    full_samples: int
    sigma2: float
    sigma2_stderr: float
    sigma_eps: float
    sigma2_top: float
    sigma_eps_top: float
    noise_var: float
    noise_var_stderr: float
    variance_samples: int
    unit_size: int
    num_vectors: int
    calibration: dict[int, list[float]]
    grad_mean_sq: np.ndarray | None = field(default=None, repr=False)
    grad_var: np.ndarray | None = field(default=None, repr=False)
    variance_indices: np.ndarray | None = field(default=None, repr=False)
    full_indices: np.ndarray | None = field(default=None, repr=False)
    calibration_indices: dict[int, list[np.ndarray]] | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class LRPrediction:
    """Result of :func:`predict_lr`: per batch size, the batch λ₁ and the stable rate.

    Attributes
    ----------
    batch_sizes : numpy.ndarray
        The batch sizes B asked for, ascending.
    lam1_batch : numpy.ndarray
        Predicted top eigenvalue λ'₁(B) of the batch Hessian under ``noise_model``.
    lam1_batch_sd : numpy.ndarray
        Its batch-to-batch standard deviation (from the calibration batches, ∝ 1/√𝔟).
    lr : numpy.ndarray
        The largest stable learning rate of ``optimizer`` at each B.
    lr_low : numpy.ndarray
        ``lr`` at λ'₁ + one standard deviation.
    lr_high : numpy.ndarray
        ``lr`` at λ'₁ − one standard deviation (``inf`` where that is ≤ 0).
    optimizer : str
        ``"sgd"`` or ``"adam"``.
    momentum : float
        SGD's heavy-ball ρ (0 for Adam).
    delta : float
        Adam's damping δ (``eps``).
    noise_model : str
        The model of λ'₁(B), one of :data:`NOISE_MODELS`.
    lam1_batch_models : dict
        λ'₁(B) under every noise model, for comparison.
    eta_edge : numpy.ndarray or None
        Adam only: its second-moment scale η along bulk directions at each B.
    eta_top : numpy.ndarray or None
        Adam only: the same along v₁.
    inputs : PredictionInputs
        The measured inputs.
    seconds : dict
        Wall time of each stage (``"lam1"``, ``"sigma2"``, ``"noise_var"``,
        ``"batch_lam1"``, ``"gradients"``) and ``"total"``.
    world_size : int
        Processes that shared the work (1 without ``torch.distributed``).
    """

    batch_sizes: np.ndarray
    lam1_batch: np.ndarray
    lam1_batch_sd: np.ndarray
    lr: np.ndarray
    lr_low: np.ndarray
    lr_high: np.ndarray
    optimizer: str
    momentum: float
    delta: float
    noise_model: str
    lam1_batch_models: dict[str, np.ndarray]
    eta_edge: np.ndarray | None
    eta_top: np.ndarray | None
    inputs: PredictionInputs
    seconds: dict[str, float]
    world_size: int

    def lr_at(self, B: int) -> float:
        """Return the predicted largest stable rate at a batch size that was asked for.

        Parameters
        ----------
        B : int
            One of ``batch_sizes``.

        Returns
        -------
        float
            ``lr`` at B.

        Raises
        ------
        ValueError
            If B was not asked for.
        """
        B = integer("B", B)
        hit = np.flatnonzero(self.batch_sizes == B)
        if not hit.size:
            raise ValueError(f"B = {B} is not among the predicted batch sizes "
                             f"{self.batch_sizes.tolist()}")
        return float(self.lr[hit[0]])

    def table(self) -> str:
        """Return the predictions as a plain-text table (B, λ'₁ ± sd, rate and its range).

        Returns
        -------
        str
            One line per batch size, with the measured batch λ₁ where B was calibrated.
        """
        head = (f"{'B':>6} {'lam1_batch':>11} {'sd':>8} {'lr':>10} {'lr_low':>10} "
                f"{'lr_high':>10} {'measured':>10}")
        rows = [head]
        for i, B in enumerate(self.batch_sizes):
            meas = self.inputs.calibration.get(int(B))
            m = f"{np.mean(meas):10.4g}" if meas else f"{'-':>10}"
            rows.append(f"{int(B):>6} {self.lam1_batch[i]:11.4g} {self.lam1_batch_sd[i]:8.2g} "
                        f"{self.lr[i]:10.4g} {self.lr_low[i]:10.4g} {self.lr_high[i]:10.4g} {m}")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready built-in types (what ``rmtlr predict`` writes).

        Returns
        -------
        dict
            Every field; arrays become lists, ``inf`` becomes None. The Adam gradient
            moments and the full and calibration sample indices are left out (size).
        """
        def clean(x: Any) -> Any:
            if isinstance(x, np.ndarray):
                return [clean(v) for v in x.tolist()]
            if isinstance(x, Mapping):
                return {str(k): clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            if isinstance(x, (float, np.floating)):
                return float(x) if math.isfinite(x) else None
            if isinstance(x, np.integer):
                return int(x)
            if isinstance(x, np.bool_):
                return bool(x)
            return x

        inputs = {k: getattr(self.inputs, k) for k in self.inputs.__dataclass_fields__
                  if k not in ("grad_mean_sq", "grad_var", "full_indices",
                               "calibration_indices")}
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "inputs"}
        out["inputs"] = inputs
        return clean(out)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LRPrediction:
        """Rebuild a result from :meth:`to_dict`'s output (e.g. a stored record).

        Parameters
        ----------
        d : Mapping
            What :meth:`to_dict` returned (extra keys, such as a results file's, are
            ignored).

        Returns
        -------
        LRPrediction
            The result, without the fields :meth:`to_dict` leaves out.
        """
        def arr(x: Any) -> np.ndarray | None:
            return None if x is None else np.asarray(
                [math.inf if v is None else v for v in x], dtype=float)

        inp = dict(d["inputs"])
        inp["calibration"] = {int(k): list(v) for k, v in inp["calibration"].items()}
        inp["variance_indices"] = np.asarray(inp["variance_indices"], dtype=np.int64)
        names = {f for f in PredictionInputs.__dataclass_fields__}
        inputs = PredictionInputs(**{k: v for k, v in inp.items() if k in names})
        return cls(np.asarray(d["batch_sizes"], dtype=np.int64), arr(d["lam1_batch"]),
                   arr(d["lam1_batch_sd"]), arr(d["lr"]), arr(d["lr_low"]), arr(d["lr_high"]),
                   d["optimizer"], d["momentum"], d["delta"], d["noise_model"],
                   {k: arr(v) for k, v in d["lam1_batch_models"].items()},
                   arr(d["eta_edge"]), arr(d["eta_top"]), inputs, dict(d["seconds"]),
                   d["world_size"])

    def plot(self, axes: Sequence[Any] | None = None) -> Any:
        """Draw λ'₁(B) with the calibration measurements, and the predicted rate, vs B.

        Parameters
        ----------
        axes : sequence of two matplotlib Axes, optional
            Where to draw (default: a new two-panel figure).

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        from rmtlr import plotting

        return plotting.lr_prediction(self, axes=axes)


# --------------------------------------------------------------------------- data


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, data: Any, *, batch_size: int = 256,
                           device: torch.device | str | None = None) -> nn.Module:
    """Set every BatchNorm layer's running statistics to their average over ``data``.

    A network at initialisation has running statistics of no data (mean 0, variance 1),
    so in eval mode — the mode per-sample curvature needs — it is not the network that
    training sees. This replaces them by the cumulative average of the batch statistics
    over one pass of ``data`` in train mode (PyTorch's ``momentum=None``), close to the
    population statistics; weights and every other buffer are unchanged, and each layer's
    momentum and the model's mode are restored.

    Parameters
    ----------
    model : torch.nn.Module
        The network (changed in place).
    data : Dataset or DataLoader or tuple or list
        The samples, in any form :func:`predict_lr` takes.
    batch_size : int
        Samples per forward pass, >= 2.
    device : torch.device or str, optional
        Where to run (default: the model's).

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    TypeError
        If ``model`` or ``data`` has the wrong type.
    ValueError
        If ``batch_size`` is below 2.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch_size = integer("batch_size", batch_size, lo=2)
    pool = _Samples(data)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats]
    if not bns:
        return model
    dev = (next(model.parameters()).device if device is None
           else resolve_device(device, argument="device"))
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in bns]
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        # Parts of at least batch_size samples: a BatchNorm1d cannot take a batch of one.
        for idx in np.array_split(np.arange(pool.N), max(1, pool.N // batch_size)):
            x = pool.batch(idx)[0]
            model(x.to(dev) if isinstance(x, torch.Tensor) else x)
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        for m, flag in modes.items():
            m.training = flag
    return model



class _Samples:
    """The user's data as an indexable pool of samples: batches of any indices."""

    def __init__(self, data: Any):
        self.tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        self.dataset = None
        self.collate: Callable = torch.utils.data.default_collate
        if isinstance(data, torch.utils.data.DataLoader):
            self.dataset = data.dataset
            if data.collate_fn is not None:
                self.collate = data.collate_fn
        elif isinstance(data, (tuple, list)):
            batches = [data] if _is_batch(data) else list(data)
            if not batches or not all(_is_batch(b) for b in batches):
                raise TypeError("data must be a Dataset, a DataLoader, one batch (x, y) of "
                                "tensors or a non-empty list of such batches")
            try:
                x = torch.cat([b[0] for b in batches])
                y = torch.cat([b[1] for b in batches])
            except RuntimeError as err:
                raise ValueError(f"data: the batches do not stack into one set ({err})") from err
            if len(x) != len(y):
                raise ValueError(f"data: {len(x)} inputs but {len(y)} targets")
            self.tensors = (x, y)
        elif isinstance(data, torch.utils.data.IterableDataset):
            raise TypeError("data: an IterableDataset cannot be sampled; pass a map-style "
                            "Dataset or a list of batches")
        elif isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
            self.dataset = data
        else:
            raise TypeError("data must be a Dataset (with __len__), a DataLoader, one batch "
                            f"(x, y) or a list of batches, got {type(data).__name__}")
        if isinstance(self.dataset, torch.utils.data.TensorDataset):
            self.tensors = tuple(self.dataset.tensors[:2])
        self.N = len(self.tensors[0]) if self.tensors is not None else len(self.dataset)
        if self.N < 2:
            raise ValueError(f"data must hold at least 2 samples, got {self.N}")

    def batch(self, idx: np.ndarray) -> tuple[Any, Any]:
        idx = np.asarray(idx, dtype=np.int64)
        if self.tensors is not None:
            t = torch.from_numpy(idx)
            return self.tensors[0][t], self.tensors[1][t]
        out = self.collate([self.dataset[int(i)] for i in idx])
        return out[0], out[1]

    def batches(self, idx: np.ndarray, size: int) -> list[tuple[Any, Any]]:
        return [self.batch(idx[i:i + size]) for i in range(0, len(idx), size)]


def _is_batch(obj: object) -> bool:
    return (isinstance(obj, (tuple, list)) and len(obj) == 2
            and all(isinstance(t, torch.Tensor) for t in obj))


# --------------------------------------------------------------------------- checks


def _batch_sizes(name: str, values: Any, N: int) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a non-empty list of integers in [1, N = {N}], "
                        f"got {values!r}")
    out = sorted({integer(f"each of {name}", b, lo=1, hi=N) for b in values})
    if not out:
        raise ValueError(f"{name} must be a non-empty list of integers in [1, N = {N}], got none")
    return np.asarray(out, dtype=np.int64)


def _default_calibration(sizes: np.ndarray, N: int) -> np.ndarray:
    """Up to three of the requested sizes (smallest, middle, largest) in [2, N/4]."""
    ok = sizes[(sizes >= 2) & (sizes <= max(N // 4, 2))]
    if not ok.size:
        return np.asarray([max(int(sizes.min()), 2)], dtype=np.int64)
    return np.unique(ok[[0, len(ok) // 2, -1]])


# --------------------------------------------------------------------------- distributed


def _world(distributed: bool | None) -> tuple[int, int]:
    """(rank, world size) when work is to be shared over a process group, else (0, 1)."""
    active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed and not active:
        raise ValueError("distributed=True needs an initialised torch.distributed process "
                         "group with more than one process (launch with torchrun)")
    if distributed is False or not active:
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _shard(op: HessianOperator | GGNOperator, world: int) -> Any:
    return DistributedOperator(op) if world > 1 else op


# --------------------------------------------------------------------------- models


def _model_lam1_batch(model: str, lam1: float, B: np.ndarray, inp: dict) -> np.ndarray:
    """λ'₁(B) of ``model`` for full-data λ₁ (no validation: the inputs are measured)."""
    P, N = inp["P"], inp["N"]
    if model == "directional":
        return np.asarray(batch_outlier(lam1, P=P, B=B, N=N, sigma_eps=inp["sigma_eps_top"]),
                          dtype=float)
    if model == "wigner":
        return np.asarray(batch_outlier(lam1, P=P, B=B, N=N, sigma_eps=inp["sigma_eps"]),
                          dtype=float)
    return np.asarray([ggn_prediction(lam1, P=P, B=float(b), N=N, noise_var=inp["noise_var"])
                       for b in np.atleast_1d(B)], dtype=float).reshape(np.shape(B))


def _invert_subset(model: str, measured: float, n: int, inp: dict) -> float:
    """Full-data λ₁ whose predicted λ'₁ at B = n equals the λ₁ measured on n samples."""
    if n >= inp["N"]:
        return measured
    from scipy.optimize import brentq

    def f(lam: float) -> float:
        return float(_model_lam1_batch(model, lam, np.asarray(n), inp)) - measured

    lo = measured * 1e-9
    if f(lo) >= 0:
        warnings.warn(f"predict_lr: λ₁ = {measured:.4g} measured on {n} of {inp['N']} samples "
                      f"is at the '{model}' model's noise edge, so the full-data λ₁ cannot be "
                      "inferred from it; it is used as measured (raise full_samples)",
                      RuntimeWarning, stacklevel=3)
        return measured
    return float(brentq(f, lo, measured, xtol=1e-12 * measured, rtol=1e-12))


# --------------------------------------------------------------------------- main


def predict_lr(model: nn.Module, loss_fn: Callable[..., torch.Tensor], data: Any,
               batch_sizes: Iterable[int], *, optimizer: str = "sgd", momentum: float = 0.0,
               delta: float = 1e-8, noise_model: str = "directional",
               calibration_batch_sizes: Iterable[int] | None = None,
               batches_per_size: int = 4, num_steps: int = 20, batch_num_steps: int = 20,
               num_vectors: int = 8, variance_samples: int = 512, unit_size: int = 8,
               full_samples: int | None = None, full_batch_size: int = 256,
               bn_mode: str = "eval", method: str = "auto", loss_reduction: str | None = None,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None,
               distributed: bool | None = None, seed: int = 0,
               progress: bool | None = None) -> LRPrediction:
    r"""Predict the largest stable learning rate at each batch size from measured curvature.

    Measures λ₁ of the full-data Hessian, Algorithm 1's σ² (in random directions and along
    v₁), the GGN bulk level tr(G)/P and the batch λ₁ at a few calibration sizes (see the
    module docstring), then predicts λ'₁(B) under ``noise_model`` and

    .. math:: α_{\max}(B) = \frac{2(1+ρ)}{λ'_1(B)}\ \text{(SGD, paper Eq. 24)},\qquad
              α_{\max}(B) = \min\Big(\frac{2(η_{edge}+δ)}{λ_{edge}(B)},
              \frac{2(η_{top}+δ)}{λ'_1(B)}\Big)\ \text{(Adam, paper Eq. 28)},

    λ_edge the bulk edge of the batch Hessian (2√(P/𝔟)σ_ε, paper Eq. 31; the
    Marchenko–Pastur/Wachter edge for ``"wishart"``) and η Adam's second-moment scale
    √E[g_B²] per coordinate, m_i² + s_i²/𝔟 from the full gradient m and the per-sample
    gradient variance s², averaged as the preconditioner acts on a random direction
    (η_edge: harmonic mean over coordinates) and on v₁ (η_top: weights v₁,ᵢ²).

    Parameters
    ----------
    model : torch.nn.Module
        The network, at the weights to predict for (initialisation or a checkpoint). Its
        state is left as it was. With BatchNorm in ``"eval"`` mode, its running statistics
        are used: at initialisation call :func:`recalibrate_batch_norm` first.
    loss_fn : callable
        ``loss_fn(output, y)``, the mean (``reduction="mean"``) or sum over the batch.
    data : Dataset or DataLoader or tuple or list
        The training data: a map-style ``Dataset``, a ``DataLoader`` (its dataset and
        collate function are used), one batch ``(x, y)`` or a list of batches. It must
        not be randomly augmented. Under ``torch.distributed``, the same data on every rank.
    batch_sizes : iterable of int
        The batch sizes B to predict for, each in [1, N].
    optimizer : {"sgd", "adam"}
        The optimiser the rates are for.
    momentum : float
        SGD's heavy-ball momentum ρ in [0, 1).
    delta : float
        Adam's damping δ (PyTorch's ``eps``), > 0.
    noise_model : {"directional", "wigner", "wishart"}
        The model of the batch λ₁ (:data:`NOISE_MODELS`; see the module docstring).
    calibration_batch_sizes : iterable of int, optional
        Sizes at which the batch λ₁ is measured for the spread (default: the smallest,
        middle and largest of ``batch_sizes`` in [2, N/4]).
    batches_per_size : int
        Random batches per calibration size, >= 2.
    num_steps : int
        Lanczos steps for the full-data λ₁, >= 2.
    batch_num_steps : int
        Lanczos steps for each batch λ₁, >= 2.
    num_vectors : int
        Random vectors for Algorithm 1 and the trace, >= 2.
    variance_samples : int
        Size of the random subset for the variances and the trace, >= 2·``unit_size``
        (capped at N).
    unit_size : int
        Samples per unit of Algorithm 1, >= 1 (1: per-sample, slower).
    full_samples : int, optional
        Samples of the full-data operator (default: all N). With fewer, the λ₁ measured on
        them is itself a batch λ₁ and the full-data λ₁ is inferred by inverting the noise
        model at B = ``full_samples``.
    full_batch_size : int
        Samples per forward pass of the full-data operator, >= 1.
    bn_mode : {"eval", "frozen-train"}
        BatchNorm treatment of the operators (per-unit variances need ``"eval"`` unless
        ``unit_size`` > 1).
    method : {"auto", "forward-over-reverse", "double-backward"}
        Hessian-vector product method (see :class:`~rmtlr.curvature.HessianOperator`).
    loss_reduction : {"mean", "sum"}, optional
        For a plain loss function that does not say (see
        :class:`~rmtlr.curvature.HessianOperator`).
    dtype : torch.dtype, optional
        Dtype of the products (default: the model's).
    device : torch.device or str, optional
        Device of the products (default: the model's).
    distributed : bool, optional
        Share the work over the initialised ``torch.distributed`` process group; None
        (default): whenever one with more than one process is initialised.
    seed : int
        Seed of the subsets, batches and random vectors, >= 0.
    progress : bool, optional
        Progress bars; None: on unless ``TQDM_DISABLE`` is set or pytest runs.

    Returns
    -------
    LRPrediction
        Per B the predicted λ'₁ ± sd and rate with its range, the measured inputs, the
        time of each stage; ``plot()`` draws it.

    Raises
    ------
    TypeError
        If ``model``, ``loss_fn`` or ``data`` have the wrong type, or a number is not one.
    ValueError
        For an unknown ``optimizer`` or ``noise_model``, a batch size outside [1, N], a
        count or rate out of range, data with fewer than 2 samples, or non-finite
        curvature.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))
    >>> x, y = torch.randn(256, 5), torch.randint(0, 3, (256,))
    >>> res = predict_lr(model, nn.CrossEntropyLoss(), (x, y), [8, 32, 128],
    ...                  num_vectors=4, variance_samples=128, progress=False)
    >>> bool((res.lr > 0).all() and (res.lr[1:] >= res.lr[:-1]).all())
    True
    """
    t_start = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(output, y)")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if noise_model not in NOISE_MODELS:
        raise ValueError(f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}")
    momentum = finite_scalar("momentum", momentum, lo=0, hi=1, hi_open=True)
    delta = finite_scalar("delta (Adam damping)", delta, lo=0, lo_open=True)
    if optimizer == "adam" and momentum:
        raise ValueError("momentum is SGD's heavy-ball ρ; for Adam leave it at 0")
    batches_per_size = integer("batches_per_size", batches_per_size, lo=2)
    num_steps = integer("num_steps", num_steps, lo=2)
    batch_num_steps = integer("batch_num_steps", batch_num_steps, lo=2)
    num_vectors = integer("num_vectors", num_vectors, lo=2)
    unit_size = integer("unit_size", unit_size, lo=1)
    full_batch_size = integer("full_batch_size", full_batch_size, lo=1)
    seed = random_seed("seed", seed)
    pool = _Samples(data)
    N = pool.N
    sizes = _batch_sizes("batch_sizes", batch_sizes, N)
    n_var = min(integer("variance_samples", variance_samples, lo=2 * unit_size), N)
    if n_var < 2 * unit_size:
        raise ValueError(f"variance_samples: N = {N} samples make fewer than 2 units of "
                         f"unit_size = {unit_size}; lower unit_size")
    n_full = N if full_samples is None else integer("full_samples", full_samples, lo=2, hi=N)
    cal = (_default_calibration(sizes, N) if calibration_batch_sizes is None
           else _batch_sizes("calibration_batch_sizes", calibration_batch_sizes, N))
    if cal.min() < 2:
        raise ValueError("calibration_batch_sizes must be >= 2 (a batch λ₁ of one sample "
                         "has no spread to speak of)")
    rank, world = _world(distributed)
    op_kw = {"bn_mode": bn_mode, "loss_reduction": loss_reduction, "dtype": dtype,
             "device": device}
    rng = np.random.default_rng(seed)
    idx_full = np.arange(N) if n_full == N else np.sort(rng.choice(N, n_full, replace=False))
    idx_var = rng.choice(N, n_var, replace=False)
    jobs = [(int(B), j, rng.choice(N, int(B), replace=False))
            for B in cal for j in range(batches_per_size)]
    seconds: dict[str, float] = {}

    def stage(name: str, t0: float) -> None:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0

    # Full-data λ₁ and v₁ (this rank's share of the samples).
    t0 = time.perf_counter()
    local_full = pool.batches(idx_full[rank::world], full_batch_size)
    H = HessianOperator(model, loss_fn, local_full, method=method, **op_kw)
    P = H.shape[0]
    top = top_eigenpairs(_shard(H, world), k=1, num_steps=min(num_steps, P), seed=seed,
                         progress=progress)
    lam1_meas, v1 = float(top.values[0]), top.vectors[:, 0]
    stage("lam1", t0)

    # Algorithm 1 on units of the random subset: random directions, then along v₁.
    t0 = time.perf_counter()
    units = pool.batches(idx_var, unit_size)
    local_units = units[rank::world]
    Hv = _shard(HessianOperator(model, loss_fn, local_units, method=method, **op_kw), world)
    hv = hessian_variance(Hv, num_vectors, per_sample=False, seed=seed, progress=progress)
    hv_top = hessian_variance(Hv, per_sample=False, vectors=v1, progress=False)
    stage("sigma2", t0)

    t0 = time.perf_counter()
    G = _shard(GGNOperator(model, loss_fn, local_units, **op_kw), world)
    trace = hutchinson_trace(G, num_vectors, seed=seed, progress=progress)
    stage("noise_var", t0)
    noise_var = trace.trace / P
    if not noise_var > 0:
        raise ValueError(f"the Gauss-Newton trace is not positive (tr(G)/P = {noise_var:.3g}): "
                         "the loss is not convex in the output, so the 'wishart' model does "
                         "not apply to it")

    # Batch λ₁ at the calibration sizes; batches are drawn from all the data on every rank.
    t0 = time.perf_counter()
    mine = {}
    for B, j, idx in progress_bar(jobs[rank::world], desc="batch λ₁", progress=progress):
        Hb = HessianOperator(model, loss_fn, pool.batch(idx), method=method, **op_kw)
        res = top_eigenpairs(Hb, k=1, num_steps=min(batch_num_steps, P), seed=seed + j,
                             progress=False)
        mine[(B, j)] = float(res.values[0])
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, mine)
        for part in gathered:
            mine.update(part)
    calibration = {int(B): [mine[(int(B), j)] for j in range(batches_per_size)] for B in cal}
    stage("batch_lam1", t0)

    inp = {"P": P, "N": N, "sigma_eps": hv.sigma_eps, "sigma_eps_top": hv_top.sigma_eps,
           "noise_var": noise_var}
    lam1 = {m: _invert_subset(m, lam1_meas, n_full, inp) for m in NOISE_MODELS}
    Bf = sizes.astype(float)
    models_pred = {m: _model_lam1_batch(m, lam1[m], Bf, inp) for m in NOISE_MODELS}
    pred = models_pred[noise_model]
    # Batch-to-batch spread ∝ 1/√𝔟, its scale from every calibration size (pooled).
    eff_cal = np.asarray(effective_batch_size(cal.astype(float), N), dtype=float)
    var_cal = np.asarray([np.var(calibration[int(B)], ddof=1) for B in cal])
    finite = np.isfinite(eff_cal)
    c2 = float(np.mean(var_cal[finite] * eff_cal[finite])) if finite.any() else 0.0
    eff = np.asarray(effective_batch_size(Bf, N), dtype=float)
    sd = np.sqrt(c2 / eff)

    eta_edge = eta_top = None
    m2 = s2 = None
    if optimizer == "sgd":
        scale = 2.0 * (1.0 + momentum)
        lr = scale / pred
        lr_low = scale / (pred + sd)
        lr_high = np.where(pred - sd > 0, scale / np.where(pred - sd > 0, pred - sd, 1.0),
                           np.inf)
    else:
        t0 = time.perf_counter()
        m2, s2 = _gradient_moments(model, loss_fn, local_full, local_units, P, world, op_kw)
        stage("gradients", t0)
        w = (v1.detach().double().cpu() ** 2).numpy()
        w = w / w.sum()
        eta_edge, eta_top = [], []
        for e in eff:
            eta = np.sqrt(m2 + (s2 / e if np.isfinite(e) else 0.0))
            eta_edge.append(1.0 / np.mean(1.0 / (eta + delta)) - delta)
            eta_top.append(1.0 / np.sum(w / (eta + delta)) - delta)
        eta_edge, eta_top = np.maximum(eta_edge, 0.0), np.maximum(eta_top, 0.0)
        if noise_model == "wishart":
            edge = np.asarray([ggn_batch_edge(P=P, B=b, N=N, noise_var=noise_var,
                                              finite_N=P <= N) for b in Bf], dtype=float)
            bulk = np.where(edge > 0, 2 * (eta_edge + delta) / edge, np.inf)
        else:
            bulk = np.asarray(adam_max_lr(Bf, N=N, P=P, sigma_eps=max(hv.sigma_eps, 1e-300),
                                          delta=delta, eta_edge=eta_edge), dtype=float)

        def outlier(lam: np.ndarray) -> np.ndarray:
            return np.where(lam > 0, 2 * (eta_top + delta) / np.where(lam > 0, lam, 1.0), np.inf)

        lr = np.minimum(bulk, outlier(pred))
        lr_low = np.minimum(bulk, outlier(pred + sd))
        lr_high = np.minimum(bulk, outlier(pred - sd))
    if not (np.all(np.isfinite(lr)) and np.all(lr > 0)):
        raise ValueError(f"the predicted rates are not finite and positive ({lr}): the "
                         f"measured curvature is degenerate (λ₁ = {lam1_meas:.3g})")
    seconds["total"] = time.perf_counter() - t_start
    inputs = PredictionInputs(
        P=P, N=N, lam1=lam1[noise_model], lam1_measured=lam1_meas,
        lam1_residual=float(top.residual_norms[0]), lam1_converged=bool(top.converged[0]),
        full_samples=n_full, sigma2=hv.sigma2, sigma2_stderr=hv.stderr,
        sigma_eps=hv.sigma_eps, sigma2_top=hv_top.sigma2, sigma_eps_top=hv_top.sigma_eps,
        noise_var=noise_var, noise_var_stderr=trace.stderr / P, variance_samples=n_var,
        unit_size=unit_size, num_vectors=num_vectors, calibration=calibration,
        grad_mean_sq=m2, grad_var=s2, variance_indices=idx_var, full_indices=idx_full,
        calibration_indices={int(B): [idx for b, _, idx in jobs if b == B] for B in cal})
    return LRPrediction(sizes, pred, sd, lr, lr_low, lr_high, optimizer, momentum, delta,
                        noise_model, models_pred, eta_edge, eta_top, inputs, seconds, world)


def _gradient_moments(model: nn.Module, loss_fn: Callable, full: list, units: list, P: int,
                      world: int, op_kw: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate m_i² (full gradient) and per-sample gradient variance s_i².

    s² from the units of b samples: the size-weighted variance of the unit-mean gradients
    times 𝔟(b, n), the same mapping from units to samples as Algorithm 1's (Eq. 6).
    """
    def grad_sum(batches: list) -> tuple[torch.Tensor, int]:
        op = HessianOperator(model, loss_fn, batches, **op_kw)
        return op.gradient()[1].double().cpu() * op.num_samples, op.num_samples

    # [Σ_i g_i (full), Σ_u n_u ḡ_u, Σ_u n_u ḡ_u², N, n, #units]: one all-reduce.
    acc = torch.zeros(3 * P + 3, dtype=torch.float64)
    if full:
        acc[:P], acc[-3] = grad_sum(full)
    for batch in units:
        gu, nu = grad_sum([batch])
        acc[P:2 * P] += gu
        acc[2 * P:3 * P] += gu * gu / nu
        acc[-2] += nu
        acc[-1] += 1
    if world > 1:
        dist.all_reduce(acc)
    n_full, n_var, n_units = acc[-3].item(), acc[-2].item(), acc[-1].item()
    mean_u = acc[P:2 * P] / n_var
    var_u = acc[2 * P:3 * P] / n_var - mean_u ** 2
    b = n_var / n_units
    eff = b / (1 - b / n_var)
    return ((acc[:P] / n_full) ** 2).numpy(), (var_u.clamp_min(0) * eff).numpy()

r"""Which noise model describes a network's batch curvature? Measure, then predict.

The batch curvature is the full-data curvature plus noise, A_batch = A_emp + ε (paper
Eq. 4), A the Hessian H or its Gauss–Newton part G. Chapter 5 of the book derives what
two models of ε predict for the top batch eigenvalue λ'_1; chapters 6–7 confront them
with networks. This module makes that confrontation out of sample: every input of a
prediction is measured on data or directions other than the batches it predicts.

Measured (:func:`measure_noise_models`), for a network and N samples S (the "full data"):

- λ_1 of A_emp over S (Lanczos), and the mean eigenvalue tr(A_emp)/P (Hutchinson);
- Algorithm 1's σ² (:func:`rmtlr.curvature.hessian_variance`) on samples S_var disjoint
  from S, in units of b samples, over random directions z; and the same variance along
  the top eigenvector v_1 of A_emp, τ² = E_i‖(A_i − A)v_1‖² per sample;
- λ'_1 of several random batches of each batch size B drawn from S;
- the spectrum of ε = A_batch − A_emp itself (Lanczos on the difference operator);
- optionally the rank of single-sample curvatures (Lanczos terminates on a rank-r operator
  after r + 1 steps, so the number of non-zero Ritz values of a longer run is the rank).

Predicted (:func:`predict_batch_lam1`), 𝔟 = B/(1 − B/N) the effective batch size:

- ``"theorem4"`` — Wigner noise (paper Theorem 4): λ_1 + (P/𝔟)σ_ε²/λ_1 above the
  threshold √(P/𝔟)σ_ε, else the edge 2√(P/𝔟)σ_ε, with σ_ε² = σ²·𝔟(b, n)/P;
- ``"wishart"`` — the spiked sample covariance (the GGN model, paper Theorem 7 derived
  from Baik–Silverstein, :func:`rmtlr.experiments.ggn_prediction`), with bulk level
  ν = tr(G_emp)/P; for P ≫ 𝔟 its outlier is λ_1 + tr(G)/𝔟 to leading order;
- ``"top_direction"`` — Lemma 5 with the noise variance along v_1 instead of averaged
  over directions: λ_1 + τ²/(𝔟λ_1) above the threshold τ/√𝔟, else 2τ/√𝔟.

:func:`noise_spectrum` summarises a measured spectrum of ε: its extreme eigenvalues, its
asymmetry (a semicircle is symmetric, a Marchenko–Pastur law one-sided), and its stable
rank ‖ε‖_F²/‖ε‖_2² against the P/4 of a Wigner matrix of the same Frobenius norm.
:func:`noise_models_run` trains (or not) and measures a network once and keeps the record
in a results file (:mod:`rmtlr.results`), so a chapter reruns in seconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
from numpy.typing import ArrayLike
from torch import nn

from rmtlr import models
from rmtlr.experiments import ggn_prediction, theorem4_prediction
from rmtlr.profiles import get_profile, resolve_device
from rmtlr.results import ResultsFile, data_id, provenance, run_key
from rmtlr.rmt.batch import effective_batch_size
from rmtlr.rmt.validation import finite_scalar, integer, random_seed
from rmtlr.train import TrainConfig, num_classes_of, train

__all__ = ["CURVATURES", "NOISE_MODELS", "NoiseSpectrum", "measure_noise_models",
           "noise_models_run", "noise_spectrum", "paper_rank_bound", "predict_batch_lam1",
           "prediction_rows"]

#: Curvature matrices measured: the Hessian and its generalised Gauss–Newton part.
CURVATURES = ("hessian", "ggn")

#: The predictions of :func:`predict_batch_lam1`, in the order the book lists them.
NOISE_MODELS = ("theorem4", "wishart", "top_direction")


def predict_batch_lam1(lam1: float, *, P: int, B: float, N: float, sigma_eps: float,
                       noise_var: float | None = None,
                       top_variance: float | None = None) -> dict[str, float | None]:
    r"""Predict the top batch eigenvalue λ'_1 under each noise model.

    With 𝔟 = B/(1 − B/N) (paper Eq. 7):

    .. math::

        \text{theorem4:}\quad λ_1 + \frac{P}{𝔟}\frac{σ_ε^2}{λ_1}
            \ \text{if } λ_1 > \sqrt{P/𝔟}\,σ_ε, \text{ else } 2\sqrt{P/𝔟}\,σ_ε,

        \text{wishart:}\quad λ_1\Big(1 + \frac{P/𝔟}{λ_1/ν - 1 + P/N}\Big)
            \ \text{(finite N, P ≤ N; leading order } P/N \to 0 \text{ if P > N)},

        \text{top\_direction:}\quad λ_1 + \frac{τ^2}{𝔟\,λ_1}
            \ \text{if } λ_1 > τ/\sqrt{𝔟}, \text{ else } 2τ/\sqrt{𝔟},

    the wishart branch below its threshold being the bulk edge
    (:func:`rmtlr.rmt.ggn.ggn_batch_outlier`). Theorem 4 uses the per-entry variance
    σ_ε² averaged over all P² entries, i.e. over all directions; top_direction is the
    same Lemma 5 with the variance of the noise along the outlier's own direction,
    τ²/𝔟 = E‖ε v_1‖² (the per-sample τ² = E_i‖(A_i − A)v_1‖²).

    Parameters
    ----------
    lam1 : float
        λ_1, top eigenvalue of the full-data curvature, > 0.
    P : int
        Number of parameters.
    B : float
        Batch size, 0 < B < N.
    N : float
        Number of samples of the full data (``inf``: fresh samples).
    sigma_eps : float
        σ_ε of Theorem 4, >= 0 (:attr:`rmtlr.curvature.HessianVariance.sigma_eps`).
    noise_var : float, optional
        ν, the bulk level of the Gauss–Newton model, > 0: the mean eigenvalue tr(G)/P.
        None (or a value <= 0) gives ``None`` for ``"wishart"``.
    top_variance : float, optional
        τ², per-sample variance of the curvature along v_1, >= 0; None gives ``None``
        for ``"top_direction"``.

    Returns
    -------
    dict
        {model name: λ'_1 or None} for every name of :data:`NOISE_MODELS`.

    Raises
    ------
    ValueError
        If ``lam1`` is not finite and > 0, ``top_variance`` is negative, or another
        argument is out of range.

    Examples
    --------
    >>> p = predict_batch_lam1(2.0, P=10_000, B=10, N=float("inf"), sigma_eps=0.01,
    ...                        noise_var=1e-3, top_variance=40.0)
    >>> round(p["theorem4"], 3), round(p["wishart"], 2), round(p["top_direction"], 3)
    (2.05, 3.0, 4.0)
    """
    lam1 = finite_scalar("lam1 (full-data top eigenvalue)", lam1, lo=0, lo_open=True)
    b = float(effective_batch_size(B, N))
    out: dict[str, float | None] = {
        "theorem4": float(theorem4_prediction(lam1, P=P, B=B, N=N, sigma_eps=sigma_eps))}
    out["wishart"] = (ggn_prediction(lam1, P=P, B=B, N=N, noise_var=float(noise_var))
                      if noise_var is not None and noise_var > 0 else None)
    if top_variance is None:
        out["top_direction"] = None
    else:
        tau2 = finite_scalar("top_variance (τ², per-sample variance along v_1)", top_variance, lo=0)
        s = math.sqrt(tau2 / b)
        out["top_direction"] = lam1 + s * s / lam1 if lam1 > s else 2.0 * s
    return out


@dataclasses.dataclass(frozen=True)
class NoiseSpectrum:
    r"""Shape of a measured spectrum of ε = A_batch − A_emp (:func:`noise_spectrum`).

    Attributes
    ----------
    lam_max : float
        Largest eigenvalue (the largest Ritz value).
    lam_min : float
        Smallest eigenvalue (the smallest Ritz value).
    asymmetry : float
        λ_max/|λ_min|: about 1 for a semicircle, large for a one-sided law.
    skewness : float
        Third standardised moment Σ w θ³ / (Σ w θ²)^{3/2} of the quadrature: 0 for a
        semicircle; its sign says which side is heavier.
    second_moment : float
        s² = ‖ε‖_F²/P, from ``frobenius2`` if given, else Σ w θ² of the quadrature.
    wigner_edge : float
        2s: the edge of a semicircle (Wigner matrix) with this Frobenius norm.
    edge_ratio : float
        max(λ_max, |λ_min|)/(2s): 1 for a Wigner matrix.
    stable_rank : float
        ‖ε‖_F²/‖ε‖_2² = P s²/max(λ_max², λ_min²): P/4 for a Wigner matrix, at most the
        rank for any matrix.
    P : int
        Size of ε.
    """

    lam_max: float
    lam_min: float
    asymmetry: float
    skewness: float
    second_moment: float
    wigner_edge: float
    edge_ratio: float
    stable_rank: float
    P: int


def noise_spectrum(nodes: ArrayLike, weights: ArrayLike, *, P: int,
                   frobenius2: float | None = None) -> NoiseSpectrum:
    r"""Summarise the spectrum of a noise matrix ε from its Lanczos quadrature.

    The nodes θ_k and weights w_k of a Lanczos run from a random unit vector (stochastic
    Lanczos quadrature) give the extreme eigenvalues (the extreme nodes) and unbiased
    moments Σ_k w_k θ_k^j ≈ tr(ε^j)/P. From them: the asymmetry λ_max/|λ_min|, the
    skewness, the Wigner edge 2s with s² = ‖ε‖_F²/P, and the stable rank

    .. math:: r_s = \frac{‖ε‖_F^2}{‖ε‖_2^2} = \frac{P s^2}{\max(λ_{\max}^2, λ_{\min}^2)},

    which is P/4 for a Wigner matrix (edge 2s) and at most rank(ε) for any matrix, so a
    stable rank far below P/4 says the noise is concentrated in few directions.

    Parameters
    ----------
    nodes : array_like
        Ritz values θ_k.
    weights : array_like
        Ritz weights w_k >= 0 (normalised here to sum 1).
    P : int
        Size of ε.
    frobenius2 : float, optional
        An independent estimate of ‖ε‖_F²/P (e.g. Algorithm 1's), > 0; default the
        quadrature's second moment.

    Returns
    -------
    NoiseSpectrum
        The summary.

    Raises
    ------
    ValueError
        If the arrays are empty, of different lengths or not finite, a weight is
        negative, or ``P`` < 1.

    Examples
    --------
    A semicircle of radius 2 (s = 1) sampled by Gauss–Chebyshev nodes:

    >>> k = np.arange(1, 200)
    >>> theta = 2 * np.cos(np.pi * k / 200)
    >>> w = np.sin(np.pi * k / 200) ** 2
    >>> ns = noise_spectrum(theta, w, P=1000)
    >>> round(ns.edge_ratio, 3), round(ns.asymmetry, 3), round(ns.stable_rank)
    (1.0, 1.0, 250)
    """
    th = np.asarray(nodes, dtype=float).ravel()
    w = np.asarray(weights, dtype=float).ravel()
    if th.size == 0 or th.size != w.size:
        raise ValueError(f"nodes and weights must be non-empty and of equal length, got "
                         f"{th.size} and {w.size}")
    if not (np.all(np.isfinite(th)) and np.all(np.isfinite(w))):
        raise ValueError("nodes and weights must be finite")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be >= 0 with a positive sum")
    P = integer("P (size of the noise matrix)", P)
    w = w / w.sum()
    m2q = float(np.sum(w * th**2))
    m3q = float(np.sum(w * th**3))
    m2 = m2q if frobenius2 is None else finite_scalar("frobenius2", frobenius2, lo=0, lo_open=True)
    lam_max, lam_min = float(th.max()), float(th.min())
    top = max(abs(lam_max), abs(lam_min))
    edge = 2.0 * math.sqrt(m2)
    return NoiseSpectrum(
        lam_max=lam_max, lam_min=lam_min,
        asymmetry=lam_max / abs(lam_min) if lam_min < 0 else math.inf,
        skewness=m3q / m2q**1.5 if m2q > 0 else 0.0,
        second_moment=m2, wigner_edge=edge, edge_ratio=top / edge if edge > 0 else math.inf,
        stable_rank=P * m2 / top**2 if top > 0 else 0.0, P=P)


def _split(x: torch.Tensor, y: torch.Tensor, idx: np.ndarray, size: int) -> list:
    idx = torch.as_tensor(np.asarray(idx), dtype=torch.long, device=x.device)
    return [(x[idx[i:i + size]], y[idx[i:i + size]]) for i in range(0, len(idx), size)]


def _top_converged(res, drop: int) -> float:
    """Relative change of the top Ritz value over the last ``drop`` steps."""
    m = len(res.alpha)
    if m <= drop + 1:
        return math.nan
    early = scipy.linalg.eigh_tridiagonal(res.alpha[:m - drop], res.beta[:m - drop - 1],
                                          eigvals_only=True)
    top = float(res.ritz_values[-1])
    return abs(top - float(early[-1])) / max(abs(top), 1e-300)


def _counts(value: int | Mapping[int, int], sizes: Sequence[int], name: str) -> dict[int, int]:
    if isinstance(value, Mapping):
        missing = [B for B in sizes if B not in value]
        if missing:
            raise ValueError(f"{name} must give a count for every batch size; missing "
                             f"{missing}")
        return {B: integer(f"{name}[{B}]", value[B]) for B in sizes}
    n = integer(name, value)
    return dict.fromkeys(sizes, n)


def _sizes(values: Iterable[int], N: int, name: str, *, allow_empty: bool = False) -> list[int]:
    values = list(values)
    out = sorted({integer(f"each of {name}", v) for v in values})
    if (not out and not allow_empty) or (out and out[-1] >= N):
        raise ValueError(f"{name} must be integers in [1, N={N}), got {list(values)!r}")
    return out


def measure_noise_models(model: nn.Module, train_set: Any, *, full_samples: int,
                         variance_samples: int, batch_sizes: Iterable[int] = (8, 32, 128, 512),
                         num_batches: int | Mapping[int, int] = 4,
                         noise_batch_sizes: Iterable[int] = (8, 128),
                         curvatures: Iterable[str] = CURVATURES, full_steps: int = 40,
                         batch_steps: int = 25, noise_steps: int = 30,
                         variance_vectors: int = 4, variance_unit: int = 8,
                         trace_vectors: int = 10, rank_samples: int = 0,
                         rank_steps: int | Mapping[str, int] = 0, rank_tol: float = 1e-5,
                         chunk: int = 500, seed: int = 0,
                         device: str | torch.device | None = None) -> dict[str, Any]:
    r"""Measure everything the noise models need, and what they predict, on one network.

    The first ``full_samples`` samples of ``train_set`` are the full data S (N samples);
    the next ``variance_samples`` are S_var, used only for Algorithm 1 and the rank
    measurements, so that no input of a prediction comes from the batches it predicts.
    For each curvature A (Hessian, GGN) in ``curvatures``:

    1. ``full_steps`` Lanczos steps on A_emp over S: λ_1 (its relative change over the
       last 10 steps is ``lam1_change``), the top eigenvector v_1, and the quadrature
       (nodes, weights) of the full-data spectral density;
    2. tr(A_emp)/P by Hutchinson (``trace_vectors`` Rademacher probes);
    3. Algorithm 1 on S_var in units of ``variance_unit`` samples: σ² and σ_ε over random
       directions; and τ² = 𝔟(b, n)·Σ_u (n_u/n)‖(A_u − A)v_1‖², the per-sample variance
       along v_1 (the same estimator with z = v_1; 𝔟(b, n) undoes the averaging of b
       samples per unit, paper Eq. 6);
    4. for each B, ``num_batches`` batches of B samples drawn from S without replacement
       (the same batches for every curvature), each with ``batch_steps`` Lanczos steps:
       the measured λ'_1; and the predictions of :func:`predict_batch_lam1` from the
       inputs of 1–3 (ν = tr(G_emp)/P for both curvatures, the Gauss–Newton bulk level);
    5. for each B in ``noise_batch_sizes``, ``noise_steps`` Lanczos steps on
       ε = A_batch − A_emp for the first batch of that size: its quadrature and extreme
       Ritz values;
    6. with ``rank_samples`` > 0, the numerical rank of single-sample curvatures A_i of
       S_var: the number of Ritz values above ``rank_tol`` times the largest in
       ``rank_steps`` Lanczos steps (all of them when the run terminated early on an
       invariant subspace, ``exact`` True; else a lower bound).

    Parameters
    ----------
    model : torch.nn.Module
        A classifier trained with cross-entropy (its state is not changed).
    train_set : torch.utils.data.Dataset
        A ``TensorDataset``-like set with ``.tensors`` (inputs, integer labels).
    full_samples : int
        N, the size of the full data S, >= 2.
    variance_samples : int
        Size of S_var, >= 2·``variance_unit``; N + this must not exceed the data.
    batch_sizes : iterable of int
        Batch sizes B, each in [1, N).
    num_batches : int or mapping
        Batches per B (one count for all, or {B: count}).
    noise_batch_sizes : iterable of int
        Batch sizes whose ε spectrum is measured (may be empty), each in [1, N).
    curvatures : iterable of str
        A non-empty subset of :data:`CURVATURES`.
    full_steps : int
        Lanczos steps on the full data, >= 12.
    batch_steps : int
        Lanczos steps per batch (capped at P).
    noise_steps : int
        Lanczos steps on ε (capped at P).
    variance_vectors : int
        Random directions of Algorithm 1, >= 2.
    variance_unit : int
        Samples per unit of Algorithm 1.
    trace_vectors : int
        Hutchinson probes, >= 2.
    rank_samples : int
        Single samples whose curvature rank is measured (0: none).
    rank_steps : int or mapping
        Lanczos steps of a rank measurement (capped at P), >= 1 if ``rank_samples``; one
        count, or {curvature: count}.
    rank_tol : float
        A Ritz value counts towards the rank if its magnitude exceeds ``rank_tol`` times
        the largest, in (0, 1) (10⁻⁵ sits above float32 round-off).
    chunk : int
        Samples per forward pass of the full-data products.
    seed : int
        Seeds the batches and every start vector.
    device : str or torch.device, optional
        Default: where the model's parameters are.

    Returns
    -------
    dict
        JSON-ready: ``P``, ``N``, ``C`` (classes), ``variance_samples``,
        ``batch_sizes``, ``batches`` {str(B): index lists}, ``curvatures`` {name:
        ``lam1_full``, ``lam1_change``, ``top3_full``, ``lam_min_full``,
        ``full_nodes``/``full_weights``, ``trace_per_param``, ``trace_stderr``,
        ``sigma2``, ``sigma2_stderr``, ``sigma_eps``, ``variance_unit``,
        ``top_variance`` (τ²), ``batch`` {str(B): ``lam1`` (per batch),
        ``lam1_change`` (max over batches), ``mean``, ``sd``, ``nodes``/``weights`` (the
        first batch's quadrature), ``predicted`` {model: λ'_1}},
        ``noise`` {str(B): ``nodes``, ``weights``, ``lam_max``, ``lam_min``},
        ``rank`` (list of {``rank``, ``positive``, ``negative``, ``steps``, ``exact``}),
        ``timings`` (seconds per part)}, ``wall_time_s``.

    Raises
    ------
    ValueError
        For sizes out of range (or not whole numbers), too few samples, or unknown
        curvatures.
    TypeError
        If ``train_set`` has no ``tensors``, or a size is not an integer.
    """
    from rmtlr import curvature

    curvatures = (curvatures,) if isinstance(curvatures, str) else tuple(curvatures)
    if not curvatures or any(c not in CURVATURES for c in curvatures):
        raise ValueError(f"curvatures must be a non-empty subset of {CURVATURES}, "
                         f"got {curvatures!r}")
    tensors = getattr(train_set, "tensors", None)
    if tensors is None or len(tensors) != 2:
        raise TypeError("train_set must hold its samples in memory as .tensors = (inputs, "
                        f"labels) (a TensorDataset), got {type(train_set).__name__}")
    x_all, y_all = tensors
    n_all = len(y_all)
    N = integer("full_samples", full_samples, lo=2)
    unit = integer("variance_unit", variance_unit)
    n_var = integer(f"variance_samples (>= 2*variance_unit = {2 * unit})", variance_samples, lo=2 * unit)
    if N + n_var > n_all:
        raise ValueError(f"full_samples + variance_samples must be <= {n_all} (the data set "
                         f"size), got {N} + {n_var}")
    sizes = _sizes(batch_sizes, N, "batch_sizes")
    noise_sizes = _sizes(noise_batch_sizes, N, "noise_batch_sizes", allow_empty=True)
    counts = _counts(num_batches, sizes, "num_batches")
    full_steps = integer("full_steps", full_steps, lo=12)
    batch_steps = integer("batch_steps", batch_steps)
    noise_steps = integer("noise_steps", noise_steps)
    variance_vectors = integer("variance_vectors", variance_vectors, lo=2)
    trace_vectors = integer("trace_vectors", trace_vectors, lo=2)
    rank_samples = integer("rank_samples", rank_samples, lo=0)
    steps_of = rank_steps if isinstance(rank_steps, Mapping) else dict.fromkeys(curvatures,
                                                                                 rank_steps)
    rank_steps = {c: integer(f"rank_steps[{c!r}]", steps_of.get(c), lo=1 if rank_samples else 0)
                  for c in curvatures}
    rank_tol = finite_scalar("rank_tol", rank_tol, lo=0, hi=1, lo_open=True, hi_open=True)
    chunk = integer("chunk", chunk)
    seed = random_seed("seed", seed)
    device = next(model.parameters()).device if device is None else resolve_device(device)
    x_all, y_all = x_all.to(device), y_all.to(device)

    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    picked = {B: [np.sort(rng.choice(N, B, replace=False)) for _ in range(counts[B])]
              for B in sizes}
    missing_noise = [B for B in noise_sizes if B not in picked]
    for B in missing_noise:
        picked[B] = [np.sort(rng.choice(N, B, replace=False))]
    full = _split(x_all, y_all, np.arange(N), chunk)
    var_idx = np.arange(N, N + n_var - n_var % unit)
    units = _split(x_all, y_all, var_idx, unit)
    loss = nn.functional.cross_entropy
    P = models.count_parameters(model)
    n_classes = int(y_all.max()) + 1
    b_unit = float(effective_batch_size(unit, len(var_idx)))
    out: dict[str, Any] = {
        "P": P, "N": N, "C": n_classes, "variance_samples": len(var_idx),
        "batch_sizes": sizes, "noise_batch_sizes": noise_sizes,
        "batches": {str(B): [i.tolist() for i in idx] for B, idx in picked.items()},
        "curvatures": {}}
    ggn_level = None
    # the GGN first: its tr/P is the bulk level ν of the Wishart model for both curvatures
    order = sorted(curvatures, key=lambda c: c != "ggn")
    measured: dict[str, dict] = {}
    for name in order:
        Op = curvature.HessianOperator if name == "hessian" else curvature.GGNOperator
        timings: dict[str, float] = {}
        tic = time.perf_counter()
        full_op = Op(model, loss, full)
        res = curvature.lanczos(full_op, min(full_steps, P), seed=seed, return_vectors=True)
        v1 = res.ritz_vectors[:, -1].contiguous()
        rec: dict[str, Any] = {
            "lam1_full": float(res.ritz_values[-1]), "lam1_change": _top_converged(res, 10),
            "top3_full": res.ritz_values[::-1][:3].tolist(),
            "lam_min_full": float(res.ritz_values[0]),
            "full_nodes": res.ritz_values.tolist(), "full_weights": res.ritz_weights.tolist()}
        del res
        timings["full_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
        tr = curvature.hutchinson_trace(full_op, trace_vectors, seed=seed + 1)
        rec["trace_per_param"], rec["trace_stderr"] = tr.trace / P, tr.stderr / P
        if name == "ggn":
            ggn_level = rec["trace_per_param"]
        timings["trace_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
        var_op = Op(model, loss, units)
        hv = curvature.hessian_variance(var_op, variance_vectors, per_sample=False,
                                        seed=seed + 2)
        sq, mean, n = 0.0, torch.zeros(P, dtype=torch.float64, device=device), 0
        for n_u, av in var_op.per_batch_products(v1.to(var_op.dtype)):
            av = av.double()
            sq += n_u * float(av @ av)
            mean.add_(av, alpha=float(n_u))
            n += n_u
        mean /= n
        v_norm2 = float(v1.double() @ v1.double())
        rec.update(sigma2=hv.sigma2, sigma2_stderr=hv.stderr, sigma_eps=hv.sigma_eps,
                   variance_unit=unit,
                   top_variance=(sq / n - float(mean @ mean)) / v_norm2 * b_unit)
        timings["variance_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
        rec["batch"] = {}
        for B in sizes:
            lam, change, first = [], [], None
            for k, idx in enumerate(picked[B]):
                r = curvature.lanczos(Op(model, loss, _split(x_all, y_all, idx, B)[0]),
                                      min(batch_steps, P), seed=seed + 100 + k)
                lam.append(float(r.ritz_values[-1]))
                change.append(_top_converged(r, min(5, batch_steps // 3)))
                first = first or r
            rec["batch"][str(B)] = {"lam1": lam, "lam1_change": float(np.nanmax(change)),
                                    "mean": float(np.mean(lam)),
                                    "sd": float(np.std(lam, ddof=1)) if len(lam) > 1 else 0.0,
                                    "nodes": first.ritz_values.tolist(),
                                    "weights": first.ritz_weights.tolist()}
        timings["batches_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
        rec["noise"] = {}
        for B in noise_sizes:
            idx = picked[B][0]
            eps = Op(model, loss, _split(x_all, y_all, idx, B)[0]) - full_op
            r = curvature.lanczos(eps, min(noise_steps, P), seed=seed + 500)
            rec["noise"][str(B)] = {"nodes": r.ritz_values.tolist(),
                                    "weights": r.ritz_weights.tolist(),
                                    "lam_max": float(r.ritz_values[-1]),
                                    "lam_min": float(r.ritz_values[0])}
        timings["noise_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
        rec["rank"] = []
        for i in var_idx[:rank_samples]:
            m = min(rank_steps[name], P)
            r = curvature.lanczos(Op(model, loss, (x_all[i:i + 1], y_all[i:i + 1])), m,
                                  seed=seed + 900)
            th = r.ritz_values
            big = np.abs(th) > rank_tol * np.abs(th).max()
            rec["rank"].append({"rank": int(big.sum()), "positive": int((big & (th > 0)).sum()),
                                "negative": int((big & (th < 0)).sum()), "steps": m,
                                "exact": bool(r.restarts > 0 or m == P)})
        timings["rank_s"] = time.perf_counter() - tic
        rec["timings"] = timings
        measured[name] = rec
    for name in curvatures:
        rec = measured[name]
        for B in sizes:
            rec["batch"][str(B)]["predicted"] = predict_batch_lam1(
                rec["lam1_full"], P=P, B=B, N=N, sigma_eps=rec["sigma_eps"],
                noise_var=ggn_level, top_variance=max(rec["top_variance"], 0.0))
        out["curvatures"][name] = rec
    out["wall_time_s"] = time.perf_counter() - t_start
    return out


def noise_models_run(cfg: TrainConfig, *, train_set: Any, results: str | Path,
                     trained: bool = True, device: str | torch.device | None = None,
                     **measure_kw: Any) -> dict[str, Any]:
    """Build (and train) a network and :func:`measure_noise_models` it, once.

    The network is ``rmtlr.models.build(cfg.model, …, **cfg.model_kw)`` after
    ``torch.manual_seed(cfg.seed)`` (its initial weights), trained by
    :func:`rmtlr.train.train` with ``cfg`` on all of ``train_set`` if ``trained``. The
    record is kept in the results file under a key made of ``cfg``, ``trained``, the data
    (:func:`rmtlr.results.data_id`) and ``measure_kw``; a second call with the same
    arguments reads it back without training or measuring.

    Parameters
    ----------
    cfg : TrainConfig
        Network and training run.
    train_set : torch.utils.data.Dataset
        Training data; also the data measured (see :func:`measure_noise_models`).
    results : str or pathlib.Path
        The results file (``.jsonl``).
    trained : bool
        Train before measuring (False: measure at initialisation).
    device : str or torch.device, optional
        Default: the profile's.
    **measure_kw
        Arguments of :func:`measure_noise_models` (JSON values).

    Returns
    -------
    dict
        The :func:`measure_noise_models` output plus ``config``, ``trained``, ``train``
        (final training loss and accuracy, training seconds; None at initialisation),
        ``network`` (model name and P), ``data``, ``profile``, ``key``, ``device``,
        ``versions``, ``date`` and ``wall_time_s`` (training included).

    Raises
    ------
    TypeError
        If ``cfg`` is not a TrainConfig.
    ValueError
        If ``measure_kw`` holds non-JSON values or the results file is not writable.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    store = ResultsFile(results)
    store.check_writable()
    dev = resolve_device(device)
    kw = {k: ({str(b): n for b, n in v.items()} if isinstance(v, Mapping) else
              list(v) if isinstance(v, (tuple, list)) else v) for k, v in measure_kw.items()}
    key = run_key(cfg.to_dict(), data_id(train_set), trained=bool(trained), measure=kw)

    def compute() -> dict[str, Any]:
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        model = models.build(cfg.model, num_classes_of(train_set), **cfg.model_kw).to(dev)
        summary = None
        if trained:
            rec = train(cfg, train_set=train_set, model=model, device=dev, progress=False)
            if rec["outcome"] != "ok":
                raise ValueError(f"training diverged ({cfg.model}, lr={cfg.lr}); "
                                 "choose a smaller lr")
            curves = rec["curves"]
            summary = {"train_loss": curves["train_loss"][-1],
                       "train_acc": curves["train_acc"][-1], "seconds": rec["wall_time_s"]}
        model.eval()
        back = dict(measure_kw)
        if isinstance(back.get("num_batches"), Mapping):
            back["num_batches"] = {int(b): n for b, n in back["num_batches"].items()}
        meas = measure_noise_models(model, train_set, device=dev, **back)
        return {**meas, "config": cfg.to_dict(), "trained": bool(trained), "train": summary,
                "network": {"model": cfg.model, "model_kw": dict(cfg.model_kw), "P": meas["P"]},
                "data": getattr(train_set, "description", type(train_set).__name__),
                "profile": get_profile().name, **provenance(dev),
                "wall_time_s": time.perf_counter() - t0}

    return store.run_once(key, compute)


def prediction_rows(record: Mapping[str, Any], *, label: str = "") -> list[dict[str, Any]]:
    """Flatten a :func:`measure_noise_models` record into one row per curvature and B.

    Parameters
    ----------
    record : Mapping
        A record of :func:`measure_noise_models` or :func:`noise_models_run`.
    label : str
        Network label put in every row (e.g. ``"small CNN, trained"``).

    Returns
    -------
    list of dict
        ``network``, ``curvature``, ``B``, ``b_eff``, ``lam1_full``, ``measured`` (mean),
        ``sd``, ``n`` (batches), and for each model of :data:`NOISE_MODELS` its
        prediction and ``ratio_<model>`` = predicted/measured (None where not predicted).

    Raises
    ------
    KeyError
        If ``record`` lacks the fields of a :func:`measure_noise_models` record.
    """
    rows = []
    N = record["N"]
    for name, rec in record["curvatures"].items():
        for Bs, b in rec["batch"].items():
            row = {"network": label, "curvature": name, "B": int(Bs),
                   "b_eff": float(effective_batch_size(int(Bs), N)),
                   "lam1_full": rec["lam1_full"], "measured": b["mean"], "sd": b["sd"],
                   "n": len(b["lam1"])}
            for m in NOISE_MODELS:
                p = b["predicted"].get(m)
                row[m] = p
                row[f"ratio_{m}"] = None if p is None else p / b["mean"]
            rows.append(row)
    return rows


def paper_rank_bound(model: nn.Module, input_shape: Sequence[int], num_classes: int) -> int:
    r"""Return the paper's bound on a per-sample Hessian's rank (Sec. 7.1), ReLU networks.

    For a feed-forward ReLU network with cross-entropy loss, d_x inputs, d_y = C outputs
    and N_l hidden units in layer l, the paper bounds the rank of a per-sample Hessian by

    .. math:: 4\,d_y\Big(\sum_l N_l + d_x\Big).

    The hidden units are counted as the outputs of the ``nn.ReLU`` modules on one input
    (every channel at every position, for a convolution).

    Parameters
    ----------
    model : torch.nn.Module
        The network; its activations must be ``nn.ReLU`` modules.
    input_shape : sequence of int
        Shape of one input, e.g. (3, 32, 32).
    num_classes : int
        C = d_y.

    Returns
    -------
    int
        The bound (compare it with P: a bound above P says nothing).

    Raises
    ------
    ValueError
        If the model has no ``nn.ReLU`` module or ``num_classes`` < 1.

    Examples
    --------
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    >>> paper_rank_bound(net, (2, 3), 3)  # 4·3·(4 + 6)
    120
    """
    C = integer("num_classes", num_classes)
    units: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: units.append(out[0].numel()))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    if not hooks:
        raise ValueError("model has no nn.ReLU module: the bound counts ReLU units")
    try:
        p = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
    return 4 * C * (sum(units) + math.prod(input_shape))

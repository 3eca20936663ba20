"""Experiments of the CIFAR chapters: spectra across training, resumable.

Chapter 8 trains a network, keeps checkpoints at chosen epochs and measures at each one
(:func:`spectrum_at`) the full-data and batch Hessian and GGN spectra by Lanczos, their SLQ
densities, the mean eigenvalue tr(A)/P (Hutchinson), Algorithm 1's Hessian variance on
samples disjoint from every measured batch, and from those independently measured inputs
the two noise models' predictions of the batch λ_1: Theorem 4's Wigner noise
(:func:`theorem4_prediction`) and the spiked-Wishart model of the GGN
(:func:`ggn_prediction`) (Granziol, Zohren & Roberts 2022, Secs. 3, 6 and 9, Figs. 6, 7
and 9). Optionally it also measures the spectrum of the noise matrix ε = H_batch − H_emp
itself. Chapter 9 runs batch-size sweeps through :func:`rmtlr.sweeps.sweep`.

Every result is a record of a results file (:mod:`rmtlr.results`) with its ``config``,
``profile``, ``device``, ``versions``, ``date`` and ``wall_time_s``, under a results
folder (:func:`results_dir`: ``$RMTLR_RESULTS`` wins), so figures can be redrawn without
recomputing, results produced elsewhere (a GPU, a cluster, the CLI) can be loaded, and an
interrupted run skips what is already there.

:func:`spectra_datasets` gives the images a profile runs on, in memory;
:func:`per_sample_flops` and :func:`estimate_cost` give the floating-point work of a run
and its time at a stated (or measured) rate, printed before a long run starts.

The paper's own numbers live in :data:`PAPER_SPECTRA`, :data:`PAPER_ACCURACY` and
:data:`PAPER_RULES`, quoted from the paper (JMLR 23(173), Secs. 9–11) for the chapters'
"paper vs ours" tables; nothing here computes them.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from rmtlr import data as rdata
from rmtlr import models
from rmtlr.profiles import get_profile, resolve_device
from rmtlr.results import ResultsFile, data_id, provenance, results_dir, run_key
from rmtlr.rmt.batch import batch_outlier
from rmtlr.rmt.ggn import ggn_batch_outlier
from rmtlr.rmt.validation import finite_scalar, integer, positive_scalar, random_seed
from rmtlr.train import TrainConfig, eq23_lr, num_classes_of, train

# results_dir is re-exported: the chapters find it here, next to the experiments.
__all__ = ["CURVATURES", "PAPER_ACCURACY", "PAPER_RECIPE", "PAPER_RULES", "PAPER_SPECTRA",
           "CostEstimate", "checkpoint_path", "estimate_cost", "ggn_prediction",
           "network_config", "per_sample_flops", "results_dir", "run_spectra",
           "spectra_across_training", "spectra_datasets", "spectra_table", "spectrum_at",
           "theorem4_prediction", "train_with_checkpoints", "weights_digest"]

#: From the paper (Sec. 9, VGG-16 without BN on CIFAR-100, α_0 = 0.05): top eigenvalue of
#: the full-data and the B = 128 batch curvature at the epoch the paper reports.
PAPER_SPECTRA = (
    {"curvature": "hessian", "epoch": 200, "B": 128, "lam1_full": 11.41, "lam1_batch": 80.15},
    {"curvature": "ggn", "epoch": 25, "B": 128, "lam1_full": 15.03, "lam1_batch": 45.90},
)

#: From the paper (Secs. 10–11): VGG-16 test accuracy on CIFAR-100 in percent,
#: mean ± standard deviation over its batch-size grid, under each optimiser's rule.
PAPER_ACCURACY = {"sgd": (65.3, 0.6), "adam": (61.9, 0.4)}

#: From the paper (Secs. 10–11): learning-rate rules α_0(B) and where they hold.
PAPER_RULES = {
    "sgd_vgg16": {"rule": "linear", "alpha0": 0.01, "B0": 128,
                  "holds": "stable up to B = 512, fails at B = 4096; 2x the rate diverges"},
    "sgd_vgg16_bn_wrn": {"rule": "linear", "alpha0": 0.1, "B0": 128, "holds": "weight decay 5e-4"},
    "adam_vgg16": {"rule": "sqrt", "alpha0": 0.0004, "B0": 128,
                   "holds": "B = 16 to 1024; the linear rule diverges once B doubles"},
}

#: Curvature matrices measured by :func:`spectrum_at`.
CURVATURES = ("hessian", "ggn")


def checkpoint_path(root: str | os.PathLike, cfg: TrainConfig, epoch: int,
                    data: dict | None = None) -> Path:
    """Return where the weights of ``cfg`` after ``epoch`` epochs are kept under ``root``.

    Parameters
    ----------
    root : str or os.PathLike
        The results folder; checkpoints go to ``root/checkpoints/<model>-<key>/``.
    cfg : TrainConfig
        The training run.
    epoch : int
        Epochs trained (0: the initial weights).
    data : dict, optional
        What it trained on (:func:`rmtlr.results.data_id`), part of the folder's key.

    Returns
    -------
    pathlib.Path
        ``root/checkpoints/<model>-<12 hex digits of the run key>/epochNNNN.pt``.
    """
    tag = run_key(cfg.to_dict(), data)[:12]
    return Path(root) / "checkpoints" / f"{cfg.model}-{tag}" / f"epoch{int(epoch):04d}.pt"


def _epoch_lr(cfg: TrainConfig, epoch: int) -> float:
    """Return the rate of ``epoch`` (1-based): Eq. 23 at the epoch's start, t = epoch − 1."""
    if cfg.schedule == "constant":
        return float(cfg.lr)
    return float(eq23_lr(epoch - 1, cfg.epochs, alpha0=cfg.lr, r=cfg.final_ratio))


def _save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-save leaves the previous state, never half a file


def _epoch_list(epochs: Iterable[int], last: int, name: str) -> list[int]:
    try:
        out = sorted({integer(f"each of {name}", e, lo=0) for e in epochs})
    except TypeError as err:
        raise ValueError(f"{name} must be a non-empty list of integers in [0, {last}], "
                         f"got {epochs!r}") from err
    if not out or out[-1] > last:
        raise ValueError(f"{name} must be a non-empty set of integers in [0, epochs={last}], "
                         f"got {list(out)}")
    return out


def weights_digest(state: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """Return a SHA-256 of a network's weights (names, dtypes, shapes and bytes).

    Records of :func:`spectra_across_training` carry it, so a stored checkpoint can be
    matched to the spectra measured on it.

    Parameters
    ----------
    state : torch.nn.Module or Mapping
        A network, or its ``state_dict()``.

    Returns
    -------
    str
        64 hexadecimal digits; equal weights give equal digests on every machine.

    Raises
    ------
    TypeError
        If ``state`` is neither a module nor a mapping of tensors.

    Examples
    --------
    >>> a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    >>> b.load_state_dict(a.state_dict())
    <All keys matched successfully>
    >>> weights_digest(a) == weights_digest(b.state_dict())
    True
    """
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a torch.nn.Module or a state_dict, got "
                        f"{type(state).__name__}")
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state[{name!r}] must be a tensor, got {type(t).__name__}")
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def _saved_epochs(root: str | os.PathLike, cfg: TrainConfig, data: dict | None) -> set[int]:
    """Epochs whose checkpoint of this run exists under ``root``."""
    folder = checkpoint_path(root, cfg, 0, data).parent
    if not folder.is_dir():
        return set()
    return {int(p.stem[5:]) for p in folder.glob("epoch[0-9][0-9][0-9][0-9].pt")}


def train_with_checkpoints(cfg: TrainConfig, save_epochs: Iterable[int],
                           root: str | os.PathLike, *, train_set: Any = None,
                           val_set: Any = None,
                           device: str | torch.device | None = None) -> dict[str, Any]:
    r"""Train ``cfg`` and keep the weights after each epoch in ``save_epochs``; resumable.

    Runs :func:`rmtlr.train.train` one epoch at a time on the same network, with the rate
    of Eq. 23 held for the epoch, α_e = eq23_lr(e − 1, T = cfg.epochs, alpha0=α_0, r=r) (per epoch
    rather than per step; the step-wise schedule differs by less than one epoch's decay),
    and a batch order (and augmentation) seeded by (cfg.seed, e). The optimiser state
    (momentum buffer) starts afresh each epoch because ``train`` builds its optimiser per
    call; with momentum 0.9 it is rebuilt within about ten steps.

    Checkpoints already under ``root`` are kept. Training restarts from the latest
    checkpoint before the first missing epoch of ``save_epochs`` (or from the seeded
    initialisation) and stops at the last missing one; training is deterministic on one
    machine, so an interrupted run gives the same weights as an uninterrupted one.

    Parameters
    ----------
    cfg : TrainConfig
        The run (``cfg.epochs`` epochs at most).
    save_epochs : iterable of int
        Epochs after which to keep the weights, in [0, cfg.epochs]; 0 is the initial weights.
    root : str or os.PathLike
        The results folder (:func:`checkpoint_path`).
    train_set : torch.utils.data.Dataset, optional
        The training data (default: ``rmtlr.data.load(cfg.dataset, **cfg.data_kw)``).
    val_set : torch.utils.data.Dataset, optional
        Held-out data evaluated after each epoch (default: none).
    device : str or torch.device, optional
        Default: the profile's.

    Returns
    -------
    dict
        ``model``: the network after the last epoch of ``save_epochs`` (or of the run, if
        it diverged earlier); ``history``: per-epoch ``epoch``, ``lr``, train/val loss and
        accuracy, ``epoch_time_s`` (training and validation time), and ``outcome``
        (``"ok"`` or ``"diverged"``); ``checkpoints``: {epoch: path} of the checkpoints
        of ``save_epochs`` that exist.

    Raises
    ------
    ValueError
        For epochs outside [0, cfg.epochs], or an unusable device.
    """
    save = _epoch_list(save_epochs, cfg.epochs, "save_epochs")
    device = resolve_device(device)
    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    data = data_id(train_set, val_set)
    paths = {e: checkpoint_path(root, cfg, e, data) for e in save}
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.model, num_classes_of(train_set), **cfg.model_kw).to(device)
    history = {"epoch": [], "lr": [], "train_loss": [], "train_acc": [], "val_loss": [],
               "val_acc": [], "epoch_time_s": [], "outcome": "ok"}
    missing = [e for e in save if not paths[e].exists()]

    def load(e: int) -> dict:
        state = torch.load(checkpoint_path(root, cfg, e, data), map_location=device,
                           weights_only=True)
        model.load_state_dict(state["state_dict"])
        return state["history"]

    if missing:
        before = [e for e in _saved_epochs(root, cfg, data) if e < missing[0]]
        start = max(before, default=-1)
        if start >= 0:
            history = load(start)
        if start < 0 and missing[0] == 0:
            _save_atomic({"epoch": 0, "state_dict": model.state_dict(), "history": history},
                         paths[0])
        for e in range(max(start, 0) + 1, missing[-1] + 1):
            if history["outcome"] != "ok":
                break
            one = dataclasses.replace(cfg, epochs=1, steps=None, lr=_epoch_lr(cfg, e),
                                      schedule="constant", seed=(cfg.seed * 100_003 + e) % 2**63)
            t0 = time.perf_counter()
            rec = train(one, train_set=train_set, val_set=val_set, model=model, device=device,
                        progress=False)
            if rec["outcome"] != "ok":
                history["outcome"] = "diverged"
                break
            history["epoch"].append(e)
            for k in ("lr", "train_loss", "train_acc", "val_loss", "val_acc"):
                history[k].extend(rec["curves"][k])
            history.setdefault("epoch_time_s", []).append(time.perf_counter() - t0)
            if e in paths and not paths[e].exists():
                _save_atomic({"epoch": e, "state_dict": model.state_dict(),
                              "history": history}, paths[e])
    done = {e: p for e, p in paths.items() if p.exists()}
    if done and history["outcome"] == "ok" and max(done) == save[-1]:
        history = load(save[-1])
    return {"model": model, "history": history, "checkpoints": done}


def theorem4_prediction(lam1_full: ArrayLike, *, P: float, B: float, N: float,
                        sigma_eps: ArrayLike) -> float | np.ndarray:
    r"""Return Theorem 4's batch outlier λ'_1 from the full-data λ_1 and σ_ε.

    .. math:: λ'_1 = λ_1 + \frac{P}{𝔟}\frac{σ_ε^2}{λ_1} \ \text{ if } λ_1 > \sqrt{P/𝔟}\,σ_ε,
              \qquad λ'_1 = 2\sqrt{P/𝔟}\,σ_ε \ \text{ otherwise (the bulk edge),}

    with 1/𝔟 = 1/B − 1/N (Eq. 7) and σ_ε the root-mean-square per-entry standard
    deviation of the per-sample Hessians (what :func:`spectrum_at` measures). A wrapper of
    :func:`rmtlr.rmt.batch.batch_outlier` with the argument names of this module.

    Parameters
    ----------
    lam1_full : float or array_like
        λ_1, the top eigenvalue of the full-data Hessian.
    P : float
        Number of parameters.
    B : float
        Batch size, 0 < B <= N.
    N : float
        Number of samples.
    sigma_eps : float or array_like
        σ_ε >= 0.

    Returns
    -------
    float or numpy.ndarray
        λ'_1.

    Raises
    ------
    ValueError
        If ``sigma_eps`` is negative or not finite, or another argument is out of range.

    Examples
    --------
    >>> round(theorem4_prediction(2.0, P=100, B=10, N=1000, sigma_eps=0.1), 6)
    2.0495
    """
    s = np.asarray(sigma_eps, dtype=float)
    if np.any(~np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"sigma_eps must be finite and >= 0, got {sigma_eps!r}")
    return batch_outlier(lam1_full, P=P, B=B, N=N, sigma_eps=sigma_eps)


def ggn_prediction(lam1_full: float, *, P: float, B: float, N: float,
                   noise_var: float) -> float:
    r"""Return the batch-GGN outlier of the spiked sample-covariance model (Thm 7).

    With γ = P/𝔟, a = P/N, ℓ = λ/σ² and s = ℓ − 1 + a (σ² = ``noise_var``), λ' = λ(1 + γ/s)
    above the threshold ℓ > 1 − a + sqrt((1 − a)γ), else the Wachter bulk edge
    σ²(sqrt(1 − a) + sqrt γ)²; see :func:`rmtlr.rmt.ggn.ggn_batch_outlier`. That finite-N
    form needs P <= N; a network with P > N has a full GGN of rank < P, outside the model,
    and gets the leading order in P/N instead (a = 0: Baik–Silverstein, BBP threshold
    σ²(1 + sqrt γ), else the Marchenko–Pastur edge σ²(1 + sqrt γ)²). λ_1 is clipped from
    below at σ², the bottom of the model's full spectrum.

    Parameters
    ----------
    lam1_full : float
        λ_1, the top eigenvalue of the full-data GGN.
    P : float
        Number of parameters.
    B : float
        Batch size, 0 < B <= N.
    N : float
        Number of samples.
    noise_var : float
        σ², the flat bulk level of the full GGN (the entry variance of the per-sample
        gradients of the model), > 0; :func:`spectrum_at` estimates it by the mean
        eigenvalue tr(G)/P.

    Returns
    -------
    float
        λ'_1.

    Raises
    ------
    TypeError
        If ``noise_var`` is not a real number.
    ValueError
        If ``noise_var`` is not finite and > 0.
    """
    noise_var = positive_scalar("noise_var", noise_var)
    lam = max(float(lam1_full), float(noise_var))
    return float(ggn_batch_outlier(lam, P=P, B=B, N=N, noise_var=noise_var, finite_N=P <= N))


def _tensor_batches(dataset, indices, size: int):
    """Split ``dataset`` at ``indices`` into batches (x, y) of ``size`` (last one shorter)."""
    idx = np.asarray(indices)
    if isinstance(dataset, torch.utils.data.TensorDataset):
        x, y = dataset.tensors[:2]
        return [(x[idx[i:i + size]], y[idx[i:i + size]]) for i in range(0, len(idx), size)]
    out = []
    for i in range(0, len(idx), size):
        xs, ys = zip(*(dataset[int(j)] for j in idx[i:i + size]))
        out.append((torch.stack(xs), torch.as_tensor(ys)))
    return out


def _density_dict(slq) -> dict:
    return {"nodes": slq.nodes.tolist(), "weights": slq.weights.tolist(),
            "bulk_edge": float(slq.bulk_edge), "zero_mass": float(slq.zero_mass),
            "mean_eigenvalue": slq.moment(1)}


def _batch_size_list(batch_sizes: Any, N: int) -> list[int]:
    why = f"batch_sizes must be a non-empty list of integers in [1, N={N})"
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Iterable):
        raise TypeError(f"{why}, got {batch_sizes!r}")
    out = sorted({integer(f"each of batch_sizes (in [1, N={N}))", b) for b in batch_sizes})
    if not out or out[-1] >= N:
        raise ValueError(f"{why}, got {batch_sizes!r}")
    return out


def spectrum_at(model: nn.Module, train_set: Any, *, batch_sizes: Sequence[int] = (128,),
                num_batches: int = 3, lanczos_steps: int = 100, slq_vectors: int = 1,
                curvatures: Iterable[str] = CURVATURES, full_samples: int | None = None,
                variance_samples: int | None = None, variance_unit: int = 32,
                variance_vectors: int = 4, trace_vectors: int = 10, noise_steps: int = 0,
                noise_curvatures: Iterable[str] | None = None, chunk: int = 512,
                seed: int = 0, dtype: torch.dtype | None = None,
                device: str | torch.device | None = None) -> dict[str, Any]:
    r"""Measure full-data and batch curvature spectra of ``model``, and predict the batch λ_1.

    For each curvature A in ``curvatures`` (``"hessian"``, ``"ggn"``):

    - full data: A_emp = (1/N) Σ_i A_i over the first N = ``full_samples`` samples, by
      stochastic Lanczos quadrature (:func:`rmtlr.curvature.slq_density`); λ_1 is the
      largest Ritz value (Lanczos resolves the extreme eigenvalue first); the mean
      eigenvalue tr(A_emp)/P by Hutchinson's estimator
      (:func:`rmtlr.curvature.hutchinson_trace`, ``trace_vectors`` probes);
    - batches: for each B in ``batch_sizes``, ``num_batches`` batches of B samples drawn
      without replacement from those N (NumPy ``default_rng(seed)``, in order of B),
      giving the batch λ'_1 of each;
    - σ_ε: Algorithm 1 (:func:`rmtlr.curvature.hessian_variance`) on
      ``variance_samples`` samples that are in **no** measured batch (drawn from the rest
      of ``train_set``), partitioned into units of ``variance_unit`` samples, so that
      σ_ε² = σ²·𝔟(b, n)/P (Eq. 7) is the per-entry variance of the per-sample curvature,
      measured independently of the batches whose λ'_1 it predicts;
    - model A (Wigner noise, Theorem 4, :func:`theorem4_prediction`):
      λ'_1 = λ_1 + (P/𝔟)σ_ε²/λ_1 above the threshold √(P/𝔟)·σ_ε, else 2√(P/𝔟)·σ_ε;
    - model B (spiked Wishart, the GGN model of Theorem 7 done with the standard results,
      :func:`ggn_prediction`): the batch curvature as a sample covariance of 𝔟 draws from
      a population with the measured λ_1 and bulk level σ² = tr(A_emp)/P; for P ≫ N its
      outlier is λ'_1 ≈ λ_1 + tr(A_emp)/𝔟;
    - with ``noise_steps`` > 0, the SLQ spectrum of ε = A_batch − A_emp for the first
      batch of each B (``noise_steps`` Lanczos steps on the difference operator).

    Parameters
    ----------
    model : torch.nn.Module
        The network (its state is not changed; dropout is off and BatchNorm uses its
        running statistics in every product).
    train_set : torch.utils.data.Dataset
        (input, label) samples, without random augmentation.
    batch_sizes : sequence of int
        The batch sizes B, each in [1, N).
    num_batches : int
        Random batches per batch size, >= 1.
    lanczos_steps : int
        Lanczos steps m per spectrum (the paper: 100).
    slq_vectors : int
        SLQ start vectors for the full-data and first-batch densities.
    curvatures : iterable of str
        A non-empty subset of :data:`CURVATURES`.
    full_samples : int, optional
        N: the first ``full_samples`` samples stand for the full data (default: all).
    variance_samples : int, optional
        Samples for Algorithm 1, drawn from those in no measured batch (default: as many
        as N, or all such samples if fewer).
    variance_unit : int
        Samples per unit of Algorithm 1, in [1, variance_samples / 2].
    variance_vectors : int
        Random directions of Algorithm 1, >= 2.
    trace_vectors : int
        Hutchinson probes for tr(A_emp), >= 2.
    noise_steps : int
        Lanczos steps on ε = A_batch − A_emp (0: not measured).
    noise_curvatures : iterable of str, optional
        The curvatures whose ε is measured (default: all of ``curvatures``).
    chunk : int
        Samples per forward pass of the full-data and variance products.
    seed : int
        Seeds the batches, the variance samples and every start vector.
    dtype : torch.dtype, optional
        Precision of the products (default: the model's).
    device : str or torch.device, optional
        Default: where the model's parameters are.

    Returns
    -------
    dict
        JSON-ready: ``P``, ``N``, ``batch_sizes``, ``batches`` {str(B): lists of sample
        indices}, ``variance`` {``samples``, ``unit``, ``units``, ``indices`` (in unit
        order)}, ``curvatures`` {name:
        ``lam1_full``, ``full_density`` (SLQ nodes and weights, bulk edge, zero mass),
        ``trace_per_param`` and ``trace_stderr``, ``sigma2``, ``sigma2_stderr`` and
        ``sigma_eps`` (Algorithm 1), ``timings`` (seconds per part), ``batch`` {str(B):
        ``lam1_batch`` (per batch), ``lam1_batch_mean``, ``predicted_theorem4``,
        ``predicted_wishart`` (None if tr(A_emp) <= 0), ``batch_density`` and, with
        ``noise_steps``, ``noise`` (SLQ nodes and weights of ε, its extreme Ritz values
        and ``moment2`` ≈ ‖ε‖_F²/P)}}, ``wall_time_s``.

    Raises
    ------
    ValueError
        For sizes out of range, too few samples outside the batches for Algorithm 1, or
        unknown curvatures.
    TypeError
        If ``batch_sizes`` is not a list of numbers.
    """
    from rmtlr import curvature

    curvatures = tuple(curvatures) if not isinstance(curvatures, str) else (curvatures,)
    unknown = [c for c in curvatures if c not in CURVATURES]
    if not curvatures or unknown:
        raise ValueError(f"curvatures must be a non-empty subset of {CURVATURES}, "
                         f"got {curvatures!r}")
    n_all = len(train_set)
    N = n_all if full_samples is None else integer("full_samples", full_samples, lo=2)
    if not 2 <= N <= n_all:
        raise ValueError(f"full_samples must be in [2, {n_all}] (the data set size), "
                         f"got {full_samples!r}")
    sizes = _batch_size_list(batch_sizes, N)
    num_batches = integer("num_batches", num_batches)
    lanczos_steps = integer("lanczos_steps", lanczos_steps)
    slq_vectors = integer("slq_vectors", slq_vectors)
    variance_vectors = integer("variance_vectors", variance_vectors, lo=2)
    trace_vectors = integer("trace_vectors", trace_vectors, lo=2)
    noise_steps = integer("noise_steps", noise_steps, lo=0)
    noise_curvatures = curvatures if noise_curvatures is None else (
        (noise_curvatures,) if isinstance(noise_curvatures, str) else tuple(noise_curvatures))
    if not set(noise_curvatures) <= set(curvatures):
        raise ValueError(f"noise_curvatures must be a subset of curvatures={curvatures!r}, "
                         f"got {noise_curvatures!r}")
    variance_unit = integer("variance_unit", variance_unit)
    chunk = integer("chunk", chunk)
    seed = random_seed("seed", seed)
    device = next(model.parameters()).device if device is None else resolve_device(device)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    picked = {B: [np.sort(rng.choice(N, B, replace=False)) for _ in range(num_batches)]
              for B in sizes}
    used = np.unique(np.concatenate([i for idx in picked.values() for i in idx]))
    pool = np.setdiff1d(np.arange(n_all), used)
    n_var = (min(N, len(pool)) if variance_samples is None
             else integer("variance_samples", variance_samples, lo=2))
    if n_var > len(pool) or n_var < 2 * variance_unit:
        raise ValueError(
            f"variance_samples must be in [2*variance_unit = {2 * variance_unit}, "
            f"{len(pool)}] (the samples in no measured batch), got {n_var}; use fewer or "
            "smaller batches, a smaller variance_unit, or more data")
    n_units = n_var // variance_unit
    var_idx = rng.choice(pool, n_units * variance_unit, replace=False)
    full = _tensor_batches(train_set, np.arange(N), chunk)
    batches = {B: [_tensor_batches(train_set, idx, B)[0] for idx in picked[B]] for B in sizes}
    units = _tensor_batches(train_set, var_idx, variance_unit)
    loss = nn.functional.cross_entropy
    kw = {"dtype": dtype, "device": device}
    P = models.count_parameters(model)
    out: dict[str, Any] = {
        "P": P, "N": N, "batch_sizes": sizes,
        "batches": {str(B): [i.tolist() for i in picked[B]] for B in sizes},
        "variance": {"samples": n_units * variance_unit, "unit": variance_unit,
                     "units": n_units, "indices": var_idx.tolist()},
        "curvatures": {}}
    for name in curvatures:
        Op = curvature.HessianOperator if name == "hessian" else curvature.GGNOperator
        timings: dict[str, float] = {}
        tic = time.perf_counter()
        full_op = Op(model, loss, full, **kw)
        full_slq = curvature.slq_density(full_op, lanczos_steps, slq_vectors, seed=seed)
        lam1 = float(full_slq.nodes.max())
        timings["full_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
        tr = curvature.hutchinson_trace(full_op, trace_vectors, seed=seed)
        mean_eig, mean_err = tr.trace / P, tr.stderr / P
        timings["trace_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
        var = curvature.hessian_variance(Op(model, loss, units, **kw), variance_vectors,
                                         per_sample=False, seed=seed)
        timings["variance_s"] = time.perf_counter() - tic
        per_b: dict[str, Any] = {}
        timings["batches_s"] = timings["noise_s"] = 0.0
        for B in sizes:
            tic = time.perf_counter()
            lam_b, first = [], None
            for k, batch in enumerate(batches[B]):
                slq = curvature.slq_density(Op(model, loss, batch, **kw), lanczos_steps,
                                            slq_vectors if k == 0 else 1, seed=seed + 1 + k)
                lam_b.append(float(slq.nodes.max()))
                first = first or slq
            timings["batches_s"] += time.perf_counter() - tic
            entry = {
                "lam1_batch": lam_b, "lam1_batch_mean": float(np.mean(lam_b)),
                "predicted_theorem4": float(theorem4_prediction(
                    lam1, P=P, B=B, N=N, sigma_eps=var.sigma_eps)),
                "predicted_wishart": (ggn_prediction(lam1, P=P, B=B, N=N, noise_var=mean_eig)
                                      if mean_eig > 0 else None),
                "batch_density": _density_dict(first)}
            if noise_steps and name in noise_curvatures:
                tic = time.perf_counter()
                eps = Op(model, loss, batches[B][0], **kw) - full_op
                ns = curvature.slq_density(eps, min(noise_steps, P), 1, seed=seed + 7919)
                entry["noise"] = {"nodes": ns.nodes.tolist(), "weights": ns.weights.tolist(),
                                  "lam_max": float(ns.nodes.max()),
                                  "lam_min": float(ns.nodes.min()),
                                  "moment2": ns.moment(2)}
                timings["noise_s"] += time.perf_counter() - tic
            per_b[str(B)] = entry
        out["curvatures"][name] = {
            "lam1_full": lam1, "full_density": _density_dict(full_slq),
            "trace_per_param": mean_eig, "trace_stderr": mean_err,
            "sigma2": var.sigma2, "sigma2_stderr": var.stderr, "sigma_eps": var.sigma_eps,
            "timings": timings, "batch": per_b}
    out["wall_time_s"] = time.perf_counter() - t0
    return out


def spectra_across_training(cfg: TrainConfig, epochs: Iterable[int],
                            results: str | os.PathLike, *, train_set: Any = None,
                            val_set: Any = None, spectra_set: Any = None,
                            spectra_kw: Mapping[str, Any] | None = None,
                            epoch_kw: Mapping[int, Mapping[str, Any]] | None = None,
                            device: str | torch.device | None = None,
                            profile: str | None = None) -> list[dict]:
    """Train ``cfg`` with checkpoints at ``epochs`` and measure :func:`spectrum_at` at each.

    One record per epoch is appended to ``results/spectra.jsonl`` (:mod:`rmtlr.results`):
    ``config`` (the training config), ``epoch``, ``spectra_kw`` (those of this epoch),
    the :func:`spectrum_at` output, ``history`` (the training curves up to that epoch),
    ``train_time_s`` (training time to that epoch), ``weights_sha256``
    (:func:`weights_digest` of the checkpoint), ``checkpoint`` (its path relative to
    ``results``), ``profile``, ``data``, ``data_id``, ``key``, ``device``, ``versions``,
    ``date``, ``wall_time_s``. Epochs already recorded for the same config, keyword
    arguments and data are read back, not recomputed, and training is skipped when every
    epoch is there; checkpoints live under ``results/checkpoints``. A kill loses at most
    the checkpoint being measured. Processes asking for the same spectra compute each
    checkpoint once: training is claimed for the whole job, each checkpoint's spectra
    separately, so several processes share the checkpoints of one job (each measures the
    next one nobody has claimed) and wait for the others' records.

    Parameters
    ----------
    cfg : TrainConfig
        The training run.
    epochs : iterable of int
        Checkpoints to measure at, in [0, cfg.epochs] (0: at initialisation).
    results : str or os.PathLike
        The results folder.
    train_set : torch.utils.data.Dataset, optional
        The training data (default: ``rmtlr.data.load(cfg.dataset, **cfg.data_kw)``).
    val_set : torch.utils.data.Dataset, optional
        Held-out data evaluated after each epoch (default: none).
    spectra_set : torch.utils.data.Dataset, optional
        The data the curvature is measured on (default ``train_set``): pass the training
        images without augmentation when the data set itself augments them, so that
        every product sees the same samples.
    spectra_kw : Mapping, optional
        Keyword arguments of :func:`spectrum_at` (not ``dtype``: records are JSON).
    epoch_kw : Mapping, optional
        {epoch: keyword arguments} that extend or override ``spectra_kw`` at that epoch,
        e.g. ``{30: {"noise_steps": 30}}`` to measure ε's spectrum at the last one only.
    device : str or torch.device, optional
        Default: the profile's.
    profile : str, optional
        ``"quick"``, ``"gpu"`` or ``"full"`` (default: the active one); chooses the
        default device and is stored with the records.

    Returns
    -------
    list of dict
        The records in epoch order (a diverged run stops early).

    Raises
    ------
    ValueError
        For bad input or an unwritable results folder, before any training.
    TypeError
        If ``cfg`` is not a TrainConfig.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    want = _epoch_list(epochs, cfg.epochs, "epochs")
    epoch_kw = dict(epoch_kw or {})
    if not set(epoch_kw) <= set(want):
        raise ValueError(f"epoch_kw must name epochs of epochs={want}, got "
                         f"{sorted(epoch_kw)}")
    per_epoch = {e: {**dict(spectra_kw or {}), **dict(epoch_kw.get(e, {}))} for e in want}
    if any("dtype" in kw for kw in per_epoch.values()):
        raise ValueError("spectra_kw must not set dtype here (records must be JSON); "
                         "call spectrum_at directly for another dtype")
    results = Path(results)
    if results.exists() and not results.is_dir():
        raise ValueError(f"results must be a folder (spectra.jsonl and checkpoints/ go in it), "
                         f"got the file {str(results)!r}")
    store = ResultsFile(results / "spectra.jsonl")
    store.check_writable()
    store.records()  # a corrupt file fails now, not after training
    prof = get_profile(profile, device=device)  # checks device; warns at most once
    prof_name, device = prof.name, prof.device
    config = cfg.to_dict()
    try:
        kw_key = {e: json.loads(json.dumps(kw, sort_keys=True, allow_nan=False))
                  for e, kw in per_epoch.items()}
    except (TypeError, ValueError) as err:
        raise ValueError(f"spectra_kw must hold JSON values, got {spectra_kw!r}: {err}") from err

    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    measured_on = spectra_set if spectra_set is not None else train_set
    data = data_id(train_set, val_set, spectra=measured_on)
    keys = {e: run_key(config, data, spectra_kw=kw_key[e], epoch=e) for e in want}

    def have() -> dict[int, dict]:
        found = {e: store.find(k) for e, k in keys.items()}
        return {e: r for e, r in found.items() if r is not None}

    done = have()
    missing = [e for e in want if e not in done]
    if missing:
        # Training: one claim for the job, so that its checkpoints are written once.
        job = run_key(config, data, spectra_kw=[kw_key[e] for e in want], epochs=want)
        with store.claim(job, wait=True):
            missing = [e for e in want if store.find(keys[e]) is None]
            run = train_with_checkpoints(cfg, missing, results, train_set=train_set,
                                         val_set=val_set, device=device) if missing else None
        # Measuring: one claim per epoch, so that several processes share a job's epochs.
        others = []
        for e in missing:
            if e not in run["checkpoints"]:
                continue  # diverged before this epoch
            with store.claim(keys[e], wait=False) as held:
                if not held:
                    others.append(e)
                    continue
                if store.find(keys[e]) is not None:
                    continue  # measured by another process meanwhile
                path = run["checkpoints"][e]
                state = torch.load(path, map_location=device, weights_only=True)
                model = run["model"]
                model.load_state_dict(state["state_dict"])
                t0 = time.perf_counter()
                spec = spectrum_at(model, measured_on, device=device, **per_epoch[e])
                hist = state["history"]
                store.append({
                    "config": config, "epoch": e, "spectra_kw": kw_key[e], **spec,
                    "history": hist,
                    "train_time_s": float(sum(hist.get("epoch_time_s", []))),
                    "weights_sha256": weights_digest(state["state_dict"]),
                    "checkpoint": Path(path).relative_to(results).as_posix(),
                    "profile": prof_name,
                    "data": getattr(measured_on, "description", type(measured_on).__name__),
                    "data_id": data, "key": keys[e], **provenance(device),
                    "wall_time_s": time.perf_counter() - t0})
        for e in others:
            with store.claim(keys[e], wait=True):
                pass  # the other process's record is in the file when its claim ends
        done = have()
    return [done[e] for e in want if e in done]


def spectra_table(records: Iterable[Mapping[str, Any]], *, network: str = "") -> list[dict]:
    """Flatten spectra records into one row per (checkpoint, curvature, batch size).

    Parameters
    ----------
    records : iterable of Mapping
        Records of :func:`spectra_across_training`.
    network : str
        A label stored in every row.

    Returns
    -------
    list of dict
        Rows with ``network``, ``epoch``, ``curvature``, ``B``, ``P``, ``N``,
        ``lam1_full``, ``lam1_batch`` (mean over the batches), ``lam1_batch_min``,
        ``lam1_batch_max``, ``theorem4`` and ``wishart`` (the two models' predictions;
        ``wishart`` None where tr(A)/P <= 0), ``err_theorem4`` and ``err_wishart``
        (prediction / measured mean − 1), ``sigma_eps``, ``trace_per_param``, ``val_acc``
        (the validation accuracy at that epoch, None at epoch 0 or without validation).

    Raises
    ------
    KeyError
        If a record lacks the fields :func:`spectrum_at` writes.

    Examples
    --------
    >>> rec = {"epoch": 1, "P": 10, "N": 100, "history": {"val_acc": [0.5]},
    ...        "curvatures": {"hessian": {"lam1_full": 2.0, "sigma_eps": 0.1,
    ...                                   "trace_per_param": 0.2, "batch": {"16": {
    ...            "lam1_batch": [3.0, 5.0], "predicted_theorem4": 2.1,
    ...            "predicted_wishart": 4.2}}}}}
    >>> row = spectra_table([rec], network="net")[0]
    >>> row["lam1_batch"], round(row["err_wishart"], 3), row["val_acc"]
    (4.0, 0.05, 0.5)
    """
    rows = []
    for r in records:
        acc = (r.get("history") or {}).get("val_acc") or []
        val_acc = acc[r["epoch"] - 1] if 0 < r["epoch"] <= len(acc) else None
        for curv, c in r["curvatures"].items():
            for B, b in sorted(c["batch"].items(), key=lambda kv: int(kv[0])):
                lam_b = np.asarray(b["lam1_batch"], dtype=float)
                mean = float(lam_b.mean())
                wish = b.get("predicted_wishart")
                rows.append({
                    "network": network, "epoch": r["epoch"], "curvature": curv, "B": int(B),
                    "P": r["P"], "N": r["N"], "lam1_full": c["lam1_full"],
                    "lam1_batch": mean, "lam1_batch_min": float(lam_b.min()),
                    "lam1_batch_max": float(lam_b.max()),
                    "theorem4": b["predicted_theorem4"], "wishart": wish,
                    "err_theorem4": b["predicted_theorem4"] / mean - 1,
                    "err_wishart": None if wish is None else wish / mean - 1,
                    "sigma_eps": c["sigma_eps"], "trace_per_param": c["trace_per_param"],
                    "val_acc": val_acc})
    return rows


def spectra_datasets(name: str, *, download: bool = False,
                     device: str | torch.device | None = None, **kw: Any) -> tuple[Any, Any]:
    """Return the (training, validation) images of the spectra runs, held in memory.

    The curvature products need the same samples on every pass, and a training run on a
    GPU is fastest on tensors already there, so every set is decoded once into a
    :class:`rmtlr.data.LabelledTensors` without augmentation; training augments batches
    on the fly (``TrainConfig(augment=True)``, the paper's pad-4/crop/flip).

    Parameters
    ----------
    name : str
        ``"images"`` (the CIFAR-10 JPEG subset shipped with rmtlr: 9,000/1,000),
        ``"cifar10_jpeg"`` (the whole JPEG archive named by ``$RMTLR_CIFAR10_JPEG``:
        45,000/5,000), ``"cifar100"`` or ``"cifar10"`` (torchvision: the paper's
        45,000/5,000 split).
    download : bool
        Let torchvision download CIFAR when it is absent.
    device : str or torch.device, optional
        Where the tensors live (default the CPU); on a GPU, training batches and curvature
        products then need no copies from the host.
    **kw
        Further arguments of the loader (e.g. ``per_class``).

    Returns
    -------
    tuple
        (train, val), each with ``description`` and ``num_classes``.

    Raises
    ------
    ValueError
        If ``name`` is not one of the four.
    FileNotFoundError
        If the data are absent and cannot be downloaded.
    """
    if name in ("images", "cifar10_subset"):
        sets = (rdata.load("images", "train", **kw), rdata.load("images", "val", **kw))
    elif name == "cifar10_jpeg":
        sets = tuple(rdata.load("cifar10_jpeg", s, in_memory=True, **kw)
                     for s in ("train", "val"))
    elif name in ("cifar100", "cifar10"):
        sets = []
        for split in ("train", "val"):
            lazy = rdata.load(name, split, download=download, augment=False, **kw)
            xs, ys = zip(*(lazy[i] for i in range(len(lazy))))
            sets.append(rdata.LabelledTensors(torch.stack(xs), torch.as_tensor(ys),
                                              lazy.description, lazy.num_classes))
    else:
        raise ValueError(f"name must be 'images', 'cifar10_jpeg', 'cifar100' or 'cifar10', "
                         f"got {name!r}")
    if device is None or torch.device(device).type == "cpu":
        return tuple(sets)
    dev = resolve_device(device)
    return tuple(rdata.LabelledTensors(d.tensors[0].to(dev), d.tensors[1].to(dev),
                                       d.description, d.num_classes) for d in sets)


def per_sample_flops(model: nn.Module, kind: str, *, input_shape: Sequence[int] = (3, 32, 32),
                     num_classes: int | None = None) -> float:
    """Count the floating-point operations of one sample's forward, training step or product.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix
    products, forward and backward; elementwise work is not counted) on two random
    inputs, divided by two, on the model's device. Operator products are counted on their
    second call (the first also sets the operator up).

    Parameters
    ----------
    model : torch.nn.Module
        The network (a copy is used; the model is unchanged).
    kind : str
        ``"forward"``, ``"train"`` (forward and backward of the mean cross-entropy),
        ``"hessian"`` or ``"ggn"`` (one curvature-vector product).
    input_shape : sequence of int
        Shape of one input sample.
    num_classes : int, optional
        Classes of the labels (default: the model's output width).

    Returns
    -------
    float
        FLOPs per sample.

    Raises
    ------
    ValueError
        If ``kind`` is not one of the four.

    Examples
    --------
    >>> per_sample_flops(nn.Linear(10, 3), "forward", input_shape=(10,))  # 2·10·3 (mult., add)
    60.0
    """
    from torch.utils.flop_counter import FlopCounterMode

    from rmtlr import curvature

    kinds = ("forward", "train", "hessian", "ggn")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
    net = copy.deepcopy(model).float().eval()
    dev = next(net.parameters()).device
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, *input_shape, generator=gen).to(dev)
    with torch.no_grad():
        classes = num_classes or net(x).shape[1]
    y = torch.randint(0, classes, (2,), generator=gen).to(dev)
    counter = FlopCounterMode(display=False)
    if kind in ("forward", "train"):
        with counter:
            out = net(x)
            if kind == "train":
                nn.functional.cross_entropy(out, y).backward()
    else:
        Op = curvature.HessianOperator if kind == "hessian" else curvature.GGNOperator
        op = Op(net, nn.functional.cross_entropy, (x, y))
        v = torch.randn(op.shape[0], generator=gen).to(dev)
        op @ v
        with counter:
            op @ v
    return counter.get_total_flops() / 2


@dataclasses.dataclass(frozen=True)
class CostEstimate:
    """Result of :func:`estimate_cost`: the work of a spectra run and its time.

    Attributes
    ----------
    train_flops : float
        Training and per-epoch validation, FLOPs.
    spectra_flops : float
        Every curvature product of the spectra, FLOPs.
    flops_per_s : float
        The sustained rate assumed or measured.
    rate_source : str
        Where that rate comes from (an assumption, or a measurement and its device).
    """

    train_flops: float
    spectra_flops: float
    flops_per_s: float
    rate_source: str

    @property
    def seconds(self) -> float:
        """Estimated wall time in seconds (training plus spectra)."""
        return (self.train_flops + self.spectra_flops) / self.flops_per_s

    def describe(self) -> str:
        """One line: FLOPs and the estimated time.

        Returns
        -------
        str
            E.g. ``"1.2 PFLOP training + 3.4 PFLOP spectra ≈ 21 min (at 4 TFLOP/s, ...)"``.
        """
        s = self.seconds
        when = f"{s / 3600:.1f} h" if s >= 5400 else f"{s / 60:.0f} min"
        return (f"{self.train_flops / 1e15:.3g} PFLOP training + "
                f"{self.spectra_flops / 1e15:.3g} PFLOP spectra ≈ {when} "
                f"(at {self.flops_per_s / 1e12:.3g} TFLOP/s, {self.rate_source})")


def estimate_cost(model: nn.Module, *, train_samples: int, val_samples: int, epochs: int,
                  checkpoints: int, spectra_kw: Mapping[str, Any], flops_per_s: float,
                  rate_source: str, noise_kw: Mapping[str, Any] | None = None,
                  noise_checkpoints: int = 0, num_classes: int | None = None) -> CostEstimate:
    r"""Estimate the work and time of :func:`spectra_across_training` before running it.

    Training: epochs × (train_samples × F_train + val_samples × F_forward). Spectra, per
    checkpoint and curvature, in products of one sample (F_hessian or F_ggn each, from
    :func:`per_sample_flops`): m·n_v·N (full data) + Σ_B m·B·(num_batches + n_v − 1)
    (batches) + trace_vectors·N (Hutchinson) + variance_vectors·n_var (Algorithm 1), plus
    at ``noise_checkpoints`` of them, with ``noise_kw`` added, noise_steps·(N + B) per B
    for each of its ``noise_curvatures`` (ε = A_batch − A_emp).
    Dividing by a sustained rate gives the time; the rate is the caller's, stated in
    ``rate_source``.

    Parameters
    ----------
    model : torch.nn.Module
        The network to be trained.
    train_samples : int
        Training-set size.
    val_samples : int
        Validation-set size (evaluated every epoch).
    epochs : int
        Training epochs.
    checkpoints : int
        Checkpoints measured.
    spectra_kw : Mapping
        The keyword arguments of :func:`spectrum_at` (``full_samples`` must be set).
    flops_per_s : float
        Sustained rate, > 0.
    rate_source : str
        Where the rate comes from, e.g. ``"assumed: half a T4's 8.1 TFLOP/s fp32 peak"``.
    noise_kw : Mapping, optional
        The keyword arguments added at the checkpoints that measure ε (``noise_steps``,
        ``noise_curvatures``).
    noise_checkpoints : int
        How many of the checkpoints measure ε's spectrum.
    num_classes : int, optional
        Classes (default: the model's output width).

    Returns
    -------
    CostEstimate
        FLOPs and the time at ``flops_per_s``.

    Raises
    ------
    ValueError
        If a count or the rate is out of range, or ``full_samples`` is missing.
    """
    kw = dict(spectra_kw)
    if "full_samples" not in kw:
        raise ValueError("spectra_kw must set full_samples (N of the full-data spectra)")
    N = integer("full_samples", kw["full_samples"], lo=2)
    rate = finite_scalar("flops_per_s", flops_per_s, lo=0, lo_open=True)
    sizes = _batch_size_list(kw.get("batch_sizes", (128,)), N)
    m = integer("lanczos_steps", kw.get("lanczos_steps", 100))
    n_v = integer("slq_vectors", kw.get("slq_vectors", 1))
    nb = integer("num_batches", kw.get("num_batches", 3))
    n_var = kw.get("variance_samples") or N
    curvs = kw.get("curvatures", CURVATURES)
    counts = (m * n_v * N + sum(m * B * (nb + n_v - 1) for B in sizes)
              + integer("trace_vectors", kw.get("trace_vectors", 10)) * N
              + integer("variance_vectors", kw.get("variance_vectors", 4)) * n_var)
    nkw = {**kw, **dict(noise_kw or {})}
    noise = integer("noise_steps", nkw.get("noise_steps", 0), lo=0) * sum(N + B for B in sizes)
    noisy = nkw.get("noise_curvatures") or curvs
    f = {k: per_sample_flops(model, k, num_classes=num_classes)
         for k in ("forward", "train", *curvs)}
    n_noise = integer("noise_checkpoints", noise_checkpoints, lo=0)
    spectra = sum(f[c] * (integer("checkpoints", checkpoints) * counts
                          + (n_noise * noise if c in noisy else 0)) for c in curvs)
    train_flops = integer("epochs", epochs) * (
        integer("train_samples", train_samples) * f["train"]
        + integer("val_samples", val_samples, lo=0) * f["forward"])
    return CostEstimate(float(train_flops), float(spectra), rate, str(rate_source))


#: The paper's training recipe for the spectra runs (Sec. 9): SGD with momentum 0.9,
#: weight decay 5e-4, B = 128, Eq. 23 decaying to 0.01·α_0, pad-4/crop/flip augmentation.
PAPER_RECIPE = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128,
                "schedule": "eq23", "final_ratio": 0.01, "augment": True}
_NETWORK_KEYS = {"model", "model_kw", "lr", "epochs", "checkpoints"}


def network_config(spec: Mapping[str, Any], *, dataset: str, seed: int = 0) -> TrainConfig:
    """Return the training run of one network of :func:`run_spectra`.

    Parameters
    ----------
    spec : Mapping
        ``model`` (a :func:`rmtlr.models.build` name), ``model_kw``, ``lr`` (α_0),
        ``epochs`` (T of Eq. 23) and ``checkpoints`` (epochs measured; not used here).
    dataset : str
        The data set's name (stored with the config).
    seed : int
        Initialisation, batch order and augmentation seed.

    Returns
    -------
    TrainConfig
        :data:`PAPER_RECIPE` with the network, rate and epochs of ``spec``.

    Raises
    ------
    ValueError
        If ``spec`` lacks a key or has an unknown one.
    """
    if not isinstance(spec, Mapping) or set(spec) != _NETWORK_KEYS:
        got = sorted(spec) if isinstance(spec, Mapping) else spec
        raise ValueError(f"a network spec must have exactly the keys {sorted(_NETWORK_KEYS)}, "
                         f"got {got!r}")
    return TrainConfig(model=spec["model"], model_kw=dict(spec["model_kw"]), dataset=dataset,
                       lr=spec["lr"], epochs=spec["epochs"], seed=seed, probe=512,
                       **PAPER_RECIPE)


def run_spectra(networks: Mapping[str, Mapping[str, Any]], *, dataset: str,
                spectra_kw: Mapping[str, Any], results: str | os.PathLike,
                noise_kw: Mapping[str, Any] | None = None, train_set: Any = None,
                val_set: Any = None, device: str | torch.device | None = None,
                profile: str | None = None, download: bool = False) -> dict[str, list[dict]]:
    """Train each network with the paper's recipe and measure spectra across training.

    For each network, :func:`spectra_across_training` with the config of
    :func:`network_config`, its ``checkpoints``, ``spectra_kw``, and ``noise_kw`` added at
    its last checkpoint (e.g. ``{"noise_steps": 40}``: ε's spectrum there only). Each
    network's records resume independently from ``results``.

    Parameters
    ----------
    networks : Mapping
        {label: spec} with the keys of :func:`network_config`.
    dataset : str
        A name for :func:`spectra_datasets`.
    spectra_kw : Mapping
        Keyword arguments of :func:`spectrum_at`.
    results : str or os.PathLike
        The results folder.
    noise_kw : Mapping, optional
        Extra keyword arguments at each network's last checkpoint.
    train_set : torch.utils.data.Dataset, optional
        Default: :func:`spectra_datasets` (``dataset``)[0].
    val_set : torch.utils.data.Dataset, optional
        Default: :func:`spectra_datasets` (``dataset``)[1].
    device : str or torch.device, optional
        Default: the profile's.
    profile : str, optional
        Stored with the records (default: the active one).
    download : bool
        Let torchvision download CIFAR.

    Returns
    -------
    dict
        {label: records in epoch order}.

    Raises
    ------
    ValueError
        For a malformed network spec or bad sizes, before any training.
    """
    cfgs = {label: network_config(spec, dataset=dataset) for label, spec in networks.items()}
    if not cfgs:
        raise ValueError("networks must name at least one network")
    if train_set is None or val_set is None:
        tr, va = spectra_datasets(dataset, download=download, device=device)
        train_set = tr if train_set is None else train_set
        val_set = va if val_set is None else val_set
    out = {}
    for label, spec in networks.items():
        last = max(spec["checkpoints"])
        out[label] = spectra_across_training(
            cfgs[label], spec["checkpoints"], results, train_set=train_set, val_set=val_set,
            spectra_kw=spectra_kw, epoch_kw={last: dict(noise_kw or {})}, device=device,
            profile=profile)
    return out

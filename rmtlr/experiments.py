"""Experiments of the CIFAR chapters: spectra across training, resumable.

Chapter 8 trains a network, keeps checkpoints at chosen epochs and measures at each one
the full-data and batch (B = 128, several random batches) Hessian and GGN spectra by
Lanczos, SLQ densities, the Hessian variance of Algorithm 1, and the Theorem 4 prediction
of the batch outlier (Granziol, Zohren & Roberts 2022, Sec. 9 and Fig. 9). Chapter 9 runs
batch-size sweeps through :func:`rmtlr.sweeps.sweep`.

Every result is a record of a results file (:mod:`rmtlr.results`) with its ``config``,
``profile``, ``device``, ``versions``, ``date`` and ``wall_time_s``, under a results
folder (:func:`results_dir`: ``$RMTLR_RESULTS`` wins), so figures can be redrawn without
recomputing, results produced elsewhere (a cluster, the CLI) can be loaded, and an
interrupted run skips what is already there.

The paper's own numbers live in :data:`PAPER_SPECTRA`, :data:`PAPER_ACCURACY` and
:data:`PAPER_RULES`, quoted from the paper (JMLR 23(173), Secs. 9–11) for the chapters'
"paper vs ours" tables; nothing here computes them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable
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
from rmtlr.rmt.validation import integer, positive_scalar, random_seed
from rmtlr.train import TrainConfig, eq23_lr, num_classes_of, train

# results_dir is re-exported: the chapters find it here, next to the experiments.
__all__ = ["CURVATURES", "PAPER_ACCURACY", "PAPER_RULES", "PAPER_SPECTRA", "checkpoint_path",
           "ggn_prediction", "results_dir", "spectra_across_training", "spectrum_at",
           "theorem4_prediction", "train_with_checkpoints"]

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


def train_with_checkpoints(cfg: TrainConfig, save_epochs: Iterable[int],
                           root: str | os.PathLike, *, train_set: Any = None,
                           val_set: Any = None,
                           device: str | torch.device | None = None) -> dict[str, Any]:
    r"""Train ``cfg`` and keep the weights after each epoch in ``save_epochs``; resumable.

    Runs :func:`rmtlr.train.train` one epoch at a time on the same network, with the rate
    of Eq. 23 held for the epoch, α_e = eq23_lr(e − 1, T = cfg.epochs, alpha0=α_0, r=r) (per epoch
    rather than per step; the step-wise schedule differs by less than one epoch's decay),
    and a batch order seeded by (cfg.seed, e). The optimiser state (momentum buffer) starts
    afresh each epoch because ``train`` builds its optimiser per call. It restarts from the
    latest checkpoint already under ``root`` and gives the same weights as an
    uninterrupted run.

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
        ``model``: the network after the last saved epoch; ``history``: per-epoch
        ``epoch``, ``lr``, train/val loss and accuracy, and ``outcome`` (``"ok"`` or
        ``"diverged"``); ``checkpoints``: {epoch: path} of the checkpoints there.

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
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.model, num_classes_of(train_set), **cfg.model_kw).to(device)
    history = {"epoch": [], "lr": [], "train_loss": [], "train_acc": [], "val_loss": [],
               "val_acc": [], "outcome": "ok"}
    start = -1
    for e in reversed(save):
        path = checkpoint_path(root, cfg, e, data)
        if path.exists():
            state = torch.load(path, map_location=device, weights_only=True)
            model.load_state_dict(state["state_dict"])
            history, start = state["history"], e
            break
    checkpoints = {e: checkpoint_path(root, cfg, e, data) for e in save if e <= start}
    if start < 0 and save[0] == 0:
        _save_atomic({"epoch": 0, "state_dict": model.state_dict(), "history": history},
                     checkpoint_path(root, cfg, 0, data))
        checkpoints[0] = checkpoint_path(root, cfg, 0, data)
    for e in range(max(start, 0) + 1, save[-1] + 1):
        if history["outcome"] != "ok":
            break
        one = dataclasses.replace(cfg, epochs=1, steps=None, lr=_epoch_lr(cfg, e),
                                  schedule="constant", seed=(cfg.seed * 100_003 + e) % 2**63)
        rec = train(one, train_set=train_set, val_set=val_set, model=model, device=device,
                    progress=False)
        if rec["outcome"] != "ok":
            history["outcome"] = "diverged"
            break
        history["epoch"].append(e)
        for k in ("lr", "train_loss", "train_acc", "val_loss", "val_acc"):
            history[k].extend(rec["curves"][k])
        if e in save:
            path = checkpoint_path(root, cfg, e, data)
            _save_atomic({"epoch": e, "state_dict": model.state_dict(), "history": history}, path)
            checkpoints[e] = path
    return {"model": model, "history": history, "checkpoints": checkpoints}


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
        x, y = dataset.tensors
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


def spectrum_at(model: nn.Module, train_set: Any, *, batch_size: int = 128,
                num_batches: int = 3, lanczos_steps: int = 100, slq_vectors: int = 1,
                curvatures: Iterable[str] = CURVATURES, full_samples: int | None = None,
                variance_vectors: int = 4, chunk: int = 512, seed: int = 0,
                dtype: torch.dtype | None = None,
                device: str | torch.device | None = None) -> dict[str, Any]:
    r"""Measure full-data and batch curvature spectra of ``model`` (Sec. 9, Fig. 9).

    For each curvature in ``curvatures`` (``"hessian"``, ``"ggn"``):

    - full data: H_emp = (1/N) Σ_i H_i over the first ``full_samples`` samples, by
      stochastic Lanczos quadrature (:func:`rmtlr.curvature.slq_density`); λ_1 is the
      largest Ritz value (Lanczos resolves the extreme eigenvalue first);
    - batch: the same on ``num_batches`` batches of B = ``batch_size`` samples drawn without
      replacement from those N (seeded), giving λ'_1 per batch;
    - σ²: Algorithm 1's Hessian variance (:func:`rmtlr.curvature.hessian_variance`) with a
      random partition of the N samples into batches of B as the units, so that
      σ_ε² = σ²·𝔟(B, N)/P (Eq. 7) is the per-entry variance Theorem 4 needs;
    - ``predicted``: Theorem 4, λ'_1 = λ_1 + (P/𝔟)σ_ε²/λ_1 above threshold
      (:func:`theorem4_prediction`); for the GGN also ``predicted_ggn_model``, the spiked
      sample-covariance outlier (:func:`ggn_prediction`) with the bulk level tr(G)/P.

    Parameters
    ----------
    model : torch.nn.Module
        The network (its state is not changed).
    train_set : torch.utils.data.Dataset
        (input, label) samples.
    batch_size : int
        B of the batch spectra, in [1, N).
    num_batches : int
        Random batches, >= 1.
    lanczos_steps : int
        Lanczos steps m per spectrum (the paper: 100).
    slq_vectors : int
        SLQ start vectors for the full-data and first-batch densities.
    curvatures : iterable of str
        A non-empty subset of :data:`CURVATURES`.
    full_samples : int, optional
        N: the first ``full_samples`` samples stand for the full data (default: all).
    variance_vectors : int
        Random directions of Algorithm 1.
    chunk : int
        Samples per forward pass of the full-data products.
    seed : int
        Seeds the batches, the partition and the start vectors.
    dtype : torch.dtype, optional
        Precision of the products (default: the model's).
    device : str or torch.device, optional
        Default: where the model's parameters are.

    Returns
    -------
    dict
        JSON-ready: ``P``, ``N``, ``B``, ``curvatures`` {name: ``lam1_full``,
        ``lam1_batch`` (per batch), ``lam1_batch_mean``, ``sigma2`` and ``sigma2_stderr``
        (Algorithm 1's σ²), ``sigma_eps``, ``predicted``, ``full_density`` and
        ``batch_density`` (SLQ nodes and weights)}, ``wall_time_s``.

    Raises
    ------
    ValueError
        For sizes out of range or unknown curvatures.
    """
    from rmtlr import curvature

    curvatures = tuple(curvatures) if not isinstance(curvatures, str) else (curvatures,)
    unknown = [c for c in curvatures if c not in CURVATURES]
    if not curvatures or unknown:
        raise ValueError(f"curvatures must be a non-empty subset of {CURVATURES}, "
                         f"got {curvatures!r}")
    n_all = len(train_set)
    if n_all < 2:
        raise ValueError(f"train_set must hold at least 2 samples, got {n_all}")
    # Upper bounds: the data set's size, and a batch smaller than the full data set N.
    N = n_all if full_samples is None else integer("full_samples", full_samples, lo=2,
                                                   hi=n_all)
    batch_size = integer("batch_size", batch_size, hi=N - 1)
    num_batches = integer("num_batches", num_batches)
    lanczos_steps = integer("lanczos_steps", lanczos_steps)
    slq_vectors = integer("slq_vectors", slq_vectors)
    variance_vectors = integer("variance_vectors", variance_vectors, lo=2)
    chunk = integer("chunk", chunk)
    seed = random_seed("seed", seed)
    device = next(model.parameters()).device if device is None else resolve_device(device)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    full = _tensor_batches(train_set, np.arange(N), chunk)
    batches = [_tensor_batches(train_set, np.sort(rng.choice(N, batch_size, replace=False)),
                               batch_size)[0] for _ in range(num_batches)]
    units = _tensor_batches(train_set, rng.permutation(N), batch_size)
    loss = nn.functional.cross_entropy
    kw = {"dtype": dtype, "device": device}
    P = models.count_parameters(model)
    out = {"P": P, "N": N, "B": batch_size, "curvatures": {}}
    for name in curvatures:
        Op = curvature.HessianOperator if name == "hessian" else curvature.GGNOperator
        full_slq = curvature.slq_density(Op(model, loss, full, **kw), lanczos_steps, slq_vectors,
                                         seed=seed)
        lam1 = float(full_slq.nodes.max())
        lam_b, first = [], None
        for k, batch in enumerate(batches):
            slq = curvature.slq_density(Op(model, loss, batch, **kw), lanczos_steps,
                                        slq_vectors if k == 0 else 1, seed=seed + 1 + k)
            lam_b.append(float(slq.nodes.max()))
            first = first or slq
        var = curvature.hessian_variance(Op(model, loss, units, **kw), variance_vectors,
                                         per_sample=False, seed=seed)
        predicted = theorem4_prediction(lam1, P=P, B=batch_size, N=N, sigma_eps=var.sigma_eps)
        rec = {"lam1_full": lam1, "lam1_batch": lam_b, "lam1_batch_mean": float(np.mean(lam_b)),
               "sigma2": var.sigma2, "sigma2_stderr": var.stderr, "sigma_eps": var.sigma_eps,
               "predicted": float(predicted),
               "full_density": _density_dict(full_slq), "batch_density": _density_dict(first)}
        if name == "ggn":
            bulk = full_slq.moment(1)
            rec["predicted_ggn_model"] = (ggn_prediction(lam1, P=P, B=batch_size, N=N,
                                                         noise_var=bulk) if bulk > 0 else None)
        out["curvatures"][name] = rec
    out["wall_time_s"] = time.perf_counter() - t0
    return out


def spectra_across_training(cfg: TrainConfig, epochs: Iterable[int],
                            results: str | os.PathLike, *, train_set: Any = None,
                            val_set: Any = None, spectra_set: Any = None,
                            spectra_kw: dict | None = None,
                            device: str | torch.device | None = None,
                            profile: str | None = None) -> list[dict]:
    """Train ``cfg`` with checkpoints at ``epochs`` and measure :func:`spectrum_at` at each.

    One record per epoch is appended to ``results/spectra.jsonl`` (:mod:`rmtlr.results`):
    ``config`` (the training config), ``epoch``, ``spectra_kw``, the :func:`spectrum_at`
    output, ``history`` (the training curves up to that epoch), ``profile``, ``data``,
    ``data_id``, ``key``, ``device``, ``versions``, ``date``, ``wall_time_s``. Epochs
    already recorded for the same config, ``spectra_kw`` and data are read back, not
    recomputed, and training is skipped when every epoch is there; checkpoints live under
    ``results/checkpoints``. Two processes asking for the same spectra compute them once:
    the second waits for the first (its claim on the job) and reads its records.

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
        images without augmentation when training augments them, so that every product
        sees the same samples.
    spectra_kw : dict, optional
        Keyword arguments of :func:`spectrum_at` (not ``dtype``: records are JSON).
    device : str or torch.device, optional
        Default: the profile's.
    profile : str, optional
        ``"quick"`` or ``"full"`` (default: the active one); chooses the default device
        and is stored with the records.

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
    spectra_kw = dict(spectra_kw or {})
    if "dtype" in spectra_kw:
        raise ValueError("spectra_kw must not set dtype here (records must be JSON); "
                         "call spectrum_at directly for another dtype")
    want = _epoch_list(epochs, cfg.epochs, "epochs")
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
        kw_key = json.loads(json.dumps(spectra_kw, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"spectra_kw must hold JSON values, got {spectra_kw!r}: {err}") from err

    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    measured_on = spectra_set if spectra_set is not None else train_set
    data = data_id(train_set, val_set, spectra=measured_on)
    keys = {e: run_key(config, data, spectra_kw=kw_key, epoch=e) for e in want}

    def have() -> dict[int, dict]:
        found = {e: store.find(k) for e, k in keys.items()}
        return {e: r for e, r in found.items() if r is not None}

    done = have()
    if len(done) < len(want):
        # One claim for the whole job: its epochs share one training run.
        with store.claim(run_key(config, data, spectra_kw=kw_key), wait=True):
            done = have()
            missing = [e for e in want if e not in done]
            if missing:
                run = train_with_checkpoints(cfg, want, results, train_set=train_set,
                                             val_set=val_set, device=device)
                model = run["model"]
                for e in missing:
                    if e not in run["checkpoints"]:
                        continue  # diverged before this epoch
                    state = torch.load(run["checkpoints"][e], map_location=device,
                                       weights_only=True)
                    model.load_state_dict(state["state_dict"])
                    t0 = time.perf_counter()
                    spec = spectrum_at(model, measured_on, device=device, **spectra_kw)
                    store.append({"config": config, "epoch": e, "spectra_kw": kw_key, **spec,
                                  "history": state["history"], "profile": prof_name,
                                  "data": getattr(measured_on, "description",
                                                  type(measured_on).__name__),
                                  "data_id": data, "key": keys[e], **provenance(device),
                                  "wall_time_s": time.perf_counter() - t0})
                done = have()
    return [done[e] for e in want if e in done]

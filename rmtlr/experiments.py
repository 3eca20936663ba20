"""Experiments of the CIFAR chapters: spectra across training, and a results store.

Chapter 8 trains a network, keeps checkpoints at chosen epochs and measures at each one
the full-data and batch (B = 128, several random batches) Hessian and GGN spectra by
Lanczos, SLQ densities, the per-sample Hessian variance σ², and the Theorem 4 prediction
of the batch outlier (Granziol, Zohren & Roberts 2022, Sec. 9 and Fig. 9). Chapter 9 runs
batch-size sweeps through :func:`rmtlr.train.sweep` and reads them back here.

Every result is one JSON line with its ``config``, ``profile``, ``device``, ``versions`` and
``wall_time_s`` under a results directory (:func:`results_dir`: ``$RMTLR_RESULTS`` wins),
so figures can be redrawn without recomputing, results produced elsewhere (a cluster, the
CLI) can be loaded, and an interrupted run skips what is already there.

The paper's own numbers live in :data:`PAPER_SPECTRA`, :data:`PAPER_ACCURACY` and
:data:`PAPER_RULES`, quoted from the paper (JMLR 23(173), Secs. 9–11) for the chapters'
"paper vs ours" tables; nothing here computes them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import rmtlr
from rmtlr import data as rdata
from rmtlr import models
from rmtlr.rmt.batch import batch_outlier
from rmtlr.train import TrainConfig, data_id, eq23_lr, read_results, run_key, train

__all__ = ["CURVATURES", "PAPER_ACCURACY", "PAPER_RULES", "PAPER_SPECTRA", "append_record",
           "checkpoint_path", "ggn_prediction", "load_records", "provenance", "results_dir",
           "spectra_across_training", "spectrum_at", "theorem4_prediction", "train_with_checkpoints"]

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


def results_dir(default: str | os.PathLike | None = None) -> Path:
    """Directory for results: ``$RMTLR_RESULTS`` if set, else ``default``, else
    ``rmtlr.data.cache_dir()/results``. Created if missing."""
    env = os.environ.get("RMTLR_RESULTS")
    path = Path(env) if env else Path(default) if default is not None else rdata.cache_dir() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def provenance(device: str | torch.device) -> dict:
    """Device and versions to store with every record (what made this number)."""
    dev = torch.device(device)
    name = str(dev)
    if dev.type == "cuda":
        name += f" ({torch.cuda.get_device_name(dev)})"
    return {"device": name,
            "versions": {"rmtlr": rmtlr.__version__, "torch": torch.__version__,
                         "numpy": np.__version__, "python": platform.python_version()}}


def append_record(path: str | os.PathLike, record: dict) -> None:
    """Append one record as a JSON line, flushed to disk before returning, so a kill
    never loses a finished result (a torn last line is ignored by :func:`load_records`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def load_records(path: str | os.PathLike, **match) -> list[dict]:
    """Records of a JSONL results file whose fields equal ``match``; nested fields are
    reached with ``__`` or a dot, e.g. ``load_records(path, config__batch_size=128)``.
    [] if the file does not exist; a torn last line (a kill mid-write) is ignored."""
    def get(rec, key):
        for part in key.split("."):
            if not isinstance(rec, dict) or part not in rec:
                return None
            rec = rec[part]
        return rec

    keys = {k.replace("__", "."): v for k, v in match.items()}
    return [r for r in read_results(path) if all(get(r, k) == v for k, v in keys.items())]


def checkpoint_path(root: str | os.PathLike, cfg: TrainConfig, epoch: int,
                    data: dict | None = None) -> Path:
    """Where the weights of ``cfg`` trained on ``data`` (a :func:`rmtlr.train.data_id`)
    after ``epoch`` epochs are kept under ``root``."""
    # A stable digest, not Python's salted hash(), so another process finds the same file.
    tag = hashlib.sha1(run_key(cfg.to_dict(), data).encode()).hexdigest()[:12]
    return Path(root) / "checkpoints" / f"{cfg.model}-{tag}" / f"epoch{int(epoch):04d}.pt"


def _epoch_lr(cfg: TrainConfig, epoch: int) -> float:
    """The rate of ``epoch`` (1-based): Eq. 23 evaluated at the epoch's start, t = epoch − 1."""
    if cfg.schedule == "constant":
        return float(cfg.lr)
    return float(eq23_lr(epoch - 1, cfg.epochs, cfg.lr, cfg.final_ratio))


def _save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-save leaves the previous state, never half a file


def train_with_checkpoints(cfg: TrainConfig, save_epochs, root: str | os.PathLike, *,
                           train_set=None, val_set=None, device=None) -> dict:
    r"""Train ``cfg`` and keep the weights after each epoch in ``save_epochs``.

    Runs :func:`rmtlr.train.train` one epoch at a time on the same network, with the rate
    of Eq. 23 held for the epoch, α_e = eq23_lr(e − 1, T = cfg.epochs, α_0, r) (per epoch
    rather than per step; the step-wise schedule differs by less than one epoch's decay),
    and a batch order seeded by (cfg.seed, e). The optimiser state (momentum buffer) starts
    afresh each epoch because ``train`` builds its optimiser per call. Epoch 0 means the
    initial weights. Resumable: it restarts from the latest checkpoint already under
    ``root`` and gives the same weights as an uninterrupted run.

    Returns ``{"model", "history", "checkpoints"}``: the network after the last saved
    epoch, per-epoch curves (epoch, lr, train/val loss and accuracy) with ``outcome``
    (``"ok"`` or ``"diverged"``), and {epoch: path} of the checkpoints written.
    """
    save = sorted({int(e) for e in save_epochs})
    if not save or save[0] < 0 or save[-1] > cfg.epochs:
        raise ValueError(f"save_epochs must be a non-empty set of integers in [0, epochs="
                         f"{cfg.epochs}], got {list(save_epochs)}")
    device = torch.device(device) if device is not None else rmtlr.get_profile().device
    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    data = data_id(train_set, val_set)
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.model, train_set.num_classes, **cfg.model_kw).to(device)
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
                                  schedule="constant", seed=cfg.seed * 100_003 + e)
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


def theorem4_prediction(lam1_full, P, B, N, sigma_eps2):
    r"""Theorem 4's batch outlier from the full-data one and the measured variance.

    λ'_1 = λ_1 + (P/𝔟)σ_ε²/λ_1 above the threshold λ_1 > sqrt(P/𝔟)σ_ε, else the edge
    2 sqrt(P/𝔟)σ_ε, with 1/𝔟 = 1/B − 1/N (Eq. 7) and σ_ε² the mean per-entry variance of
    the per-sample Hessians. A thin wrapper of :func:`rmtlr.rmt.batch.batch_outlier` taking
    σ_ε² (what :func:`spectrum_at` measures) rather than σ_ε.
    """
    s2 = np.asarray(sigma_eps2, dtype=float)
    if np.any(~np.isfinite(s2)) or np.any(s2 < 0):
        raise ValueError(f"sigma_eps2 must be finite and >= 0, got {sigma_eps2!r}")
    return batch_outlier(lam1_full, P, B, N, np.sqrt(s2))


def ggn_prediction(lam1_full, P, B, N, bulk_level):
    r"""The batch-GGN outlier of the spiked sample-covariance model (Thm 7 as implemented
    in :func:`rmtlr.rmt.ggn.ggn_batch_outlier`): with γ = P/𝔟, a = P/N, ℓ = λ/σ² and
    s = ℓ − 1 + a, λ' = λ(1 + γ/s) above the threshold ℓ > 1 − a + sqrt((1 − a)γ), else the
    Wachter bulk edge σ²(sqrt(1 − a) + sqrt γ)². That finite-N form needs P ≤ N; a network
    with P > N has a full GGN of rank < P, outside the model, and gets the leading order in
    P/N instead (a = 0: Baik–Silverstein, BBP threshold σ²(1 + sqrt γ), else the MP edge
    σ²(1 + sqrt γ)²). ``bulk_level`` is σ², the flat bulk of the full GGN, estimated here by
    its mean eigenvalue tr(G)/P. Returns None when this version of :mod:`rmtlr.rmt.ggn` has
    no such function.
    """
    from rmtlr.rmt import ggn

    fn = getattr(ggn, "ggn_batch_outlier", None)
    if fn is None:
        return None
    if not (math.isfinite(bulk_level) and bulk_level > 0):
        raise ValueError(f"bulk_level must be finite and > 0, got {bulk_level!r}")
    return float(fn(max(float(lam1_full), bulk_level), P, B, N, bulk_level, finite_N=P <= N))


def _tensor_batches(dataset, indices, size: int):
    """Batches (x, y) of ``dataset`` at ``indices``, ``size`` samples each (last one shorter)."""
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


def spectrum_at(model: nn.Module, train_set, *, batch_size: int = 128, num_batches: int = 3,
                lanczos_steps: int = 100, slq_vectors: int = 1, curvatures=CURVATURES,
                full_samples: int | None = None, variance_vectors: int = 4, chunk: int = 512,
                seed: int = 0, dtype: torch.dtype | None = None, device=None) -> dict:
    r"""Full-data and batch curvature spectra of ``model`` on ``train_set`` (Sec. 9, Fig. 9).

    For each curvature in ``curvatures`` (``"hessian"``, ``"ggn"``):

    - full data: H_emp = (1/N) Σ_i H_i over the first ``full_samples`` samples (all by
      default), by stochastic Lanczos quadrature with m = ``lanczos_steps`` steps and
      ``slq_vectors`` start vectors (:func:`rmtlr.curvature.slq_density`); λ_1 is the
      largest Ritz value (Lanczos resolves the extreme eigenvalue first);
    - batch: the same on ``num_batches`` batches of B = ``batch_size`` samples drawn without
      replacement from those N (seeded), giving λ'_1 per batch;
    - σ²: Algorithm 1's Hessian variance (:func:`rmtlr.curvature.hessian_variance`) with a
      random partition of the N samples into batches of B as the units, so that
      σ_ε² = σ²·𝔟(B, N)/P (Eq. 7) is the per-entry variance Theorem 4 needs;
    - ``predicted``: Theorem 4, λ'_1 = λ_1 + (P/𝔟)σ_ε²/λ_1 above threshold
      (:func:`theorem4_prediction`); for the GGN also ``predicted_ggn_model``, the
      spiked sample-covariance outlier (:func:`ggn_prediction`) with the bulk level tr(G)/P.

    Returns a JSON-ready dict: ``P``, ``N``, ``B``, ``curvatures`` {name: λ_1, λ'_1 per
    batch, σ², its standard error, σ_ε, predictions, the full and first-batch SLQ nodes and
    weights}, ``wall_time_s``. The model's state is not changed.
    """
    from rmtlr import curvature

    unknown = [c for c in curvatures if c not in CURVATURES]
    if not curvatures or unknown:
        raise ValueError(f"curvatures must be a non-empty subset of {CURVATURES}, got {curvatures!r}")
    n_all = len(train_set)
    N = n_all if full_samples is None else int(full_samples)
    if not 2 <= N <= n_all:
        raise ValueError(f"full_samples must be in [2, {n_all}] (the data set size), got {full_samples!r}")
    if int(batch_size) != batch_size or not 1 <= batch_size < N:
        raise ValueError(f"batch_size must be an integer in [1, N={N}), got {batch_size!r}")
    if int(num_batches) != num_batches or num_batches < 1:
        raise ValueError(f"num_batches must be an integer >= 1, got {num_batches!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    full = _tensor_batches(train_set, np.arange(N), chunk)
    batches = [_tensor_batches(train_set, np.sort(rng.choice(N, batch_size, replace=False)),
                               batch_size)[0] for _ in range(num_batches)]
    units = _tensor_batches(train_set, rng.permutation(N), batch_size)
    loss = nn.functional.cross_entropy
    kw = {"dtype": dtype, "device": device}
    P = models.count_parameters(model)
    out = {"P": P, "N": N, "B": int(batch_size), "curvatures": {}}
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
        rec = {"lam1_full": lam1, "lam1_batch": lam_b, "lam1_batch_mean": float(np.mean(lam_b)),
               "sigma2": var.sigma2, "sigma2_stderr": var.stderr, "sigma_eps": var.sigma_eps,
               "predicted": float(theorem4_prediction(lam1, P, batch_size, N, var.sigma_eps ** 2)),
               "full_density": _density_dict(full_slq), "batch_density": _density_dict(first)}
        if name == "ggn":
            bulk = full_slq.moment(1)
            rec["predicted_ggn_model"] = ggn_prediction(lam1, P, batch_size, N, bulk) if bulk > 0 else None
        out["curvatures"][name] = rec
    out["wall_time_s"] = time.perf_counter() - t0
    return out


def spectra_across_training(cfg: TrainConfig, epochs, results: str | os.PathLike, *,
                            train_set=None, val_set=None, spectra_set=None,
                            spectra_kw: dict | None = None, device=None,
                            profile: str | None = None) -> list[dict]:
    """Train ``cfg`` with checkpoints at ``epochs`` and measure :func:`spectrum_at` at each.

    One record per epoch is appended to ``results/spectra.jsonl``: ``config`` (the training
    config), ``epoch``, ``spectra_kw``, the :func:`spectrum_at` output, the training curves
    up to that epoch, ``profile``, ``device``, ``versions``, ``wall_time_s``. Epochs
    already recorded (same config, ``spectra_kw`` and data: description and size of
    ``train_set``, ``val_set`` and ``spectra_set``) are read back, not recomputed, and
    training is skipped altogether when every epoch is there; checkpoints live under
    ``results/checkpoints``. ``spectra_set`` (default ``train_set``) is the data the
    curvature is measured on: pass the training images without augmentation when training
    augments them, so every matvec sees the same samples. Returns the records in epoch
    order (a diverged run stops early).
    """
    results = Path(results)
    store = results / "spectra.jsonl"
    spectra_kw = dict(spectra_kw or {})
    if "dtype" in spectra_kw:
        raise ValueError("spectra_kw must not set dtype here (records must be JSON); "
                         "call spectrum_at directly for another dtype")
    device = torch.device(device) if device is not None else rmtlr.get_profile().device
    prof = profile or rmtlr.get_profile().name
    want = sorted({int(e) for e in epochs})
    config = cfg.to_dict()
    kw_key = json.loads(json.dumps(spectra_kw, sort_keys=True))

    if train_set is None:
        train_set = rdata.load(cfg.dataset, "train", seed=0, **cfg.data_kw)
    measured_on = spectra_set if spectra_set is not None else train_set
    data = {**data_id(train_set, val_set), "spectra": data_id(measured_on)["train"]}

    def have():
        return {r["epoch"]: r for r in read_results(store)
                if run_key(r["config"], r.get("data_id")) == run_key(config, data)
                and r.get("spectra_kw") == kw_key}

    done = have()
    if any(e not in done for e in want):
        run = train_with_checkpoints(cfg, want, results, train_set=train_set, val_set=val_set,
                                     device=device)
        model = run["model"]
        for e in want:
            if e in done or e not in run["checkpoints"]:
                continue
            state = torch.load(run["checkpoints"][e], map_location=device, weights_only=True)
            model.load_state_dict(state["state_dict"])
            t0 = time.perf_counter()
            spec = spectrum_at(model, measured_on, device=device, **spectra_kw)
            rec = {"config": config, "epoch": e, "spectra_kw": kw_key, **spec,
                   "history": state["history"], "profile": prof,
                   "data": getattr(measured_on, "description", type(measured_on).__name__),
                   "data_id": data,
                   **provenance(device), "wall_time_s": time.perf_counter() - t0}
            append_record(store, rec)
        done = have()
    return [done[e] for e in want if e in done]

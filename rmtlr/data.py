"""Data sets: CIFAR through torchvision, real offline images, and labelled stand-ins.

Every data set returned here carries ``description`` (what it is, said plainly, e.g.
"offline stand-in: …") and ``num_classes``, so that chapters can print and stamp it.

- ``cifar100`` / ``cifar10``: torchvision, the paper's augmentation (4-pixel pad, random
  32×32 crop, horizontal flip) and its 45k/5k train/validation split
  (Granziol et al. 2022, Sec. 9). Downloaded only when allowed.
- ``cifar10_subset`` (alias ``images``): 12,000 real CIFAR-10 images (Krizhevsky 2009) as
  JPEG, shipped inside the package, so every reader has the same real images offline.
- ``cifar10_jpeg``: all 60,000 CIFAR-10 JPEG images from a tar the user provides.
- ``gaussian_mixture``: Gaussian-mixture classification, after the MLP experiment of
  Sec. 13 of the paper (offline stand-in).
- ``synthetic_images``: CIFAR-shaped (3×32×32, 100 classes) images with learnable class
  structure (offline stand-in).
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from rmtlr.rmt.validation import finite_scalar, integer, random_seed

__all__ = ["DATASET_NAMES", "LabelledSubset", "LabelledTensors", "cache_dir", "cifar",
           "cifar10_jpeg", "cifar10_subset", "default_num_workers", "gaussian_mixture", "load",
           "make_loader", "synthetic_images", "train_val_split"]

#: Per-channel statistics of the CIFAR training sets (used to standardise inputs).
CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}

#: Names accepted by :func:`load`. ``images`` is the shipped CIFAR-10 JPEG subset.
DATASET_NAMES = ("gaussian_mixture", "synthetic_images", "cifar10_subset", "images",
                 "cifar10_jpeg", "cifar10", "cifar100")

_SUBSET_CITE = "CIFAR-10 JPEG subset (Krizhevsky 2009; shipped with rmtlr), not CIFAR-100"
_JPEG_CITE = "CIFAR-10 JPEG (Krizhevsky 2009; full archive), not CIFAR-100"


_DESCRIPTIONS = {
    "gaussian_mixture": "offline stand-in: Gaussian mixture",
    "synthetic_images": "offline stand-in: synthetic CIFAR-shaped images",
    "cifar10_subset": _SUBSET_CITE,
    "images": _SUBSET_CITE,
    "cifar10_jpeg": _JPEG_CITE,
    "cifar10": "CIFAR-10 (Krizhevsky 2009; torchvision)",
    "cifar100": "CIFAR-100 (Krizhevsky 2009; torchvision)",
}


def describe(name: str) -> str:
    """Say what the data set :func:`load` returns for ``name`` is, without loading it.

    The words are those the data set's ``description`` starts with, so a chapter can name
    its data in its first output before anything is read.

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES`.

    Returns
    -------
    str
        The description, e.g. ``"CIFAR-10 JPEG subset (Krizhevsky 2009; shipped with
        rmtlr), not CIFAR-100"`` for ``"images"``.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`DATASET_NAMES`.

    Examples
    --------
    >>> describe("cifar100")
    'CIFAR-100 (Krizhevsky 2009; torchvision)'
    """
    if name not in _DESCRIPTIONS:
        raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}")
    return _DESCRIPTIONS[name]


class LabelledTensors(TensorDataset):
    """An in-memory (inputs, labels) data set with a human ``description``.

    Parameters
    ----------
    x : torch.Tensor
        Inputs, one sample per row.
    y : torch.Tensor
        Integer labels, one per sample.
    description : str
        What the data are, said plainly (printed and stamped by the chapters).
    num_classes : int
        Number of classes.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, description: str, num_classes: int):
        super().__init__(x, y)
        self.description = description
        self.num_classes = int(num_classes)


class LabelledSubset(Subset):
    """A subset of a (lazily loaded) data set with a human ``description``.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        The full data set.
    indices : sequence of int
        The samples of ``dataset`` in this subset, in order.
    description : str
        What the data are, said plainly.
    num_classes : int
        Number of classes.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int], description: str,
                 num_classes: int):
        super().__init__(dataset, list(indices))
        self.description = description
        self.num_classes = int(num_classes)


def gaussian_mixture(n: int = 4096, dim: int = 32, num_classes: int = 10,
                     separation: float = 1.0, seed: int = 0) -> LabelledTensors:
    r"""Gaussian-mixture classification (offline stand-in, after the paper's Sec. 13 task).

    Class means μ_k = separation · g_k with g_k ~ N(0, I_dim) are drawn once from ``seed``;
    a sample of class y is x = μ_y + z with z ~ N(0, I_dim), labels uniform. The typical
    distance between two means is separation·sqrt(2·dim) within-class standard deviations.
    The means depend only on (dim, num_classes, separation, seed), so training and
    validation sets drawn with different ``n`` share them when the seed is the same;
    samples are drawn from a stream derived from the seed and ``n``.

    Parameters
    ----------
    n : int
        Number of samples, an integer ≥ 1.
    dim : int
        Input dimension, an integer ≥ 1.
    num_classes : int
        Number of classes, an integer ≥ 2.
    separation : float
        Scale of the class means, finite and > 0.
    seed : int
        Fixes the means and (with ``n``) the samples.

    Returns
    -------
    LabelledTensors
        Inputs (n, dim) and labels.

    Raises
    ------
    TypeError
        If a size, ``separation`` or ``seed`` is not a real number (a string, a bool).
    ValueError
        If a size is not a whole number in range, ``separation`` is not finite and > 0,
        or ``seed`` is not a whole number in [0, 2**63 − 1].

    Examples
    --------
    >>> ds = gaussian_mixture(n=8, dim=2, num_classes=3)
    >>> ds.tensors[0].shape, ds.num_classes
    (torch.Size([8, 2]), 3)
    """
    n = integer("n", n, lo=1)
    dim = integer("dim", dim, lo=1)
    num_classes = integer("num_classes", num_classes, lo=2)
    separation = finite_scalar("separation", separation, lo=0, lo_open=True)
    seed = random_seed("seed", seed)
    means = separation * torch.randn(num_classes, dim,
                                     generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed * 1_000_003 + n)
    y = torch.randint(num_classes, (n,), generator=g)
    x = means[y] + torch.randn(n, dim, generator=g)
    desc = (f"offline stand-in: Gaussian mixture, {num_classes} classes in {dim} dims "
            f"(separation {separation:g}, seed {seed}), n={n}")
    return LabelledTensors(x, y, desc, num_classes)


def synthetic_images(n: int = 5000, num_classes: int = 100, noise: float = 1.0,
                     seed: int = 0) -> LabelledTensors:
    """CIFAR-shaped synthetic images (offline stand-in): 3×32×32, ``num_classes`` classes.

    Each class has a smooth colour template (4×4 Gaussian noise per channel, bilinearly
    upsampled to 32×32, unit variance) drawn once from ``seed``; an image of class y is
    its template, randomly shifted by up to 4 pixels (circularly) and flipped
    horizontally with probability 1/2, plus N(0, noise²) pixel noise. Templates depend only
    on (num_classes, seed); the learnable structure is spatial and coloured, like
    CIFAR's, but nothing else about these images is natural.

    Parameters
    ----------
    n : int
        Number of images, an integer ≥ 1.
    num_classes : int
        Number of classes, an integer ≥ 2.
    noise : float
        Pixel noise standard deviation, finite and ≥ 0.
    seed : int
        Fixes the templates and (with ``n``) the images.

    Returns
    -------
    LabelledTensors
        Images (n, 3, 32, 32) and labels.

    Raises
    ------
    TypeError
        If a size, ``noise`` or ``seed`` is not a real number (a string, a bool).
    ValueError
        If a size is not a whole number in range, ``noise`` is not finite and ≥ 0, or
        ``seed`` is not a whole number in [0, 2**63 − 1].
    """
    n = integer("n", n, lo=1)
    num_classes = integer("num_classes", num_classes, lo=2)
    noise = finite_scalar("noise", noise, lo=0)
    seed = random_seed("seed", seed)
    coarse = torch.randn(num_classes, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    templates = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear",
                                                align_corners=False)
    templates = templates / templates.std(dim=(1, 2, 3), keepdim=True)
    g = torch.Generator().manual_seed(seed * 1_000_003 + n)
    y = torch.randint(num_classes, (n,), generator=g)
    x = templates[y].clone()
    shifts = torch.randint(-4, 5, (n, 2), generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    for i in range(n):
        img = torch.roll(x[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
        x[i] = img.flip(2) if flips[i] else img
    x += noise * torch.randn(x.shape, generator=g)
    desc = (f"offline stand-in: synthetic CIFAR-shaped images, {num_classes} classes, "
            f"3x32x32 (noise {noise:g}, seed {seed}), n={n}")
    return LabelledTensors(x, y, desc, num_classes)


def cache_dir() -> Path:
    """Return where extracted and downloaded data live.

    Returns
    -------
    pathlib.Path
        ``$RMTLR_CACHE``, default ``~/.cache/rmtlr``.
    """
    return Path(os.environ.get("RMTLR_CACHE") or Path.home() / ".cache" / "rmtlr")


#: The CIFAR-10 JPEG subset shipped inside the package (see ``rmtlr/datasets/``).
SUBSET_ARCHIVE = Path(__file__).resolve().parent / "datasets" / "cifar10_subset.zip"
SUBSET_MANIFEST = SUBSET_ARCHIVE.with_suffix(".json")


@functools.lru_cache(maxsize=2)
def _subset_pixels(folder: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    """Decode one folder (``train``/``test``) of the shipped zip once per process.

    Returns uint8 images (n, 32, 32, 3), integer labels, class names and the per-class
    file index (the NNNN of ``NNNN.jpg``), in the archive's sorted order.
    """
    import zipfile

    from PIL import Image

    if not SUBSET_ARCHIVE.is_file():
        raise FileNotFoundError(
            f"the shipped CIFAR-10 subset {SUBSET_ARCHIVE.name} is missing from the rmtlr "
            "package; reinstall rmtlr from its repository")
    with zipfile.ZipFile(SUBSET_ARCHIVE) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith(folder + "/") and n.endswith(".jpg"))
        classes = tuple(sorted({n.split("/")[1] for n in names}))
        pix = np.stack([np.asarray(Image.open(io.BytesIO(zf.read(n))).convert("RGB"))
                        for n in names])
    labels = np.array([classes.index(n.split("/")[1]) for n in names])
    index = np.array([int(Path(n).stem) for n in names])
    return pix, labels, classes, index


def _standardise(pix: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(pix).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(CIFAR_MEAN["cifar10"]).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD["cifar10"]).view(1, 3, 1, 1)
    return (x - mean) / std


def cifar10_subset(split: str = "train", per_class: int | None = None, *, seed: int = 0,
                   val_fraction: float = 0.1) -> LabelledTensors:
    """Real CIFAR-10 images that every copy of rmtlr has: the shipped JPEG subset.

    The subset holds the first 1,000 training and 200 test images of each CIFAR-10 class
    (Krizhevsky 2009), as JPEG files of quality 75, copied unchanged from the JPEG
    re-encoding of the data set; ``rmtlr/datasets/cifar10_subset.json`` records source,
    selection and checksum, and ``python -m rmtlr.datasets.make_cifar10_subset`` rebuilds
    it. Pixels are standardised with CIFAR-10's channel means and deviations.

    Parameters
    ----------
    split : {"train", "val", "test"}
        ``train`` and ``val`` split the training images (a fixed ``val_fraction`` of them is
        ``val``: 9,000/1,000 for the whole subset); ``test`` is the 2,000 test images.
    per_class : int, optional
        Use only the first ``per_class`` images of each class (by file name) before
        splitting; at most 1,000 (train/val) or 200 (test). Default: all.
    seed : int
        Fixes the train/val split and the order of the samples, a random order that
        interleaves the classes.
    val_fraction : float
        Fraction of the training images held out as ``val``, in (0, 1).

    Returns
    -------
    LabelledTensors
        Images (n, 3, 32, 32) as float32 and labels, with ``description`` and
        ``num_classes`` (10).

    Raises
    ------
    TypeError
        If ``per_class``, ``seed`` or ``val_fraction`` is not a real number.
    ValueError
        If ``split`` is unknown, ``val_fraction`` is not in (0, 1), ``per_class`` is
        not a whole number in [2, 1000] (train/val) or [2, 200] (test), or ``seed`` is
        out of range.
    FileNotFoundError
        If the shipped archive is missing from the installation.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    val_fraction = finite_scalar("val_fraction", val_fraction, lo=0, hi=1, lo_open=True,
                                 hi_open=True)
    seed = random_seed("seed", seed)
    folder = "test" if split == "test" else "train"
    limit = 200 if folder == "test" else 1000
    if per_class is not None:
        per_class = integer("per_class", per_class, lo=2)
        if per_class > limit:
            raise ValueError(f"per_class must be <= {limit} for the {folder} images of the "
                             f"shipped subset, got {per_class}")
    pix, labels, classes, index = _subset_pixels(folder)
    keep = np.flatnonzero(index < (per_class or limit))
    if split != "test":
        n_val = max(1, round(val_fraction * len(keep)))
        tr, va = train_val_split(len(keep), n_val, seed)
        keep = keep[tr if split == "train" else va]
    # The archive lists the images class by class: shuffle (seeded) so that any prefix of
    # the returned set, e.g. a probe or the first batch, mixes the classes.
    keep = np.random.default_rng(seed).permutation(keep)
    sub = f", first {per_class} per class" if per_class else ""
    desc = f"{_SUBSET_CITE}: {split} split{sub}, n={len(keep)}"
    return LabelledTensors(_standardise(pix[keep]), torch.from_numpy(labels[keep]), desc,
                           len(classes))


def _jpeg_archive(path: str | os.PathLike | None) -> Path:
    src = path if path is not None else os.environ.get("RMTLR_CIFAR10_JPEG")
    if not src:
        raise FileNotFoundError(
            "the full CIFAR-10 JPEG archive is not part of rmtlr: pass path= or set "
            "RMTLR_CIFAR10_JPEG to the tar (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg); "
            "the shipped subset is load('cifar10_subset')")
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"path: no CIFAR-10 JPEG tar at {src}")
    return src


def _extract_jpeg(src: Path, per_class: int | None) -> Path:
    """Extract (a per-class prefix of) the archive once; atomic against concurrent workers."""
    tag = "all" if per_class is None else f"first{per_class}"
    final = cache_dir() / f"cifar10-jpeg-{tag}"
    if (final / "train").is_dir() and (final / "test").is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        with tarfile.open(src) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")
                       and (per_class is None or int(Path(m.name).stem) < per_class)]
            tar.extractall(tmp, members=members, filter="data")
        try:
            os.rename(tmp, final)  # atomic on one file system: readers never see a partial tree
        except OSError:
            if not (final / "train").is_dir():  # not a lost race but a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def train_val_split(n: int, n_val: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split range(n) at random, but reproducibly, into training and validation indices.

    With n = 50,000 and n_val = 5,000 this is the paper's 45k/5k split.

    Parameters
    ----------
    n : int
        Number of samples, an integer ≥ 2.
    n_val : int
        Number of validation samples, an integer in [1, n).
    seed : int
        Fixes the split.

    Returns
    -------
    tuple of numpy.ndarray
        The n − n_val training and the n_val validation indices, each sorted.

    Raises
    ------
    TypeError
        If ``n``, ``n_val`` or ``seed`` is not a real number.
    ValueError
        If ``n`` or ``n_val`` is not a whole number in range (2 ≤ n, 1 ≤ n_val < n), or
        ``seed`` is out of range.

    Examples
    --------
    >>> train, val = train_val_split(10, 3)
    >>> len(train), len(val), sorted([*train, *val]) == list(range(10))
    (7, 3, True)
    """
    n = integer("n", n, lo=2)
    n_val = integer("n_val", n_val, lo=1)
    seed = random_seed("seed", seed)
    if n_val >= n:
        raise ValueError(f"n_val must be < n = {n}, got {n_val}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _paper_transforms(name: str, augment: bool):
    from torchvision import transforms as T

    ops = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    return T.Compose(ops + [T.ToTensor(), T.Normalize(CIFAR_MEAN[name], CIFAR_STD[name])])


def cifar10_jpeg(split: str = "train", per_class: int | None = None, in_memory: bool = True,
                 augment: bool = False, val_fraction: float = 0.1, seed: int = 0,
                 path: str | os.PathLike | None = None) -> LabelledTensors | LabelledSubset:
    """All 60,000 CIFAR-10 JPEG images from a tar you provide, read with ImageFolder.

    For the GPU profile's CIFAR-10 runs on a machine without internet. Everyone has the
    shipped subset (:func:`cifar10_subset`); this needs the whole archive, named by
    ``path`` or ``$RMTLR_CIFAR10_JPEG``, extracted once into :func:`cache_dir`.

    Parameters
    ----------
    split : {"train", "val", "test"}
        ``"train"`` / ``"val"`` (a fixed ``val_fraction`` of the training folder: 45k/5k
        for the whole set) or ``"test"`` (the 10k test images).
    per_class : int, optional
        Extract and use only the first ``per_class`` images of each class (a labelled
        subset for quick runs); None for all 5,000 (train) / 1,000 (test).
    in_memory : bool
        Decode once into a :class:`LabelledTensors` (fast for small subsets; no
        augmentation) or return a lazily decoded :class:`LabelledSubset` with transforms.
    augment : bool
        The paper's pad-4/crop-32/flip augmentation (lazy mode, training split only).
    val_fraction : float
        Fraction of the training folder held out as ``val``.
    seed : int
        Fixes the train/val split and the order of the samples, a random one that
        interleaves the classes (the folder itself is sorted by class).
    path : str or os.PathLike, optional
        The tar (``train/<class>/NNNN.jpg``, ``test/<class>/NNNN.jpg``); default
        ``$RMTLR_CIFAR10_JPEG``.

    Returns
    -------
    LabelledTensors or LabelledSubset
        In memory, or lazily decoded.

    Raises
    ------
    TypeError
        If ``per_class``, ``seed`` or ``val_fraction`` is not a real number.
    ValueError
        If ``split`` is unknown, ``per_class`` is not a whole number ≥ 2,
        ``val_fraction`` is not in (0, 1), ``seed`` is out of range, or ``augment`` is
        asked for in memory.
    FileNotFoundError
        If no archive is named or it does not exist.
    """
    from torchvision.datasets import ImageFolder

    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    val_fraction = finite_scalar("val_fraction", val_fraction, lo=0, hi=1, lo_open=True,
                                 hi_open=True)
    seed = random_seed("seed", seed)
    if per_class is not None:
        per_class = integer("per_class", per_class, lo=2)
    if augment and in_memory:
        raise ValueError("augment=True needs in_memory=False (augmentation is applied lazily)")
    root = _extract_jpeg(_jpeg_archive(path), per_class)
    folder = "test" if split == "test" else "train"
    tf = _paper_transforms("cifar10", augment and split == "train")
    base = ImageFolder(str(root / folder), transform=tf)
    if split == "test":
        idx = np.arange(len(base))
    else:
        n_val = max(1, round(val_fraction * len(base)))
        tr, va = train_val_split(len(base), n_val, seed)
        idx = tr if split == "train" else va
    # ImageFolder lists the images class by class: shuffle (seeded) so that any prefix of
    # the returned set, e.g. a probe or the first batch, mixes the classes.
    idx = np.random.default_rng(seed).permutation(idx)
    sub = f", first {per_class} per class" if per_class else ""
    desc = f"{_JPEG_CITE}: {split} split{sub}, n={len(idx)}"
    if not in_memory:
        return LabelledSubset(base, idx, desc, len(base.classes))
    xs, ys = zip(*(base[int(i)] for i in idx))
    return LabelledTensors(torch.stack(xs), torch.tensor(ys), desc, len(base.classes))


def cifar(name: str = "cifar100", split: str = "train", root: str | Path | None = None,
          download: bool = False, augment: bool = True, seed: int = 0) -> LabelledSubset:
    """CIFAR-100/10 through torchvision with the paper's augmentation and 45k/5k split.

    Parameters
    ----------
    name : {"cifar100", "cifar10"}
        Which data set.
    split : {"train", "val", "test"}
        ``"train"`` (45k, augmented when ``augment``), ``"val"`` (5k held out of the
        training set, never augmented) or ``"test"`` (10k).
    root : str or pathlib.Path, optional
        Where the data live (default ``cache_dir()/torchvision``).
    download : bool
        Allow torchvision to download when the files are absent.
    augment : bool
        The paper's pad-4/crop-32/flip augmentation on the training split.
    seed : int
        Fixes the 45k/5k split.

    Returns
    -------
    LabelledSubset
        The split, lazily decoded.

    Raises
    ------
    ValueError
        If ``name`` or ``split`` is unknown.
    FileNotFoundError
        If the files are absent and cannot be downloaded.
    """
    from torchvision import datasets

    cls = {"cifar100": datasets.CIFAR100, "cifar10": datasets.CIFAR10}.get(name)
    if cls is None:
        raise ValueError(f"name must be 'cifar100' or 'cifar10', got {name!r}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    root = Path(root) if root is not None else cache_dir() / "torchvision"
    tf = _paper_transforms(name, augment and split == "train")
    try:
        base = cls(str(root), train=split != "test", transform=tf, download=download)
    except RuntimeError as err:
        raise FileNotFoundError(
            f"{name} is not under {root} and {'the download failed' if download else 'download=False'}"
            f" ({err}). Use the full profile online (download=True), or offline the "
            "'cifar10_jpeg' or 'synthetic_images' data sets.") from err
    except OSError as err:
        raise FileNotFoundError(f"{name} could not be downloaded to {root}: {err}") from err
    idx = np.arange(len(base)) if split == "test" else train_val_split(len(base), 5000, seed)[
        0 if split == "train" else 1]
    desc = f"{name.upper()} (torchvision): {split} split, n={len(idx)}"
    return LabelledSubset(base, idx, desc, len(base.classes))


def load(name: str, split: str = "train", *, n: int | None = None, seed: int = 0,
         download: bool = False, **kw: Any) -> LabelledTensors | LabelledSubset:
    """Load a data set by name (one of :data:`DATASET_NAMES`).

    ``images`` is the shipped CIFAR-10 subset (:func:`cifar10_subset`) on every machine.

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES` (case and ``-``/``_`` are ignored).
    split : {"train", "val", "test"}
        Which split.
    n : int, optional
        Size of the stand-ins (``gaussian_mixture``, ``synthetic_images``), an integer
        ≥ 1; their validation/test splits are fresh draws from the same classes. For the
        real images pass ``per_class`` instead (``n`` is an error there).
    seed : int
        Passed on to the loader (split, order, stand-in draws).
    download : bool
        Allow torchvision CIFAR to download (no effect on the other sets).
    **kw
        Further arguments of the loader (:func:`gaussian_mixture`,
        :func:`synthetic_images`, :func:`cifar10_subset`, :func:`cifar10_jpeg`,
        :func:`cifar`).

    Returns
    -------
    LabelledTensors or LabelledSubset
        The data set, with ``description`` and ``num_classes``.

    Raises
    ------
    TypeError
        If ``n`` is not a real number.
    ValueError
        If ``name`` or ``split`` is unknown, or ``n`` is not a whole number ≥ 1 or is
        given for a real data set.

    Examples
    --------
    >>> load("gaussian_mixture", "val", n=16).description
    'offline stand-in: Gaussian mixture, 10 classes in 32 dims (separation 1, seed 0), n=17'
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if n is not None:
        n = integer("n", n, lo=1)
        if key not in ("gaussian_mixture", "synthetic_images"):
            # The real sets (and 'images', which may resolve to one) would silently ignore n.
            raise ValueError(f"n sets the size of the stand-ins only; for {name!r} pass "
                             f"per_class, got n={n!r}")
    stream = {"train": 0, "val": 1, "test": 2}[split]
    if key == "images":
        key = "cifar10_subset"
    if key == "gaussian_mixture":
        # Splits share class means (fixed by ``seed``) but not samples (different n stream).
        return gaussian_mixture(n=(4096 if n is None else n) + stream, seed=seed, **kw)
    if key == "synthetic_images":
        return synthetic_images(n=(5000 if n is None else n) + stream, seed=seed, **kw)
    if key == "cifar10_subset":
        return cifar10_subset(split, seed=seed, **kw)
    if key == "cifar10_jpeg":
        return cifar10_jpeg(split, seed=seed, **kw)
    return cifar(key, split, download=download, seed=seed, **kw)


def default_num_workers(dataset: Dataset) -> int:
    """Choose the number of loader processes for ``dataset``.

    0 for in-memory tensors (no decoding to overlap) and under pytest, otherwise one per
    spare core, at most 8.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        The data set to be loaded.

    Returns
    -------
    int
        The number of worker processes.
    """
    if isinstance(dataset, TensorDataset) or "PYTEST_CURRENT_TEST" in os.environ:
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                num_workers: int | None = None, drop_last: bool = True) -> DataLoader:
    """Make a seeded DataLoader with :func:`default_num_workers` and pinned memory on CUDA.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        The data.
    batch_size : int
        Samples per batch, an integer in [1, len(dataset)].
    shuffle : bool
        Reshuffle every epoch.
    seed : int
        Fixes the shuffling.
    num_workers : int, optional
        Loader processes (default :func:`default_num_workers`).
    drop_last : bool
        Drop the last, smaller batch.

    Returns
    -------
    torch.utils.data.DataLoader
        The loader.

    Raises
    ------
    TypeError
        If ``batch_size``, ``seed`` or ``num_workers`` is not a real number.
    ValueError
        If ``batch_size`` is not a whole number in [1, len(dataset)], ``seed`` is out of
        range, or ``num_workers`` is negative or fractional.
    """
    batch_size = integer("batch_size", batch_size, lo=1)
    if batch_size > len(dataset):
        raise ValueError(f"batch_size must be <= the data set size N = {len(dataset)}, got "
                         f"{batch_size}")
    seed = random_seed("seed", seed)
    workers = (default_num_workers(dataset) if num_workers is None
               else integer("num_workers", num_workers, lo=0))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=workers, generator=torch.Generator().manual_seed(seed),
                      pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)

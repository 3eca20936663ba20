"""Data sets: labels, determinism, learnable structure, offline CIFAR-10 JPEG, clear errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from rmtlr import data


def _nearest_mean_accuracy(train, test):
    """Accuracy of the nearest-class-mean classifier: a floor for 'learnable structure'."""
    xtr, ytr = train.tensors[0].flatten(1), train.tensors[1]
    xte, yte = test.tensors[0].flatten(1), test.tensors[1]
    k = train.num_classes
    means = torch.stack([xtr[ytr == c].mean(0) for c in range(k)])
    return (torch.cdist(xte, means).argmin(1) == yte).float().mean().item()


def test_gaussian_mixture_is_seeded_labelled_and_learnable():
    a, b = data.load("gaussian_mixture", n=2000), data.load("gaussian_mixture", n=2000)
    assert torch.equal(a.tensors[0], b.tensors[0])
    assert a.description.startswith("offline stand-in: Gaussian mixture")
    val = data.load("gaussian_mixture", "val", n=2000)
    assert not torch.equal(a.tensors[0][:10], val.tensors[0][:10])  # fresh samples
    # Means are ~sqrt(2*32) ≈ 8 within-class sd apart; nearest-mean is near perfect, while
    # chance is 0.1. 0.9 leaves room for the ~1/sqrt(2000) sampling error many times over.
    assert _nearest_mean_accuracy(a, val) > 0.9


def test_synthetic_images_are_cifar_shaped_and_learnable():
    tr = data.load("synthetic_images", n=3000)
    te = data.load("synthetic_images", "test", n=1000)
    assert tr.tensors[0].shape[1:] == (3, 32, 32)
    assert tr.num_classes == 100 and "offline stand-in" in tr.description
    # Shifts and flips blur a nearest-mean template, yet it beats chance (0.01) by far;
    # 0.1 is ten times chance with ~1000 test samples (sd of chance accuracy ≈ 0.003).
    assert _nearest_mean_accuracy(tr, te) > 0.1


def test_train_val_split_is_paper_45k_5k():
    tr, va = data.train_val_split(50_000, 5_000)
    assert len(tr) == 45_000 and len(va) == 5_000
    assert len(np.intersect1d(tr, va)) == 0
    assert np.array_equal(np.union1d(tr, va), np.arange(50_000))


def test_unknown_name_and_bad_arguments():
    with pytest.raises(ValueError, match="valid names: .*gaussian_mixture"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        data.load("gaussian_mixture", "holdout")
    with pytest.raises(ValueError, match="n must be"):
        data.gaussian_mixture(n=0)
    ds = data.gaussian_mixture(n=64)
    with pytest.raises(ValueError, match="batch_size must be <= the data set size N = 64"):
        data.make_loader(ds, 65)


@pytest.mark.parametrize("n", [0, -5, 2.5, float("nan"), float("inf")])
def test_load_rejects_a_bad_n_instead_of_the_default_size(n):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        data.load("gaussian_mixture", n=n)


@pytest.mark.parametrize("name", ["images", "cifar10_subset", "cifar10_jpeg", "cifar10"])
def test_load_rejects_n_where_it_would_be_ignored(name):
    with pytest.raises(ValueError, match="n sets the size of the stand-ins only.*per_class"):
        data.load(name, n=300, per_class=50)
    with pytest.raises(ValueError, match="n sets the size of the stand-ins only"):
        data.load(name, n=300)


def test_cifar100_absent_offline_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar100 is not under .*download=False"):
        data.cifar("cifar100", root=tmp_path, download=False)


def test_loader_is_seeded_and_single_process_in_tests():
    ds = data.gaussian_mixture(n=256)
    first = [next(iter(data.make_loader(ds, 32, seed=s)))[1] for s in (1, 1, 2)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])
    assert data.make_loader(ds, 32).num_workers == 0


def test_shipped_subset_matches_its_manifest():
    import hashlib
    import json

    manifest = json.loads(data.SUBSET_MANIFEST.read_text())
    digest = hashlib.sha256(data.SUBSET_ARCHIVE.read_bytes()).hexdigest()
    assert digest == manifest["sha256"]
    assert (manifest["train_per_class"], manifest["test_per_class"]) == (1000, 200)


def test_cifar10_subset_is_real_labelled_and_split():
    tr, va, te = (data.load("images", s) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (9000, 1000, 2000)
    assert tr.tensors[0].shape[1:] == (3, 32, 32) and tr.tensors[0].dtype == torch.float32
    assert tr.description.startswith("CIFAR-10 JPEG subset") and tr.num_classes == 10
    # Ten balanced classes in the test split, and standardised pixels.
    assert torch.bincount(te.tensors[1]).tolist() == [200] * 10
    assert abs(tr.tensors[0].mean().item()) < 0.1 and abs(tr.tensors[0].std().item() - 1) < 0.1
    # Train and validation are disjoint: no image appears in both.
    a = {hash(x.numpy().tobytes()) for x in tr.tensors[0]}
    assert not any(hash(x.numpy().tobytes()) in a for x in va.tensors[0])
    # Real images carry class structure a nearest-mean classifier finds (chance is 0.1).
    assert 0.2 < _nearest_mean_accuracy(tr, te) < 0.6


def test_cifar10_subset_prefix_order_and_seed():
    tr = data.load("cifar10_subset", "train", per_class=20)
    assert len(tr) == 180 and "first 20 per class" in tr.description
    assert len(set(tr.tensors[1][:50].tolist())) >= 8  # the archive itself is class by class
    again = data.cifar10_subset("train", per_class=20)
    assert torch.equal(tr.tensors[0], again.tensors[0])
    other = data.cifar10_subset("train", per_class=20, seed=1)
    assert not torch.equal(tr.tensors[1], other.tensors[1])


@pytest.mark.parametrize("kw, msg", [
    ({"per_class": 1001}, "per_class must be <= 1000"),
    ({"split": "test", "per_class": 201}, "per_class must be <= 200"),
    ({"per_class": 1}, "per_class must be an integer >= 2"),
    ({"split": "dev"}, "split must be"),
    ({"val_fraction": 1.0}, "val_fraction must be a finite number in"),
])
def test_cifar10_subset_rejects_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        data.cifar10_subset(**kw)


@pytest.mark.parametrize("fn, kw, msg", [
    (data.gaussian_mixture, {"separation": float("inf")}, "separation must be a finite"),
    (data.synthetic_images, {"noise": float("inf")}, "noise must be a finite"),
])
def test_stand_ins_reject_infinite_scales(fn, kw, msg):
    with pytest.raises(ValueError, match=msg):
        fn(n=8, **kw)


def _small_jpeg_tar(path, per_class):
    """A CIFAR-10 JPEG tar in the source layout, made from the shipped subset's files."""
    import io
    import tarfile
    import zipfile

    with zipfile.ZipFile(data.SUBSET_ARCHIVE) as zf, tarfile.open(path, "w") as tar:
        for name in zf.namelist():
            if int(name.rsplit("/", 1)[1][:4]) < per_class:
                blob = zf.read(name)
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    return path


def test_cifar10_jpeg_needs_a_path():
    with pytest.raises(FileNotFoundError, match="RMTLR_CIFAR10_JPEG"):
        data.cifar10_jpeg("train", path=None)


def test_cifar10_jpeg_from_a_tar_equals_the_subset(tmp_path, monkeypatch):
    monkeypatch.setenv("RMTLR_CACHE", str(tmp_path / "cache"))
    tar = _small_jpeg_tar(tmp_path / "c10.tar", 20)
    full = data.cifar10_jpeg("train", per_class=20, path=tar)
    sub = data.cifar10_subset("train", per_class=20)
    assert torch.allclose(full.tensors[0], sub.tensors[0]) and torch.equal(full.tensors[1], sub.tensors[1])
    lazy = data.cifar10_jpeg("train", per_class=20, in_memory=False, augment=True, path=tar)
    assert lazy[0][0].shape == (3, 32, 32) and "CIFAR-10" in lazy.description


def test_concurrent_extraction_is_atomic(tmp_path):
    # Two processes race to extract the same subset; both must see the complete tree.
    tar = _small_jpeg_tar(tmp_path / "c10.tar", 5)
    code = ("from rmtlr import data; d = data.load('cifar10_jpeg', 'test', per_class=5); "
            "print(len(d))")
    env = {"RMTLR_CACHE": str(tmp_path / "cache"), "RMTLR_CIFAR10_JPEG": str(tar), "PATH": "",
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["50", "50"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["cifar10-jpeg-first5"]

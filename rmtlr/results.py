"""The results store: JSON Lines files that several processes share and that survive kills.

Every result the library keeps (a training run of a sweep, a trial of a learning-rate
search, the spectra at a checkpoint) is one *record*: a JSON object on one line of a
``.jsonl`` file. This module is the only code that reads or writes those files.

- Appending takes an exclusive lock on the file (``fcntl.flock``), so any number of
  processes (two notebooks, the CLI, the tasks of a cluster job array) can append to one
  file without interleaving; each record is written with one ``write`` and ``fsync``'ed.
- A kill mid-write leaves a *torn* last line. The next append removes it, whatever its
  size, and keeps every complete record: a last record that lacks only its final newline
  is complete and is kept (the newline is added). Reading ignores a torn last line.
- A corrupt line in the middle, or a line that is valid JSON but not an object (``null``,
  ``[1, 2]``), is an error that names the file and the line; nothing is dropped silently.
- Records are strict JSON. A NaN or infinity in a record (a loss that blew up, NaN in the
  data) is stored as ``null`` and the record is marked: its ``"nonfinite"`` field lists
  where (``"curves.val_loss[]"``: some entries of that list), so a NaN never kills a sweep
  at write time and never passes for a number.
- A run is identified by its *key* (:func:`run_key`): a digest of its configuration and of
  the data it ran on (:func:`data_id`: description, size and a content fingerprint).
  :meth:`ResultsFile.run_once` computes a run only if no record with its key exists and no
  other process is computing it: it *claims* the run with a lock file in the folder
  ``<file>.claims`` next to the results file. The kernel drops the lock when the process
  ends, however it ends, so a killed run is computed again by the next process that asks
  for it; a live one is waited for (or skipped) instead of being computed twice.

Locks are advisory ``flock`` locks: they hold between processes on one machine and on
file systems that support ``flock`` across machines (local disks; NFS v4 and Lustre with
``flock`` enabled).

Examples
--------
A resumable loop (run it twice, or in two processes at once: each run is computed once):

>>> import tempfile, pathlib
>>> from rmtlr import results
>>> store = results.ResultsFile(pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl")
>>> store.check_writable()              # before any work: fails now, not after an hour
>>> for B in (16, 32):
...     key = results.run_key({"batch_size": B, "lr": 0.1})
...     rec = store.run_once(key, lambda: {"batch_size": B, "loss": 0.5 / B})
>>> [r["batch_size"] for r in store.records()]
[16, 32]
>>> store.run_once(results.run_key({"batch_size": 16, "lr": 0.1}), lambda: 1 / 0)["loss"]
0.03125
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import numbers
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["ResultsFile", "append_record", "check_writable", "data_id", "dataset_fingerprint",
           "load_records", "provenance", "read_records", "results_dir", "run_key"]

#: Bytes read per step when searching backwards for the last complete line.
_CHUNK = 1 << 20

#: A field a record does not have (distinct from a field that is null).
_MISSING = object()


def results_dir(default: str | os.PathLike | None = None) -> Path:
    """Return the folder for results files, created if missing.

    Parameters
    ----------
    default : str or os.PathLike, optional
        Used when ``$RMTLR_RESULTS`` is not set; without it the folder is
        ``rmtlr.data.cache_dir() / "results"``.

    Returns
    -------
    pathlib.Path
        ``$RMTLR_RESULTS`` if set, else ``default``, else the cache folder.
    """
    env = os.environ.get("RMTLR_RESULTS")
    if env:
        path = Path(env)
    elif default is not None:
        path = Path(default)
    else:
        from rmtlr.data import cache_dir

        path = cache_dir() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_writable(path: str | os.PathLike, *, what: str = "results file") -> Path:
    """Check that a file can be appended to, creating its folder (and the empty file).

    Called before any training, so that a bad path fails at once rather than after the
    first run has trained.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        How the error message names the file (e.g. ``"--output"``).

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    ValueError
        If ``path`` is a directory, its folder cannot be created, or the file cannot be
        opened for appending.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} {str(p)!r} is a directory; give a file in it, e.g. "
                         f"{str(p / 'results.jsonl')!r}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what} {str(p)!r}: cannot create its folder ({err.strerror})") from err
    try:
        os.close(os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    except OSError as err:
        raise ValueError(f"{what} {str(p)!r} is not writable ({err.strerror})") from err
    return p


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def run_key(config: Mapping[str, Any], data: Mapping[str, Any] | None = None,
            **extra: Any) -> str:
    """Return the identity of a run in a results file.

    Parameters
    ----------
    config : Mapping
        The run's configuration (JSON-ready, e.g. ``TrainConfig.to_dict()``).
    data : Mapping, optional
        What it ran on, usually :func:`data_id`.
    **extra
        Anything else that tells runs apart (e.g. ``epoch=25``, ``spectra_kw={...}``).

    Returns
    -------
    str
        The SHA-256 of the canonical JSON of ``{"config", "data", **extra}``: equal for
        equal contents whatever the order of dictionary keys, different otherwise.

    Raises
    ------
    ValueError
        If the contents are not strict JSON (NaN, infinity, or an unsupported type).

    Examples
    --------
    >>> run_key({"lr": 0.1, "batch_size": 32}) == run_key({"batch_size": 32, "lr": 0.1})
    True
    >>> run_key({"lr": 0.1}) == run_key({"lr": 0.1}, epoch=2)
    False
    """
    payload = {"config": config, "data": data, **extra}
    try:
        return _digest(payload)
    except (TypeError, ValueError) as err:
        raise ValueError(f"a run key must be strict JSON (finite numbers, str, lists, dicts): "
                         f"{err}") from err


def dataset_fingerprint(dataset: Any) -> str | None:
    """Return a digest of a data set's contents, or None when they cannot be read cheaply.

    In-memory tensors (a ``TensorDataset``) are hashed whole (dtype, shape and bytes;
    about 1 GB/s); a ``Subset`` hashes its indices and its parent; a data set with
    ``data`` and ``targets`` arrays (torchvision's CIFAR) hashes those, which leaves out
    its transforms. Anything else gives None: its description and size must tell it apart.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        The data set.

    Returns
    -------
    str or None
        A hexadecimal SHA-256, or None.
    """
    h = hashlib.sha256()

    def add_array(a) -> None:
        if isinstance(a, torch.Tensor):
            t = a.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        else:
            arr = np.ascontiguousarray(np.asarray(a))
            h.update(f"{arr.dtype}{arr.shape}".encode())
            h.update(memoryview(arr).cast("B"))

    if isinstance(dataset, torch.utils.data.TensorDataset):
        for t in dataset.tensors:
            add_array(t)
        return h.hexdigest()
    if isinstance(dataset, torch.utils.data.Subset):
        parent = dataset_fingerprint(dataset.dataset)
        if parent is None:
            return None
        h.update(parent.encode())
        add_array(np.asarray(dataset.indices, dtype=np.int64))
        return h.hexdigest()
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if isinstance(data, (np.ndarray, torch.Tensor)) and targets is not None:
        add_array(data)
        add_array(np.asarray(targets))
        return h.hexdigest()
    return None


def data_id(train_set: Any, val_set: Any = None, **other_sets: Any) -> dict[str, Any]:
    """Describe what a run trained (and validated, and measured) on, for its :func:`run_key`.

    Parameters
    ----------
    train_set : torch.utils.data.Dataset
        The training set.
    val_set : torch.utils.data.Dataset, optional
        The validation set, if any.
    **other_sets
        Further data sets by role, e.g. ``spectra=...``.

    Returns
    -------
    dict
        ``{"train": ..., "val": ..., **other_sets}``, each ``{"description", "n",
        "fingerprint"}`` (:func:`dataset_fingerprint`) or None.
    """
    def one(ds):
        if ds is None:
            return None
        return {"description": getattr(ds, "description", type(ds).__name__), "n": len(ds),
                "fingerprint": dataset_fingerprint(ds)}

    return {"train": one(train_set), "val": one(val_set),
            **{name: one(ds) for name, ds in other_sets.items()}}


def provenance(device: str | torch.device | None = None) -> dict[str, Any]:
    """Describe what produced a record: device, versions and the date.

    Parameters
    ----------
    device : str or torch.device, optional
        The device the work ran on; CUDA devices are named with their model.

    Returns
    -------
    dict
        ``{"device": ..., "versions": {rmtlr, torch, numpy, python}, "date": ISO 8601 UTC}``
        (``device`` only when given).
    """
    import rmtlr

    out: dict[str, Any] = {}
    if device is not None:
        dev = torch.device(device)
        name = str(dev)
        if dev.type == "cuda" and torch.cuda.is_available():
            name += f" ({torch.cuda.get_device_name(dev)})"
        out["device"] = name
    out["versions"] = {"rmtlr": rmtlr.__version__, "torch": torch.__version__,
                       "numpy": np.__version__, "python": platform.python_version()}
    out["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return out


def _json_ready(obj: Any, where: str, nonfinite: set[str]) -> Any:
    """``obj`` as strict-JSON types; non-finite numbers become None and are noted."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        x = float(obj)
        if math.isfinite(x):
            return x
        nonfinite.add(where or "(record)")
        return None
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, numbers.Integral)):
                raise TypeError(f"record{'.' + where if where else ''} has the key {k!r}; "
                                "keys must be strings")
            out[str(k)] = _json_ready(v, f"{where}.{k}" if where else str(k), nonfinite)
        return out
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v, f"{where}[]", nonfinite) for v in obj]
    raise TypeError(f"record.{where or '(record)'} is a {type(obj).__name__}, which JSON cannot "
                    "hold; convert it first (tensors: .tolist(), paths: str())")


def _tail_kind(tail: bytes) -> str:
    """Classify the bytes after the last newline.

    Nothing, a complete record that lacks its newline, a record torn by a kill, or
    something this module never writes.
    """
    if not tail:
        return "empty"
    try:
        json.loads(tail)
        return "complete"
    except ValueError:
        pass
    # Records are written as printable ASCII objects; a prefix of one looks like this.
    if tail[:1] == b"{" and all(32 <= c < 127 for c in tail):
        return "torn"
    return "foreign"


class ResultsFile:
    """A JSON Lines results file shared by processes: append, read, and run each key once.

    Parameters
    ----------
    path : str or os.PathLike
        The file (created on the first append). Its claims live in ``<path>.claims/``.

    Raises
    ------
    ValueError
        If ``path`` is an existing directory.

    Notes
    -----
    Reads are incremental: a second :meth:`records` call parses only what was appended
    since, so looking a key up before every run stays cheap for files of many large
    records.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"results file {str(self.path)!r} is a directory; give a file in "
                             f"it, e.g. {str(self.path / 'results.jsonl')!r}")
        self._reset()

    def __repr__(self) -> str:
        """Name the file."""
        return f"ResultsFile({str(self.path)!r})"

    def _reset(self, ident: tuple[int, int] | None = None) -> None:
        self._ident = ident
        self._offset = 0              # bytes of complete lines parsed so far
        self._lines = 0               # how many lines those are
        self._records: list[dict] = []
        self._tail: dict | None = None  # a complete last record without its newline

    @property
    def claims_dir(self) -> Path:
        """The folder of the claim lock files (one per run ever claimed)."""
        return self.path.with_name(self.path.name + ".claims")

    def check_writable(self) -> None:
        """Fail now if the file or its claims folder cannot be written.

        Raises
        ------
        ValueError
            If the file is a directory or cannot be created or appended to, or the
            claims folder cannot be created.
        """
        check_writable(self.path)
        try:
            self.claims_dir.mkdir(exist_ok=True)
        except OSError as err:
            raise ValueError(f"results file {str(self.path)!r}: cannot create the claims "
                             f"folder {str(self.claims_dir)!r} ({err.strerror})") from err

    # -- reading -------------------------------------------------------------------
    def _parse(self, line: bytes, lineno: int) -> dict | None:
        if not line.strip():
            return None
        try:
            rec = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{self.path}, line {lineno}: not valid JSON ({err}); the file "
                             "is corrupt there (a complete line, not a torn last write)") from err
        if not isinstance(rec, dict):  # the file's content is wrong, not an argument's type
            raise ValueError(  # noqa: TRY004
                f"{self.path}, line {lineno}: a JSON {type(rec).__name__}, not a record "
                "(each line of a results file is one JSON object)")
        return rec

    def _refresh(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._reset()
            return
        except IsADirectoryError as err:
            raise ValueError(f"results file {str(self.path)!r} is a directory") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # a writer's append is seen whole or not at all
            st = os.fstat(fd)
            ident = (st.st_dev, st.st_ino)
            if ident != self._ident or st.st_size < self._offset:
                self._reset(ident)  # replaced or rewritten by someone: read it afresh
            os.lseek(fd, self._offset, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, _CHUNK * 16):
                chunks.append(chunk)
            new = b"".join(chunks)
        finally:
            os.close(fd)
        end = new.rfind(b"\n") + 1
        lines = new[:end].split(b"\n")[:-1]
        parsed = []
        for i, line in enumerate(lines, self._lines + 1):
            rec = self._parse(line, i)
            if rec is not None:
                parsed.append(rec)
        self._records.extend(parsed)
        self._offset += end
        self._lines += len(lines)
        tail = new[end:]
        kind = _tail_kind(tail)
        if kind == "foreign":
            raise ValueError(f"{self.path}, line {self._lines + 1}: not valid JSON and not a "
                             "torn record; is this a results file?")
        self._tail = self._parse(tail, self._lines + 1) if kind == "complete" else None

    def records(self) -> list[dict]:
        """Every complete record, in file order.

        Returns
        -------
        list of dict
            [] when the file does not exist; a torn last line is left out.

        Raises
        ------
        ValueError
            Naming the file and line, for a corrupt line or one that is not a JSON object.
        """
        self._refresh()
        return self._records + ([self._tail] if self._tail is not None else [])

    def select(self, **match: Any) -> list[dict]:
        """Return the records whose fields equal ``match``.

        Parameters
        ----------
        **match
            Field values to match; nested fields are reached with ``__`` (or a dot when
            passed as ``**{"config.lr": 0.1}``), e.g. ``config__batch_size=128``.

        Returns
        -------
        list of dict
            The matching records, in file order.
        """
        keys = [(k.replace("__", ".").split("."), v) for k, v in match.items()]

        def get(rec, parts):
            for part in parts:
                if not isinstance(rec, dict) or part not in rec:
                    return _MISSING
                rec = rec[part]
            return rec

        return [r for r in self.records()
                if all((got := get(r, p)) is not _MISSING and got == v for p, v in keys)]

    def find(self, key: str) -> dict | None:
        """Return the record of run ``key``.

        Parameters
        ----------
        key : str
            A :func:`run_key`, matched against the records' ``"key"`` field.

        Returns
        -------
        dict or None
            The last such record, or None.
        """
        for rec in reversed(self.records()):
            if rec.get("key") == key:
                return rec
        return None

    # -- writing -------------------------------------------------------------------
    def append(self, record: Mapping[str, Any]) -> dict:
        """Append one record as a line, under an exclusive lock, and ``fsync`` it.

        A torn last line left by a kill is removed first, however long it is; a complete
        last record without its newline is kept and gets the newline.

        Parameters
        ----------
        record : Mapping
            A JSON-ready mapping. NaN and infinities are stored as null and listed in the
            record's ``"nonfinite"`` field; NumPy scalars and arrays are converted.

        Returns
        -------
        dict
            The record as stored.

        Raises
        ------
        TypeError
            If ``record`` is not a mapping or holds values JSON cannot (tensors, objects).
        ValueError
            If the path is a directory, or the file does not end in a record or a torn one
            (it is not a results file).
        """
        if not isinstance(record, Mapping):
            raise TypeError(f"record must be a dict (a JSON object), got {type(record).__name__}")
        nonfinite: set[str] = set()
        clean = _json_ready(record, "", nonfinite)
        if nonfinite:
            clean["nonfinite"] = sorted(nonfinite | set(clean.get("nonfinite") or ()))
        line = (json.dumps(clean, allow_nan=False) + "\n").encode("ascii")
        check_writable(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # other writers wait; readers see no half line
            size = self._repair_tail(fd)
            os.lseek(fd, size, os.SEEK_SET)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, size)  # a failed write (disk full, signal) leaves no torn line
                raise
        finally:
            os.close(fd)
        return clean

    def _repair_tail(self, fd: int) -> int:
        """Make the locked file end with a newline; return its size after that."""
        size = os.lseek(fd, 0, os.SEEK_END)
        pos = size
        while pos > 0:  # back to the last newline, however far (a torn record may be MBs)
            start = max(0, pos - _CHUNK)
            nl = os.pread(fd, pos - start, start).rfind(b"\n")
            if nl >= 0:
                pos = start + nl + 1
                break
            pos = start
        if pos == size:
            return size
        tail = os.pread(fd, size - pos, pos)
        kind = _tail_kind(tail)
        if kind == "complete":
            os.pwrite(fd, b"\n", size)
            return size + 1
        if kind == "torn":
            os.ftruncate(fd, pos)
            return pos
        raise ValueError(f"{self.path} does not end in a record or a torn one (its last "
                         f"{size - pos} bytes are not JSON); is it a results file?")

    # -- running each key once -----------------------------------------------------
    @contextlib.contextmanager
    def claim(self, key: str, *, wait: bool = False) -> Iterator[bool]:
        """Hold the claim on run ``key`` for the ``with`` block.

        Parameters
        ----------
        key : str
            The run's :func:`run_key`.
        wait : bool
            Block until another process's claim on the same key ends; otherwise give up
            at once.

        Yields
        ------
        bool
            True if this process holds the claim; False (``wait=False`` only) if another
            live process does.

        Raises
        ------
        ValueError
            If ``key`` is not a non-empty string.

        Notes
        -----
        The claim is an exclusive ``flock`` on ``<file>.claims/<key>.lock``; the kernel
        releases it when the process exits or is killed, so a claim never outlives its run.
        """
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string (a run_key), got {key!r}")
        self.claims_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        fd = os.open(self.claims_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                held = False
            else:
                held = True
                os.ftruncate(fd, 0)  # who holds it, for a person looking at the folder
                os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": time.time(),
                                          "key": key}).encode(), 0)
            yield held
        finally:
            os.close(fd)  # releases the lock

    def run_once(self, key: str, compute: Callable[[], Mapping[str, Any]], *,
                 wait: bool = True) -> dict | None:
        """Return the record of run ``key``, computing it only if no process has it.

        Parameters
        ----------
        key : str
            The run's :func:`run_key`; stored in the record's ``"key"`` field.
        compute : callable
            Called with no arguments to produce the record when it is missing.
        wait : bool
            When another process is computing this key: wait for it and return its record
            (True), or return None at once (False; come back for it later).

        Returns
        -------
        dict or None
            The stored record (with ``"key"``), or None when ``wait`` is False and the
            run is in progress elsewhere.
        """
        rec = self.find(key)
        if rec is not None:
            return rec
        with self.claim(key, wait=wait) as held:
            if not held:
                return None
            rec = self.find(key)  # finished by another process since the first look
            if rec is not None:
                return rec
            return self.append({**compute(), "key": key})



def append_record(path: str | os.PathLike, record: Mapping[str, Any]) -> dict:
    """Append one record to a results file (:meth:`ResultsFile.append`).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    record : Mapping
        The record.

    Returns
    -------
    dict
        The record as stored (non-finite numbers as null, listed under ``"nonfinite"``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
    >>> append_record(p, {"loss": float("nan"), "acc": 0.5})
    {'loss': None, 'acc': 0.5, 'nonfinite': ['loss']}
    >>> read_records(p)
    [{'loss': None, 'acc': 0.5, 'nonfinite': ['loss']}]
    """
    return ResultsFile(path).append(record)


def read_records(path: str | os.PathLike) -> list[dict]:
    """All complete records of a results file (:meth:`ResultsFile.records`).

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    list of dict
        [] when the file does not exist; a torn last line is left out.

    Raises
    ------
    ValueError
        Naming the file and line, for a corrupt line or one that is not a JSON object.
    """
    return ResultsFile(path).records()


def load_records(path: str | os.PathLike, **match: Any) -> list[dict]:
    """Return the records of a file whose fields equal ``match`` (:meth:`ResultsFile.select`).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    **match
        Field values; nested fields with ``__``, e.g. ``config__batch_size=128``.

    Returns
    -------
    list of dict
        The matching records, in file order.
    """
    return ResultsFile(path).select(**match)

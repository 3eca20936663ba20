"""rmtlr.results: the one results store (locked appends, torn-tail repair of any size,
strict JSON with NaN marked, run keys and data ids, claims that run each key once)."""

import doctest
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from rmtlr import results
from rmtlr.results import ResultsFile, append_record, data_id, read_records, run_key


def _lines(path):
    return path.read_bytes().split(b"\n")


def _torn(size: int) -> bytes:
    """A record cut short by a kill after ``size`` bytes (printable ASCII, no newline)."""
    head = b'{"config": {"batch_size": 32}, "step_loss": ['
    return (head + b"0.125, " * size)[:size]


def test_round_trip_and_missing_file(tmp_path):
    path = tmp_path / "r.jsonl"
    assert read_records(path) == []
    a = append_record(path, {"x": 1, "nested": {"y": [1, 2.5, "s", None, True]}})
    assert a == {"x": 1, "nested": {"y": [1, 2.5, "s", None, True]}}
    append_record(path, {"x": 2})
    assert read_records(path) == [a, {"x": 2}]
    assert path.read_bytes().endswith(b"\n") and len(_lines(path)) == 3


@pytest.mark.parametrize("size", [10, 3 * 2**20 + 17])
def test_torn_tail_of_any_size_is_removed_and_every_complete_record_kept(tmp_path, size):
    path = tmp_path / "r.jsonl"
    big = {"k": 1, "payload": "z" * (2 * 2**20)}  # a complete record larger than 1 MiB
    append_record(path, big)
    append_record(path, {"k": 2})
    with open(path, "ab") as f:
        f.write(_torn(size))
    assert [r["k"] for r in read_records(path)] == [1, 2]  # the torn tail is not a record
    append_record(path, {"k": 3})
    recs = read_records(path)
    assert [r["k"] for r in recs] == [1, 2, 3] and recs[0] == big
    lines = _lines(path)
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])
    assert path.stat().st_size == sum(len(line) + 1 for line in lines[:-1])  # torn bytes gone


def test_complete_last_record_without_newline_is_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"k": 1}\n{"k": 2}')  # e.g. written by hand or another tool
    assert [r["k"] for r in read_records(path)] == [1, 2]
    append_record(path, {"k": 3})
    assert path.read_text() == '{"k": 1}\n{"k": 2}\n{"k": 3}\n'


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"ok": 1}\nnot json\n{"ok": 2}\n')
    with pytest.raises(ValueError, match=r"r\.jsonl, line 2: not valid JSON"):
        read_records(path)


@pytest.mark.parametrize("line,kind", [("[1, 2]", "list"), ("null", "NoneType"), ("3", "int"),
                                       ('"s"', "str")])
def test_lines_that_are_not_objects_are_a_clear_error(tmp_path, line, kind):
    path = tmp_path / "r.jsonl"
    path.write_text('{"ok": 1}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"line 2: a JSON {kind}, not a record"):
        read_records(path)
    path.write_text('{"ok": 1}\n' + line)  # also as a last line without its newline
    with pytest.raises(ValueError, match=rf"line 2: a JSON {kind}, not a record"):
        read_records(path)


def test_empty_object_and_blank_lines_are_records_and_nothing(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{}\n\n{"a": 1}\n')
    assert read_records(path) == [{}, {"a": 1}]
    assert ResultsFile(path).find("any") is None  # {} is no run of any key


def test_a_file_that_is_not_a_results_file_is_never_truncated(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.arange(1000.0)}, path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="is it a results file"):
        append_record(path, {"x": 1})
    assert path.read_bytes() == before


def test_nonfinite_values_are_stored_as_null_and_marked(tmp_path):
    path = tmp_path / "r.jsonl"
    rec = append_record(path, {"initial_loss": float("nan"), "ok": 1.0,
                               "curves": {"val_loss": [0.5, float("inf"), -np.inf]},
                               "np": np.float32(2.5), "n": np.int64(3), "arr": np.arange(3),
                               "flag": np.bool_(True)})
    assert rec["initial_loss"] is None and rec["curves"]["val_loss"] == [0.5, None, None]
    assert rec["nonfinite"] == ["curves.val_loss[]", "initial_loss"]
    assert (rec["np"], rec["n"], rec["arr"], rec["flag"]) == (2.5, 3, [0, 1, 2], True)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert read_records(path) == [rec]


@pytest.mark.parametrize("bad,match", [({"t": torch.ones(2)}, r"record\.t is a Tensor"),
                                       ({"a": {"p": object()}}, r"record\.a\.p is a object"),
                                       ({(1, 2): 3}, "keys must be strings")])
def test_values_json_cannot_hold_are_a_type_error(tmp_path, bad, match):
    with pytest.raises(TypeError, match=match):
        append_record(tmp_path / "r.jsonl", bad)
    with pytest.raises(TypeError, match="record must be a dict"):
        append_record(tmp_path / "r.jsonl", [1, 2])
    assert not (tmp_path / "r.jsonl").exists() or read_records(tmp_path / "r.jsonl") == []


def _append_many(path, worker, count, size):
    for i in range(count):
        append_record(path, {"worker": worker, "i": i, "pad": "x" * size})


def test_concurrent_processes_never_interleave_or_lose_records(tmp_path):
    path = tmp_path / "r.jsonl"
    ctx = multiprocessing.get_context("fork")
    workers, count, size = 4, 15, 300_000  # records far larger than a pipe or page buffer
    procs = [ctx.Process(target=_append_many, args=(path, w, count, size))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    recs = read_records(path)
    assert sorted((r["worker"], r["i"]) for r in recs) == [
        (w, i) for w in range(workers) for i in range(count)]
    assert all(len(r["pad"]) == size for r in recs)
    assert len(_lines(path)) == workers * count + 1


def test_run_key_is_canonical_and_strict():
    a = run_key({"lr": 0.1, "B": 32}, {"train": {"n": 5}})
    assert a == run_key({"B": 32, "lr": 0.1}, {"train": {"n": 5}}) and len(a) == 64
    assert a != run_key({"lr": 0.1, "B": 32}, {"train": {"n": 6}})
    assert a != run_key({"lr": 0.1, "B": 32}, {"train": {"n": 5}}, epoch=1)
    with pytest.raises(ValueError, match="strict JSON"):
        run_key({"lr": float("nan")})


def test_data_id_tells_apart_data_sets_of_equal_size_and_name():
    x = torch.randn(20, 3)
    y = torch.arange(20) % 2
    a = torch.utils.data.TensorDataset(x, y)
    b = torch.utils.data.TensorDataset(x + 1e-3, y)
    assert data_id(a)["train"]["description"] == data_id(b)["train"]["description"]
    assert data_id(a) != data_id(b)  # same type name and size: the contents differ
    assert data_id(a) == data_id(torch.utils.data.TensorDataset(x.clone(), y.clone()))
    s1, s2 = (torch.utils.data.Subset(a, idx) for idx in ([0, 1, 2], [0, 1, 3]))
    assert data_id(s1) != data_id(s2)
    assert data_id(a, b, spectra=s1)["spectra"]["n"] == 3
    assert data_id([(0, 1)] * 3)["train"]["fingerprint"] is None  # unknown kind: no digest


def test_check_writable_fails_for_directories_and_unwritable_places(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        results.check_writable(tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="cannot create its folder"):
        results.check_writable(tmp_path / "afile" / "r.jsonl")
    with pytest.raises(ValueError, match="is not writable"):
        results.check_writable("/proc/rmtlr-results.jsonl")
    with pytest.raises(ValueError, match="is a directory"):
        ResultsFile(tmp_path)
    assert results.check_writable(tmp_path / "new" / "r.jsonl").exists()


def test_run_once_computes_each_key_once(tmp_path):
    store = ResultsFile(tmp_path / "r.jsonl")
    calls = []

    def compute():
        calls.append(1)
        return {"v": len(calls)}

    first = store.run_once("k1", compute)
    again = ResultsFile(tmp_path / "r.jsonl").run_once("k1", compute)  # another reader
    assert first == again == {"v": 1, "key": "k1"} and len(calls) == 1
    store.run_once("k2", compute)
    assert [r["key"] for r in store.records()] == ["k1", "k2"]


def test_incremental_reads_see_other_writers_and_rewritten_files(tmp_path):
    path = tmp_path / "r.jsonl"
    reader = ResultsFile(path)
    append_record(path, {"i": 1})
    assert [r["i"] for r in reader.records()] == [1]
    append_record(path, {"i": 2})
    assert [r["i"] for r in reader.records()] == [1, 2]
    path.write_text('{"i": 9}\n')  # replaced by something shorter: read afresh
    assert [r["i"] for r in reader.records()] == [9]


HOLD = textwrap.dedent("""
    import sys, time
    from rmtlr.results import ResultsFile
    with ResultsFile(sys.argv[1]).claim("busy") as held:
        print("held" if held else "not held", flush=True)
        time.sleep(60)
""")


def test_a_claim_held_elsewhere_is_skipped_and_a_killed_claim_is_redone(tmp_path):
    path = tmp_path / "r.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                            env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        store = ResultsFile(path)
        assert store.run_once("busy", lambda: {"v": 1}, wait=False) is None  # in progress
        assert store.run_once("free", lambda: {"v": 2}, wait=False) == {"v": 2, "key": "free"}
        with store.claim("busy") as held:
            assert not held
    finally:
        proc.send_signal(signal.SIGKILL)  # the claimant dies without cleaning up
        proc.wait()
    t0 = time.time()
    assert store.run_once("busy", lambda: {"v": 3}, wait=False) == {"v": 3, "key": "busy"}
    assert time.time() - t0 < 5


def test_docstring_examples_run():
    assert doctest.testmod(results, raise_on_error=False).failed == 0

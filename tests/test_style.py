"""Docstrings of the public API: ruff's pydocstyle rules (numpy convention) and numpydoc structure.

ruff checks the form of every docstring (summary line, sections, imperative mood). It does
not check that a docstring documents the function it belongs to, so
:func:`test_numpydoc_sections_match_signatures` does: every public function, class and
method has a Parameters section naming its parameters one per entry, in order, each with
a type; type hints on every parameter and the return value; a Returns section when it
returns something; and a Raises section when its body raises.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rmtlr

ROOT = Path(__file__).resolve().parents[1]

# Issue 12: these modules are being converted to numpydoc on other branches (the same list
# as the ruff per-file-ignores in pyproject.toml); remove each entry when its branch is
# merged.
PENDING: tuple[str, ...] = ()


def _ruff() -> list[str] | None:
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(exe).is_file():
        return [exe]
    try:
        import ruff  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "ruff"]


def test_ruff_pydocstyle_rules_pass_on_the_library():
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the 'test' extra: pip install -e '.[test]')")
    out = subprocess.run([*ruff, "check", "--select", "D", "--output-format", "concise", "rmtlr"],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def _modules() -> list[str]:
    names = ["rmtlr"]
    for info in pkgutil.walk_packages(rmtlr.__path__, "rmtlr."):
        if not any(info.name == p or info.name.startswith(p + ".") for p in PENDING):
            names.append(info.name)
    return names


def _sections(doc: str) -> dict[str, list[str]]:
    """numpydoc sections: a title line underlined by dashes, up to the next title."""
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, list[str]] = {}
    current = None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip()) and line.strip():
            current = line.strip()
            out[current] = []
        elif current is not None and not re.fullmatch(r"-{3,}", line.strip()):
            out[current].append(line)
    return out


def _entries(section: list[str]) -> list[str]:
    """The unindented entry lines of a Parameters/Attributes section."""
    return [line for line in section if line.strip() and not line.startswith((" ", "\t"))]


def _documented(obj: object) -> list[tuple[str, object]]:
    """Public functions, classes and methods that ``obj`` (a module) defines."""
    found = []
    names = getattr(obj, "__all__", None) or [n for n in vars(obj) if not n.startswith("_")]
    for name in names:
        member = getattr(obj, name)
        if getattr(member, "__module__", None) != obj.__name__:
            continue
        if inspect.isfunction(member) or inspect.isclass(member):
            found.append((f"{obj.__name__}.{name}", member))
        if inspect.isclass(member):
            for mname, meth in vars(member).items():
                if mname.startswith("_") or not inspect.isfunction(meth):
                    continue
                found.append((f"{obj.__name__}.{name}.{mname}", meth))
    return found


def _check_entries(qualname: str, section: list[str], expected: list[str]) -> list[str]:
    problems = []
    entries = _entries(section)
    names = [re.split(r"\s*:\s*", e, maxsplit=1)[0].strip() for e in entries]
    if names != expected:
        problems.append(f"{qualname}: documents {names}, signature has {expected}")
    for e, n in zip(entries, names):
        if "," in n:
            problems.append(f"{qualname}: one parameter per entry, got {e!r}")
        if not n.startswith("*") and " : " not in e:
            problems.append(f"{qualname}: entry {e!r} has no ' : type'")
    return problems


def _params(fn: object) -> list[str]:
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.name in ("self", "cls"):
            continue
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        out.append(prefix + p.name)
    return out


def _problems(qualname: str, obj: object) -> list[str]:
    doc = inspect.getdoc(obj) if not inspect.isclass(obj) else obj.__doc__
    if not doc:
        return [f"{qualname}: no docstring"]
    sections = _sections(doc)
    problems = []
    if inspect.isclass(obj):
        if dataclasses.is_dataclass(obj) or hasattr(obj, "_fields"):  # results: fields
            fields = ([f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj)
                      else list(obj._fields))
            problems += _check_entries(qualname, sections.get("Attributes", []), fields)
        elif "__init__" in vars(obj) and _params(obj.__init__):
            problems += _check_entries(qualname, sections.get("Parameters", []),
                                       _params(obj.__init__))
            unhinted = [p.name for p in inspect.signature(obj.__init__).parameters.values()
                        if p.annotation is inspect.Parameter.empty and p.name != "self"]
            if unhinted:
                problems.append(f"{qualname}: no type hint for {unhinted}")
        return problems
    unhinted = [p.name for p in inspect.signature(obj).parameters.values()
                if p.annotation is inspect.Parameter.empty and p.name not in ("self", "cls")]
    if unhinted:
        problems.append(f"{qualname}: no type hint for {unhinted}")
    expected = _params(obj)
    if expected:
        problems += _check_entries(qualname, sections.get("Parameters", []), expected)
    ret = inspect.signature(obj).return_annotation
    # numpydoc: a generator (also under @contextmanager) documents what it yields instead.
    result = "Yields" if inspect.isgeneratorfunction(inspect.unwrap(obj)) else "Returns"
    if ret not in (None, "None", inspect.Signature.empty) and result not in sections:
        problems.append(f"{qualname}: no {result} section")
    if ret is inspect.Signature.empty:
        problems.append(f"{qualname}: no return type hint")
    source = inspect.getsource(obj)
    body = source.split(doc.splitlines()[-1], 1)[-1] if doc else source
    if re.search(r"^\s+raise \w", body, flags=re.MULTILINE) and "Raises" not in sections:
        problems.append(f"{qualname}: raises but has no Raises section")
    return problems


@pytest.mark.parametrize("module", _modules())
def test_numpydoc_sections_match_signatures(module):
    mod = importlib.import_module(module)
    problems = [p for name, obj in _documented(mod) for p in _problems(name, obj)]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_an_undocumented_parameter():
    def bad(x: int, y: int) -> int:
        """Add.

        Parameters
        ----------
        x : int
            A number.

        Returns
        -------
        int
            The sum.
        """
        return x + y

    def worse(x, y):
        """Add."""
        if x is None:
            raise ValueError("x")
        return x + y

    assert _problems("bad", bad) == ["bad: documents ['x'], signature has ['x', 'y']"]
    found = _problems("worse", worse)
    assert any("no type hint for ['x', 'y']" in p for p in found)
    assert any("no return type hint" in p for p in found)
    assert any("no Raises section" in p for p in found)
    assert any("signature has ['x', 'y']" in p for p in found)


def test_the_checker_wants_yields_for_a_generator():
    def gen(n: int) -> Iterator[int]:
        """Count.

        Parameters
        ----------
        n : int
            How far.

        Returns
        -------
        int
            Wrong section for a generator.
        """
        yield from range(n)

    assert _problems("gen", gen) == ["gen: no Yields section"]
    documented = gen.__doc__.replace("Returns\n        -------", "Yields\n        ------")
    gen.__doc__ = documented
    assert _problems("gen", gen) == []

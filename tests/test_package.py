"""`import rmtlr`: cheap, torch-free until needed, and a researcher finds the entry points."""

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import rmtlr

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter with this checkout first on the path."""
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); {code}"],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def test_import_rmtlr_and_rmt_do_not_import_torch():
    # Before, rmtlr/__init__ imported rmtlr.profiles (and so torch) eagerly, which made
    # the claim "rmtlr.rmt never imports torch" false: importing it imported torch.
    code = ("import rmtlr, rmtlr.rmt, rmtlr.scaling; rmtlr.batch_outlier; rmtlr.sgd_max_lr; "
            "rmtlr.rmt.dyson_density; print('torch' in sys.modules)")
    assert _fresh(code) == "False"


def test_torch_entry_points_load_on_first_use():
    code = ("import rmtlr; H = rmtlr.HessianOperator; "
            "print(H.__module__.startswith('rmtlr.curvature'), 'torch' in sys.modules)")
    assert _fresh(code) == "True True"


@pytest.mark.parametrize(
    "name, module",
    [("HessianOperator", "rmtlr.curvature"), ("GGNOperator", "rmtlr.curvature"),
     ("lanczos", "rmtlr.curvature"), ("top_eigenpairs", "rmtlr.curvature"),
     ("slq_density", "rmtlr.curvature"), ("hessian_variance", "rmtlr.curvature"),
     ("batch_outlier", "rmtlr.rmt"), ("effective_batch_size", "rmtlr.rmt"),
     ("sgd_max_lr", "rmtlr.scaling"), ("adam_max_lr", "rmtlr.scaling"),
     ("get_profile", "rmtlr.profiles"), ("resolve_device", "rmtlr.profiles"),
     ("ResultsFile", "rmtlr.results"), ("TrainConfig", "rmtlr.train"),
     ("sweep", "rmtlr.sweeps"), ("max_stable_lr", "rmtlr.sweeps"),
     ("LanczosLearner", "rmtlr.learner"), ("lr_momentum_from_ritz", "rmtlr.learner"),
     ("batch_sharpness", "rmtlr.stability"),
     ("mean_square_stability_threshold", "rmtlr.stability"),
     ("gradient_noise_scale", "rmtlr.noise_scale")],
)
def test_entry_points_are_the_library_objects(name, module):
    import importlib

    assert getattr(rmtlr, name) is getattr(importlib.import_module(module), name)
    assert name in dir(rmtlr) and name in rmtlr.__all__


def test_subpackages_are_reachable_and_listed():
    for name in ("rmt", "curvature", "scaling", "data", "models", "profiles", "plotting",
                 "results", "sweeps", "lr_rules", "learner", "stability", "noise_scale",
                 "notebook", "train", "experiments"):
        assert name in dir(rmtlr)
        assert getattr(rmtlr, name).__name__ == f"rmtlr.{name}"
    for name in rmtlr.__all__:  # nothing advertised is missing
        getattr(rmtlr, name)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        rmtlr.nonexistent  # noqa: B018


def test_py_typed_marker_is_shipped():
    assert (ROOT / "rmtlr" / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in data["tool"]["setuptools"]["package-data"]["rmtlr"]

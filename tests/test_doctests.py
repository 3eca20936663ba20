"""The examples in the library's docstrings run and print what they say (doctest).

Each module of :mod:`rmtlr` is run through :mod:`doctest`; the main entry points must have
an example at all.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rmtlr

MODULES = ["rmtlr", *(m.name for m in pkgutil.walk_packages(rmtlr.__path__, "rmtlr."))]

# The functions a reader meets first: each must show a runnable example.
MAIN_ENTRY_POINTS = [
    "rmtlr.rmt.batch.batch_outlier",
    "rmtlr.rmt.batch.effective_batch_size",
    "rmtlr.rmt.batch.batch_noise_scale",
    "rmtlr.rmt.batch.overlap",
    "rmtlr.rmt.batch.entry_variance",
    "rmtlr.rmt.laws.semicircle_pdf",
    "rmtlr.rmt.laws.mp_pdf",
    "rmtlr.rmt.laws.tracy_widom_cdf",
    "rmtlr.rmt.outliers.spiked_outlier",
    "rmtlr.rmt.outliers.mp_additive_outlier",
    "rmtlr.rmt.outliers.outliers_from_stieltjes",
    "rmtlr.rmt.ggn.ggn_batch_outlier",
    "rmtlr.rmt.dyson.dyson_density",
    "rmtlr.rmt.dyson.profile_outlier",
    "rmtlr.rmt.freeconv.free_convolution_density",
    "rmtlr.scaling.sgd_max_lr",
    "rmtlr.scaling.adam_max_lr",
    "rmtlr.scaling.implied_sigma_eps",
    "rmtlr.scaling.crossover_batch_size",
    "rmtlr.scaling.fit_power_law",
    "rmtlr.models.build",
    "rmtlr.profiles.get_profile",
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module}"


@pytest.mark.parametrize("path", MAIN_ENTRY_POINTS)
def test_main_entry_points_have_an_example(path):
    module, name = path.rsplit(".", 1)
    doc = getattr(importlib.import_module(module), name).__doc__ or ""
    assert ">>> " in doc, f"{path} has no runnable example"

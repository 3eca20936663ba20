"""Root conftest: the same environment for unit tests and for the chapter kernels nbval starts."""

import os

import pytest

os.environ.setdefault("RMTLR_PROFILE", "quick")
os.environ.setdefault("TQDM_DISABLE", "1")

# Property tests draw the same examples on every run, so `make test` on a fresh clone is
# reproducible; `pytest --hypothesis-profile=default tests` draws fresh examples to explore.
try:
    from hypothesis import settings
except ImportError:  # the test extra is not installed: there are no property tests to run
    pass
else:
    settings.register_profile("rmtlr", derandomize=True, database=None)
    settings.load_profile("rmtlr")


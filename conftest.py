"""Root conftest: the same environment for unit tests and for the chapter kernels nbval starts."""

import os

os.environ.setdefault("RMTLR_PROFILE", "quick")
os.environ.setdefault("TQDM_DISABLE", "1")

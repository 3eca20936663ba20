"""rmtlr: learning rates as a function of batch size, from random-matrix theory.

The library behind the executable textbook. Subpackages:

- :mod:`rmtlr.rmt` — random-matrix laws, outliers and the batch-noise model (NumPy/SciPy).
- :mod:`rmtlr.curvature` — Hessian/GGN linear operators of PyTorch networks, Lanczos, SLQ.
- :mod:`rmtlr.scaling` — the learning-rate laws (SGD linear, Adam square root).
- :mod:`rmtlr.profiles` — the ``quick`` (CPU) and ``full`` (GPU, paper scale) profiles.
- :mod:`rmtlr.plotting` — the book's figure style.
"""

__version__ = "0.1.0"

from rmtlr.profiles import Profile, default_device, get_profile

__all__ = ["Profile", "__version__", "default_device", "get_profile"]

"""Shared helpers for the spectral tests (imported by test modules, not collected)."""

import numpy as np
from scipy.integrate import cumulative_trapezoid


def ks_to_density(eigs: np.ndarray, x: np.ndarray, rho: np.ndarray) -> float:
    """Kolmogorov distance between the ESD and the CDF of a density tabulated on x."""
    cdf = cumulative_trapezoid(rho, x, initial=0.0)
    cdf /= cdf[-1]
    F = np.interp(np.sort(eigs), x, cdf)
    i = np.arange(1, eigs.size + 1) / eigs.size
    return max(np.abs(i - F).max(), np.abs(i - 1 / eigs.size - F).max())

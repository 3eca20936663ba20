"""Network curvature as linear operators: Hessian/GGN products, Lanczos, SLQ.

:class:`HessianOperator` and :class:`GGNOperator` turn a model, a loss and data (one
batch, a list of batches or a loader) into a P×P operator on flat parameter vectors;
``batch_op - full_op`` is the batch-noise matrix ε of Granziol, Zohren & Roberts (2022).
"""

from rmtlr.curvature.base import CurvatureOperator, LinearCombination, MatrixOperator
from rmtlr.curvature.density import (
    HessianVariance,
    SLQDensity,
    TraceEstimate,
    hessian_variance,
    hutchinson_trace,
    slq_density,
    slq_vector_seeds,
)
from rmtlr.curvature.distributed import DistributedOperator
from rmtlr.curvature.hvp import (
    BN_MODES,
    HVP_METHODS,
    batch_norm_statistics,
    ggn_vector_product,
    hessian_vector_product,
)
from rmtlr.curvature.lanczos import LanczosResult, lanczos, top_eigenpairs
from rmtlr.curvature.operators import GGNOperator, HessianOperator, model_state_preserved

__all__ = [
    "BN_MODES",
    "HVP_METHODS",
    "CurvatureOperator",
    "DistributedOperator",
    "GGNOperator",
    "HessianOperator",
    "HessianVariance",
    "LanczosResult",
    "LinearCombination",
    "MatrixOperator",
    "SLQDensity",
    "TraceEstimate",
    "batch_norm_statistics",
    "ggn_vector_product",
    "hessian_variance",
    "hessian_vector_product",
    "hutchinson_trace",
    "lanczos",
    "model_state_preserved",
    "slq_density",
    "slq_vector_seeds",
    "top_eigenpairs",
]

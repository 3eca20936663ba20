"""Network curvature as linear operators: Hessian/GGN products, Lanczos, SLQ.

:class:`HessianOperator` and :class:`GGNOperator` turn a model, a loss and data (one
batch, a list of batches or a loader) into a P×P operator on flat parameter vectors;
``batch_op - full_op`` is the batch-noise matrix ε of Granziol, Zohren & Roberts (2022).
:func:`lanczos`, :func:`top_eigenpairs`, :func:`slq_density`, :func:`hutchinson_trace` and
:func:`hessian_variance` work on any :class:`CurvatureOperator` (the last on a network
operator); :func:`vector_to_params` maps a flat vector back to the layers.

Modules, each importing only those before it (and never another's private names):
``base`` (operator algebra), ``params`` and ``batches`` (flat vectors, data), ``hvp``
(per-batch product kernels, which know nothing of operators), ``operators`` (the network
operators: data handling, weighting, model state), then the algorithms ``lanczos``,
``eigen``, ``density``, ``distributed`` and ``variance``, which use only the operators'
public API. Arguments are checked with :mod:`rmtlr.rmt.validation` and devices with
:func:`rmtlr.profiles.resolve_device`, as everywhere in :mod:`rmtlr`.
"""

from rmtlr.curvature.base import CurvatureOperator, LinearCombination, MatrixOperator, as_operator
from rmtlr.curvature.density import (
    SLQDensity,
    TraceEstimate,
    hutchinson_trace,
    slq_density,
    slq_vector_seeds,
)
from rmtlr.curvature.distributed import DistributedOperator
from rmtlr.curvature.eigen import EigenResult, top_eigenpairs
from rmtlr.curvature.hvp import BN_MODES, HVP_METHODS, batch_norm_statistics
from rmtlr.curvature.lanczos import LanczosResult, lanczos, working_dtype
from rmtlr.curvature.operators import (
    LOSS_REDUCTIONS,
    GGNOperator,
    HessianOperator,
    NetworkOperator,
    ggn_vector_product,
    hessian_vector_product,
    model_state_preserved,
)
from rmtlr.curvature.params import params_to_vector, vector_to_params
from rmtlr.curvature.variance import HessianVariance, hessian_variance

__all__ = [
    "BN_MODES",
    "HVP_METHODS",
    "LOSS_REDUCTIONS",
    "CurvatureOperator",
    "DistributedOperator",
    "EigenResult",
    "GGNOperator",
    "HessianOperator",
    "HessianVariance",
    "LanczosResult",
    "LinearCombination",
    "MatrixOperator",
    "NetworkOperator",
    "SLQDensity",
    "TraceEstimate",
    "as_operator",
    "batch_norm_statistics",
    "ggn_vector_product",
    "hessian_variance",
    "hessian_vector_product",
    "hutchinson_trace",
    "lanczos",
    "model_state_preserved",
    "params_to_vector",
    "slq_density",
    "slq_vector_seeds",
    "top_eigenpairs",
    "vector_to_params",
    "working_dtype",
]

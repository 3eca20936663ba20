"""Random-matrix theory of the batch Hessian (NumPy/SciPy only; never imports torch).

Modules: :mod:`~rmtlr.rmt.ensembles` (samplers), :mod:`~rmtlr.rmt.laws` (limiting laws and
Stieltjes transforms), :mod:`~rmtlr.rmt.freeprob` (free convolution, vector Dyson equation),
:mod:`~rmtlr.rmt.ggn` (Gauss–Newton / spiked Wishart, Thm 7),
:mod:`~rmtlr.rmt.outliers` (BBP/BGN outliers and overlaps), :mod:`~rmtlr.rmt.batch`
(effective batch size, Theorem 4, the batch-noise model).
"""

from rmtlr.rmt import batch, ensembles, freeprob, ggn, laws, outliers
from rmtlr.rmt.batch import *
from rmtlr.rmt.ensembles import *
from rmtlr.rmt.freeprob import *
from rmtlr.rmt.ggn import *
from rmtlr.rmt.laws import *
from rmtlr.rmt.outliers import *

__all__ = [  # noqa: PLE0604 (the submodules' __all__ are lists of strings)
    *batch.__all__, *ensembles.__all__, *freeprob.__all__, *ggn.__all__, *laws.__all__,
    *outliers.__all__,
]

"""Random-matrix theory of the batch Hessian (NumPy and SciPy only; never imports torch).

Modules:

- :mod:`~rmtlr.rmt.ensembles`: seeded samplers (Wigner, Wishart, spikes, variance profiles);
- :mod:`~rmtlr.rmt.laws`: limiting laws and Stieltjes transforms (semicircle,
  Marchenko–Pastur, Tracy–Widom);
- :mod:`~rmtlr.rmt.outliers`: BBP/Benaych-Georges–Nadakuditi outliers and overlaps;
- :mod:`~rmtlr.rmt.batch`: effective batch size, the batch-noise model, Theorems 4 and 10;
- :mod:`~rmtlr.rmt.ggn`: the Gauss–Newton matrix as a spiked sample covariance (Thm 7);
- :mod:`~rmtlr.rmt.dyson`: variance profiles ("field-dependent" noise), vector Dyson equation;
- :mod:`~rmtlr.rmt.freeconv`: free additive convolution by subordination;
- :mod:`~rmtlr.rmt.validation`: the argument checks every module of the library uses.

The public functions of the first seven are also available here, e.g.
``rmtlr.rmt.batch_outlier``.
"""

from rmtlr.rmt import batch, dyson, ensembles, freeconv, ggn, laws, outliers
from rmtlr.rmt.batch import *
from rmtlr.rmt.dyson import *
from rmtlr.rmt.ensembles import *
from rmtlr.rmt.freeconv import *
from rmtlr.rmt.ggn import *
from rmtlr.rmt.laws import *
from rmtlr.rmt.outliers import *

__all__ = [  # noqa: PLE0604 (the submodules' __all__ are lists of strings)
    *batch.__all__, *dyson.__all__, *ensembles.__all__, *freeconv.__all__, *ggn.__all__,
    *laws.__all__, *outliers.__all__,
]

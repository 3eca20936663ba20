"""Wide residual networks WRN-d-k (Zagoruyko & Komodakis 2016).

Depth d = 6n + 4 with n pre-activation basic blocks per stage, stage widths 16k, 32k, 64k.
WRN-28-10 on CIFAR-100 has about 36.5 M parameters (Zagoruyko & Komodakis 2016, Table 2).
"""

from __future__ import annotations

from rmtlr.models.resnet import PreActResNet
from rmtlr.rmt.validation import integer

__all__ = ["WideResNet"]


class WideResNet(PreActResNet):
    """WRN-depth-width for 3×32×32 images.

    Parameters
    ----------
    depth : int
        Total depth, of the form 6n + 4 with n ≥ 1 (10, 16, 22, 28, ...).
    width : int
        Widening factor k ≥ 1.
    num_classes : int
        Number of output classes, an integer ≥ 1.
    dropout : float
        Dropout between the two convolutions of a block, in [0, 1).

    Raises
    ------
    TypeError
        If a size or ``dropout`` is not a real number.
    ValueError
        If ``depth`` is not 6n + 4, ``width`` or ``num_classes`` is not a whole number
        ≥ 1, or ``dropout`` is not in [0, 1).
    """

    def __init__(self, depth: int = 28, width: int = 10, num_classes: int = 100,
                 dropout: float = 0.0) -> None:
        depth = integer("depth", depth)
        width = integer("width", width)
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        super().__init__((16, 16 * width, 32 * width, 64 * width), (depth - 4) // 6,
                         num_classes, dropout)

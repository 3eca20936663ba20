"""Wide residual networks WRN-d-k (Zagoruyko & Komodakis 2016).

Depth d = 6n + 4 with n pre-activation basic blocks per stage, stage widths 16k, 32k, 64k.
WRN-28-10 on CIFAR-100 has about 36.5 M parameters (Zagoruyko & Komodakis 2016, Table 2).
"""

from __future__ import annotations

from rmtlr.models.resnet import PreActResNet


class WideResNet(PreActResNet):
    """WRN-depth-width for 3×32×32 images.

    Parameters
    ----------
    depth: total depth, of the form 6n + 4 (e.g. 28, 16, 10).
    width: widening factor k ≥ 1.
    num_classes: output classes. dropout: dropout between the two convolutions of a block.
    """

    def __init__(self, depth: int = 28, width: int = 10, num_classes: int = 100,
                 dropout: float = 0.0):
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        super().__init__((16, 16 * width, 32 * width, 64 * width), (depth - 4) // 6,
                         num_classes, dropout)

"""Pre-activation ResNets for CIFAR (He, Zhang, Ren & Sun 2016, "Identity mappings").

Depth d = 6n + 2 with n basic blocks per stage and widths 16, 32, 64; PreResNet-110
(n = 18) has about 1.7 M parameters (He et al. 2016, Table 3). The paper's Lanczos learner
(Granziol et al. 2022, Sec. 10.2) is demonstrated on it.
"""

from __future__ import annotations

from rmtlr.models.resnet import PreActResNet
from rmtlr.rmt.validation import integer

__all__ = ["PreResNet"]


class PreResNet(PreActResNet):
    """PreResNet-depth (basic blocks) for 3×32×32 images.

    Parameters
    ----------
    depth : int
        Total depth, of the form 6n + 2 with n ≥ 1 (8, 20, 32, 56, 110, ...).
    num_classes : int
        Number of output classes, an integer ≥ 1.

    Raises
    ------
    TypeError
        If ``depth`` or ``num_classes`` is not a number.
    ValueError
        If ``depth`` is not 6n + 2 or ``num_classes`` is not a whole number ≥ 1.
    """

    def __init__(self, depth: int = 110, num_classes: int = 100) -> None:
        depth = integer("depth", depth)
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 20, 32, 56, 110), got {depth}")
        super().__init__((16, 16, 32, 64), (depth - 2) // 6, num_classes)

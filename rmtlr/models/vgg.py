"""VGG-16 for 32×32 inputs (Simonyan & Zisserman 2015, CIFAR variant).

The CIFAR variant used by Granziol, Zohren & Roberts (2022, Sec. 9) keeps the thirteen 3×3
convolutions of configuration D, lets five 2×2 max-pools reduce 32×32 to 1×1, and ends in a
512–512–512–classes multilayer classifier with dropout. Without BatchNorm and with 100 classes
this has P = 15,291,300 parameters, the number quoted in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from rmtlr.models.resnet import check_dropout
from rmtlr.rmt.validation import finite_scalar, integer

__all__ = ["VGG16", "VGG16_CFG"]

#: Configuration "D" of Simonyan & Zisserman (2015): channels, with "M" for a 2×2 max-pool.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """VGG-16 for 3×32×32 images.

    Parameters
    ----------
    num_classes : int
        Number of output classes, an integer ≥ 1.
    batch_norm : bool
        Insert BatchNorm after every convolution (the paper's "VGG-16-BN").
    dropout : float
        Dropout probability in the classifier, in [0, 1).
    width : float
        Channel multiplier of every layer, in (0, 1]: ``width=1/8`` keeps the topology (13
        convolutions, five pools, three linear layers) with 8–64 channels and a 64-unit
        classifier, a CPU-sized VGG-16 (P = 239,538 for 10 classes without BN).

    Raises
    ------
    TypeError
        If ``num_classes``, ``dropout`` or ``width`` is not a real number, or
        ``batch_norm`` not a bool.
    ValueError
        If ``num_classes`` is not a whole number ≥ 1, ``dropout`` is not in [0, 1) or ``width`` not in (0, 1]
        or so small that a layer would have no channel.
    """

    def __init__(self, num_classes: int = 100, batch_norm: bool = False,
                 dropout: float = 0.5, width: float = 1.0) -> None:
        super().__init__()
        num_classes = integer("num_classes", num_classes)
        if not isinstance(batch_norm, bool):
            raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}")
        dropout = check_dropout(dropout)
        width = finite_scalar("width", width, lo=0, hi=1, lo_open=True)
        if round(64 * width) < 1:
            raise ValueError(f"width must be in (0, 1] with 64·width >= 1, got {width!r}")
        self.width = width
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            v = round(v * width)
            layers.append(nn.Conv2d(c_in, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c_in = v
        self.features = nn.Sequential(*layers)
        hidden = round(512 * width)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c_in, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # He initialisation keeps activations O(1) through 13 ReLU layers without BN.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of images to logits.

        Parameters
        ----------
        x : torch.Tensor
            The batch: images (batch, 3, 32, 32).

        Returns
        -------
        torch.Tensor
            Logits (batch, num_classes).
        """
        return self.classifier(self.features(x).flatten(1))

"""Wide residual networks WRN-d-k (Zagoruyko & Komodakis 2016).

Depth d = 6n + 4 with n pre-activation basic blocks per stage, stage widths 16k, 32k, 64k.
WRN-28-10 on CIFAR-100 has about 36.5 M parameters (Zagoruyko & Komodakis 2016, Table 2).
"""

from __future__ import annotations

import torch
from torch import nn


class _WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x):
        o = torch.relu(self.bn1(x))
        # The projection shortcut takes the pre-activated input, as in the authors' code.
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = self.conv2(self.dropout(torch.relu(self.bn2(o))))
        return o + skip


class WideResNet(nn.Module):
    """WRN-depth-width for 3×32×32 images.

    Parameters
    ----------
    depth: total depth, of the form 6n + 4 (e.g. 28, 16, 10).
    width: widening factor k ≥ 1.
    num_classes: output classes. dropout: dropout between the two convolutions of a block.
    """

    def __init__(self, depth: int = 28, width: int = 10, num_classes: int = 100,
                 dropout: float = 0.0):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        n = (depth - 4) // 6
        widths = (16, 16 * width, 32 * width, 64 * width)
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths[1:]):
            for i in range(n):
                blocks.append(_WideBlock(c_in, c_out, 2 if (stage > 0 and i == 0) else 1, dropout))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        o = torch.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(o, 1), 1))

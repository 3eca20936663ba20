"""Pre-activation ResNets for CIFAR (He, Zhang, Ren & Sun 2016, "Identity mappings").

Depth d = 6n + 2 with n basic blocks per stage and widths 16, 32, 64; PreResNet-110
(n = 18) has about 1.7 M parameters (He et al. 2016, Table 3). The paper's Lanczos learner
(Granziol et al. 2022, Sec. 10.2) is demonstrated on it.
"""

from __future__ import annotations

import torch
from torch import nn


class _PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x):
        o = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        return self.conv2(torch.relu(self.bn2(o))) + skip


class PreResNet(nn.Module):
    """PreResNet-depth (basic blocks) for 3×32×32 images.

    Parameters
    ----------
    depth: 6n + 2 (20, 32, 56, 110, ...). num_classes: output classes.
    """

    def __init__(self, depth: int = 110, num_classes: int = 100):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 20, 32, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        c_in = 16
        for stage, c_out in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(_PreActBlock(c_in, c_out, 2 if (stage > 0 and i == 0) else 1))
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

"""The pre-activation residual trunk shared by PreResNet and WideResNet.

Both are a 3×3 stem, three stages of pre-activation basic blocks (BN-ReLU-conv twice, the
first block of stages 2 and 3 striding by 2), then BN-ReLU, global average pooling and a
linear head (He, Zhang, Ren & Sun 2016; Zagoruyko & Komodakis 2016). They differ only in
stage widths, blocks per stage and dropout.
"""

from __future__ import annotations

import torch
from torch import nn

from rmtlr.rmt.validation import finite_scalar, integer

__all__ = ["PreActBlock", "PreActResNet", "check_dropout"]


def check_dropout(dropout: float) -> float:
    """Check a dropout probability: a real number in [0, 1).

    Parameters
    ----------
    dropout : float
        The probability.

    Returns
    -------
    float
        ``dropout`` as a float.

    Raises
    ------
    TypeError
        If ``dropout`` is not a single real number.
    ValueError
        If ``dropout`` is not in [0, 1).
    """
    return finite_scalar("dropout", dropout, lo=0, hi=1, hi_open=True)


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3×3, (dropout,) BN-ReLU-conv3×3, plus skip.

    Parameters
    ----------
    c_in : int
        Input channels.
    c_out : int
        Output channels.
    stride : int
        Stride of the first convolution (and of the projection shortcut).
    dropout : float
        Dropout probability between the two convolutions, in [0, 1).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to a batch of feature maps.

        Parameters
        ----------
        x : torch.Tensor
            The batch: feature maps (batch, c_in, H, W).

        Returns
        -------
        torch.Tensor
            Feature maps (batch, c_out, H/stride, W/stride).
        """
        o = torch.relu(self.bn1(x))
        # The projection shortcut takes the pre-activated input, as in the authors' code.
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        return self.conv2(self.dropout(torch.relu(self.bn2(o)))) + skip


class PreActResNet(nn.Module):
    """Stem of width ``widths[0]``, then ``blocks_per_stage`` blocks at each of ``widths[1:]``.

    Parameters
    ----------
    widths : tuple of int
        Stem width and the widths of the three stages.
    blocks_per_stage : int
        Basic blocks per stage, an integer ≥ 1.
    num_classes : int
        Number of outputs, an integer ≥ 1.
    dropout : float
        Dropout probability inside each block, in [0, 1).

    Raises
    ------
    TypeError
        If a size or ``dropout`` is not a real number.
    ValueError
        If a size is not a whole number ≥ 1 or ``dropout`` is not in [0, 1).
    """

    def __init__(self, widths: tuple[int, int, int, int], blocks_per_stage: int,
                 num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        blocks_per_stage = integer("blocks_per_stage", blocks_per_stage)
        num_classes = integer("num_classes", num_classes)
        dropout = check_dropout(dropout)
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths[1:]):
            for i in range(blocks_per_stage):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(PreActBlock(c_in, c_out, stride, dropout))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of images to logits.

        Parameters
        ----------
        x : torch.Tensor
            The batch: images (batch, 3, H, W).

        Returns
        -------
        torch.Tensor
            Logits (batch, num_classes).
        """
        o = torch.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(o, 1), 1))

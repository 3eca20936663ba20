"""Small networks for the CPU chapters (quick profile).

An MLP like the one of the paper's Gaussian-mixture experiment (Granziol et al. 2022,
Sec. 13) and a small CNN for 3×32×32 images. Both are plain ReLU nets without
BatchNorm or dropout, so their Hessian is that of a fixed function of the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from rmtlr.rmt.validation import integer

__all__ = ["MLP", "SmallCNN"]


class MLP(nn.Module):
    """Fully connected ReLU network in_dim → hidden (× depth) → num_classes.

    Inputs of any shape are flattened, so images can be fed directly.

    Parameters
    ----------
    in_dim : int
        Input features, an integer ≥ 1.
    hidden : int
        Width of each hidden layer, an integer ≥ 1.
    depth : int
        Number of hidden layers, an integer ≥ 1.
    num_classes : int
        Number of outputs, an integer ≥ 1.

    Raises
    ------
    TypeError
        If a size is not a number.
    ValueError
        If a size is not a whole number ≥ 1.

    Examples
    --------
    >>> MLP(in_dim=4, hidden=3, depth=1, num_classes=2)(torch.zeros(5, 2, 2)).shape
    torch.Size([5, 2])
    """

    def __init__(self, in_dim: int = 32, hidden: int = 64, depth: int = 2,
                 num_classes: int = 10) -> None:
        super().__init__()
        in_dim = integer("in_dim", in_dim)
        hidden = integer("hidden", hidden)
        depth = integer("depth", depth)
        num_classes = integer("num_classes", num_classes)
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of inputs to logits.

        Parameters
        ----------
        x : torch.Tensor
            The batch: inputs (batch, ...) with in_dim entries per sample.

        Returns
        -------
        torch.Tensor
            Logits (batch, num_classes).
        """
        return self.net(x)


class SmallCNN(nn.Module):
    """Three 3×3 conv–ReLU–max-pool stages (width, 2·width, 4·width) and a linear head.

    The network is size-agnostic (global average pooling before the head), for images of
    at least 8×8 pixels.

    Parameters
    ----------
    num_classes : int
        Number of outputs, an integer ≥ 1.
    width : int
        Channels of the first stage, an integer ≥ 1.
    in_channels : int
        Image channels, an integer ≥ 1.

    Raises
    ------
    TypeError
        If a size is not a number.
    ValueError
        If a size is not a whole number ≥ 1.

    Examples
    --------
    >>> SmallCNN(num_classes=3, width=2)(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 3])
    """

    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        num_classes = integer("num_classes", num_classes)
        width = integer("width", width)
        in_channels = integer("in_channels", in_channels)
        layers: list[nn.Module] = []
        c = in_channels
        for c_out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of images to logits.

        Parameters
        ----------
        x : torch.Tensor
            The batch: images (batch, in_channels, H, W).

        Returns
        -------
        torch.Tensor
            Logits (batch, num_classes).
        """
        return self.head(self.features(x).mean(dim=(2, 3)))

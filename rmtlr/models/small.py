"""Small networks for the CPU chapters (quick profile).

An MLP like the one of the paper's Gaussian-mixture experiment (Granziol et al. 2022,
Sec. 13) and a small CNN for 3×32×32 images. Both are plain ReLU nets without
BatchNorm or dropout, so their Hessian is that of a fixed function of the weights.
"""

from __future__ import annotations

from torch import nn


class MLP(nn.Module):
    """Fully connected ReLU network in_dim → hidden (× depth) → num_classes.

    Parameters
    ----------
    in_dim: input features (> 0). hidden: width of each hidden layer (> 0).
    depth: number of hidden layers (≥ 1). num_classes: outputs (> 0).
    Inputs of any shape are flattened, so images can be fed directly.
    """

    def __init__(self, in_dim: int = 32, hidden: int = 64, depth: int = 2, num_classes: int = 10):
        super().__init__()
        for name, v, lo in (("in_dim", in_dim, 1), ("hidden", hidden, 1), ("depth", depth, 1),
                            ("num_classes", num_classes, 1)):
            if int(v) < lo:
                raise ValueError(f"{name} must be >= {lo}, got {v}")
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class SmallCNN(nn.Module):
    """Three 3×3 conv–ReLU–max-pool stages (width, 2·width, 4·width) and a linear head.

    Parameters
    ----------
    num_classes: outputs. width: channels of the first stage (> 0). in_channels: image
    channels. The network is size-agnostic (global average pooling before the head).
    """

    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 3):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        w = (width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        c = in_channels
        for c_out in w:
            layers += [nn.Conv2d(c, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))

"""Networks of the paper (VGG-16, WideResNet, PreResNet) and small CPU networks.

Use :func:`build` with a name from :data:`MODEL_NAMES`; :func:`count_parameters` gives P.
"""

from __future__ import annotations

from torch import nn

from rmtlr.models.preresnet import PreResNet
from rmtlr.models.small import MLP, SmallCNN
from rmtlr.models.vgg import VGG16
from rmtlr.models.wrn import WideResNet

__all__ = [
    "MLP",
    "MODEL_NAMES",
    "VGG16",
    "PreResNet",
    "SmallCNN",
    "WideResNet",
    "build",
    "count_parameters",
]

_BUILDERS = {
    "vgg16": lambda c, **kw: VGG16(c, batch_norm=False, **kw),
    "vgg16_bn": lambda c, **kw: VGG16(c, batch_norm=True, **kw),
    "wrn": lambda c, **kw: WideResNet(num_classes=c, **kw),
    "wrn28_10": lambda c, **kw: WideResNet(28, 10, num_classes=c, **kw),
    "preresnet110": lambda c, **kw: PreResNet(110, num_classes=c, **kw),
    "preresnet": lambda c, **kw: PreResNet(num_classes=c, **kw),
    "mlp": lambda c, **kw: MLP(num_classes=c, **kw),
    "small_cnn": lambda c, **kw: SmallCNN(num_classes=c, **kw),
}

#: Names accepted by :func:`build`.
MODEL_NAMES = tuple(_BUILDERS)


def build(name: str, num_classes: int, **kw) -> nn.Module:
    """Build a network by name.

    Parameters
    ----------
    name: one of :data:`MODEL_NAMES` (``"wrn"`` takes ``depth``/``width``, ``"preresnet"``
        takes ``depth``, ``"mlp"`` takes ``in_dim``/``hidden``/``depth``, ``"small_cnn"``
        takes ``width``).
    num_classes: number of outputs (> 0).
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in _BUILDERS:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return _BUILDERS[key](int(num_classes), **kw)


def count_parameters(model: nn.Module) -> int:
    """P, the number of trainable parameters (the dimension of the Hessian)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

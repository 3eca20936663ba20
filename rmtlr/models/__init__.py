"""Networks of the paper (VGG-16, WideResNet, PreResNet) and small CPU networks.

Use :func:`build` with a name from :data:`MODEL_NAMES`; :func:`count_parameters` gives P.

Examples
--------
>>> from rmtlr.models import build, count_parameters
>>> count_parameters(build("mlp", 10, in_dim=8, hidden=16, depth=1))  # 8·16 + 16 + 16·10 + 10
314
"""

from __future__ import annotations

from typing import Any

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

# name -> (class, arguments the name fixes, arguments a caller may add)
_BUILDERS: dict[str, tuple[type[nn.Module], dict[str, Any], tuple[str, ...]]] = {
    "vgg16": (VGG16, {"batch_norm": False}, ("dropout", "width")),
    "vgg16_bn": (VGG16, {"batch_norm": True}, ("dropout", "width")),
    "wrn": (WideResNet, {}, ("depth", "width", "dropout")),
    "wrn28_10": (WideResNet, {"depth": 28, "width": 10}, ("dropout",)),
    "preresnet110": (PreResNet, {"depth": 110}, ()),
    "preresnet": (PreResNet, {}, ("depth",)),
    "mlp": (MLP, {}, ("in_dim", "hidden", "depth")),
    "small_cnn": (SmallCNN, {}, ("width", "in_channels")),
}

#: Names accepted by :func:`build`.
MODEL_NAMES = tuple(_BUILDERS)


def build(name: str, num_classes: int, **kw: Any) -> nn.Module:
    """Build a network by name.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES` (case and ``-``/``_`` are ignored).
    num_classes : int
        Number of outputs, an integer ≥ 1.
    **kw
        Architecture arguments the name allows: ``dropout`` and ``width`` for ``"vgg16"``
        and ``"vgg16_bn"``; ``dropout`` for ``"wrn28_10"``; ``depth``, ``width`` and ``dropout`` for
        ``"wrn"``; ``depth`` for ``"preresnet"``; ``in_dim``, ``hidden`` and ``depth`` for
        ``"mlp"``; ``width`` and ``in_channels`` for ``"small_cnn"``.

    Returns
    -------
    torch.nn.Module
        The freshly initialised network.

    Raises
    ------
    TypeError
        If ``name`` is not a string, ``num_classes`` is not a number (``"10"``, ``True``),
        an argument is not one the name allows, or an architecture argument has the
        wrong type.
    ValueError
        If ``name`` is unknown, ``num_classes`` is not a whole number ≥ 1 (``10.7``), or
        an architecture argument is out of range.

    Examples
    --------
    >>> build("small_cnn", 10, width=4).head
    Linear(in_features=16, out_features=10, bias=True)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string (one of {', '.join(MODEL_NAMES)}), got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key not in _BUILDERS:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    cls, fixed, allowed = _BUILDERS[key]
    extra = sorted(set(kw) - set(allowed))
    if extra:
        fixed_text = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
        # Python's own error for an unexpected keyword argument is a TypeError.
        raise TypeError(
            f"{key} does not take {', '.join(extra)}; it takes "
            f"{', '.join(allowed) or 'no architecture arguments'}"
            + (f" (it fixes {fixed_text})" if fixed_text else "")
        )
    return cls(num_classes=num_classes, **fixed, **kw)


def count_parameters(model: nn.Module) -> int:
    """P, the number of trainable parameters (the dimension of the Hessian).

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Returns
    -------
    int
        The number of entries of all parameters with ``requires_grad``.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`torch.nn.Module`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

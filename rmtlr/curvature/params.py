"""Flat parameter vectors and named parameter tensors, in both directions.

Every curvature operator acts on flat vectors of length P: the selected parameters,
flattened and concatenated in the model's ``named_parameters()`` order.
:func:`params_to_vector` builds such a vector; :func:`vector_to_params` splits one — an
eigenvector, say — back into tensors named and shaped like the parameters, so that a
reader can see which layers a curvature direction lives in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

__all__ = ["params_to_vector", "vector_to_params"]


def _named(params: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(params, nn.Module):
        return {k: p for k, p in params.named_parameters() if p.requires_grad}
    return dict(params)


def params_to_vector(params: nn.Module | Mapping[str, torch.Tensor] | Iterable[torch.Tensor]
                     ) -> torch.Tensor:
    """Flatten and concatenate tensors into one vector (detached from autograd).

    Parameters
    ----------
    params : torch.nn.Module or mapping of str to torch.Tensor or iterable of torch.Tensor
        A model (its parameters with ``requires_grad``, in ``named_parameters()`` order —
        the order the curvature operators use by default), a mapping from names to
        tensors (in the mapping's order), or tensors.

    Returns
    -------
    torch.Tensor
        The 1-D concatenation, of the tensors' common dtype and device.

    Raises
    ------
    ValueError
        If there are no tensors.
    TypeError
        If an entry is not a tensor.

    Examples
    --------
    >>> from torch import nn
    >>> params_to_vector(nn.Linear(3, 2)).shape
    torch.Size([8])
    """
    if isinstance(params, (nn.Module, Mapping)):
        tensors = list(_named(params).values())
    else:
        tensors = list(params)
    if not tensors:
        raise ValueError("params must contain at least one tensor")
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"params must be tensors, got {type(t).__name__}")
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def vector_to_params(vector: torch.Tensor,
                     like: nn.Module | Mapping[str, torch.Tensor | Sequence[int]]
                     ) -> dict[str, torch.Tensor]:
    """Split a flat vector into named tensors shaped like the parameters.

    The inverse of :func:`params_to_vector`. For a curvature operator ``op``,
    ``vector_to_params(v, op.param_shapes)`` (or ``op.vector_to_params(v)``) maps an
    eigenvector ``v`` to its per-layer blocks.

    Parameters
    ----------
    vector : torch.Tensor
        A flat vector of length P, or a P×k block (each column is split; the tensors
        then get a trailing dimension of size k).
    like : torch.nn.Module or mapping of str to torch.Tensor or shape
        A model (its parameters with ``requires_grad``, in order), or a mapping from names
        to tensors or shapes, in the order of the vector's blocks.

    Returns
    -------
    dict of str to torch.Tensor
        One tensor per name; views into ``vector`` whenever its layout allows.

    Raises
    ------
    ValueError
        If the vector's length is not the total size of ``like``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> parts = vector_to_params(torch.arange(8.0), nn.Linear(3, 2))
    >>> {name: tuple(t.shape) for name, t in parts.items()}
    {'weight': (2, 3), 'bias': (2,)}
    """
    if not isinstance(vector, torch.Tensor) or vector.ndim not in (1, 2):
        raise ValueError("vector must be a 1-D tensor (or a 2-D block of column vectors)")
    shapes = {k: (tuple(t.shape) if isinstance(t, torch.Tensor) else tuple(int(i) for i in t))
              for k, t in _named(like).items()}
    numels = [int(torch.Size(s).numel()) for s in shapes.values()]
    if sum(numels) != vector.shape[0]:
        raise ValueError(f"vector has length {vector.shape[0]}, but the parameters have "
                         f"{sum(numels)} entries")
    extra = tuple(vector.shape[1:])
    return {k: part.reshape(*s, *extra)
            for (k, s), part in zip(shapes.items(), torch.split(vector, numels))}

"""The full-data operator under ``torch.distributed``: each rank holds a shard of the data.

H v = (1/N) Σ_b n_b H_b v splits over ranks r as (Σ_r s_r)/(Σ_r n_r) with
s_r = Σ_{b on r} n_b H_b v and n_r the rank's sample count, so one all-reduce of s_r and
one of n_r give every rank the same product as a single process holding all the data —
uneven shards included. Run :func:`rmtlr.curvature.lanczos` with the same ``seed`` on every
rank: the start vector is drawn on the CPU from the seed, and all-reduce returns identical
results everywhere, so the ranks stay in lock-step. The same holds for
:func:`~rmtlr.curvature.top_eigenpairs`, :func:`~rmtlr.curvature.slq_density` and
:func:`~rmtlr.curvature.hutchinson_trace`, which only multiply by the operator, and for
:func:`~rmtlr.curvature.hessian_variance`, which sums its per-unit statistics over ranks
with :meth:`DistributedOperator.all_reduce`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from rmtlr.curvature.base import CurvatureOperator
from rmtlr.curvature.operators import NetworkOperator

__all__ = ["DistributedOperator"]


class DistributedOperator(CurvatureOperator):
    """Wrap a per-rank :class:`HessianOperator`/:class:`GGNOperator` into the global one.

    Parameters
    ----------
    local : NetworkOperator
        The operator over this rank's shard (same model weights on every rank; a rank
        with an empty shard is allowed as long as the global data is not empty).
    group : torch.distributed.ProcessGroup, optional
        Process group (default: the world). Its backend must support the operator's
        device (gloo for CPU tensors, nccl for CUDA).

    Raises
    ------
    TypeError
        If ``local`` is not a network operator.
    ValueError
        If ``torch.distributed`` is not initialised.
    """

    def __init__(self, local: NetworkOperator, *, group: dist.ProcessGroup | None = None):
        if not isinstance(local, NetworkOperator):
            raise TypeError("local must be a HessianOperator or GGNOperator, "
                            f"got {type(local).__name__}")
        if not dist.is_available() or not dist.is_initialized():
            raise ValueError("torch.distributed is not initialised: call "
                             "torch.distributed.init_process_group first")
        self.local, self.group = local, group
        self._P, self._dtype, self._device = local.shape[0], local.dtype, local.device

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over the ranks of the operator's group, in place.

        Parameters
        ----------
        t : torch.Tensor
            This rank's part, on a device the group's backend supports.

        Returns
        -------
        torch.Tensor
            ``t`` itself, now holding the sum over ranks (the same on every rank).
        """
        dist.all_reduce(t, group=self.group)
        return t

    def _reduce(self, V: torch.Tensor) -> torch.Tensor:
        total, n = self.local.accumulate(V)
        count = torch.tensor([float(n)], dtype=torch.float64, device=V.device)
        self.all_reduce(total)
        self.all_reduce(count)
        if count.item() == 0:
            raise ValueError("data is empty on every rank (no samples)")
        return self.local.check_product(total.div_(count.item()))

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._reduce(v)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self._reduce(V)

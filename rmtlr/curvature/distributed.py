"""The full-data operator under ``torch.distributed``: each rank holds a shard of the data.

H v = (1/N) Σ_b n_b H_b v splits over ranks r as (Σ_r s_r)/(Σ_r n_r) with
s_r = Σ_{b on r} n_b H_b v and n_r the rank's sample count, so one all-reduce of s_r and
one of n_r give every rank the same product as a single process holding all the data —
uneven shards included. Run :func:`rmtlr.curvature.lanczos` with the same ``seed`` on every
rank: the start vector is drawn on the CPU from the seed, and all-reduce returns identical
results everywhere, so the ranks stay in lock-step.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from rmtlr.curvature.base import CurvatureOperator
from rmtlr.curvature.operators import _check_finite, _NetworkOperator

__all__ = ["DistributedOperator"]


class DistributedOperator(CurvatureOperator):
    """Wrap a per-rank :class:`HessianOperator`/:class:`GGNOperator` into the global one.

    Parameters
    ----------
    local: the operator over this rank's shard (same model weights on every rank; a rank
        with an empty shard is allowed as long as the global data is not empty).
    group: process group (default: the world). The backend must support the operator's
        device (gloo for CPU tensors, nccl for CUDA).
    """

    def __init__(self, local: _NetworkOperator, group=None):
        if not isinstance(local, _NetworkOperator):
            raise TypeError("local must be a HessianOperator or GGNOperator, "
                            f"got {type(local).__name__}")
        if not dist.is_available() or not dist.is_initialized():
            raise ValueError("torch.distributed is not initialised: call "
                             "torch.distributed.init_process_group first")
        self.local, self.group = local, group
        self._P, self._dtype, self._device = local._P, local.dtype, local.device

    def _matvec(self, v):
        try:
            total, n = self.local.accumulate(v)
        except ValueError as err:
            if "empty" not in str(err):
                raise
            total, n = torch.zeros_like(v), 0
        count = torch.tensor([float(n)], dtype=torch.float64, device=v.device)
        dist.all_reduce(total, group=self.group)
        dist.all_reduce(count, group=self.group)
        if count.item() == 0:
            raise ValueError("data is empty on every rank (no samples)")
        out = total.div_(count.item())
        _check_finite(out, self.local._kind)
        return out

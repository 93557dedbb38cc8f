"""Agreement between data-parallel ranks for the tuner's decisions.

When a torch.distributed process group with more than one rank is initialized, the tuner treats
the ranks as one data-parallel job. Each rank measures losses on its own slice of the batches,
and the losses are averaged across ranks before any decision. The chosen LR is then checked to
be the same on every rank. Without a process group these functions return their input unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist


def data_parallel() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_loss(loss: float | torch.Tensor) -> float:
    """Average a scalar loss over the ranks and return it as a float (NaN everywhere if any rank has NaN)."""
    if not data_parallel():
        return float(loss)
    value = torch.as_tensor(loss, dtype=torch.float64).detach().reshape(1).to(_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return float(value) / dist.get_world_size()


def check_same_value(value: float, what: str) -> None:
    """Raise RuntimeError unless every rank has the same `value` (NaNs count as equal)."""
    if not data_parallel():
        return
    values: list = [None] * dist.get_world_size()
    dist.all_gather_object(values, float(value))
    first = values[0]
    same = all(v == first or (math.isnan(v) and math.isnan(first)) for v in values)
    if not same:
        listed = ", ".join(f"rank {rank}: {v!r}" for rank, v in enumerate(values))
        raise RuntimeError(f"data-parallel ranks disagree on {what} ({listed}); every rank must draw the "
                           "same batches with the same seed and average its losses across ranks")

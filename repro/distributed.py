"""Data-parallel training over torch.distributed, started by `torchrun --nproc_per_node=N -m repro run`.

Conventions of every distributed run:

- `trainer.batch_size` is the global batch. Each of the N ranks trains on batch_size / N examples
  per step, so a run on N processes takes the same steps, on the same examples, as a run on one.
- The global order of an epoch's batches is the single-process order, a function of (seed, epoch).
  Rank r takes the r-th contiguous slice of every global batch.
- BatchNorm statistics are computed over the global batch (torch's SyncBatchNorm on GPUs,
  GlobalBatchNorm below on CPUs), so the model matches a single-process run too.
- Only rank 0 writes files: CSVs, run.json, config.yaml, checkpoints and train.log.

Without torchrun's environment (WORLD_SIZE unset or 1) nothing here changes a run.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data.sampler import BatchSampler

from .errors import ConfigError

log = logging.getLogger(__name__)

# NOTE: torch 2.14 marks torch.distributed.nn.functional.all_reduce deprecated in favour of a
# private module. GlobalBatchNorm keeps it because it is the public differentiable all-reduce.
warnings.filterwarnings("ignore", message="torch.distributed.nn.functional.all_reduce is deprecated",
                        category=FutureWarning)


@dataclass(frozen=True)
class DistEnv:
    """Rank, world size and local rank of this process; the defaults describe a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistEnv()


def _export_submitit_environment() -> None:
    """Set torchrun's variables from SLURM's when a submitit job runs several tasks per node."""
    if "WORLD_SIZE" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    try:
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:
        return
    # NOTE: this path is written against submitit 1.5's helper and has not run on a SLURM cluster here.
    TorchDistributedEnvironment().export()


def init_distributed(device_name: str) -> DistEnv:
    """Join the process group that torchrun's environment describes, or return SINGLE without one.

    The backend is NCCL when the run trains on CUDA and gloo on CPUs. Each rank uses the GPU of
    its LOCAL_RANK.
    """
    _export_submitit_environment()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    env = DistEnv(dist.get_rank(), dist.get_world_size(), local_rank)
    log.info("rank %d of %d joined the %s process group", env.rank, env.world_size, dist.get_backend())
    return env


def shutdown_distributed(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: torch.device, env: DistEnv) -> torch.device:
    """Return this rank's device: cuda:LOCAL_RANK under data parallelism on GPUs, else `device`."""
    if env.enabled and device.type == "cuda":
        return torch.device("cuda", env.local_rank)
    return device


def per_rank_batch_size(batch_size: int, env: DistEnv) -> int:
    """Split the global batch evenly; raises ConfigError when it does not divide."""
    if batch_size % env.world_size:
        raise ConfigError(f"trainer.batch_size={batch_size} (the global batch) does not divide among "
                          f"{env.world_size} processes; use a multiple of {env.world_size}")
    return batch_size // env.world_size


# -- batches -----------------------------------------------------------------------------------

def shard_batch(batch: Any, env: DistEnv) -> Any:
    """This rank's contiguous slice (along dim 0) of every tensor in a batch of tensors, lists or dicts."""
    if isinstance(batch, torch.Tensor):
        return batch.tensor_split(env.world_size)[env.rank]
    if isinstance(batch, dict):
        return {key: shard_batch(value, env) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard_batch(value, env) for value in batch)
    return batch


class ShardedBatchSampler:
    """Yields rank r's slice of each index batch of a BatchSampler, so ranks load only their part."""

    def __init__(self, batch_sampler: BatchSampler, env: DistEnv):
        self.batch_sampler = batch_sampler
        self.env = env

    def __iter__(self) -> Iterator[list[int]]:
        for indices in self.batch_sampler:
            size = len(indices) // self.env.world_size
            yield indices[self.env.rank * size:(self.env.rank + 1) * size]

    def __len__(self) -> int:
        return len(self.batch_sampler)


class ShardedBatchSource:
    """A BatchSource whose draws are this rank's slices of the global batches that `source` draws.

    Every rank draws with the same generator, so the slices of one draw partition one global batch.
    """

    def __init__(self, source, env: DistEnv):
        self.source = source
        self.env = env

    def draw(self, count: int, generator: torch.Generator) -> list[Any]:
        return [shard_batch(batch, self.env) for batch in self.source.draw(count, generator)]


# -- collectives -------------------------------------------------------------------------------

def mean_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of `tensor` over all ranks (a copy; the input is left as is)."""
    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / dist.get_world_size()


def broadcast_object(value: Any, env: DistEnv) -> Any:
    """Rank 0's `value` on every rank."""
    if not env.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


# -- models ------------------------------------------------------------------------------------

class GlobalBatchNorm(nn.Module):
    """BatchNorm whose training statistics cover the global batch, over any backend (gloo on CPU).

    torch's SyncBatchNorm accepts only GPU inputs, so CPU runs use this. The per-channel sums are
    reduced with the differentiable all_reduce of torch.distributed.nn, so gradients flow through
    the global statistics as they do in SyncBatchNorm. Evaluation uses the running statistics.
    """

    def __init__(self, source: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.num_features, self.eps, self.momentum = source.num_features, source.eps, source.momentum
        self.affine = source.affine
        self.weight, self.bias = source.weight, source.bias
        self.register_buffer("running_mean", source.running_mean)
        self.register_buffer("running_var", source.running_var)
        self.register_buffer("num_batches_tracked", source.num_batches_tracked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.distributed.nn.functional import all_reduce

        if not self.training:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            False, 0.0, self.eps)
        dims = [d for d in range(x.dim()) if d != 1]
        count = torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype)
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count.reshape(1)])
        stats = all_reduce(stats)
        total = stats[-1]
        mean = stats[: self.num_features] / total
        var = stats[self.num_features: 2 * self.num_features] / total - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var.detach() * total / (total - 1)
            self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        shape = [1, -1] + [1] * (x.dim() - 2)
        out = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm by one with global-batch statistics (SyncBatchNorm on GPUs)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and child.track_running_stats:
            setattr(model, name, GlobalBatchNorm(child))
        else:
            sync_batchnorm(child, device)
    return model


def wrap_model(model: nn.Module, device: torch.device, env: DistEnv, sync_bn: bool) -> nn.Module:
    """The DistributedDataParallel wrapper that training steps call (the model itself when single)."""
    if not env.enabled:
        return model
    if sync_bn:
        sync_batchnorm(model, device)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

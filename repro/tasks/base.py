"""The interface between the training loop and a task (vision, translation, QA, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch.utils.data.sampler import BatchSampler, RandomSampler

from ..autolr.batches import BatchSource, DatasetBatchSource


class Task(ABC):
    """Everything the loop needs that depends on the problem.

    Attributes set by subclasses: `model`, `train_set`, `test_set`, and `metric_columns`, the
    evaluation columns of epochs.csv in order (e.g. test_loss, test_acc).
    """

    model: torch.nn.Module
    train_set: Dataset
    test_set: Dataset
    metric_columns: tuple[str, ...]

    def __init__(self, device: torch.device):
        self.device = device

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Mean training loss of a batch already on the device."""

    @abstractmethod
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Metrics on the test split, keyed by `metric_columns`."""

    def final_evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Metrics computed once after training (e.g. BLEU with decoding); stored in run.json."""
        return {}

    def to_device(self, batch: Any) -> Any:
        return [t.to(self.device, non_blocking=True) for t in batch]

    def train_loader(self, batch_size: int, generator: torch.Generator, num_workers: int = 0) -> DataLoader:
        """One epoch of shuffled training batches; the last partial batch is dropped.

        Dropping it keeps every step at the same batch size, which BatchNorm and AutoLR's loss
        comparisons rely on. `generator` fixes the order, so epoch k is the same after a resume.
        """
        sampler = BatchSampler(RandomSampler(self.train_set, generator=generator), batch_size, drop_last=True)
        if isinstance(self.train_set, TensorDataset):
            # A TensorDataset indexes a whole batch at once: no per-sample collation.
            return DataLoader(self.train_set, sampler=sampler, batch_size=None, num_workers=num_workers,
                              generator=generator)
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=num_workers, generator=generator,
                          pin_memory=self.device.type == "cuda", persistent_workers=False)

    def train_shard_loader(self, batch_size: int, generator: torch.Generator, num_workers: int, env) -> Iterable:
        """This data-parallel rank's slice of every batch of `train_loader`'s epoch (`env`: a DistEnv).

        `batch_size` is the global batch. The global order is `train_loader`'s, so N ranks together
        see the batches of a single-process run. The base sampler is sliced by index, so each rank
        loads only its examples. A subclass that overrides `train_loader` gets its batches sliced
        after loading instead. That is correct for any batching but loads the global batch on
        every rank, so override this hook too where loading is costly.
        """
        from ..distributed import ShardedBatchSampler, shard_batch

        if type(self).train_loader is not Task.train_loader:
            return (shard_batch(batch, env) for batch in self.train_loader(batch_size, generator, num_workers))
        sampler = ShardedBatchSampler(
            BatchSampler(RandomSampler(self.train_set, generator=generator), batch_size, drop_last=True), env)
        if isinstance(self.train_set, TensorDataset):
            return DataLoader(self.train_set, sampler=sampler, batch_size=None, num_workers=num_workers,
                              generator=generator)
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=num_workers, generator=generator,
                          pin_memory=self.device.type == "cuda", persistent_workers=False)

    def steps_per_epoch(self, batch_size: int) -> int:
        return len(self.train_set) // batch_size

    def batch_source(self, batch_size: int) -> BatchSource:
        """Where AutoLR and the studies draw trial batches and superbatches from."""
        return DatasetBatchSource(self.train_set, batch_size, to_device=self.to_device)

"""Where the tuner's trial mini-batches and superbatches come from.

A search draws its batches once and reuses them for every candidate LR (common random numbers),
so candidates differ only by their LR. Drawing from a seeded generator makes each search's
batches a function of (seed, search id): a resumed run draws the same batches as an
uninterrupted one, with no iterator state to save.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset, default_collate


class BatchSource(Protocol):
    """Anything that returns `count` mini-batches drawn with `generator`."""

    def draw(self, count: int, generator: torch.Generator) -> list[Any]: ...


class DatasetBatchSource:
    """Draws mini-batches of `batch_size` random indices from a map-style dataset.

    `collate_fn` builds a batch from a list of samples (default: torch's default_collate).
    `to_device` moves a batch to the training device, e.g. `lambda b: [t.cuda() for t in b]`.
    """

    def __init__(self, dataset: Dataset, batch_size: int, collate_fn: Callable | None = None,
                 to_device: Callable[[Any], Any] | None = None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate_fn = collate_fn or default_collate
        self.to_device = to_device or (lambda batch: batch)

    def draw(self, count: int, generator: torch.Generator) -> list[Any]:
        size = len(self.dataset)
        tensors = getattr(self.dataset, "tensors", None)
        batches = []
        for _ in range(count):
            index = torch.randint(size, (min(self.batch_size, size),), generator=generator)
            if tensors is not None:  # TensorDataset: index all rows at once instead of per sample
                batch = [t[index] for t in tensors]
            else:
                batch = self.collate_fn([self.dataset[int(i)] for i in index])
            batches.append(self.to_device(batch))
        return batches


class IterableBatchSource:
    """Cycles through any iterable of batches, such as a user's DataLoader.

    The generator is ignored, so a resumed run does not see the same batches as an uninterrupted
    one. Use DatasetBatchSource, or a source of your own, where that matters.
    """

    def __init__(self, batches: Iterable, to_device: Callable[[Any], Any] | None = None):
        self.batches = batches
        self.to_device = to_device or (lambda batch: batch)
        self._iterator: Iterator | None = None

    def draw(self, count: int, generator: torch.Generator) -> list[Any]:
        drawn = []
        restarted = False
        while len(drawn) < count:
            if self._iterator is None:
                self._iterator = iter(self.batches)
                restarted = True
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                if restarted:
                    raise ValueError("IterableBatchSource: the iterable yielded no batches") from None
                continue
            restarted = False
            drawn.append(self.to_device(batch))
        return drawn

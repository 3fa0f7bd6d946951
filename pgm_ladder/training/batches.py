"""Resumable sources of training batches.

The trainer asks a source for one batch per step; a source knows its position and can
save and restore it, so that a resumed run sees exactly the batches the uninterrupted run
would have seen. Two sources cover the experiments:

* :class:`SampledStream` — an endless stream of fresh samples from an explicit model,
  drawn with the source's own ``torch.Generator`` (its state is the position);
* :class:`LoaderStream` — a map-style ``Dataset`` read through ``DataLoader`` and
  ``DistributedSampler`` (the position is the epoch and the batch index within it).

Under torchrun the trainer calls ``bind(rank, world_size)`` before the first batch: a
stream then seeds its generator per rank, a loader gives each rank its shard.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


@runtime_checkable
class BatchSource(Protocol):
    """What the trainer needs from a source of batches."""

    @property
    def epoch(self) -> int:
        """The epoch of the batch the next :meth:`next_batch` call returns."""

    @property
    def batches_per_epoch(self) -> int: ...

    def bind(self, rank: int, world_size: int) -> None:
        """Called once by the trainer, before any batch and before ``load_state_dict``."""

    def next_batch(self) -> Any: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def rank_seed(seed: int, rank: int, *more: int) -> int:
    """A 63-bit seed for process ``rank`` of a run seeded with ``seed``."""
    entropy = [seed, rank, *more]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


class SampledStream:
    """Batches ``sample_batch(generator, batch_size)`` drawn with a private generator.

    ``batches_per_epoch`` only names a nominal epoch (for logs and ``train.epochs``): a
    stream never runs dry.
    """

    def __init__(self, sample_batch: Callable[[torch.Generator, int], Any], batch_size: int,
                 seed: int, batches_per_epoch: int = 100):
        if batch_size < 1 or batches_per_epoch < 1:
            raise ValueError("SampledStream: batch_size and batches_per_epoch must be >= 1")
        self.sample_batch = sample_batch
        self.batch_size = batch_size
        self.seed = seed
        self._batches_per_epoch = batches_per_epoch
        self.generator = torch.Generator()
        self.bind(0, 1)

    @property
    def epoch(self) -> int:
        return self.batches_drawn // self._batches_per_epoch

    @property
    def batches_per_epoch(self) -> int:
        return self._batches_per_epoch

    def bind(self, rank: int, world_size: int) -> None:
        self.rank = rank
        self.generator.manual_seed(rank_seed(self.seed, rank))
        self.batches_drawn = 0

    def next_batch(self) -> Any:
        batch = self.sample_batch(self.generator, self.batch_size)
        self.batches_drawn += 1
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "batches_drawn": self.batches_drawn,
                "rank": self.rank}

    def load_state_dict(self, state: dict) -> None:
        self.batches_drawn = int(state["batches_drawn"])
        if state["rank"] == self.rank:
            self.generator.set_state(state["generator"])
        else:  # another process's position (resumed under another world size): fresh draws
            self.generator.manual_seed(rank_seed(self.seed, self.rank, self.batches_drawn))


class LoaderStream:
    """Epochs over a map-style dataset, shuffled by ``DistributedSampler(seed, epoch)``.

    The order of epoch ``e`` depends only on ``(seed, e, rank, world_size)``, so the
    position ``(epoch, index)`` is the whole state: a resumed stream rebuilds the epoch's
    order and starts at batch ``index``.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, shuffle: bool = True,
                 drop_last: bool = False, num_workers: int = 0,
                 collate_fn: Optional[Callable] = None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self._epoch = 0
        self.index = 0
        self._iterator = None
        self.bind(0, 1)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def batches_per_epoch(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def bind(self, rank: int, world_size: int) -> None:
        self.sampler = DistributedSampler(self.dataset, num_replicas=world_size, rank=rank,
                                          shuffle=self.shuffle, seed=self.seed,
                                          drop_last=self.drop_last)
        if self.batches_per_epoch < 1:
            raise ValueError(f"LoaderStream: {len(self.dataset)} examples make no batch of "
                             f"{self.batch_size} on each of {world_size} processes")
        self._epoch, self.index, self._iterator = 0, 0, None

    def _start_epoch(self):
        self.sampler.set_epoch(self._epoch)
        order = list(self.sampler)[self.index * self.batch_size:]
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=order,
                            drop_last=self.drop_last, num_workers=self.num_workers,
                            collate_fn=self.collate_fn)
        return iter(loader)

    def next_batch(self) -> Any:
        if self._iterator is None:
            self._iterator = self._start_epoch()
        batch = next(self._iterator)
        self.index += 1
        if self.index == self.batches_per_epoch:
            self._epoch, self.index, self._iterator = self._epoch + 1, 0, None
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self._epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self._epoch, self.index = int(state["epoch"]), int(state["index"])
        if self.index >= self.batches_per_epoch:  # saved under another world size
            self._epoch, self.index = self._epoch + 1, 0
        self._iterator = None


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor (inside tuples, lists, dicts) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch

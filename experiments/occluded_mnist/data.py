"""Occluded Moving MNIST sequences as tensors, the training pools of the supervision regimes
and the batch sampler (RLadder §3.1; SPEC §5).

The networks see *ink* intensities ``ink / 255`` (0 on the canvas and the bars, 1 for full
ink): the paper's white canvas up to ``x -> 1 - x``, which changes no squared error (ours:
zero is then the background, as the convolutions' zero padding assumes).

No label leakage: in the semi-supervised regimes the labels of the unlabelled sequences are
replaced by ``-1`` when the pool is built, so a training batch never holds them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from experiments.datasets.occluded_moving_mnist import OccludedMovingMNIST, load_occluded_moving_mnist
from learned_inference.base import check_shape
from pgm_ladder.training.errors import ConfigError

from .config import OccludedMNISTConfig

UNLABELLED = -1


@dataclass
class Sequences:
    """``frames`` ``(N, T, H, W)`` uint8 ink, ``optimal`` ``(N, H, W)`` uint8 (the optimal
    temporal reconstruction after the last frame), ``labels`` ``(N,)`` int64 (-1: unlabelled),
    ``source`` the generator's bundle (for the figure's ground truth) or None."""

    frames: torch.Tensor
    optimal: torch.Tensor
    labels: torch.Tensor
    source: Optional[OccludedMovingMNIST] = None

    def __post_init__(self) -> None:
        n, t, h, w = self.frames.shape
        check_shape(self.optimal, (n, h, w), "optimal")
        check_shape(self.labels, (n,), "labels")

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def n_labelled(self) -> int:
        return int((self.labels != UNLABELLED).sum())

    def batch(self, index: torch.Tensor) -> dict:
        """``frames`` ``(B, T, 1, H, W)``, ``reconstruction`` ``(B, 1, H, W)`` float32 in [0, 1],
        ``label`` ``(B,)``."""
        return {"frames": self.frames[index].unsqueeze(2).float() / 255.0,
                "reconstruction": self.optimal[index].unsqueeze(1).float() / 255.0,
                "label": self.labels[index]}


def from_bundle(data: OccludedMovingMNIST, keep_source: bool = False) -> Sequences:
    return Sequences(torch.from_numpy(data.frames), torch.from_numpy(data.optimal_reconstruction.copy()),
                     torch.from_numpy(data.labels.astype(np.int64)), data if keep_source else None)


def load(split: str, size: int, seed: int, keep_source: bool = False) -> Sequences:
    """The first ``size`` sequences (0 = all) of ``split``, generated (and cached) with ``seed``."""
    return from_bundle(load_occluded_moving_mnist(split, n=size or None, seed=seed), keep_source)


def labelled_subset(n: int, labelled: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``labelled`` of ``n`` sequences, drawn with ``seed`` (the run seed)."""
    if labelled > n:
        raise ConfigError(f"data.labelled={labelled} exceeds the {n} sequences of the pool")
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g)[:labelled].sort().values


def training_pool(config: OccludedMNISTConfig, seed: int) -> Sequences:
    """The training sequences of ``config.regime`` (see :mod:`.config`)."""
    d = config.data
    if config.regime == "supervised":
        return load(d.train_split, d.train_size, d.seed)
    pool = load(d.semi_split, d.train_size, d.seed)
    keep = labelled_subset(len(pool), d.labelled, seed)
    if config.regime == "labelled_only":
        return Sequences(pool.frames[keep], pool.optimal[keep], pool.labels[keep])
    labels = torch.full_like(pool.labels, UNLABELLED)
    labels[keep] = pool.labels[keep]
    return Sequences(pool.frames, pool.optimal, labels)


def batch_sampler(pool: Sequences, batch_size: int,
                  labelled_per_batch: int) -> Callable[[torch.Generator, int], dict]:
    """``sample(generator, n)``: ``n`` sequences drawn with replacement; when the pool holds
    both labelled and unlabelled sequences, ``labelled_per_batch`` of them are labelled."""
    lab = (pool.labels != UNLABELLED).nonzero().flatten()
    unl = (pool.labels == UNLABELLED).nonzero().flatten()
    mixed = len(lab) > 0 and len(unl) > 0
    if mixed and labelled_per_batch > batch_size:
        raise ConfigError(f"data.labelled_per_batch={labelled_per_batch} exceeds train.batch_size={batch_size}")

    def sample(generator: torch.Generator, n: int) -> dict:
        if not mixed:
            return pool.batch(torch.randint(len(pool), (n,), generator=generator))
        k = min(labelled_per_batch, n)
        index = torch.cat([lab[torch.randint(len(lab), (k,), generator=generator)],
                           unl[torch.randint(len(unl), (n - k,), generator=generator)]])
        return pool.batch(index)

    return sample

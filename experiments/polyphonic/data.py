"""Piano-roll batches for next-step prediction (RLadder §3.2; SPEC §5–6).

A batch is ``(rolls, lengths)``: ``rolls`` ``(B, T, 88)`` float 0/1, zero-padded after each
sequence's ``lengths[b]`` real steps (:func:`experiments.datasets.polyphonic.pad_rolls`).
The model reads :func:`shift_right` ``(rolls)`` — a silent step, then steps ``1..T-1`` — so
its output at position ``t`` predicts step ``t`` from steps ``< t`` only, and every real step,
the first included, is scored (:func:`step_mask`).
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from experiments.datasets.polyphonic import N_NOTES, PianoRolls, load_polyphonic, pad_rolls
from pgm_ladder.metrics import masked_bernoulli_nll

Batch = tuple[torch.Tensor, torch.Tensor]


def load(corpus: str, max_sequences: int = 0) -> PianoRolls:
    """The corpus with its own split (the first ``max_sequences`` of each split if > 0)."""
    rolls = load_polyphonic(corpus)
    if not max_sequences:
        return rolls
    return PianoRolls(rolls.name, *(rolls.split(s)[:max_sequences] for s in ("train", "valid", "test")))


def shift_right(rolls: torch.Tensor) -> torch.Tensor:
    """``(B, T, 88)`` -> the model input: a silent step, then ``rolls[:, :-1]``."""
    return torch.cat([torch.zeros_like(rolls[:, :1]), rolls[:, :-1]], dim=1)


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, steps)`` bool: true on the real steps ``t < lengths[b]``."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def batch_nll(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(total NLL, real steps)`` of a batch: ``model(shift_right(rolls))`` gives logits
    ``(B, T, 88)`` of each step given the steps before it."""
    rolls, lengths = batch
    logits = model(shift_right(rolls))
    return masked_bernoulli_nll(logits, rolls, step_mask(lengths, rolls.shape[1]))


def window_sampler(rolls: Sequence[np.ndarray], window: int) -> Callable[[torch.Generator, int], Batch]:
    """``sample(generator, batch_size)`` for a :class:`~pgm_ladder.training.SampledStream`:
    sequences drawn with replacement (∝ length when windowed, else uniformly), each cut to
    ``window`` steps at a uniformly random offset (``window = 0``: whole sequences)."""
    if not rolls:
        raise ValueError("window_sampler: no training sequences")
    lengths = torch.tensor([len(r) for r in rolls], dtype=torch.float64)
    weights = lengths if window else torch.ones_like(lengths)

    def sample(generator: torch.Generator, batch_size: int) -> Batch:
        picks = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
        cut = []
        for i in picks.tolist():
            roll = rolls[i]
            if window and len(roll) > window:
                start = int(torch.randint(len(roll) - window + 1, (1,), generator=generator))
                roll = roll[start:start + window]
            cut.append(torch.from_numpy(roll.astype(np.float32)))
        return pad_rolls(cut)

    return sample


def batches_per_epoch(rolls: Sequence[np.ndarray], window: int, batch_size: int) -> int:
    """Batches that cover the training steps about once (sequences once if not windowed)."""
    if not window:
        return max(1, math.ceil(len(rolls) / batch_size))
    return max(1, math.ceil(sum(len(r) for r in rolls) / (window * batch_size)))


def eval_batches(rolls: Sequence[np.ndarray], batch_size: int) -> Iterator[Batch]:
    """Whole sequences, sorted by length (little padding), ``batch_size`` at a time."""
    order = sorted(range(len(rolls)), key=lambda i: len(rolls[i]))
    for start in range(0, len(order), batch_size):
        yield pad_rolls([torch.from_numpy(rolls[i].astype(np.float32))
                         for i in order[start:start + batch_size]])


@torch.no_grad()
def nll_per_step(model: torch.nn.Module, rolls: Sequence[np.ndarray], batch_size: int,
                 device: torch.device) -> float:
    """NLL per time step (sum over the 88 notes, averaged over all real steps of ``rolls``)."""
    if not rolls:
        raise ValueError("nll_per_step: no sequences")
    total, steps = 0.0, 0
    for rolls_b, lengths in eval_batches(rolls, batch_size):
        t, n = batch_nll(model, (rolls_b.to(device), lengths.to(device)))
        total, steps = total + float(t), steps + int(n)
    return total / steps


def note_frequencies(rolls: Sequence[np.ndarray]) -> torch.Tensor:
    """``(88,)`` fraction of training steps in which each note sounds."""
    stacked = np.concatenate([np.asarray(r, dtype=np.float64) for r in rolls], axis=0)
    if stacked.shape[1] != N_NOTES:
        raise ValueError(f"note_frequencies: expected (T, {N_NOTES}) rolls, got width {stacked.shape[1]}")
    return torch.from_numpy(stacked.mean(axis=0))

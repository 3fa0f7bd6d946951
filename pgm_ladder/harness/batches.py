"""Running a trained engine over an evaluation set in batches: the one loop every part of
the comparison harness uses (eval mode, no gradients, the engine's own dtype)."""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import torch
from torch import nn

T = TypeVar("T")


@torch.no_grad()
def map_batches(engine: nn.Module, size: int, batch_size: int,
                run: Callable[[slice, torch.dtype], T]) -> list[T]:
    """Put ``engine`` in eval mode and return ``[run(sl, dtype), ...]`` for consecutive
    slices ``sl`` of ``range(size)`` of at most ``batch_size``, ``dtype`` being the
    engine's parameter dtype (inputs are cast to it), without gradients."""
    engine.eval()
    dtype = next(engine.parameters()).dtype
    return [run(slice(start, start + batch_size), dtype) for start in range(0, size, batch_size)]


def concat_per_iteration(chunks: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """``chunks[b][t]`` (batch ``b``, iteration ``t``) -> per-iteration tensors
    concatenated over the batches."""
    return [torch.cat([chunk[t] for chunk in chunks]) for t in range(len(chunks[0]))]

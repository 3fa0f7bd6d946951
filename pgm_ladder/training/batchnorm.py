"""Scoring a trained network with BatchNorm's batch statistics instead of its running ones.

A network trained with BatchNorm normalises each training batch with that batch's own
mean and variance, and in eval mode with running averages of them. When the inputs of a
BatchNorm change distribution from one recurrent step (frame, iteration) to the next and
the running averages pool all steps, eval mode normalises no step as training did. Scoring
the same checkpoint both ways measures what that mismatch costs
(``pgm-ladder eval RUN --batch-statistics``); the fix is per-step statistics
(:class:`learned_inference.conv_rladder.StepBatchNorm2d`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextmanager
def batch_statistics(net: nn.Module) -> Iterator[int]:
    """Within the block every BatchNorm of ``net`` normalises with the statistics of the
    batch it is given, in eval mode too, and updates no running statistic; afterwards the
    running statistics are back, untouched. Yields how many BatchNorm modules it switched.

    (``torch.nn.BatchNorm*`` uses batch statistics whenever its running buffers are ``None``;
    calls to ``net.eval()`` inside the block do not undo that.)"""
    stashed = []
    for module in net.modules():
        if isinstance(module, _BatchNorm) and module.running_mean is not None:
            stashed.append((module, module.running_mean, module.running_var))
            module.running_mean = None
            module.running_var = None
    try:
        yield len(stashed)
    finally:
        for module, mean, var in stashed:
            module.running_mean = mean
            module.running_var = var

"""The engine interface every learned inference engine implements.

An *engine* maps a corrupted observation ``x_noisy`` of shape ``(batch, input_dim)`` to a
sequence of per-iteration outputs. Static engines (Ladder, RLadder on a static input) run
``iterations`` inference iterations on the same input; a one-pass engine (the Ladder)
returns a single iteration whatever is asked (see :attr:`InferenceEngine.max_iterations`).

The comparison harness (``pgm_ladder.harness``) depends only on this module: later engines
(convolutional RLadder, TAG engines) plug in by returning the same dataclasses.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn


class ShapeError(ValueError):
    """A tensor at a module boundary does not have the documented shape."""


def check_shape(tensor: torch.Tensor, shape: tuple, name: str) -> None:
    """Raise :class:`ShapeError` unless ``tensor`` has ``shape``.

    ``shape`` entries may be ``None`` (any size) or an int; the message names the
    tensor and the expected layout, e.g. ``x_noisy: expected (batch, 64), got (8, 32)``.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    ok = tensor.dim() == len(shape) and all(
        s is None or s == t for s, t in zip(shape, tensor.shape)
    )
    if not ok:
        want = ", ".join("batch" if (i == 0 and s is None) else ("*" if s is None else str(s))
                         for i, s in enumerate(shape))
        raise ShapeError(f"{name}: expected shape ({want}), got {tuple(tensor.shape)}")


@dataclass
class IterationOutput:
    """What an engine emits after one inference iteration.

    Attributes:
        denoised: ``(batch, input_dim)`` the low-level task read-out (bottom decoder):
            the engine's estimate of the clean input ``E[s_0 | x_noisy]``.
        class_logits: ``(batch, num_classes)`` the high-level task read-out (top), or
            ``None`` for an engine without a classification head.
        levels: per-level activations ``[(batch, h_0), ..., (batch, h_L)]`` used by the
            latent probes; ``levels[l]`` is matched to model level ``l``.
    """

    denoised: torch.Tensor
    class_logits: Optional[torch.Tensor]
    levels: list[torch.Tensor] = field(default_factory=list)


@dataclass
class EngineOutput:
    """All iterations of one forward pass, plus any auxiliary training cost.

    ``aux_cost`` is a scalar added to the task costs by the trainer (e.g. the Ladder's
    per-layer denoising costs, SPEC §3.1); zero for engines without one.
    """

    iterations: list[IterationOutput]
    aux_cost: torch.Tensor

    @property
    def last(self) -> IterationOutput:
        return self.iterations[-1]


class InferenceEngine(nn.Module, abc.ABC):
    """Base class: ``forward(x_noisy, iterations, x_clean=None) -> EngineOutput``.

    ``x_clean`` is given only in training and only to engines that need it for an
    auxiliary cost (the Ladder's clean encoder path); engines must never use it to
    form their outputs.
    """

    #: input width ``n_0``
    input_dim: int
    #: number of classes of the top head (0: no head)
    num_classes: int
    #: ``None`` for an iterative engine; ``1`` for a one-pass engine
    max_iterations: Optional[int] = None

    @abc.abstractmethod
    def forward(self, x_noisy: torch.Tensor, iterations: int = 1,
                x_clean: Optional[torch.Tensor] = None) -> EngineOutput:
        raise NotImplementedError

    def _check_inputs(self, x_noisy: torch.Tensor, iterations: int,
                      x_clean: Optional[torch.Tensor]) -> None:
        check_shape(x_noisy, (None, self.input_dim), "x_noisy")
        if x_clean is not None:
            check_shape(x_clean, tuple(x_noisy.shape), "x_clean")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive int, got {iterations!r}")
        if not torch.isfinite(x_noisy).all():
            raise ValueError("x_noisy contains NaN or infinite values")

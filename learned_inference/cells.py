"""Cell APIs and the fully connected encoder cells of the Recurrent Ladder (SPEC §3.2).

Two small abstract APIs let the RLadder engines stay agnostic of what their cells compute,
so that the fully connected cells here and the convolutional ones
(:mod:`learned_inference.conv_cells`: ConvLSTM, ConvG1/2/3) plug in alike:

* :class:`EncoderCell` - stateful: ``init_state(batch, device, dtype)`` and
  ``forward(inp, state) -> (output, new_state)``. ``inp`` is the concatenation along
  dim 1 (features / channels) of the bottom-up input ``e_{l-1,t}`` and the decoder output
  ``d_{l,t-1}`` of the same level at the previous iteration (the engine builds it).
* :class:`DecoderCell` (see :mod:`learned_inference.decoder_cells`) - stateless:
  ``forward(top_down, lateral) -> output``.

Dim 1 is the unit / channel axis in both the fully connected ``(batch, width)`` and the
convolutional ``(batch, channels, H, W)`` layouts.
"""
from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from . import config_utils as cu
from .base import check_shape

#: normalisation kinds accepted by :func:`make_norm`
NORM_KINDS = ("none", "batch", "layer")
#: encoder cell names accepted by :func:`build_encoder_cell`
ENCODER_CELLS = ("gru", "lstm")


def make_norm(kind: str, width: int, affine: bool = True, steps: int = 1) -> nn.Module:
    """A normalisation over the ``width`` units of a ``(batch, width)`` tensor.

    ``"batch"``: BatchNorm1d (batch statistics in training, running ones in eval) — with
    ``steps > 1`` a :class:`StepBatchNorm` keeping running statistics per recurrent step;
    ``"layer"``: LayerNorm over the units; ``"none"``: identity. ``affine=False`` gives a
    pure normalisation without learned scale/shift. Call it through :func:`apply_norm`.
    """
    cu.check_positive_int(steps, "steps")
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return StepBatchNorm(width, steps, affine) if steps > 1 else nn.BatchNorm1d(width, affine=affine)
    if kind == "layer":
        return nn.LayerNorm(width, elementwise_affine=affine)
    raise ValueError(f"norm: expected one of {NORM_KINDS}, got {kind!r}")


class StepBatchNorm(nn.Module):
    """BatchNorm whose running statistics are kept per recurrent step (Cooijmans et al. 2017,
    "Recurrent Batch Normalization", §4): step ``t`` updates and, in eval mode, uses the
    statistics of step ``min(t, steps − 1)``; the affine ``weight``, ``bias`` (if any) are
    shared by all steps. Training normalises with the batch's own statistics exactly like
    plain BatchNorm, so only eval mode differs. Channels are dim 1 of a ``(batch, C)``
    (``dims=1``) or ``(batch, C, H, W)`` (``dims=2``) tensor."""

    def __init__(self, channels: int, steps: int = 1, affine: bool = True, dims: int = 1) -> None:
        super().__init__()
        cu.check_positive_int(channels, "channels")
        cu.check_positive_int(steps, "steps")
        kind = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}.get(dims)
        if kind is None:
            raise ValueError(f"dims: expected 1 or 2, got {dims!r}")
        self.dims = dims
        self.stats = nn.ModuleList(kind(channels, affine=False) for _ in range(steps))
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        if step < 0:
            raise ValueError(f"step: expected a non-negative int, got {step}")
        y = self.stats[min(step, len(self.stats) - 1)](x)
        if self.weight is None:
            return y
        shape = (-1,) + (1,) * (x.dim() - 2)
        return y * self.weight.view(shape) + self.bias.view(shape)


def apply_norm(norm: nn.Module, x: torch.Tensor, step: int = 0) -> torch.Tensor:
    """``norm(x)``, with the recurrent ``step`` passed on to a :class:`StepBatchNorm`."""
    return norm(x, step) if isinstance(norm, StepBatchNorm) else norm(x)


class EncoderCell(nn.Module, abc.ABC):
    """Stateful encoder cell of level ``l`` (SPEC §3.2).

    Attributes:
        input_width: width of ``inp`` = width of ``e_{l-1}`` (+ width of ``d_l`` when the
            engine has a decoder).
        output_width: width of the output ``e_l`` passed up and sideways.
    """

    input_width: int
    output_width: int

    @abc.abstractmethod
    def init_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> Any:
        """The state before the first iteration (zeros)."""

    @abc.abstractmethod
    def forward(self, inp: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One iteration: ``(batch, input_width)`` -> ``(output (batch, output_width), state)``."""


class _RNNEncoderCell(EncoderCell):
    """Shared part of the GRU/LSTM cells: an optional input projection.

    With ``input_norm != "none"`` the input first goes through ``Linear -> norm`` (to the
    hidden width), as the paper normalises the input-to-state projections of its
    recurrent encoder cells (RLadder paper, App. A.4); with ``"none"`` the torch cell sees
    ``inp`` directly.
    """

    def __init__(self, input_width: int, hidden_width: int, input_norm: str) -> None:
        super().__init__()
        self.input_width = input_width
        self.output_width = hidden_width
        if input_norm == "none":
            self.proj: nn.Module = nn.Identity()
            self._cell_input = input_width
        else:
            self.proj = nn.Sequential(nn.Linear(input_width, hidden_width, bias=False),
                                      make_norm(input_norm, hidden_width))
            self._cell_input = hidden_width

    def _project(self, inp: torch.Tensor) -> torch.Tensor:
        check_shape(inp, (None, self.input_width), "inp")
        return self.proj(inp)


class GRUEncoderCell(_RNNEncoderCell):
    """GRU encoder cell (wraps :class:`torch.nn.GRUCell`); state = output = ``h``."""

    def __init__(self, input_width: int, hidden_width: int, input_norm: str = "layer") -> None:
        super().__init__(input_width, hidden_width, input_norm)
        self.cell = nn.GRUCell(self._cell_input, hidden_width)

    def init_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(batch, self.output_width, device=device, dtype=dtype)

    def forward(self, inp: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_shape(state, (inp.shape[0], self.output_width), "state")
        h = self.cell(self._project(inp), state)
        return h, h


class LSTMEncoderCell(_RNNEncoderCell):
    """LSTM encoder cell (wraps :class:`torch.nn.LSTMCell`); state ``(h, c)``, output ``h``."""

    def __init__(self, input_width: int, hidden_width: int, input_norm: str = "layer") -> None:
        super().__init__(input_width, hidden_width, input_norm)
        self.cell = nn.LSTMCell(self._cell_input, hidden_width)

    def init_state(self, batch: int, device: torch.device,
                   dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros(batch, self.output_width, device=device, dtype=dtype)
        return z, z.clone()

    def forward(self, inp: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, c = state
        check_shape(h, (inp.shape[0], self.output_width), "state.h")
        check_shape(c, (inp.shape[0], self.output_width), "state.c")
        h, c = self.cell(self._project(inp), (h, c))
        return h, (h, c)


def build_encoder_cell(name: str, input_width: int, hidden_width: int,
                       input_norm: str = "layer") -> EncoderCell:
    """``name`` in :data:`ENCODER_CELLS` -> a fully connected encoder cell."""
    if name == "gru":
        return GRUEncoderCell(input_width, hidden_width, input_norm)
    if name == "lstm":
        return LSTMEncoderCell(input_width, hidden_width, input_norm)
    raise ValueError(f"encoder_cell: expected one of {ENCODER_CELLS}, got {name!r}")

"""Fully connected Recurrent Ladder (RLadder), SPEC §3.2.

Per iteration ``t`` (widths ``n_0 = input_dim``, ``n_l = hidden_dims[l-1]``)::

    e_0,t = x_noisy                                         bottom "encoder cell"
    e_1,t = enc_1([x_noisy, d_0,t-1, d_1,t-1], state_1)      (see "bottom link" below)
    e_l,t = enc_l([e_l-1,t, d_l,t-1], state_l)               l = 2..L
    d_L,t = dec_L(top_down=e_L,t, lateral=e_L,t)             top: "from above" = e_L itself
    d_l,t = dec_l(d_l+1,t, e_l,t)                            l = L-1..1
    d_0,t = dec_0(d_1,t, x_noisy)
    denoised_t = d_0,t  (or a linear read-out of it);  class_logits_t = Linear(e_L,t) (or an MLP)

``d_l,0 = 0``. Decoder cells are stateless; encoder cells keep their state across
iterations (a static input is re-presented every iteration). Decoder widths equal the
encoder widths of the same level (``n_l``); level 0 has width ``input_dim`` (fixed choice).

Design decisions that are OURS (documented, SPEC §3.2 leaves them open):

* Bottom link: level 0 has no encoder cell, so the bottom decoder output ``d_0,t-1``
  reaches the encoder by being concatenated to ``x_noisy`` as the level-0 "encoder output"
  seen by encoder cell 1. (``dec_0`` itself gets ``x_noisy`` alone as its lateral input.)
* ``decoder_to_encoder=False`` feeds zeros in place of every ``d_l,t-1`` (same input
  widths, so the ablation changes only the connection).
* ``use_decoder=False`` (hierarchical RNN): no decoder cells and no ``d`` inputs at all;
  ``denoised`` is a linear read-out of the level-1 encoder output ``e_1,t`` and
  ``levels = [denoised, e_1, ..., e_L]``. With a decoder ``levels = [d_0, ..., d_L]``.
* The batch norms inside the decoder cells share their running statistics across
  iterations (they mix all iterations) unless ``norm_steps > 1``: then iteration ``t`` keeps
  its own (the last ``norm_steps − 1``-th on for all later ones; Cooijmans et al. 2017,
  :class:`~learned_inference.cells.StepBatchNorm`). The scale and shift stay shared.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from . import config_utils as cu
from .base import EngineOutput, InferenceEngine, IterationOutput, SequenceEngine, check_shape
from .cells import ENCODER_CELLS, NORM_KINDS, build_encoder_cell
from .decoder_cells import DECODER_CELLS, build_decoder_cell

#: choices of :attr:`RLadderConfig.denoise_readout`
READOUTS = ("identity", "linear")


@dataclass
class RLadderConfig:
    """Configuration of :class:`RLadder` (SPEC §3.2).

    Attributes:
        input_dim: input width ``n_0``.
        hidden_dims: encoder (and decoder) widths ``(n_1, ..., n_L)``.
        num_classes: class head on ``e_L,t`` (0: no head).
        class_head_hidden: width of the class head's hidden ReLU layer (ours; 0: the
            papers' linear head ``Linear(e_L,t)``).
        encoder_cell: ``"gru"`` | ``"lstm"``.
        decoder_cell: ``"g1"`` (our gated cell) | ``"ladder"`` (the §3.1 combinator).
        use_decoder: ``False`` = hierarchical RNN (encoder only).
        decoder_to_encoder: ``False`` = encoder cells get zeros in place of ``d_l,t-1``.
        encoder_input_norm: ``"none"`` | ``"batch"`` | ``"layer"``: normalisation of the
            encoder cells' input projection (``"none"``: no projection).
        decoder_norm: ``"none"`` | ``"batch"`` | ``"layer"``: the ``N`` of the decoder cells.
        denoise_readout: ``"identity"`` (``denoised = d_0``) | ``"linear"``
            (``denoised = Linear(d_0)``); ignored without a decoder (always linear from ``e_1``).
        combinator_sigmoid_v: Tagger's stable gain in the ``"ladder"`` decoder cell.
        norm_steps: how many iterations (frames) keep their own BatchNorm running statistics
            in the decoder cells (1: shared by all; only with ``decoder_norm="batch"``).
    """

    input_dim: int
    hidden_dims: tuple[int, ...]
    num_classes: int = 0
    encoder_cell: str = "gru"
    decoder_cell: str = "g1"
    use_decoder: bool = True
    decoder_to_encoder: bool = True
    encoder_input_norm: str = "layer"
    decoder_norm: str = "batch"
    denoise_readout: str = "identity"
    combinator_sigmoid_v: bool = False
    norm_steps: int = 1
    class_head_hidden: int = 0

    def __post_init__(self) -> None:
        cu.check_positive_int(self.input_dim, "input_dim")
        self.hidden_dims = cu.check_widths(self.hidden_dims, "hidden_dims")
        cu.check_nonnegative_int(self.num_classes, "num_classes")
        cu.check_choice(self.encoder_cell, ENCODER_CELLS, "encoder_cell")
        cu.check_choice(self.decoder_cell, DECODER_CELLS, "decoder_cell")
        cu.check_bool(self.use_decoder, "use_decoder")
        cu.check_bool(self.decoder_to_encoder, "decoder_to_encoder")
        cu.check_choice(self.encoder_input_norm, NORM_KINDS, "encoder_input_norm")
        cu.check_choice(self.decoder_norm, NORM_KINDS, "decoder_norm")
        cu.check_choice(self.denoise_readout, READOUTS, "denoise_readout")
        cu.check_bool(self.combinator_sigmoid_v, "combinator_sigmoid_v")
        cu.check_positive_int(self.norm_steps, "norm_steps")
        cu.check_nonnegative_int(self.class_head_hidden, "class_head_hidden")

    @property
    def widths(self) -> tuple[int, ...]:
        """``(n_0, n_1, ..., n_L)``."""
        return (self.input_dim,) + self.hidden_dims


@dataclass
class RLadderCarry:
    """What persists between iterations: encoder states, the last decoder outputs and how
    many steps have run (``step``: the frame index for per-step normalisation statistics)."""

    encoder_states: list[Any]
    decoder_outputs: list[torch.Tensor] = field(default_factory=list)  # d_0..d_L; [] w/o decoder
    step: int = 0


def class_head(width: int, hidden: int, num_classes: int) -> nn.Module:
    """``Linear(width → num_classes)`` (``hidden = 0``, SPEC §3.2) or
    ``Linear(hidden → num_classes) ∘ ReLU ∘ Linear(width → hidden)`` (ours)."""
    if hidden == 0:
        return nn.Linear(width, num_classes)
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class RLadder(InferenceEngine, SequenceEngine):
    """Recurrent Ladder engine (SPEC §3.2); ``max_iterations = None`` (iterative).

    ``forward(x_noisy, iterations=T)`` returns ``T`` :class:`IterationOutput` s; ``aux_cost``
    is 0. As a :class:`~learned_inference.base.SequenceEngine`, :meth:`init_carry` and
    :meth:`step` expose one iteration at a time (a static input re-presented, one frame, or
    the RTagger's TAG inputs of one iteration); ``forward`` is the loop of :meth:`step`.
    """

    max_iterations = None

    def __init__(self, config: RLadderConfig) -> None:
        super().__init__()
        self.config = config
        self.input_dim = config.input_dim
        self.num_classes = config.num_classes
        n = config.widths
        L = len(config.hidden_dims)
        dec = config.use_decoder
        cells = []
        for l in range(1, L + 1):
            below = (n[0] + (n[0] if dec else 0)) if l == 1 else n[l - 1]
            cells.append(build_encoder_cell(config.encoder_cell, below + (n[l] if dec else 0),
                                            n[l], config.encoder_input_norm))
        self.encoder_cells = nn.ModuleList(cells)
        self.decoder_cells = nn.ModuleList(
            build_decoder_cell(config.decoder_cell, n[min(l + 1, L)], n[l], n[l],
                               config.decoder_norm, config.combinator_sigmoid_v, config.norm_steps)
            for l in range(L + 1)) if dec else None
        if not dec:
            self.denoise_head: Optional[nn.Linear] = nn.Linear(n[1], n[0])
        elif config.denoise_readout == "linear":
            self.denoise_head = nn.Linear(n[0], n[0])
        else:
            self.denoise_head = None
        self.class_head = (class_head(n[L], config.class_head_hidden, config.num_classes)
                           if config.num_classes > 0 else None)

    def init_carry(self, batch: int, device: torch.device, dtype: torch.dtype) -> RLadderCarry:
        """Zero encoder states and zero ``d_l,0``."""
        states = [c.init_state(batch, device, dtype) for c in self.encoder_cells]
        d = ([torch.zeros(batch, w, device=device, dtype=dtype) for w in self.config.widths]
             if self.config.use_decoder else [])
        return RLadderCarry(states, d)

    def _encoder(self, x: torch.Tensor, carry: RLadderCarry) -> tuple[list[torch.Tensor], list]:
        """``([e_1, ..., e_L], new states)``."""
        d_prev = carry.decoder_outputs
        if d_prev and not self.config.decoder_to_encoder:
            d_prev = [torch.zeros_like(d) for d in d_prev]
        below = torch.cat([x, d_prev[0]], dim=1) if d_prev else x
        enc, states = [], []
        for l, (cell, state) in enumerate(zip(self.encoder_cells, carry.encoder_states), 1):
            inp = torch.cat([below, d_prev[l]], dim=1) if d_prev else below
            e, state = cell(inp, state)
            check_shape(e, (x.shape[0], self.config.widths[l]), f"e_{l}")
            enc.append(e)
            states.append(state)
            below = e
        return enc, states

    def _decoder(self, x: torch.Tensor, enc: list[torch.Tensor], step: int = 0) -> list[torch.Tensor]:
        """``[d_0, ..., d_L]`` (``step``: the iteration, for per-step statistics)."""
        lateral = [x] + enc
        L = len(enc)
        d: list[Optional[torch.Tensor]] = [None] * (L + 1)
        top = enc[-1]
        for l in range(L, -1, -1):
            d[l] = self.decoder_cells[l](top, lateral[l], step)
            check_shape(d[l], (x.shape[0], self.config.widths[l]), f"d_{l}")
            top = d[l]
        return d  # type: ignore[return-value]

    def step(self, x_noisy: torch.Tensor,
             carry: RLadderCarry) -> tuple[IterationOutput, RLadderCarry]:
        """One iteration on ``x_noisy`` ``(batch, input_dim)`` (the protocol's ``x_t``)."""
        check_shape(x_noisy, (None, self.input_dim), "x_noisy")
        enc, states = self._encoder(x_noisy, carry)
        logits = self.class_head(enc[-1]) if self.class_head is not None else None
        if self.decoder_cells is None:
            denoised = self.denoise_head(enc[0])
            return (IterationOutput(denoised, logits, [denoised] + enc),
                    RLadderCarry(states, [], carry.step + 1))
        d = self._decoder(x_noisy, enc, carry.step)
        denoised = self.denoise_head(d[0]) if self.denoise_head is not None else d[0]
        return IterationOutput(denoised, logits, list(d)), RLadderCarry(states, d, carry.step + 1)

    def forward(self, x_noisy: torch.Tensor, iterations: int = 1,
                x_clean: Optional[torch.Tensor] = None) -> EngineOutput:
        """``x_clean`` is validated and ignored (RLadder has no auxiliary cost)."""
        self._check_inputs(x_noisy, iterations, x_clean)
        carry = self.init_carry(x_noisy.shape[0], x_noisy.device, x_noisy.dtype)
        outs = []
        for _ in range(iterations):
            out, carry = self.step(x_noisy, carry)
            outs.append(out)
        return EngineOutput(iterations=outs, aux_cost=x_noisy.new_zeros(()))

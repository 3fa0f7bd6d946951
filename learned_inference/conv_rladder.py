"""Convolutional Recurrent Ladder for video (SPEC §3.2; RLadder paper §3.1, Fig. 3).

One RLadder iteration per frame; encoder states and decoder outputs are carried from frame
``t`` to ``t+1`` (:class:`~learned_inference.rladder.RLadderCarry`, as in the fully
connected :class:`~learned_inference.rladder.RLadder`). It is a
:class:`~learned_inference.base.SequenceEngine`: ``step(x_t, carry)`` per frame, returning a
:class:`~learned_inference.base.FrameOutput`; ``forward`` over a whole sequence.
Levels, for ``channels = (c_1..c_K)`` and an ``S×S`` image with ``C`` channels (level ``l``
at resolution ``S / 2^(l-1)``)::

    e_0,t   = x_t                                                (batch, C, S, S)
    e_1,t   = ConvLSTM_1([x_t, d_0,t-1, d_1,t-1])
    e_l,t   = ConvLSTM_l([down_l(e_l-1,t), d_l,t-1])             l = 2..K
    e_top,t = LSTM_top([flatten(down_top(e_K,t)), d_top,t-1])    fully connected top (1x1 ConvLSTM)
    d_top,t = G1(e_top,t, e_top,t)                               LayerNorm (BatchNorm for convg1)
    d_K,t   = ConvG_K(up(unflatten(Linear(d_top,t))), e_K,t)
    d_l,t   = ConvG_l(up(d_l+1,t), e_l,t)                        l = K-1..1
    d_0,t   = ConvG_0(d_1,t, x_t)                                (batch, bottom_channels, S, S)
    prediction x̂_t+1 = sig(Conv1x1(d_0,t));   class logits_t = Linear(e_top,t)

``layout="row"`` makes every frame one row of ``image_size`` (shape ``(C, 1, S)``; e.g. the
88 pitches of a piano-roll step, RLadder §3.2): convolutions ``1×k``, pooling ``1×2``, level
``l`` of width ``S / 2^(l-1)``; everything else is the same.

``down`` = Conv k×k + BatchNorm + ReLU + 2×2 max-pooling (the paper normalises every
non-recurrent encoder layer with BatchNorm, App. A.4); ``up`` = 2× nearest upsampling.
The BatchNorm of ``down`` keeps its running statistics per frame for the first
``norm_steps`` frames (:class:`StepBatchNorm2d`, after Cooijmans et al. 2017): the ConvLSTM
outputs it normalises drift from frame 1 (zero state) to later frames, so one set of
statistics averaged over frames normalises no frame as training did, and eval mode would
differ from training.

The decoder-to-encoder connection, ``decoder_to_encoder_mode``:

* ``"input"`` (default) — as the paper draws it (Fig. 1, the green links): ``d_l,t-1``
  is an input of encoder cell ``l`` at ``t`` beside the bottom-up one, through its own
  input convolution and normalisation, started like the bottom-up input (gain 1);
  nothing holds it near zero at the start.
* ``"gain"`` — OURS: the same inputs, their normalisation gains initialised to
  ``feedback_gain_init`` (0: the RLadder starts as the hierarchical RNN and must learn to
  use its decoder; in our ``cpu`` Occluded Moving MNIST runs the gains stayed at
  0.05–0.12 against ≈ 1 for the bottom-up inputs, docs/results/occluded_moving_mnist.md).

Design decisions that are OURS (the architecture appendix D.1 is missing from our text):
the level layout above, one conv layer between ConvLSTMs, the bottom link (``d_0,t-1``
enters encoder cell 1 beside ``x_t``, as in the fully connected RLadder), each encoder
cell convolving and normalising its bottom-up input and each decoder input separately
(our reading of App. A.4, "a layer normalization after all the first convolutions of
the inputs"), the ``"gain"`` mode, the sigmoid 1×1 read-out of the prediction from
``d_0``. Ablations: ``decoder_to_encoder=False`` feeds zeros in place of every
``d_l,t-1`` (same widths and parameters); ``use_decoder=False`` (hierarchical RNN)
builds no decoder, no ``d`` inputs and no prediction (``predictions`` is ``None``).

Speed (same arithmetic): the encoder cells take their inputs as parts, never
concatenated and split again, and :meth:`ConvRLadder.forward` skips the convolutions of
the first frame's zero carry (``d_l,0`` and the states; a convolution of zeros is its
bias), about an eighth of a training step's convolutions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from . import config_utils as cu
from .base import FrameOutput, SequenceEngine, check_shape
from .cells import NORM_KINDS
from .conv_cells import (CONV_DECODER_CELLS, ConvLSTMEncoderCell, Kernel, build_conv_decoder_cell,
                         decoder_norm, same_padding)
from .decoder_cells import G1DecoderCell
from .rladder import RLadderCarry


#: choices of :attr:`ConvRLadderConfig.layout`: square ``S×S`` frames, or one row of ``S``
LAYOUTS = ("square", "row")
#: choices of :attr:`ConvRLadderConfig.decoder_to_encoder_mode` (module docstring): the
#: paper's plain input, or ours with its normalisation gain started at ``feedback_gain_init``
DECODER_TO_ENCODER_MODES = ("input", "gain")


@dataclass
class ConvRLadderConfig:
    """Configuration of :class:`ConvRLadder` (module docstring). ``image_size`` must be
    divisible by ``2 ** len(channels)``; ``encoder_norm`` is the normalisation after the
    ConvLSTM input convolutions (LayerNorm in the RLadder experiments, BatchNorm option);
    ``decoder_to_encoder_mode`` how ``d_l,t-1`` enters encoder cell ``l``
    (:data:`DECODER_TO_ENCODER_MODES`, module docstring): ``"input"`` (the paper's) or
    ``"gain"`` (ours, its normalisation gain initialised to ``feedback_gain_init``, which
    only this mode uses);
    ``norm_steps`` how many frames keep their own BatchNorm statistics in the ``down`` blocks
    (:class:`StepBatchNorm2d`; 1 = one set shared by all frames, plain BatchNorm);
    ``layout`` ``"square"`` (``S×S`` frames) or ``"row"`` (``1×S`` frames, 1-D convolutions)."""

    in_channels: int = 1
    image_size: int = 32
    channels: tuple[int, ...] = (16, 32, 64)
    top_width: int = 128
    bottom_channels: int = 16
    num_classes: int = 10
    kernel_size: int = 3
    encoder_norm: str = "layer"
    decoder_cell: str = "convg2"
    use_decoder: bool = True
    decoder_to_encoder: bool = True
    decoder_to_encoder_mode: str = "input"
    feedback_gain_init: float = 0.0
    norm_steps: int = 1
    layout: str = "square"

    def __post_init__(self) -> None:
        cu.check_positive_int(self.in_channels, "in_channels")
        cu.check_positive_int(self.image_size, "image_size")
        self.channels = cu.check_widths(self.channels, "channels")
        cu.check_positive_int(self.top_width, "top_width")
        cu.check_positive_int(self.bottom_channels, "bottom_channels")
        cu.check_nonnegative_int(self.num_classes, "num_classes")
        if cu.check_positive_int(self.kernel_size, "kernel_size") % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd int, got {self.kernel_size}")
        cu.check_choice(self.encoder_norm, NORM_KINDS, "encoder_norm")
        cu.check_choice(self.decoder_cell, CONV_DECODER_CELLS, "decoder_cell")
        cu.check_bool(self.use_decoder, "use_decoder")
        cu.check_bool(self.decoder_to_encoder, "decoder_to_encoder")
        cu.check_choice(self.decoder_to_encoder_mode, DECODER_TO_ENCODER_MODES, "decoder_to_encoder_mode")
        cu.check_nonnegative_float(self.feedback_gain_init, "feedback_gain_init")
        if self.decoder_to_encoder_mode == "input" and self.feedback_gain_init != 0.0:
            raise ValueError(f"feedback_gain_init: only decoder_to_encoder_mode='gain' uses it (the "
                             f"'input' mode starts every input at gain 1), got {self.feedback_gain_init}")
        cu.check_positive_int(self.norm_steps, "norm_steps")
        cu.check_choice(self.layout, LAYOUTS, "layout")
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(f"image_size: {self.image_size} is not divisible by 2^{len(self.channels)} "
                             f"(one 2x pooling after each of the {len(self.channels)} conv levels)")

    def sizes(self) -> list[int]:
        """Size (side, or width in the ``row`` layout) of levels ``0..K`` and of the map
        flattened into the top."""
        K = len(self.channels)
        return [self.image_size] + [self.image_size >> (l - 1) for l in range(1, K + 1)] \
            + [self.image_size >> K]

    def shape(self, size: int) -> tuple[int, int]:
        """``(H, W)`` of a level of size ``size`` (:meth:`sizes`)."""
        return (1, size) if self.layout == "row" else (size, size)

    @property
    def kernel(self) -> Kernel:
        """The spatial kernel: ``k`` (k×k), or ``(1, k)`` in the ``row`` layout."""
        return (1, self.kernel_size) if self.layout == "row" else self.kernel_size

    @property
    def pool(self) -> tuple[int, int]:
        """The pooling (and upsampling) factor between levels."""
        return (1, 2) if self.layout == "row" else (2, 2)


class StepBatchNorm2d(nn.Module):
    """BatchNorm2d whose running statistics are kept per recurrent step (Cooijmans et al.
    2017, "Recurrent Batch Normalization", §4): step ``t`` updates and, in eval mode, uses the
    statistics of step ``min(t, steps - 1)``; the affine ``weight``, ``bias`` are shared by
    all steps. Training normalises with the batch's own statistics exactly like
    ``nn.BatchNorm2d``, so only eval mode differs from plain BatchNorm (``steps = 1``)."""

    def __init__(self, channels: int, steps: int = 1) -> None:
        super().__init__()
        cu.check_positive_int(channels, "channels")
        cu.check_positive_int(steps, "steps")
        self.stats = nn.ModuleList(nn.BatchNorm2d(channels, affine=False) for _ in range(steps))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        if step < 0:
            raise ValueError(f"step: expected a non-negative int, got {step}")
        y = self.stats[min(step, len(self.stats) - 1)](x)
        return y * self.weight[:, None, None] + self.bias[:, None, None]


class DownBlock(nn.Module):
    """Conv k×k + BatchNorm (:class:`StepBatchNorm2d`) + ReLU + 2×2 max-pooling: a
    non-recurrent encoder layer; ``forward(x, step)``. ``kernel_size`` / ``pool`` may be
    pairs (``(1, k)`` / ``(1, 2)`` for a row)."""

    def __init__(self, channels: int, kernel_size: Kernel, steps: int = 1,
                 pool: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=same_padding(kernel_size),
                              bias=False)
        self.norm = StepBatchNorm2d(channels, steps)
        self.pool = nn.MaxPool2d(pool)

    def forward(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        return self.pool(torch.relu(self.norm(self.conv(x), step)))


@dataclass
class ConvRLadderOutput:
    """``predictions`` ``(B, T, C, S, S)``: index ``t-1`` = ``x̂_t+1``, predicted after frame
    ``t``; ``class_logits`` ``(B, T, classes)``; ``bottom`` ``(B, T, c_0, S, S)`` (if asked)."""

    predictions: Optional[torch.Tensor]
    class_logits: Optional[torch.Tensor]
    bottom: Optional[torch.Tensor] = None


class ConvRLadder(nn.Module, SequenceEngine):
    """Convolutional RLadder, one step per frame (module docstring)."""

    def __init__(self, config: ConvRLadderConfig) -> None:
        super().__init__()
        self.config = cfg = config
        c, K, k, dec = cfg.channels, len(config.channels), cfg.kernel, cfg.use_decoder
        self.sizes = sz = cfg.sizes()
        hw = [cfg.shape(s) for s in sz]
        flat = c[-1] * hw[-1][0] * hw[-1][1]
        # input parts of each encoder cell: bottom-up input, then the decoder inputs d_l,t-1
        ins = [(cfg.in_channels, cfg.bottom_channels, c[0]) if dec else (cfg.in_channels,)] + \
            [(c[l - 1], c[l]) if dec else (c[l - 1],) for l in range(1, K)]
        gain = cfg.feedback_gain_init if cfg.decoder_to_encoder_mode == "gain" else 1.0
        gains = lambda parts: (1.0,) + (gain,) * (len(parts) - 1)  # noqa: E731
        self.encoder_cells = nn.ModuleList(
            ConvLSTMEncoderCell(ins[l], c[l], hw[l + 1], k, cfg.encoder_norm, gains(ins[l])) for l in range(K))
        self.down = nn.ModuleList(DownBlock(c[l], k, cfg.norm_steps, cfg.pool) for l in range(K))  # below level l+2 / top
        # the fully connected top LSTM, as a 1x1 ConvLSTM on (batch, width, 1, 1)
        top_parts = (flat, cfg.top_width) if dec else (flat,)
        self.top_cell = ConvLSTMEncoderCell(top_parts, cfg.top_width, (1, 1), 1, cfg.encoder_norm,
                                            gains(top_parts))
        self.class_head = nn.Linear(cfg.top_width, cfg.num_classes) if cfg.num_classes else None
        if dec:
            self.top_decoder = G1DecoderCell(cfg.top_width, cfg.top_width, cfg.top_width,
                                             decoder_norm(cfg.decoder_cell))
            self.to_map = nn.Linear(cfg.top_width, flat)
            self.decoder_cells = nn.ModuleList(
                build_conv_decoder_cell(cfg.decoder_cell, c[min(l, K - 1)],
                                        cfg.in_channels if l == 0 else c[l - 1],
                                        cfg.bottom_channels if l == 0 else c[l - 1], hw[l], k)
                for l in range(K + 1))  # cell l: top = d_l+1 (or the top map), lateral = e_l
            self.predict_head = nn.Conv2d(cfg.bottom_channels, cfg.in_channels, 1)
        self.up = nn.Upsample(scale_factor=cfg.pool, mode="nearest")

    def init_carry(self, batch: int, device: torch.device, dtype: torch.dtype) -> RLadderCarry:
        """Zero encoder states and zero ``d_l,0`` (levels ``0..K`` and top)."""
        cells = list(self.encoder_cells) + [self.top_cell]
        states = [cell.init_state(batch, device, dtype) for cell in cells]
        if not self.config.use_decoder:
            return RLadderCarry(states, [])
        cfg, sz = self.config, self.sizes
        shapes = [(cfg.bottom_channels, *cfg.shape(sz[0]))] + \
            [(ch, *cfg.shape(sz[l + 1])) for l, ch in enumerate(cfg.channels)] + [(cfg.top_width,)]
        return RLadderCarry(states, [torch.zeros(batch, *s, device=device, dtype=dtype) for s in shapes])

    def _encoder(self, x: torch.Tensor, carry: RLadderCarry, zero_carry: bool) -> tuple[list, list]:
        """``([e_1, ..., e_K, e_top], new states)``; ``zero_carry``: ``carry`` is known to be
        :meth:`init_carry`'s zeros (the cells then skip the convolutions of zeros)."""
        d_prev: list = list(carry.decoder_outputs)
        if zero_carry:
            d_prev = [None] * len(d_prev)
        elif d_prev and not self.config.decoder_to_encoder:
            d_prev = [torch.zeros_like(d) for d in d_prev]
        states_prev = [None] * len(carry.encoder_states) if zero_carry else carry.encoder_states
        parts = [x, *d_prev[:2]]  # encoder cell 1: x_t (, d_0,t-1, d_1,t-1)
        enc, states = [], []
        for l, (cell, state) in enumerate(zip(self.encoder_cells, states_prev)):
            if l > 0:
                parts = [self.down[l - 1](enc[-1], carry.step), *d_prev[l + 1:l + 2]]
            e, state = cell.forward_parts(parts, state)
            enc.append(e)
            states.append(state)
        flat = self.down[-1](enc[-1], carry.step).flatten(1)[:, :, None, None]
        top = [flat, *[d if d is None else d[:, :, None, None] for d in d_prev[-1:]]]
        e, state = self.top_cell.forward_parts(top, states_prev[-1])
        return enc + [e.flatten(1)], states + [state]

    def _decoder(self, x: torch.Tensor, enc: list) -> list:
        """``[d_0, d_1, ..., d_K, d_top]``."""
        cfg = self.config
        K = len(cfg.channels)
        top = self.top_decoder(enc[-1], enc[-1])
        d = [top]
        below = self.up(self.to_map(top).view(x.shape[0], cfg.channels[-1], *cfg.shape(self.sizes[-1])))
        lateral = [x] + enc[:-1]
        for l in range(K, -1, -1):
            out = self.decoder_cells[l](below, lateral[l])
            d.insert(0, out)
            below = self.up(out) if l > 1 else out
        return d

    def step(self, x: torch.Tensor, carry: RLadderCarry) -> tuple[FrameOutput, RLadderCarry]:
        """Frame ``x`` ``(batch, C, S, S)`` (the protocol's ``x_t``) in; the
        :class:`FrameOutput` after this frame and the new carry out: ``prediction``
        ``(B, C, S, S)`` of the next frame and ``bottom`` = ``d_0,t`` (both None without a
        decoder), ``class_logits`` ``(B, classes)`` or None, ``levels`` the decoder (or,
        without one, the encoder) activations, bottom to top."""
        return self._step(x, carry, zero_carry=False)

    def _step(self, x: torch.Tensor, carry: RLadderCarry, zero_carry: bool) -> tuple[FrameOutput, RLadderCarry]:
        cfg = self.config
        check_shape(x, (None, cfg.in_channels, *cfg.shape(cfg.image_size)), "x")
        enc, states = self._encoder(x, carry, zero_carry)
        logits = self.class_head(enc[-1]) if self.class_head is not None else None
        if not cfg.use_decoder:
            return (FrameOutput(prediction=None, class_logits=logits, levels=enc),
                    RLadderCarry(states, [], carry.step + 1))
        d = self._decoder(x, enc)
        check_shape(d[0], (x.shape[0], cfg.bottom_channels, *cfg.shape(cfg.image_size)), "d_0")
        pred = torch.sigmoid(self.predict_head(d[0]))
        return (FrameOutput(prediction=pred, class_logits=logits, levels=d, bottom=d[0]),
                RLadderCarry(states, d, carry.step + 1))

    def forward(self, frames: torch.Tensor, return_bottom: bool = False) -> ConvRLadderOutput:
        """Run over ``frames`` ``(batch, T, C, S, S)``, one :meth:`step` per frame."""
        cfg = self.config
        check_shape(frames, (None, None, cfg.in_channels, *cfg.shape(cfg.image_size)), "frames")
        carry = self.init_carry(frames.shape[0], frames.device, frames.dtype)
        steps = []
        for t in range(frames.shape[1]):  # frame 1 starts from init_carry's zeros
            out, carry = self._step(frames[:, t], carry, zero_carry=t == 0)
            steps.append(out)
        stack = lambda name: (torch.stack([getattr(s, name) for s in steps], 1)  # noqa: E731
                              if getattr(steps[0], name) is not None else None)
        return ConvRLadderOutput(stack("prediction"), stack("class_logits"),
                                 stack("bottom") if return_bottom else None)

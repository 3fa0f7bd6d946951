"""Convolutional cells of the Recurrent Ladder (SPEC §3.2): the ConvLSTM encoder cell and
the ConvG1 / ConvG2 / ConvG3 (and Ladder-combinator) decoder cells.

They implement the APIs of :mod:`learned_inference.cells` (:class:`EncoderCell`) and
:mod:`learned_inference.decoder_cells` (:class:`DecoderCell`) in the layout
``(batch, channels, H, W)``; dim 1 (channels) is the unit axis, so the engines concatenate
inputs along it exactly as in the fully connected case. A cell knows its spatial ``size``
``(H, W)`` (needed for its zero state and for its shape checks).

Normalisations (:func:`make_conv_norm`): ``"batch"`` BatchNorm2d; ``"layer"`` LayerNorm over
``(C, H, W)`` of each of ``groups`` channel groups, per example (``GroupNorm(groups, C)``,
learned per-channel scale and shift); ``"none"``.

Designs that are OURS (the paper's formulas are not in our text, SPEC §3.2):

* ConvLSTM: ``gates = Σ_i N_i(Conv_i(inp_i)) + Conv_h(h) + b`` over the input parts ``i``
  (bottom-up input, decoder inputs), each ``N_i`` applied to each of the four gate
  pre-activations separately ("a layer normalization after all the first convolutions
  of the inputs", RLadder App. A.4: LayerNorm in the RLadder experiments, BatchNorm in
  RTagger); forget gate bias initialised to 1.
* Gated decoder cells (following the gated VB update of SPEC §2.1, as :class:`G1DecoderCell`)::

      μ̂ = N(V * d_l+1)                     V: k×k conv, top-down prediction
      s  = sig(N_s(W_s * [e_l, μ̂]))         W_s: k×k conv, gate (shift of N_s = bias b)
      d_l = s ⊙ (U * e_l) + (1 − s) ⊙ μ̂     U: 1×1 conv with bias

  ConvG1: ``N``, ``N_s`` BatchNorm; ConvG2: LayerNorm (App. A.4: "a layer normalization
  after the first convolution over the concatenation of the inputs"); ConvG3: ConvG2 plus
  a residual path ``R = Conv1x1(ReLU(LN(Conv_k([e_l, μ̂]))))`` added to ``d_l``, its last
  convolution initialised to zero (ConvG3 starts as ConvG2).
* ``conv_ladder``: the Ladder combinator of SPEC §3.1 per channel, ``u = N(V * d_l+1)``
  without learned scale/shift, ``z̃ = P * e_l`` (1×1 conv).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from . import config_utils as cu
from .base import check_shape
from .cells import NORM_KINDS, EncoderCell
from .combinator import LadderCombinator
from .decoder_cells import DecoderCell, GatedUpdate

#: a kernel size: odd ``k`` (``k×k``) or odd ``(kh, kw)``
Kernel = Union[int, tuple[int, int]]
#: decoder cell names accepted by :func:`build_conv_decoder_cell`
CONV_DECODER_CELLS = ("convg1", "convg2", "convg3", "conv_ladder")


def make_conv_norm(kind: str, channels: int, groups: int = 1, affine: bool = True) -> nn.Module:
    """A normalisation of ``(batch, channels, H, W)`` maps (see the module docstring)."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=affine)
    if kind == "layer":
        return nn.GroupNorm(groups, channels, affine=affine)
    raise ValueError(f"norm: expected one of {NORM_KINDS}, got {kind!r}")


def _size(size) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2:
        raise ValueError(f"size: expected (H, W), got {size!r}")
    return cu.check_positive_int(size[0], "size[0]"), cu.check_positive_int(size[1], "size[1]")


def _kernel(kernel_size) -> tuple[int, int]:
    """``kernel_size`` (an odd int ``k`` for ``k×k``, or odd ``(kh, kw)``, e.g. ``(1, k)`` for
    a row of pitches) as ``(kh, kw)``."""
    pair = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(pair) != 2 or any(cu.check_positive_int(k, "kernel_size") % 2 == 0 for k in pair):
        raise ValueError(f"kernel_size: expected an odd int or a pair of odd ints (same padding), "
                         f"got {kernel_size!r}")
    return pair


def same_padding(kernel_size) -> tuple[int, int]:
    """The padding that keeps the spatial size under :func:`_kernel` ``(kernel_size)``."""
    kh, kw = _kernel(kernel_size)
    return kh // 2, kw // 2


class ConvLSTMEncoderCell(EncoderCell):
    """ConvLSTM encoder cell; state ``(h, c)`` each ``(batch, hidden, H, W)``, output ``h``.

    ``input_channels`` may be a tuple of channel counts: the input (concatenated along dim 1)
    is then split into these parts, each with its own input convolution and normalisation,
    and the normalised pre-activations are summed (so that, e.g., the bottom-up input and
    the decoder input ``d_l,t-1`` enter on an equal footing whatever their scales).
    ``part_gains`` scales each part's initial normalisation gain (its convolution with
    ``input_norm="none"``); 0 switches a part off at initialisation (it is still trained).
    ``size=(1, 1)`` with ``kernel_size=1`` is a fully connected LSTM on ``(batch, C, 1, 1)``.
    """

    def __init__(self, input_channels, hidden_channels: int, size, kernel_size: Kernel = 3,
                 input_norm: str = "layer", part_gains: Optional[tuple[float, ...]] = None) -> None:
        super().__init__()
        splits = (input_channels,) if isinstance(input_channels, int) else tuple(input_channels)
        self.splits = cu.check_widths(splits, "input_channels")
        self.input_width = sum(self.splits)
        self.output_width = cu.check_positive_int(hidden_channels, "hidden_channels")
        self.size = _size(size)
        k = _kernel(kernel_size)
        cu.check_choice(input_norm, NORM_KINDS, "input_norm")
        self.conv_x = nn.ModuleList(nn.Conv2d(c, 4 * hidden_channels, k, padding=same_padding(k),
                                              bias=input_norm == "none") for c in self.splits)
        self.norm_x = nn.ModuleList(make_conv_norm(input_norm, 4 * hidden_channels, groups=4)
                                    for _ in self.splits)
        self.conv_h = nn.Conv2d(hidden_channels, 4 * hidden_channels, k, padding=same_padding(k))
        gains = cu.check_weights(part_gains, len(self.splits), "part_gains") \
            if part_gains is not None else (1.0,) * len(self.splits)
        with torch.no_grad():
            for gain, conv, norm in zip(gains, self.conv_x, self.norm_x):
                (conv if input_norm == "none" else norm).weight.mul_(gain)
            self.conv_h.bias.zero_()
            self.conv_h.bias[hidden_channels:2 * hidden_channels] = 1.0  # forget gate

    def init_state(self, batch: int, device: torch.device,
                   dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros(batch, self.output_width, *self.size, device=device, dtype=dtype)
        return z, z.clone()

    def forward(self, inp: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        check_shape(inp, (None, self.input_width, *self.size), "inp")
        return self.forward_parts(inp.split(self.splits, dim=1), state)

    def forward_parts(self, parts: Sequence[Optional[torch.Tensor]],
                      state: Optional[tuple[torch.Tensor, torch.Tensor]]
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`forward` with the input given as its parts (no concatenation); a part
        ``None`` is known to be zero and ``state=None`` is the zero state (a sequence's
        first frame): their convolutions are skipped — a convolution of zeros is exactly
        its bias, so the outputs are those of :meth:`forward` with zeros, bit for bit."""
        if len(parts) != len(self.splits):
            raise ValueError(f"parts: expected {len(self.splits)} parts {self.splits}, got {len(parts)}")
        given = [p for p in parts if p is not None] + ([state[0]] if state is not None else [])
        if not given:
            raise ValueError("parts: at least one part or the state must be given (not None)")
        like = given[0]
        for i, (part, width) in enumerate(zip(parts, self.splits)):
            if part is not None:
                check_shape(part, (like.shape[0], width, *self.size), f"parts[{i}]")
        if state is None:
            gates, c = _conv_of_zeros(self.conv_h, like), None
        else:
            h, c = state
            check_shape(h, (like.shape[0], self.output_width, *self.size), "state.h")
            check_shape(c, (like.shape[0], self.output_width, *self.size), "state.c")
            gates = self.conv_h(h)
        for part, conv, norm in zip(parts, self.conv_x, self.norm_x):
            gates = gates + norm(conv(part) if part is not None else _conv_of_zeros(conv, like))
        i, f, o, g = gates.chunk(4, dim=1)
        new = torch.sigmoid(i) * torch.tanh(g)
        c = new if c is None else torch.sigmoid(f) * c + new  # c = 0: f ⊙ c vanishes
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


def _conv_of_zeros(conv: nn.Conv2d, like: torch.Tensor) -> torch.Tensor:
    """``conv(0)`` (its bias, or zeros) of shape ``(batch, out, H, W)`` of ``like``'s batch
    and size, without convolving."""
    shape = (like.shape[0], conv.out_channels, *like.shape[2:])
    if conv.bias is None:
        return like.new_zeros(shape)
    return conv.bias.view(1, -1, 1, 1).expand(shape)


class _ConvDecoderCell(DecoderCell):
    """Shape checks of a convolutional decoder cell at spatial ``size``."""

    def __init__(self, top_width: int, lateral_width: int, output_width: int, size) -> None:
        super().__init__(cu.check_positive_int(top_width, "top_channels"),
                         cu.check_positive_int(lateral_width, "lateral_channels"),
                         cu.check_positive_int(output_width, "output_channels"))
        self.size = _size(size)

    def _check(self, top_down: torch.Tensor, lateral: torch.Tensor) -> None:
        check_shape(top_down, (None, self.top_width, *self.size), "top_down")
        check_shape(lateral, (top_down.shape[0], self.lateral_width, *self.size), "lateral")


class ConvGatedDecoderCell(GatedUpdate, _ConvDecoderCell):
    """ConvG1 (``norm="batch"``), ConvG2 (``"layer"``), ConvG3 (``"layer"``,
    ``residual=True``): OUR reconstruction, see the module docstring."""

    def __init__(self, top_channels: int, lateral_channels: int, output_channels: int, size,
                 kernel_size: Kernel = 3, norm: str = "layer", residual: bool = False) -> None:
        super().__init__(top_channels, lateral_channels, output_channels, size)
        k = _kernel(kernel_size)
        cu.check_choice(norm, NORM_KINDS, "norm")
        bias = norm == "none"
        self.V = nn.Conv2d(top_channels, output_channels, k, padding=same_padding(k), bias=bias)
        self.norm_mu = make_conv_norm(norm, output_channels)
        self.W_s = nn.Conv2d(lateral_channels + output_channels, output_channels, k,
                             padding=same_padding(k), bias=bias)
        self.norm_s = make_conv_norm(norm, output_channels)
        self.U = nn.Conv2d(lateral_channels, output_channels, 1)
        self.residual: Optional[nn.Sequential] = None
        if residual:
            last = nn.Conv2d(output_channels, output_channels, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.residual = nn.Sequential(
                nn.Conv2d(lateral_channels + output_channels, output_channels, k,
                          padding=same_padding(k), bias=False),
                make_conv_norm("layer", output_channels), nn.ReLU(), last)

    def forward(self, top_down: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        out, mu = self.gated_output(top_down, lateral)
        if self.residual is not None:
            out = out + self.residual(torch.cat([lateral, mu], dim=1))
        return out


class ConvLadderCombinatorDecoderCell(_ConvDecoderCell):
    """The Ladder combinator (SPEC §3.1) per channel: ``d_l = g(P * e_l, N(V * d_l+1))``."""

    def __init__(self, top_channels: int, lateral_channels: int, output_channels: int, size,
                 kernel_size: Kernel = 3, norm: str = "layer", sigmoid_v: bool = False) -> None:
        super().__init__(top_channels, lateral_channels, output_channels, size)
        k = _kernel(kernel_size)
        self.V = nn.Conv2d(top_channels, output_channels, k, padding=same_padding(k), bias=False)
        self.norm_u = make_conv_norm(norm, output_channels, affine=False)
        self.P = nn.Conv2d(lateral_channels, output_channels, 1)
        self.combinator = LadderCombinator(output_channels, sigmoid_v=sigmoid_v)

    def forward(self, top_down: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        self._check(top_down, lateral)
        return self.combinator(self.P(lateral), self.norm_u(self.V(top_down)))


def decoder_norm(name: str) -> str:
    """The normalisation a decoder cell name implies (ConvG1: batch; the others: layer)."""
    return "batch" if name == "convg1" else "layer"


def build_conv_decoder_cell(name: str, top_channels: int, lateral_channels: int,
                            output_channels: int, size, kernel_size: Kernel = 3) -> DecoderCell:
    """``name`` in :data:`CONV_DECODER_CELLS` -> a convolutional decoder cell."""
    cu.check_choice(name, CONV_DECODER_CELLS, "decoder_cell")
    args = (top_channels, lateral_channels, output_channels, size, kernel_size)
    if name == "conv_ladder":
        return ConvLadderCombinatorDecoderCell(*args, norm="layer")
    return ConvGatedDecoderCell(*args, norm=decoder_norm(name), residual=name == "convg3")

"""Stateless decoder cells of the Recurrent Ladder (SPEC §3.2).

API (:class:`DecoderCell`): ``forward(top_down, lateral, step=0) -> output`` with
``top_down`` = ``d_{l+1,t}`` (``(batch, top_width)``), ``lateral`` = ``e_{l,t}``
(``(batch, lateral_width)``) and output ``d_{l,t}`` (``(batch, output_width)``); ``step``
(the iteration or frame index) selects per-step BatchNorm statistics where the cell keeps
them (``norm_steps > 1``, :class:`~learned_inference.cells.StepBatchNorm`).

The paper's G1 formulas are not in the text we have; :class:`G1DecoderCell` is OUR
reconstruction following the gated VB update of SPEC §2.1
(``m = s ⊙ bottom-up + (1 − s) ⊙ top-down``, gain ``s`` in (0, 1)).
:class:`LadderCombinatorDecoderCell` wraps the Ladder combinator of SPEC §3.1.
"""
from __future__ import annotations

import abc

import torch
from torch import nn

from .base import check_shape
from .cells import apply_norm, make_norm
from .combinator import LadderCombinator

#: decoder cell names accepted by :func:`build_decoder_cell`
DECODER_CELLS = ("g1", "ladder")


class DecoderCell(nn.Module, abc.ABC):
    """Stateless decoder cell of level ``l`` (SPEC §3.2)."""

    def __init__(self, top_width: int, lateral_width: int, output_width: int) -> None:
        super().__init__()
        self.top_width = top_width
        self.lateral_width = lateral_width
        self.output_width = output_width

    def _check(self, top_down: torch.Tensor, lateral: torch.Tensor) -> None:
        check_shape(top_down, (None, self.top_width), "top_down")
        check_shape(lateral, (top_down.shape[0], self.lateral_width), "lateral")

    @abc.abstractmethod
    def forward(self, top_down: torch.Tensor, lateral: torch.Tensor, step: int = 0) -> torch.Tensor:
        """``(batch, top_width), (batch, lateral_width) -> (batch, output_width)``."""


class GatedUpdate:
    """The gated update shared by G1 and the ConvG cells (SPEC §3.2, ours): a cell that
    defines ``V``, ``norm_mu``, ``W_s``, ``norm_s``, ``U`` (linear or convolutional, dim 1 =
    units / channels) and ``_check`` gets ``μ̂ = N(V d_{l+1})``, ``s = sig(N_s(W_s [e_l, μ̂]))``
    and ``d_l = s ⊙ U e_l + (1 − s) ⊙ μ̂``."""

    def gate_and_prediction(self, top_down: torch.Tensor, lateral: torch.Tensor,
                            step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s, μ̂)``, each shaped like the output ``d_l``."""
        self._check(top_down, lateral)
        mu = apply_norm(self.norm_mu, self.V(top_down), step)
        s = torch.sigmoid(apply_norm(self.norm_s, self.W_s(torch.cat([lateral, mu], dim=1)), step))
        return s, mu

    def gated_output(self, top_down: torch.Tensor, lateral: torch.Tensor,
                     step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d_l, μ̂)``."""
        s, mu = self.gate_and_prediction(top_down, lateral, step)
        return s * self.U(lateral) + (1 - s) * mu, mu


class G1DecoderCell(GatedUpdate, DecoderCell):
    """Gated decoder cell (OUR reconstructed G1, SPEC §3.2)::

        μ̂ = N(V d_{l+1})                       top-down prediction
        s  = sig(N_s(W_s [e_l, μ̂]))            gate in (0, 1), per unit
        d_l = s ⊙ (U e_l) + (1 − s) ⊙ μ̂         U: linear with bias

    ``N`` and ``N_s`` are ``norm`` normalisations with learned scale and shift (the shift
    of ``N_s`` is the gate bias ``b``; with ``norm="none"`` the linear maps carry biases);
    ``norm_steps`` BatchNorm statistics per step (``make_norm``).
    """

    def __init__(self, top_width: int, lateral_width: int, output_width: int,
                 norm: str = "batch", norm_steps: int = 1) -> None:
        super().__init__(top_width, lateral_width, output_width)
        bias = norm == "none"
        self.V = nn.Linear(top_width, output_width, bias=bias)
        self.norm_mu = make_norm(norm, output_width, steps=norm_steps)
        self.W_s = nn.Linear(lateral_width + output_width, output_width, bias=bias)
        self.norm_s = make_norm(norm, output_width, steps=norm_steps)
        self.U = nn.Linear(lateral_width, output_width)

    def forward(self, top_down: torch.Tensor, lateral: torch.Tensor, step: int = 0) -> torch.Tensor:
        return self.gated_output(top_down, lateral, step)[0]


class LadderCombinatorDecoderCell(DecoderCell):
    """The Ladder combinator as a decoder cell (SPEC §3.1/§3.2)::

        u   = N(V d_{l+1})       normalised, no learned scale/shift
        z̃   = P e_l              linear projection (with bias) to the level width
        d_l = g(z̃, u)            :class:`LadderCombinator`

    At the authors' init (a2 = a7 = 1, others 0) the output is zero.
    """

    def __init__(self, top_width: int, lateral_width: int, output_width: int,
                 norm: str = "batch", sigmoid_v: bool = False, norm_steps: int = 1) -> None:
        super().__init__(top_width, lateral_width, output_width)
        self.V = nn.Linear(top_width, output_width, bias=False)
        self.norm_u = make_norm(norm, output_width, affine=False, steps=norm_steps)
        self.P = nn.Linear(lateral_width, output_width)
        self.combinator = LadderCombinator(output_width, sigmoid_v=sigmoid_v)

    def forward(self, top_down: torch.Tensor, lateral: torch.Tensor, step: int = 0) -> torch.Tensor:
        self._check(top_down, lateral)
        u = apply_norm(self.norm_u, self.V(top_down), step)
        return self.combinator(self.P(lateral), u)


def build_decoder_cell(name: str, top_width: int, lateral_width: int, output_width: int,
                       norm: str = "batch", sigmoid_v: bool = False,
                       norm_steps: int = 1) -> DecoderCell:
    """``name`` in :data:`DECODER_CELLS` -> a fully connected decoder cell."""
    if name == "g1":
        return G1DecoderCell(top_width, lateral_width, output_width, norm, norm_steps)
    if name == "ladder":
        return LadderCombinatorDecoderCell(top_width, lateral_width, output_width, norm,
                                           sigmoid_v, norm_steps)
    raise ValueError(f"decoder_cell: expected one of {DECODER_CELLS}, got {name!r}")

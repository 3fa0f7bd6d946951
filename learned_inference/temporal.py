"""The temporal mode of the fully connected RLadder (SPEC §3.2: "in video one iteration
per frame and the low-level task is next-frame prediction").

:class:`TemporalRLadder` wraps an :class:`~learned_inference.rladder.RLadder` and runs
one RLadder iteration per frame with :meth:`RLadder.step`, carrying the encoder states
and the decoder outputs from frame ``t`` to frame ``t+1`` (the past-to-future and
decoder-to-encoder messages of the paper's Fig. 1c).

Design decisions that are OURS (documented; the paper's video task is convolutional):

* Occlusion: the engine receives ``[x̃_t ⊙ o_t, o_t]`` (input width ``2 n_0``), i.e. the
  visible values with occluded entries zeroed plus the visibility mask itself, so it can
  tell "occluded" from "observed as 0" (``mask_input=False``: ``x̃_t ⊙ o_t`` only).
* Low-level task: after frame ``t`` the bottom decoder output ``d_0,t`` (width of the
  input) goes through a linear head to the prediction ``x̂_t+1`` of the next observation
  (``n_0`` units); without a decoder (the hierarchical-RNN ablation) the RLadder's own
  linear read-out of ``e_1,t`` is used instead of ``d_0,t``.
* Optional top-level task (``top_dim > 0``): a linear read-out of the top encoder output
  ``e_L,t`` (the RLadder's class head, used as a regression head), trained by the
  experiment to estimate the current top latent.
* The decoder normalisation defaults to LayerNorm (the RLadder paper's choice for its
  temporal experiments, App. A.4); BatchNorm statistics would mix all frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from . import config_utils as cu
from .base import check_shape
from .cells import ENCODER_CELLS, NORM_KINDS
from .decoder_cells import DECODER_CELLS
from .rladder import RLadder, RLadderCarry, RLadderConfig


@dataclass
class TemporalRLadderConfig:
    """Configuration of :class:`TemporalRLadder`.

    ``obs_dim``: width ``n_0`` of an observation; ``hidden_dims``: RLadder widths
    ``(n_1, .., n_L)``; ``top_dim``: width of the top read-out (0: none); the other fields
    are those of :class:`RLadderConfig` (``use_decoder=False``: hierarchical RNN;
    ``decoder_to_encoder=False``: no decoder-to-encoder connections)."""

    obs_dim: int
    hidden_dims: tuple[int, ...]
    top_dim: int = 0
    mask_input: bool = True
    encoder_cell: str = "gru"
    decoder_cell: str = "g1"
    use_decoder: bool = True
    decoder_to_encoder: bool = True
    encoder_input_norm: str = "layer"
    decoder_norm: str = "layer"

    def __post_init__(self) -> None:
        cu.check_positive_int(self.obs_dim, "obs_dim")
        self.hidden_dims = cu.check_widths(self.hidden_dims, "hidden_dims")
        cu.check_nonnegative_int(self.top_dim, "top_dim")
        cu.check_bool(self.mask_input, "mask_input")
        cu.check_choice(self.encoder_cell, ENCODER_CELLS, "encoder_cell")
        cu.check_choice(self.decoder_cell, DECODER_CELLS, "decoder_cell")
        cu.check_bool(self.use_decoder, "use_decoder")
        cu.check_bool(self.decoder_to_encoder, "decoder_to_encoder")
        cu.check_choice(self.encoder_input_norm, NORM_KINDS, "encoder_input_norm")
        cu.check_choice(self.decoder_norm, NORM_KINDS, "decoder_norm")

    @property
    def input_dim(self) -> int:
        """Width of the per-frame engine input: ``2 n_0`` with the mask, else ``n_0``."""
        return 2 * self.obs_dim if self.mask_input else self.obs_dim

    def rladder_config(self) -> RLadderConfig:
        return RLadderConfig(input_dim=self.input_dim, hidden_dims=self.hidden_dims, num_classes=self.top_dim,
                             encoder_cell=self.encoder_cell, decoder_cell=self.decoder_cell,
                             use_decoder=self.use_decoder, decoder_to_encoder=self.decoder_to_encoder,
                             encoder_input_norm=self.encoder_input_norm, decoder_norm=self.decoder_norm,
                             denoise_readout="identity")


@dataclass
class TemporalOutput:
    """``predictions`` ``(B, T, n_0)``: index ``t-1`` = ``x̂_t+1``, the prediction made
    after frame ``t``; ``top`` ``(B, T, top_dim)`` the top read-out per frame, or None;
    ``levels`` (only when asked) ``levels[t-1][l]`` the level-``l`` activations at frame ``t``."""

    predictions: torch.Tensor
    top: Optional[torch.Tensor]
    levels: Optional[list] = None


class TemporalRLadder(nn.Module):
    """RLadder run online over frames, predicting the next observation (SPEC §3.2)."""

    def __init__(self, config: TemporalRLadderConfig) -> None:
        super().__init__()
        self.config = config
        self.obs_dim = config.obs_dim
        self.rladder = RLadder(config.rladder_config())
        self.predict_head = nn.Linear(config.input_dim, config.obs_dim)

    def encode_frame(self, x_noisy: torch.Tensor, visibility: Optional[torch.Tensor]) -> torch.Tensor:
        """``[x̃ ⊙ o, o]`` (or ``x̃ ⊙ o``) for one frame ``(B, n_0)``; occluded values are
        never read (NaN there is fine)."""
        check_shape(x_noisy, (None, self.obs_dim), "x_noisy")
        if visibility is None:
            visibility = torch.ones_like(x_noisy)
        check_shape(visibility, tuple(x_noisy.shape), "visibility")
        o = visibility.to(x_noisy.dtype)
        x = torch.where(o > 0, x_noisy, torch.zeros_like(x_noisy))
        return torch.cat([x, o], 1) if self.config.mask_input else x

    def init_carry(self, batch: int, device: torch.device, dtype: torch.dtype) -> RLadderCarry:
        return self.rladder.init_carry(batch, device, dtype)

    def step(self, x_noisy: torch.Tensor, visibility: Optional[torch.Tensor], carry: RLadderCarry):
        """Frame ``t`` in, ``(x̂_t+1 (B, n_0), top (B, top_dim) or None, levels, carry)`` out."""
        out, carry = self.rladder.step(self.encode_frame(x_noisy, visibility), carry)
        return self.predict_head(out.denoised), out.class_logits, out.levels, carry

    def forward(self, x_noisy: torch.Tensor, visibility: Optional[torch.Tensor] = None,
                return_levels: bool = False) -> TemporalOutput:
        """Run over ``x_noisy`` ``(B, T, n_0)`` with ``visibility`` ``(B, T, n_0)`` (None: all
        visible), one RLadder iteration per frame."""
        check_shape(x_noisy, (None, None, self.obs_dim), "x_noisy")
        if visibility is not None:
            check_shape(visibility, tuple(x_noisy.shape), "visibility")
        B, T = x_noisy.shape[:2]
        carry = self.init_carry(B, x_noisy.device, x_noisy.dtype)
        preds, tops, levels = [], [], []
        for t in range(T):
            pred, top, lv, carry = self.step(x_noisy[:, t], None if visibility is None else visibility[:, t], carry)
            preds.append(pred)
            tops.append(top)
            if return_levels:
                levels.append(lv)
        top = torch.stack(tops, 1) if tops and tops[0] is not None else None
        return TemporalOutput(torch.stack(preds, 1), top, levels if return_levels else None)

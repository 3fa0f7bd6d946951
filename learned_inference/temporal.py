"""The temporal mode of the fully connected RLadder (SPEC §3.2: "in video one iteration
per frame and the low-level task is next-frame prediction").

:class:`TemporalRLadder` wraps an :class:`~learned_inference.rladder.RLadder` and runs
one RLadder iteration per frame with :meth:`RLadder.step`, carrying the encoder states
and the decoder outputs from frame ``t`` to frame ``t+1`` (the past-to-future and
decoder-to-encoder messages of the paper's Fig. 1c). It is a
:class:`~learned_inference.base.SequenceEngine`: ``step(x_t, carry, visibility=None)``
per frame, ``forward`` over a whole sequence.

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
  temporal experiments, App. A.4; :data:`LADDER_DEFAULTS`); BatchNorm statistics would mix
  all frames.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import torch
from torch import nn

from . import config_utils as cu
from .base import FrameOutput, SequenceEngine, check_dtype, check_shape
from .rladder import RLadder, RLadderCarry, RLadderConfig

#: the RLadder settings :meth:`TemporalRLadderConfig.make` uses unless told otherwise
LADDER_DEFAULTS = {"decoder_norm": "layer"}


@dataclass
class TemporalRLadderConfig:
    """Configuration of :class:`TemporalRLadder`: the RLadder's own config plus the
    temporal fields.

    Attributes:
        obs_dim: width ``n_0`` of an observation.
        ladder: the RLadder (:class:`RLadderConfig`, validated there). Its ``input_dim``
            and ``num_classes`` are replaced in ``__post_init__`` (``dataclasses.replace``,
            which re-validates) by :attr:`input_dim` and ``top_dim``; whatever it said for
            these two fields is ignored. ``use_decoder=False``: hierarchical RNN;
            ``decoder_to_encoder=False``: no decoder-to-encoder connections.
        top_dim: width of the top read-out (the RLadder's class head on ``e_L,t``; 0: none).
        mask_input: feed the visibility mask beside the visible values (module docstring).

    :meth:`make` builds one from the widths with the temporal defaults
    (:data:`LADDER_DEFAULTS`).
    """

    obs_dim: int
    ladder: RLadderConfig
    top_dim: int = 0
    mask_input: bool = True

    def __post_init__(self) -> None:
        cu.check_positive_int(self.obs_dim, "obs_dim")
        cu.check_nonnegative_int(self.top_dim, "top_dim")
        cu.check_bool(self.mask_input, "mask_input")
        if not isinstance(self.ladder, RLadderConfig):
            raise ValueError(f"ladder: expected an RLadderConfig, got {type(self.ladder).__name__}")
        self.ladder = replace(self.ladder, input_dim=self.input_dim, num_classes=self.top_dim)

    @classmethod
    def make(cls, obs_dim: int, hidden_dims: tuple[int, ...], *, top_dim: int = 0,
             mask_input: bool = True, **ladder: Any) -> "TemporalRLadderConfig":
        """``ladder``: :class:`RLadderConfig` fields other than ``input_dim``,
        ``hidden_dims`` and ``num_classes``, over :data:`LADDER_DEFAULTS`."""
        cu.check_positive_int(obs_dim, "obs_dim")
        cu.check_bool(mask_input, "mask_input")
        if "num_classes" in ladder:
            raise ValueError("num_classes: the top read-out's width is top_dim")
        rl = RLadderConfig(input_dim=2 * obs_dim if mask_input else obs_dim, hidden_dims=hidden_dims,
                           **{**LADDER_DEFAULTS, **ladder})
        return cls(obs_dim=obs_dim, ladder=rl, top_dim=top_dim, mask_input=mask_input)

    @property
    def input_dim(self) -> int:
        """Width of the per-frame engine input: ``2 n_0`` with the mask, else ``n_0``."""
        return 2 * self.obs_dim if self.mask_input else self.obs_dim


@dataclass
class TemporalOutput:
    """``predictions`` ``(B, T, n_0)``: index ``t-1`` = ``x̂_t+1``, the prediction made
    after frame ``t``; ``top`` ``(B, T, top_dim)`` the top read-out per frame, or None;
    ``levels`` (only when asked) ``levels[t-1][l]`` the level-``l`` activations at frame ``t``."""

    predictions: torch.Tensor
    top: Optional[torch.Tensor]
    levels: Optional[list] = None


class TemporalRLadder(nn.Module, SequenceEngine):
    """RLadder run online over frames, predicting the next observation (SPEC §3.2)."""

    def __init__(self, config: TemporalRLadderConfig) -> None:
        super().__init__()
        self.config = config
        self.obs_dim = config.obs_dim
        self.rladder = RLadder(config.ladder)
        self.predict_head = nn.Linear(config.input_dim, config.obs_dim)

    def encode_frame(self, x_noisy: torch.Tensor, visibility: Optional[torch.Tensor]) -> torch.Tensor:
        """``[x̃ ⊙ o, o]`` (or ``x̃ ⊙ o``) for one frame ``(B, n_0)``; occluded values are
        never read (NaN there is fine)."""
        check_shape(x_noisy, (None, self.obs_dim), "x_noisy")
        check_dtype(x_noisy, self, "x_noisy")
        if visibility is None:
            visibility = torch.ones_like(x_noisy)
        check_shape(visibility, tuple(x_noisy.shape), "visibility")
        o = visibility.to(x_noisy.dtype)
        x = torch.where(o > 0, x_noisy, torch.zeros_like(x_noisy))
        return torch.cat([x, o], 1) if self.config.mask_input else x

    def init_carry(self, batch: int, device: torch.device, dtype: torch.dtype) -> RLadderCarry:
        return self.rladder.init_carry(batch, device, dtype)

    def step(self, x_t: torch.Tensor, carry: RLadderCarry,
             visibility: Optional[torch.Tensor] = None) -> tuple[FrameOutput, RLadderCarry]:
        """Frame ``x_t`` ``(B, n_0)`` (``visibility`` ``(B, n_0)``; None: all visible) in;
        :class:`FrameOutput` (``prediction`` = ``x̂_t+1`` ``(B, n_0)``, ``class_logits`` = the
        top read-out ``(B, top_dim)`` or None, ``levels``, ``bottom`` = ``d_0,t`` or None)
        and the new carry out."""
        out, carry = self.rladder.step(self.encode_frame(x_t, visibility), carry)
        bottom = out.levels[0] if self.config.ladder.use_decoder else None
        return FrameOutput(prediction=self.predict_head(out.denoised), class_logits=out.class_logits,
                           levels=out.levels, bottom=bottom), carry

    def forward(self, x_noisy: torch.Tensor, visibility: Optional[torch.Tensor] = None,
                return_levels: bool = False) -> TemporalOutput:
        """Run over ``x_noisy`` ``(B, T, n_0)`` with ``visibility`` ``(B, T, n_0)`` (None: all
        visible), one :meth:`step` per frame."""
        check_shape(x_noisy, (None, None, self.obs_dim), "x_noisy")
        if visibility is not None:
            check_shape(visibility, tuple(x_noisy.shape), "visibility")
        B, T = x_noisy.shape[:2]
        carry = self.init_carry(B, x_noisy.device, x_noisy.dtype)
        preds, tops, levels = [], [], []
        for t in range(T):
            out, carry = self.step(x_noisy[:, t], carry, None if visibility is None else visibility[:, t])
            preds.append(out.prediction)
            tops.append(out.class_logits)
            if return_levels:
                levels.append(out.levels)
        top = torch.stack(tops, 1) if tops and tops[0] is not None else None
        return TemporalOutput(torch.stack(preds, 1), top, levels if return_levels else None)

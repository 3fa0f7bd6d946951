"""Comparison model 3 and the RLadder rows (RLadder §3.1, Table 1): the hierarchical RNN
(the convolutional RLadder without its decoder: a stack of ConvLSTMs with convolutional
layers in between) and the RLadder with its ablations. The ablations of the tasks (no
prediction, no classification) are in the costs (:mod:`.task`); the architectural ones are
the engine's switches ``use_decoder`` / ``decoder_to_encoder``."""
from __future__ import annotations

import torch
from torch import nn

from learned_inference.conv_rladder import ConvRLadder, ConvRLadderConfig

from .outputs import RowOutput


class LadderRow(nn.Module):
    """A :class:`ConvRLadder` run over the frames; the class after the last frame."""

    def __init__(self, config: ConvRLadderConfig) -> None:
        super().__init__()
        self.engine = ConvRLadder(config)

    def forward(self, frames: torch.Tensor, reconstruction: torch.Tensor,
                return_bottom: bool = False) -> RowOutput:
        out = self.engine(frames, return_bottom=return_bottom)
        last = out.class_logits[:, -1] if out.class_logits is not None else None
        return RowOutput(class_logits=last, frame_logits=out.class_logits,
                         predictions=out.predictions, bottom=out.bottom)

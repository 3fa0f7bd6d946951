"""Comparison model 2 (RLadder §3.1, Fig. 3): the temporal baseline — the static
feed-forward network (:class:`~.static.ConvFeatures`) applied to every frame, with a
recurrent network at the top only, so temporal information can propagate only at a high
level. The RNN is the RLadder's top cell (a LayerNorm'd fully connected LSTM, ours)."""
from __future__ import annotations

import torch
from torch import nn

from learned_inference.base import check_shape
from learned_inference.cells import LSTMEncoderCell

from .outputs import RowOutput
from .static import ConvFeatures


class TemporalBaseline(nn.Module):
    """Frames ``(B, T, C, S, S)`` -> the class after each frame; the class after the last."""

    def __init__(self, in_channels: int, image_size: int, channels: tuple[int, ...], top_width: int,
                 num_classes: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.features = ConvFeatures(in_channels, image_size, channels, kernel_size)
        self.rnn = LSTMEncoderCell(self.features.flat_width, top_width, "layer")
        self.head = nn.Linear(top_width, num_classes)

    def forward(self, frames: torch.Tensor, reconstruction: torch.Tensor) -> RowOutput:
        f = self.features
        check_shape(frames, (None, None, f.in_channels, f.image_size, f.image_size), "frames")
        B, T = frames.shape[:2]
        feats = f(frames.flatten(0, 1)).view(B, T, -1)  # every frame through the static net at once
        state = self.rnn.init_state(B, frames.device, frames.dtype)
        logits = []
        for t in range(T):
            h, state = self.rnn(feats[:, t], state)
            logits.append(self.head(h))
        frame_logits = torch.stack(logits, 1)
        return RowOutput(class_logits=frame_logits[:, -1], frame_logits=frame_logits)

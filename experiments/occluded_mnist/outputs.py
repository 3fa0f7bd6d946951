"""What every row model of the Occluded Moving MNIST experiment returns (RLadder §3.1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class RowOutput:
    """``class_logits`` ``(B, classes)``: the class after the last frame (None for a row
    without a classifier); ``frame_logits`` ``(B, T, classes)`` the class read-out after each
    frame (temporal rows); ``predictions`` ``(B, T, 1, H, W)``, index ``t-1`` = the prediction
    of frame ``t+1`` made after frame ``t`` (None without a prediction read-out);
    ``bottom`` ``(B, T, c_0, H, W)`` the bottom decoder (only when asked);
    ``teacher_logits`` ``(B, classes)`` the Mean Teacher's class after the last frame."""

    class_logits: Optional[torch.Tensor]
    frame_logits: Optional[torch.Tensor] = None
    predictions: Optional[torch.Tensor] = None
    bottom: Optional[torch.Tensor] = None
    teacher_logits: Optional[torch.Tensor] = None

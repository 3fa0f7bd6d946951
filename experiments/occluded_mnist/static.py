"""Comparison model 1 (RLadder §3.1): the optimal temporal reconstruction fed to a static
feed-forward classifier — the gold standard.

:class:`ConvFeatures` is the static feed-forward network from which the RLadder encoder is
derived (ours, App. D.1 missing): the convolutional RLadder encoder with every ConvLSTM
replaced by Conv k×k + BatchNorm + ReLU, the same Conv + BatchNorm + ReLU + 2×2 max-pooling
blocks between levels, flattened at the top. The temporal baseline reuses it per frame.
"""
from __future__ import annotations

import torch
from torch import nn

from learned_inference.base import check_shape
from learned_inference.conv_rladder import DownBlock

from .outputs import RowOutput


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class ConvFeatures(nn.Module):
    """``(B, C, S, S)`` -> ``(B, flat_width)`` with ``flat_width = c_K (S / 2^K)^2``."""

    def __init__(self, in_channels: int, image_size: int, channels: tuple[int, ...],
                 kernel_size: int = 3) -> None:
        super().__init__()
        if image_size % 2 ** len(channels):
            raise ValueError(f"image_size: {image_size} is not divisible by 2^{len(channels)}")
        self.in_channels, self.image_size = in_channels, image_size
        layers: list[nn.Module] = []
        below = in_channels
        for c in channels:
            layers += [conv_bn_relu(below, c, kernel_size), DownBlock(c, kernel_size)]
            below = c
        self.body = nn.Sequential(*layers)
        self.flat_width = channels[-1] * (image_size >> len(channels)) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, (None, self.in_channels, self.image_size, self.image_size), "x")
        return self.body(x).flatten(1)


class StaticClassifier(nn.Module):
    """:class:`ConvFeatures` + dense ``top_width`` (BatchNorm, ReLU) + class layer, applied
    to the optimal reconstruction ``(B, 1, S, S)``; the frames are not used."""

    def __init__(self, in_channels: int, image_size: int, channels: tuple[int, ...], top_width: int,
                 num_classes: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.features = ConvFeatures(in_channels, image_size, channels, kernel_size)
        self.head = nn.Sequential(nn.Linear(self.features.flat_width, top_width, bias=False),
                                  nn.BatchNorm1d(top_width), nn.ReLU(), nn.Linear(top_width, num_classes))

    def forward(self, frames: torch.Tensor, reconstruction: torch.Tensor) -> RowOutput:
        return RowOutput(class_logits=self.head(self.features(reconstruction)))

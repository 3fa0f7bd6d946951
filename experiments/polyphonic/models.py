"""The rows of our Table 3: next-step predictors of the 88 note probabilities.

Every model maps the shifted piano roll ``(B, T, 88)`` (:func:`.data.shift_right`) to logits
``(B, T, 88)``; position ``t`` may use inputs ``0..t`` only (all are recurrent and run
forward in time), so it predicts step ``t`` from the steps before it.

* ``rladder`` — :class:`~learned_inference.conv_rladder.ConvRLadder` in the ``row`` layout
  (convolutions over pitch, a fully connected LSTM top); logits = its 1×1 read-out of the
  bottom decoder output ``d_0`` per pitch (RLadder §3.2: the marginal of each note).
* ``hierarchical_rnn`` — the same encoder without a decoder (RLadder §3.1's "encoder
  only"); logits = a linear read-out of the top LSTM (the ConvRLadder's head on ``e_top``).
* ``lstm`` — one LSTM layer on the 88 inputs and a linear read-out (the paper's marginal
  LSTM baseline, Jozefowicz et al. 2015).
* ``frequency`` — a constant per-note probability, initialised at the training-set
  frequency (the maximum-likelihood constant): the sanity floor.

The three learned rows add a learned per-note bias to their logits, initialised like the
``frequency`` row (:class:`NoteBias`; ours, the same for every row): they start at the
floor instead of at probability 1/2 for every note.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from experiments.datasets.polyphonic import N_NOTES
from learned_inference.base import check_shape
from learned_inference.conv_rladder import ConvRLadder, ConvRLadderConfig
from pgm_ladder.training.errors import ConfigError

from .config import NetConfig, PolyphonicConfig


class PitchLadder(nn.Module):
    """The ``rladder`` / ``hierarchical_rnn`` rows (module docstring); the 88 notes are
    zero-padded to ``pitch_width`` (centred) and the logits cropped back."""

    def __init__(self, net: NetConfig, use_decoder: bool) -> None:
        super().__init__()
        try:
            self.engine = ConvRLadder(ConvRLadderConfig(
                in_channels=1, image_size=net.pitch_width, channels=net.channels, top_width=net.top_width,
                bottom_channels=net.bottom_channels, num_classes=0 if use_decoder else N_NOTES,
                kernel_size=net.kernel_size, encoder_norm=net.encoder_norm, decoder_cell=net.decoder_cell,
                decoder_to_encoder_mode="gain", feedback_gain_init=net.feedback_gain_init,
                use_decoder=use_decoder, layout="row"))
        except ValueError as err:
            raise ConfigError(f"net: {err}") from err
        self.left = (net.pitch_width - N_NOTES) // 2
        self.right = net.pitch_width - N_NOTES - self.left

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        check_shape(inputs, (None, None, N_NOTES), "inputs")
        B, T, _ = inputs.shape
        frames = F.pad(inputs, (self.left, self.right))[:, :, None, None, :]  # (B, T, 1, 1, W)
        out = self.engine(frames, return_bottom=True)
        if out.bottom is None:  # hierarchical RNN: the linear head on the top LSTM
            return out.class_logits
        logits = self.engine.predict_head(out.bottom.flatten(0, 1))  # (B*T, 1, 1, W)
        return logits.view(B, T, -1)[:, :, self.left:self.left + N_NOTES]


class MarginalLSTM(nn.Module):
    """One LSTM layer over the notes and a linear read-out of the 88 logits."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_NOTES, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, N_NOTES)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        check_shape(inputs, (None, None, N_NOTES), "inputs")
        return self.readout(self.lstm(inputs)[0])


def frequency_logits(frequencies: torch.Tensor) -> torch.Tensor:
    """``logit(frequencies)``, clamped to [1e-4, 1 − 1e-4] so that a note never heard in
    training keeps a finite cost."""
    check_shape(frequencies, (N_NOTES,), "frequencies")
    return torch.logit(frequencies.float().clamp(1e-4, 1 - 1e-4))


class FrequencyPredictor(nn.Module):
    """Constant logits, initialised at :func:`frequency_logits`."""

    def __init__(self, frequencies: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(frequency_logits(frequencies))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        check_shape(inputs, (None, None, N_NOTES), "inputs")
        return self.logits.expand(*inputs.shape[:2], N_NOTES)


class NoteBias(nn.Module):
    """``net(inputs) + b``, a learned per-note bias ``b`` initialised at
    :func:`frequency_logits`."""

    def __init__(self, net: nn.Module, frequencies: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.bias = nn.Parameter(frequency_logits(frequencies))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs) + self.bias


def build_model(config: PolyphonicConfig, frequencies: torch.Tensor) -> nn.Module:
    """The network of ``config.row``; ``frequencies`` ``(88,)`` only for ``frequency``."""
    if config.row in ("rladder", "hierarchical_rnn"):
        return NoteBias(PitchLadder(config.net, use_decoder=config.row == "rladder"), frequencies)
    if config.row == "lstm":
        return NoteBias(MarginalLSTM(config.net.lstm_hidden), frequencies)
    if config.row == "frequency":
        return FrequencyPredictor(frequencies)
    raise ConfigError(f"row: expected one of rladder, hierarchical_rnn, lstm, frequency, got {config.row!r}")

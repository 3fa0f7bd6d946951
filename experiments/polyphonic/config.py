"""Typed configuration of the ``polyphonic`` experiment and its presets (SPEC §5–7).

``row`` selects the model of Table 3 (:data:`ROWS`), ``data.corpus`` one of the four corpora.
Values marked "ours" are reconstructed: RLadder App. D.2 (the architecture) is missing
from our copy of the paper. The paper's network has 18 layers, five convolutional LSTMs
and one fully connected LSTM; our reading (the ``paper`` preset) counts the layers of
:class:`~learned_inference.conv_rladder.ConvRLadder` with five pitch levels: 6 encoder
cells + 5 conv/pool blocks + 7 decoder cells (top G1, five ConvG2, the bottom one) = 18.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from pgm_ladder.training.config import ExperimentConfig, OptimConfig, TrainConfig
from pgm_ladder.training.errors import ConfigError

Row = Literal["rladder", "hierarchical_rnn", "lstm", "frequency"]
Corpus = Literal["piano_midi", "nottingham", "musedata", "jsb_chorales"]
#: the rows we train, in the order of our Table 3
ROWS: tuple[str, ...] = typing.get_args(Row)
#: the corpora in the paper's column order (Piano-midi.de, Nottingham, MuseData, JSB)
CORPORA: tuple[str, ...] = typing.get_args(Corpus)


@dataclass
class DataConfig:
    """``corpus``: one of :data:`CORPORA`, with its own train/valid/test split;
    ``train_window``: training batches are windows of this many steps (0: whole sequences),
    cut at a uniformly random offset from sequences drawn with probability ∝ length, the
    recurrent state starting at zero (ours; evaluation always runs whole sequences);
    ``eval_split``: where the final NLL is measured; ``eval_batch``: sequences per evaluation
    batch (sorted by length); ``max_sequences``: the first N sequences of each split (0: all;
    the smoke preset)."""

    corpus: Corpus = "jsb_chorales"
    train_window: int = 100
    eval_split: Literal["valid", "test"] = "test"
    eval_batch: int = 32
    max_sequences: int = 0

    def __post_init__(self) -> None:
        for name in ("train_window", "max_sequences"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name}: must be >= 0 (0 = no limit), got {getattr(self, name)}")
        if self.eval_batch < 1:
            raise ConfigError(f"data.eval_batch: must be >= 1, got {self.eval_batch}")


@dataclass
class NetConfig:
    """Widths (ours). The RLadder and the hierarchical RNN are a
    :class:`~learned_inference.conv_rladder.ConvRLadder` in the ``row`` layout: pitch levels
    ``channels`` (level l at ``pitch_width / 2^(l-1)`` pitches; the 88 notes are zero-padded
    to ``pitch_width``, which must be divisible by ``2^len(channels)``), convolutions ``1 ×
    kernel_size``, a fully connected LSTM top of ``top_width``; ``lstm_hidden`` is the marginal
    LSTM's width. ``feedback_gain_init``: see the ConvRLadder (0: the RLadder starts as the
    hierarchical RNN)."""

    channels: tuple[int, ...] = (16, 16, 16)
    top_width: int = 64
    bottom_channels: int = 16
    kernel_size: int = 5
    pitch_width: int = 88
    encoder_norm: Literal["layer", "batch", "none"] = "layer"
    decoder_cell: Literal["convg1", "convg2", "convg3", "conv_ladder"] = "convg2"
    feedback_gain_init: float = 0.0
    lstm_hidden: int = 128

    def __post_init__(self) -> None:
        if self.pitch_width < 88:
            raise ConfigError(f"net.pitch_width: must be >= 88 (the notes), got {self.pitch_width}")
        if self.lstm_hidden < 1:
            raise ConfigError(f"net.lstm_hidden: must be >= 1, got {self.lstm_hidden}")


@dataclass
class StoppingConfig:
    """Early stopping on the validation NLL (ours): validate every ``valid_every`` training
    steps (0: once per epoch) and after the last, stop after ``patience`` validations without
    a new best; the final scores use the parameters of the best validation."""

    valid_every: int = 0
    patience: int = 3

    def __post_init__(self) -> None:
        if self.valid_every < 0 or self.patience < 1:
            raise ConfigError(f"stopping.valid_every must be >= 0 and stopping.patience >= 1, got "
                              f"{self.valid_every}, {self.patience}")


@dataclass
class PolyphonicConfig(ExperimentConfig):
    """``row`` of Table 3 on ``data.corpus``; ``threads``: torch CPU threads (0: leave as is);
    ``figure_steps``: time steps of the test piano roll drawn in ``figures/pianoroll.png``
    (0: no figure)."""

    row: Row = "rladder"
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    stopping: StoppingConfig = field(default_factory=StoppingConfig)
    threads: int = 1
    figure_steps: int = 160


def smoke() -> PolyphonicConfig:
    return PolyphonicConfig(
        train=TrainConfig(epochs=2, batch_size=4, log_every=1),
        data=DataConfig(train_window=12, eval_batch=4, max_sequences=6),
        net=NetConfig(channels=(3, 3), top_width=8, bottom_channels=3, kernel_size=3, lstm_hidden=8),
        stopping=StoppingConfig(patience=1), figure_steps=24)


def cpu() -> PolyphonicConfig:
    """One row-seed within about 10 minutes on one shared CPU thread: the same step budget
    (120 batches of 16 windows of 64 steps, ~123k time steps: ~9 epochs of JSB, ~0.7 of
    Nottingham) for every row and corpus, validated every 30 steps. Adam lr 10⁻²: at this
    budget the JSB validation NLL after 120 steps was 9.72 / 8.93 / 8.55 for the LSTM at
    10⁻³ / 3·10⁻³ / 10⁻², and the RLadder was stable at 10⁻² (docs/results/polyphonic.md)."""
    return PolyphonicConfig(
        train=TrainConfig(steps=120, batch_size=16, log_every=10, grad_clip=5.0),
        optim=OptimConfig(lr=1e-2),
        data=DataConfig(train_window=64),
        net=NetConfig(channels=(8, 8, 8), top_width=64, bottom_channels=8, kernel_size=3, lstm_hidden=128),
        stopping=StoppingConfig(valid_every=30, patience=3))


def paper() -> PolyphonicConfig:
    return PolyphonicConfig(
        train=TrainConfig(epochs=200, batch_size=32, log_every=20, grad_clip=5.0),
        net=NetConfig(channels=(32, 32, 64, 64, 128), top_width=256, bottom_channels=32,
                      pitch_width=96, lstm_hidden=512),
        stopping=StoppingConfig(patience=10), threads=0)


PRESETS = {"smoke": smoke, "cpu": cpu, "paper": paper}

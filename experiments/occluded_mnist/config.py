"""Typed configuration of the ``occluded_mnist`` experiment and its presets (SPEC §7).

``model`` selects the row of the paper's Tables 1–2 (:data:`ROWS`), ``regime`` the
supervision of Table 2 (:data:`REGIMES`):

* ``supervised`` — Table 1: every sequence of ``data.train_split`` (MNIST ``train``) labelled;
* ``labelled_only`` — Table 2, "1k labelled": only ``data.labelled`` sequences of
  ``train_full`` (60k), all labelled;
* ``unlabelled`` — "1k labelled & 59k unlabelled, w/o MT": the other sequences of the pool
  enter with their labels removed (unsupervised tasks only);
* ``mean_teacher`` — as ``unlabelled`` plus the Mean Teacher consistency cost (SPEC §3.4).

Values marked "ours" are reconstructed (RLadder App. D.1, the architecture details, is
missing from our copy of the paper).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import typing
from typing import Literal

from pgm_ladder.training.config import ExperimentConfig, OptimConfig, TrainConfig
from pgm_ladder.training.errors import ConfigError

Row = Literal["optimal_static", "temporal_baseline", "hierarchical_rnn", "rladder_no_prediction",
              "rladder_no_dec_to_enc", "rladder_no_classification", "rladder"]
Regime = Literal["supervised", "labelled_only", "unlabelled", "mean_teacher"]
#: the rows of Table 1, in its order (Table 2 uses optimal_static, temporal_baseline, rladder)
ROWS: tuple[str, ...] = typing.get_args(Row)
REGIMES: tuple[str, ...] = typing.get_args(Regime)


@dataclass
class DataConfig:
    """Sequences (SPEC §5 generator defaults: 16×16 digits, 32×32 canvas, 5 frames).

    ``train_size`` / ``eval_size``: the first N sequences of the split (0 = all);
    ``labelled``: labelled sequences in the semi-supervised regimes, a random subset of the
    pool drawn with the run seed; ``labelled_per_batch``: how many of each batch are
    labelled when unlabelled sequences are used (ours); ``seed``: the generator's seed
    (the same data set for every run seed)."""

    train_split: Literal["train", "train_full"] = "train"
    semi_split: Literal["train", "train_full"] = "train_full"
    train_size: int = 0
    labelled: int = 1000
    labelled_per_batch: int = 16
    eval_split: Literal["valid", "test"] = "test"
    eval_size: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_size", "eval_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name}: must be >= 0 (0 = the whole split), got {getattr(self, name)}")
        if self.labelled < 1 or self.labelled_per_batch < 1:
            raise ConfigError(f"data.labelled and data.labelled_per_batch must be >= 1, got "
                              f"{self.labelled}, {self.labelled_per_batch}")


@dataclass
class NetConfig:
    """Widths shared by every row (ours): conv levels ``channels`` (level l at 32/2^(l-1)
    px), the fully connected top ``top_width`` (the RNN of the temporal baseline, the top
    LSTM of the RLadder, the dense layer of the static net), the bottom decoder's
    ``bottom_channels``; ``encoder_norm`` after the ConvLSTM input convolutions;
    ``decoder_cell`` one of convg1/convg2/convg3/conv_ladder; ``decoder_to_encoder_mode``
    how ``d_l,t-1`` enters the encoder (learned_inference/conv_rladder.py): ``input`` as
    the paper draws it, or ``gain`` (ours: its normalisation gains start at 0, so the
    RLadder starts as the hierarchical RNN; the runs made before this field existed,
    whose configs read ``feedback_gain_init: 0.0`` and load as ``gain``); ``norm_steps`` the frames
    whose BatchNorm statistics the encoder's down blocks keep separately (5 = every frame of
    a sequence; 1 = shared by all frames: the ConvLSTM outputs drift from frame 1 (zero
    state) on, so shared running statistics normalise no frame as in training — the
    measured cost is in docs/results/occluded_moving_mnist.md)."""

    channels: tuple[int, ...] = (16, 32, 64)
    top_width: int = 128
    bottom_channels: int = 16
    kernel_size: int = 3
    encoder_norm: Literal["layer", "batch", "none"] = "layer"
    decoder_cell: Literal["convg1", "convg2", "convg3", "conv_ladder"] = "convg2"
    decoder_to_encoder_mode: Literal["input", "gain"] = "input"
    norm_steps: int = 5


@dataclass
class TaskConfig:
    """Costs: ``class_weight`` × cross-entropy of the class after the last frame (labelled
    sequences only) + ``prediction_weight`` × squared error of the next-frame prediction
    summed over a frame's pixels, averaged over frames 2..T and sequences (ours). A row
    without a task ignores its weight. ``input_noise``: std of Gaussian noise added to the
    inputs in training (0 = none; Mean Teacher draws it separately for student and teacher)."""

    class_weight: float = 1.0
    prediction_weight: float = 0.1
    input_noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("class_weight", "prediction_weight", "input_noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"task.{name}: must be >= 0, got {getattr(self, name)}")


@dataclass
class MeanTeacherConfig:
    """Mean Teacher (SPEC §3.4; Tarvainen & Valpola 2017, their CIFAR-10 choices): EMA decay
    ``min(1 - 1/(step+1), ema_decay)``; consistency = ``consistency_weight`` × ramp ×
    mean squared difference of student and teacher class probabilities after the last
    frame, ramp ``exp(-5 (1 - step/rampup_steps)^2)``; ``input_noise`` (ours) is drawn
    independently for student and teacher; ``evaluate`` which network is scored."""

    ema_decay: float = 0.999
    consistency_weight: float = 100.0
    rampup_steps: int = 5000
    input_noise: float = 0.05
    evaluate: Literal["teacher", "student"] = "teacher"

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"mean_teacher.ema_decay: must lie in [0, 1), got {self.ema_decay}")
        if self.consistency_weight < 0 or self.rampup_steps < 0 or self.input_noise < 0:
            raise ConfigError("mean_teacher.consistency_weight, rampup_steps and input_noise must be >= 0")


@dataclass
class OccludedMNISTConfig(ExperimentConfig):
    """``row``: the Table-1 row (formerly ``model``, still accepted as a deprecated
    ``--set`` key); ``regime``: the supervision (module docstring);
    ``figure_sequences``: test sequences in Figure 4 (0: no figure); ``threads``: torch
    intra-op threads set when the run is built (0: leave torch's setting)."""

    row: Row = "rladder"
    regime: Regime = "supervised"
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    mean_teacher: MeanTeacherConfig = field(default_factory=MeanTeacherConfig)
    figure_sequences: int = 4
    threads: int = 0

    def __post_init__(self) -> None:
        if self.threads < 0 or self.figure_sequences < 0:
            raise ConfigError(f"threads and figure_sequences must be >= 0, got {self.threads}, "
                              f"{self.figure_sequences}")
        if self.row not in ROWS:
            raise ConfigError(f"row: expected one of {', '.join(ROWS)}, got {self.row!r}")
        if self.regime not in REGIMES:
            raise ConfigError(f"regime: expected one of {', '.join(REGIMES)}, got {self.regime!r}")


def _train(steps: int, batch_size: int, lr_warmup: int, **kw) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch_size, schedule="cosine", warmup_steps=lr_warmup,
                       grad_clip=5.0, checkpoint_every=max(1, steps // 5), log_every=max(1, min(50, steps // 20)),
                       **kw)


def smoke() -> OccludedMNISTConfig:
    """Seconds: what the test-suite runs (tiny widths, 64 sequences)."""
    return OccludedMNISTConfig(
        train=_train(3, 8, 0, device="cpu"), optim=OptimConfig(lr=2e-3),
        data=DataConfig(train_size=64, eval_size=32, labelled=16, labelled_per_batch=4),
        net=NetConfig(channels=(4, 8), top_width=16, bottom_channels=4),
        mean_teacher=MeanTeacherConfig(rampup_steps=2), figure_sequences=1)


def cpu() -> OccludedMNISTConfig:
    """A reduced run (narrow widths, 1800 steps of 32 sequences ≈ 1.15 epochs, 5000 test
    sequences), sized for each row to finish within about 45 minutes on 2 CPU cores with
    one torch thread (measured step times: docs/results/occluded_moving_mnist.md)."""
    return OccludedMNISTConfig(
        train=_train(1800, 32, 100, device="cpu"), optim=OptimConfig(lr=2e-3), threads=1,
        data=DataConfig(train_size=0, eval_size=5000),
        net=NetConfig(channels=(8, 16, 32), top_width=64, bottom_channels=8),
        mean_teacher=MeanTeacherConfig(rampup_steps=500))


def paper() -> OccludedMNISTConfig:
    """The paper's scale (for a GPU): full MNIST splits, 10k test sequences; the widths and
    the schedule are ours (App. D.1 missing)."""
    return OccludedMNISTConfig(
        train=_train(50000, 100, 1000), optim=OptimConfig(lr=1e-3),
        data=DataConfig(train_size=0, eval_size=0, labelled_per_batch=25),
        net=NetConfig(channels=(32, 64, 128), top_width=256, bottom_channels=32),
        mean_teacher=MeanTeacherConfig(rampup_steps=10000))


PRESETS = {"smoke": smoke, "cpu": cpu, "paper": paper}

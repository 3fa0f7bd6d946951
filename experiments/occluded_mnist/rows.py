"""The rows of the paper's Tables 1–2 (RLadder §3.1): which model each row trains and which
tasks it has. ``pgm-ladder train occluded_mnist --set row=ROW`` selects one."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from learned_inference.conv_rladder import ConvRLadderConfig
from pgm_ladder.training.errors import ConfigError

from .baseline import TemporalBaseline
from .config import ROWS, OccludedMNISTConfig
from .ladder_rows import LadderRow
from .mean_teacher import MeanTeacher
from .static import StaticClassifier

NUM_CLASSES = 10
IMAGE_SIZE = 32  # the generator's canvas (SPEC §5)


@dataclass(frozen=True)
class RowSpec:
    """``label`` as in the paper's table; ``classify`` / ``predict``: the row's tasks;
    ``kind``: ``static`` | ``baseline`` | ``ladder``; ``switches``: ConvRLadder ablation switches."""

    label: str
    kind: str
    classify: bool = True
    predict: bool = False
    switches: dict = field(default_factory=dict)

    @property
    def has_decoder(self) -> bool:
        return self.kind == "ladder" and self.switches.get("use_decoder", True)


ROW_SPECS: dict[str, RowSpec] = {
    "optimal_static": RowSpec("Optimal reconstruction and static classifier", "static"),
    "temporal_baseline": RowSpec("Temporal baseline", "baseline"),
    "hierarchical_rnn": RowSpec("Hierarchical RNN (encoder only)", "ladder", switches={"use_decoder": False}),
    "rladder_no_prediction": RowSpec("RLadder w/o prediction task", "ladder"),
    "rladder_no_dec_to_enc": RowSpec("RLadder w/o decoder-to-encoder conn.", "ladder", predict=True,
                                     switches={"decoder_to_encoder": False}),
    "rladder_no_classification": RowSpec("RLadder w/o classification task", "ladder", classify=False,
                                         predict=True),
    "rladder": RowSpec("RLadder", "ladder", predict=True),
}
assert tuple(ROW_SPECS) == ROWS


def row_spec(name: str) -> RowSpec:
    if name not in ROW_SPECS:
        raise ConfigError(f"model: expected one of {', '.join(ROW_SPECS)}, got {name!r}")
    return ROW_SPECS[name]


def engine_config(config: OccludedMNISTConfig) -> ConvRLadderConfig:
    """The ConvRLadder of a ``ladder`` row (no class head without the classification task)."""
    spec, net = row_spec(config.row), config.net
    return ConvRLadderConfig(in_channels=1, image_size=IMAGE_SIZE, channels=net.channels,
                             top_width=net.top_width, bottom_channels=net.bottom_channels,
                             num_classes=NUM_CLASSES if spec.classify else 0, kernel_size=net.kernel_size,
                             encoder_norm=net.encoder_norm, decoder_cell=net.decoder_cell,
                             decoder_to_encoder_mode=net.decoder_to_encoder_mode,
                             norm_steps=net.norm_steps, **spec.switches)


def build_model(config: OccludedMNISTConfig) -> nn.Module:
    """The row's network, wrapped in :class:`MeanTeacher` in the ``mean_teacher`` regime."""
    spec, net = row_spec(config.row), config.net
    try:
        if spec.kind == "ladder":
            model: nn.Module = LadderRow(engine_config(config))
        else:
            cls = StaticClassifier if spec.kind == "static" else TemporalBaseline
            model = cls(1, IMAGE_SIZE, tuple(net.channels), net.top_width, NUM_CLASSES, net.kernel_size)
    except ValueError as err:
        raise ConfigError(f"net: {err}") from err
    if config.regime != "mean_teacher":
        return model
    if not spec.classify:
        raise ConfigError(f"regime=mean_teacher needs a classification task; row {config.row!r} has none")
    mt = config.mean_teacher
    return MeanTeacher(model, mt.ema_decay, mt.input_noise)

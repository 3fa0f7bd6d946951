"""The ``temporal`` experiment and ``pgm-ladder check temporal`` (SPEC §2.2, §3.2, §4).

:mod:`.experiment` (config, presets, build), :mod:`.check` (the check command),
:mod:`.figures` (its figure)."""
from pgm_ladder.training.spec import ExperimentSpec

from .check import register as register_check
from .experiment import EMBEDDED_MODELS, PRESETS, RENAMED, TemporalConfig, build

SPEC = ExperimentSpec(
    name="temporal",
    config_type=TemporalConfig,
    presets=PRESETS,
    build=build,
    home=__name__,
    check=register_check,
    renamed=RENAMED,
    explicit_models=EMBEDDED_MODELS,
    description="temporal RLadder and ablations on the embedded temporal Gaussian hierarchy (SPEC §2.2)",
)
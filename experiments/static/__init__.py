"""The ``static`` experiment and ``pgm-ladder check static`` (SPEC §2.1, §3.1–3.2, §4).

:mod:`.experiment` (config, presets, build), :mod:`.check` (the check command),
:mod:`.figures` (its figure)."""
from pgm_ladder.training.spec import ExperimentSpec

from .check import register as register_check
from .experiment import EMBEDDED_MODELS, PRESETS, RENAMED, StaticConfig, build

SPEC = ExperimentSpec(
    name="static",
    config_type=StaticConfig,
    presets=PRESETS,
    build=build,
    home=__name__,
    check=register_check,
    renamed=RENAMED,
    explicit_models=EMBEDDED_MODELS,
    description="Ladder / RLadder on the embedded static Gaussian hierarchy (SPEC §2.1)",
)
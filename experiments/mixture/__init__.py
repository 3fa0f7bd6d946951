"""The ``mixture`` experiment and ``pgm-ladder check mixture``: Tagger and RTagger on the
explicit Tagger mixture (SPEC §2.3, §3.3, §4).

:mod:`.experiment` (config, presets, build), :mod:`.check` (the check command),
:mod:`.figures` (its figure)."""
from pgm_ladder.training.spec import ExperimentSpec

from .check import register as register_check
from .experiment import EMBEDDED_MODELS, PRESETS, RENAMED, MixtureConfig, build

SPEC = ExperimentSpec(
    name="mixture",
    config_type=MixtureConfig,
    presets=PRESETS,
    build=build,
    home=__name__,
    check=register_check,
    renamed=RENAMED,
    explicit_models=EMBEDDED_MODELS,
    description="Tagger / RTagger on the embedded Tagger mixture (SPEC §2.3, §3.3)",
)
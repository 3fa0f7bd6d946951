"""The ``toy`` experiment: the smallest complete example of how an experiment plugs in
(a config with presets, ``build`` -> Parts, this ``SPEC``, one line in
``experiments/registry.py``). See :mod:`.experiment` and ``docs/architecture.md``."""
from pgm_ladder.training.spec import ExperimentSpec, PaperNumber

from .experiment import PRESETS, ToyConfig, build

SPEC = ExperimentSpec(
    name="toy",
    config_type=ToyConfig,
    presets=PRESETS,
    build=build,
    home=__name__,
    description="MLP regression of y = sin(x·w) + noise on fresh samples (the example)",
    # not a paper: the Bayes optimum, so the table shows how close a run gets to it
    paper_numbers={"mse_ratio": PaperNumber(1.0, source="Bayes optimum (noise variance)")},
)
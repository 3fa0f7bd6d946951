"""Helpers shared by the test modules (imported as ``helpers``; pytest puts ``tests/`` on
``sys.path``): the command line in-process, the toy experiment's configs."""
from __future__ import annotations

from pgm_ladder.cli import build_parser
from pgm_ladder.training import apply_overrides
from pgm_ladder.training.spec import ExperimentSpec

from experiments import registry
from experiments.toy import SPEC as TOY


def run_cli(argv: list[str], *extra: ExperimentSpec) -> int:
    """Run ``pgm-ladder ARGV`` in this process over the catalogue plus the specs ``extra``
    (experiments made on the fly by a test); returns the exit status."""
    experiments = {**registry.catalogue(), **{spec.name: spec for spec in extra}}
    args = build_parser(experiments).parse_args(argv)
    return int(args.func(args) or 0)


def toy_config(*overrides: str):
    """The toy experiment's smoke preset with ``KEY=VALUE`` overrides."""
    return apply_overrides(TOY.preset("smoke"), list(overrides))

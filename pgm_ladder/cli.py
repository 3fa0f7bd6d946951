"""The ``pgm-ladder`` command line — the top of the layers, the one module that reads the
experiment catalogue (``experiments.registry``).

* ``check NAME``  — learned engines scored against an explicit model; each experiment with
  a ``check`` adds its own (``ExperimentSpec.check``)
* ``train / eval / figures / resume / list / sweep / table`` — the shared trainer
  (``pgm_ladder.training.commands``), over every experiment of the catalogue
* ``data verify`` — the real data files against their sha256 (``experiments.datasets.command``)
* ``model-file NAME`` — an embedded explicit model's parameter file (``pgm_ladder.model_file_command``)
"""
from __future__ import annotations

import argparse
import importlib.metadata
import sys
from typing import Mapping, Optional, Sequence

from pgm_ladder.checks import run_check
from pgm_ladder.model_file_command import register as register_model_files
from pgm_ladder.training.commands import register_commands as register_training
from pgm_ladder.training.spec import ExperimentSpec


class _Parser(argparse.ArgumentParser):
    """Usage errors in the style of every other error: one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(experiments: Optional[Mapping[str, ExperimentSpec]] = None) -> argparse.ArgumentParser:
    """The parser over ``experiments`` (default: the catalogue ``experiments.registry``)."""
    from experiments.bench import bench, guides, temporal_guides
    from experiments.datasets.command import register_commands as register_data
    from experiments.registry import catalogue

    experiments = catalogue() if experiments is None else experiments
    parser = _Parser(
        prog="pgm-ladder",
        description="Explicit probabilistic models vs learned Ladder-family inference.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    check = sub.add_parser(
        "check", help="train engines on an explicit model and score them against its exact posterior")
    which = check.add_subparsers(dest="check", metavar="MODEL")
    which.required = True
    for name in sorted(experiments):
        spec = experiments[name]
        if spec.check is not None:
            spec.check(which, spec)
    for name, command in which.choices.items():  # one error style for every check (pgm_ladder.checks)
        command.set_defaults(func=run_check(name, command.get_default("func")))
    register_training(sub, experiments)
    register_data(sub)
    register_model_files(sub, experiments)
    bench.register(sub)
    guides.register(sub)
    temporal_guides.register(sub)
    return parser


def version() -> str:
    """The installed package's version (``pyproject.toml``), or ``unknown`` outside an install."""
    try:
        return importlib.metadata.version("pgm-ladder")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

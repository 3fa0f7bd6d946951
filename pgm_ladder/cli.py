"""The ``pgm-ladder`` command line.

Sub-commands are registered by the modules that own them:

* ``check ...``  — learned engines scored against explicit models (``pgm_ladder.checks``)
* ``train / eval / resume / list / sweep / table`` — the shared training infrastructure
  (``pgm_ladder.training.commands``)
* ``data verify`` — the real data files against their sha256 (``pgm_ladder.data_command``)
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgm-ladder",
        description="Explicit probabilistic models vs learned Ladder-family inference.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from pgm_ladder.checks import register_commands as register_checks

    register_checks(sub)
    from pgm_ladder.data_command import register_commands as register_data
    from pgm_ladder.training.commands import register_commands as register_training

    register_training(sub)
    register_data(sub)
    return parser


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

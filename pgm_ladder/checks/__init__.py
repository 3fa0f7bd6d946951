"""``pgm-ladder check ...``: learned engines scored against explicit models (SPEC §4)."""
from __future__ import annotations


def register_commands(subparsers) -> None:
    """Add ``check`` and its sub-commands (one module per explicit model)."""
    from pgm_ladder.checks import mixture_command, static_command, temporal_command

    check = subparsers.add_parser(
        "check", help="train engines on an explicit model and score them against its exact posterior")
    which = check.add_subparsers(dest="check", metavar="MODEL")
    which.required = True
    static_command.register(which)
    temporal_command.register(which)
    mixture_command.register(which)

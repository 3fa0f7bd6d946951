"""``--threads N``: the torch intra-op threads of every command that trains or scores.

The default is 1: the engines are small, so more threads rarely help, and on a busy
machine they oversubscribe the cores (on 2 shared cores the ``static`` cpu preset trained
about 50× slower with torch's default of 2 threads than with one). On a bigger machine
pass ``--threads N`` (N up to the free cores) or ``--threads 0`` for torch's default.
"""
from __future__ import annotations

import argparse
import functools

import torch

DEFAULT_THREADS = 1


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (default :data:`DEFAULT_THREADS`); see :func:`with_threads`."""
    parser.add_argument("--threads", type=_threads, default=DEFAULT_THREADS, metavar="N",
                        help=f"CPU threads for torch (default {DEFAULT_THREADS}: the engines are small, "
                             "more threads rarely help and oversubscribe a busy machine; on a bigger "
                             "machine use up to its free cores; 0 keeps torch's default)")


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def with_threads(run):
    """Decorate a command's ``run(args)`` to use ``args.threads`` torch threads (0: torch's
    default) and restore the previous setting afterwards."""
    @functools.wraps(run)
    def wrapped(args):
        before = torch.get_num_threads()
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        try:
            return run(args)
        finally:
            torch.set_num_threads(before)
    return wrapped

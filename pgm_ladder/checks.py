"""What every ``check`` command shares: the per-engine overrides and one trained run
directory per engine (trained once, resumed if interrupted, reused when finished)."""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch

from pgm_ladder.training import runner
from pgm_ladder.training.config import apply_overrides
from pgm_ladder.training.spec import ExperimentSpec
from pgm_ladder.training.run_dir import RunDir


def add_check_parser(subparsers, name: str, help: str, description: str, presets, minutes: int,
                     threads: bool = True) -> argparse.ArgumentParser:
    """The ``check NAME`` sub-parser with the options every check shares: ``--preset``
    (default ``cpu``, about ``minutes`` on 2 cores), ``--steps``, ``--seed``, ``--device``,
    ``--out`` (default ``runs/check-NAME``), ``--set``, ``--threads`` (if ``threads``) and
    ``--quiet``. The caller adds its own options and ``set_defaults(func=...)``."""
    p = subparsers.add_parser(name, help=help, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(presets), default="cpu",
                   help=f"training/eval budget (default: cpu, about {minutes} minutes on 2 cores)")
    p.add_argument("--steps", type=int, default=None, help="training steps per engine")
    p.add_argument("--seed", type=int, default=0, help="training seed (model and eval set are fixed)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N|mps")
    p.add_argument("--out", type=Path, default=Path(f"runs/check-{name}"), help="output directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override any field of the {name} experiment config (repeatable)")
    if threads:
        add_threads_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def engine_overrides(args, engine: str, *fixed: str) -> list[str]:
    """``task.engine``, the device, ``--steps`` and the user's ``--set`` values, after the
    command's own ``fixed`` overrides (e.g. ``task.model=...``)."""
    sets = [*fixed, f"task.engine={engine}", f"train.device={args.device}"]
    if args.steps is not None:
        sets.append(f"train.steps={args.steps}")
    return sets + list(args.overrides)


def train_or_reuse(spec: ExperimentSpec, args, engine: str, overrides: list[str]):
    """Train ``engine`` into ``args.out / engine`` from preset ``args.preset`` with
    ``overrides``; an existing run there is resumed (or reused when finished)."""
    overrides = spec.overrides(overrides)
    config = apply_overrides(spec.preset(args.preset), overrides)
    run_dir = args.out / engine
    if RunDir(run_dir).config.exists():
        print(f"[{engine}] continuing the run in {run_dir}")
        result = runner.resume(run_dir, quiet=args.quiet)
    else:
        print(f"[{engine}] training ({config.train.steps} steps)")
        result = runner.train(spec, config, run_dir, preset=args.preset, seed=args.seed,
                              overrides=overrides, quiet=args.quiet)
    return config, result


def add_threads_argument(parser) -> None:
    """``--threads N`` (default 1) for a ``check`` command; see :func:`with_threads`."""
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: the engines are small, more threads rarely "
                             "help and oversubscribe a busy machine; 0 keeps torch's default)")


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

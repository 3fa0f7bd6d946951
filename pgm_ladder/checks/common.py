"""What every ``check`` command shares: the per-engine overrides and one trained run
directory per engine (trained once, resumed if interrupted, reused when finished)."""
from __future__ import annotations

from pgm_ladder.training import runner
from pgm_ladder.training.config import apply_overrides
from pgm_ladder.training.registry import ExperimentSpec
from pgm_ladder.training.run_dir import RunDir


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

"""What every ``check`` command shares: its options, one trained run directory per engine
(trained once, resumed if interrupted, reused when finished — only if it is the run asked
for) and one way of ending: a user error is one line on stderr and exit status 2 with
nothing created, an interrupt one line naming the folder to re-run on.

The command line (``pgm_ladder.cli``) runs every check's ``func`` through
:func:`run_check`; a check's ``run(args)`` calls :func:`train_engines`, which checks every
engine's config (and any run already in its folder) before it creates anything."""
from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from explicit_models.model_files import ModelFileError, sha256_of
from pgm_ladder.training import runner
from pgm_ladder.training.commands import add_tensorboard_argument, guard
from pgm_ladder.training.config import apply_overrides
from pgm_ladder.training.devices import check_device_options, resolve_device
from pgm_ladder.training.errors import ConfigError, RunDirError, TrainingInterrupted
from pgm_ladder.training.reuse import check_same_run, device_override
from pgm_ladder.training.run_dir import RunDir
from pgm_ladder.training.spec import ExperimentSpec
from pgm_ladder.training.threads import add_threads_argument, with_threads

#: the preset a check runs by default; its output folder is ``runs/check-NAME``
DEFAULT_PRESET = "cpu"


def add_check_parser(subparsers, name: str, help: str, description: str, presets, minutes: int,
                     threads: bool = True) -> argparse.ArgumentParser:
    """The ``check NAME`` sub-parser with the options every check shares: ``--preset``
    (default ``cpu``, about ``minutes`` on 2 cores), ``--steps``, ``--seed``, ``--device``,
    ``--out`` (default :func:`default_out`), ``--set``, ``--model-file``, ``--threads``,
    ``--tensorboard`` and ``--quiet``. The caller adds its own options and
    ``set_defaults(func=...)``.
    (``threads`` is accepted for compatibility: every check has ``--threads``.)"""
    p = subparsers.add_parser(name, help=help, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(presets), default=DEFAULT_PRESET,
                   help=f"training/eval budget (default: {DEFAULT_PRESET}, about {minutes} minutes on 2 cores)")
    p.add_argument("--steps", type=int, default=None, help="training steps per engine (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="training seed (model and eval set are fixed)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N|mps (default: auto)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output directory (default: runs/check-{name} for the {DEFAULT_PRESET} preset, "
                        f"runs/check-{name}-PRESET for another); a run already in it is continued or "
                        "reused only if it has the same config and seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override any field of the {name} experiment config (repeatable)")
    p.add_argument("--model-file", type=Path, default=None, metavar="PATH",
                   help="train and score on the explicit model in this parameter file instead of the "
                        f"embedded one (write one with: pgm-ladder model-file {name} --out PATH)")
    add_threads_argument(p)
    add_tensorboard_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    return p


def default_out(name: str, preset: str) -> Path:
    """``runs/check-NAME`` for the default preset, ``runs/check-NAME-PRESET`` for another:
    a smoke run never lands in the folder of the main job."""
    return Path(f"runs/check-{name}" if preset == DEFAULT_PRESET else f"runs/check-{name}-{preset}")


def model_file_overrides(args) -> list[str]:
    """``task.model_file`` (the absolute path of ``--model-file``) and its
    ``task.model_file_sha256``, or nothing without ``--model-file``. The file is hashed once
    per command: every engine is trained on the same bytes."""
    if getattr(args, "model_file", None) is None:
        return []
    if not hasattr(args, "model_file_sets"):
        path = args.model_file.resolve()
        try:
            digest = sha256_of(path)
        except ModelFileError as err:
            raise ConfigError(f"--model-file {err}") from err
        args.model_file_sets = [f"task.model_file={path}", f"task.model_file_sha256={digest}"]
    return list(args.model_file_sets)


def engine_overrides(args, engine: str, *fixed: str) -> list[str]:
    """``task.engine``, the device, ``--steps`` and the user's ``--set`` values, after the
    command's own ``fixed`` overrides (e.g. ``task.model=...``) and ``--model-file``'s."""
    sets = [*fixed, *model_file_overrides(args), f"task.engine={engine}", f"train.device={args.device}"]
    if args.steps is not None:
        sets.append(f"train.steps={args.steps}")
    return sets + list(args.overrides)


def explicit_model(spec: ExperimentSpec, args, *fixed: str):
    """The explicit model the check's engines are trained and scored on
    (``spec.explicit_models.for_task`` of the task that ``fixed``, ``--model-file`` and
    ``--set`` make), built before anything is created: a bad model file is refused first."""
    sets = spec.overrides([*fixed, *model_file_overrides(args), *args.overrides])
    return spec.explicit_models.for_task(apply_overrides(spec.preset(args.preset), sets).task)


@dataclass
class EnginePlan:
    """One engine of a check: its config, the overrides that made it and its run folder."""

    engine: str
    config: Any
    overrides: list[str]
    run: RunDir

    def execute(self, spec: ExperimentSpec, args) -> tuple[Any, runner.TrainResult]:
        if self.run.config.exists():
            print(f"[{self.engine}] continuing the run in {self.run.path}")
            result = runner.resume(self.run.path, overrides=device_override(self.run, self.config),
                                   quiet=args.quiet, tensorboard=args.tensorboard)
        else:
            print(f"[{self.engine}] training ({self.config.train.steps} steps)")
            result = runner.train(spec, self.config, self.run.path, preset=args.preset, seed=args.seed,
                                  overrides=self.overrides, quiet=args.quiet, tensorboard=args.tensorboard)
        return self.config, result


def plan_engine(spec: ExperimentSpec, args, engine: str, overrides: Sequence[str]) -> EnginePlan:
    """Check ``engine``'s config (keys, types, values, device) and the run already in
    ``args.out / engine`` (same config and seed, or none); writes nothing."""
    overrides = spec.overrides(overrides)
    config = apply_overrides(spec.preset(args.preset), overrides)
    check_device_options(config.train, resolve_device(config.train.device))
    run = RunDir(args.out / engine)
    if run.config.exists():
        check_same_run(spec, run, config, args.seed,
                       f"pass --out with a fresh folder, or delete {run.path} to train it again")
    elif (refusal := run.new_run_refusal()) is not None:
        raise RunDirError(refusal)
    return EnginePlan(engine, config, overrides, run)


def train_engines(spec: ExperimentSpec, args, overrides: Mapping[str, Sequence[str]]) -> dict:
    """``{engine: (config, TrainResult)}`` for the engines of ``overrides`` (engine ->
    :func:`engine_overrides`), each trained into ``args.out / engine`` or continued or
    reused there; every engine is checked (:func:`plan_engine`) before ``args.out`` is
    created."""
    plans = [plan_engine(spec, args, engine, sets) for engine, sets in overrides.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    return {plan.engine: plan.execute(spec, args) for plan in plans}


def run_check(name: str, run):
    """``check NAME``'s ``run(args)`` as the command line runs it: ``--out`` defaulted,
    ``--threads`` applied, errors as one line (exit 2 for a bad config or option, 1 for
    another failure), an interrupt as one line naming the folder to re-run on (exit
    128+N), and an ``--out`` folder it created removed again if left empty."""
    checked = guard(f"check {name}", _interruptible(name, with_threads(run)))

    def command(args) -> int:
        args.out = args.out if args.out is not None else default_out(name, args.preset)
        existed = args.out.exists()
        try:
            return checked(args)
        finally:
            if not existed and args.out.is_dir() and not any(args.out.iterdir()):
                args.out.rmdir()
    return command


def _interruptible(name: str, run):
    """SIGINT/SIGTERM during training (the trainer checkpoints, then raises
    :class:`TrainingInterrupted`) or Ctrl-C elsewhere: one line, exit 128+N."""
    def command(args) -> int:
        try:
            return run(args)
        except (TrainingInterrupted, KeyboardInterrupt) as err:
            where = f" in {err.run_dir} (checkpoint written)" if getattr(err, "run_dir", None) else ""
            print(f"pgm-ladder check {name}: interrupted{where}; re-run the same command "
                  f"(--out {args.out}) to continue: it resumes or reuses the engine runs there",
                  file=sys.stderr)
            return 128 + int(getattr(err, "signum", signal.SIGINT))
    return command

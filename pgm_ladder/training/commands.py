"""The experiment commands of ``pgm-ladder``: train, eval, figures, resume, list, sweep, table.

``register_commands(subparsers, experiments)`` adds them to the ``pgm-ladder`` parser;
``experiments`` maps a name to its :class:`ExperimentSpec` (the CLI passes the catalogue
``experiments.registry``). Every command returns an exit status:
0 done, 1 failed, 2 a bad config or option, 128+N stopped by signal N (after writing a
checkpoint). Every command that trains or scores takes ``--threads N`` (default 1,
:mod:`.threads`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

from pgm_ladder.formatting import text_table
from pgm_ladder.training import distributed as ddp
from pgm_ladder.training import runner, tables
from pgm_ladder.training.config import apply_overrides
from pgm_ladder.training.errors import ConfigError, TrainingError, TrainingInterrupted
from pgm_ladder.training.reuse import check_same_run, device_override
from pgm_ladder.training.spec import ExperimentSpec
from pgm_ladder.training.run_dir import RunDir
from pgm_ladder.training.threads import add_threads_argument, with_threads


def add_tensorboard_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tensorboard", action="store_true",
                   help="also write the metrics as TensorBoard event files in RUN_DIR/tensorboard "
                        "(needs the tensorboard package)")


def _run_options(p: argparse.ArgumentParser, *, new_run: bool) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (train.device)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars, progress lines or messages")
    add_threads_argument(p)
    add_tensorboard_argument(p)
    if new_run:
        p.add_argument("--preset", default="cpu",
                       help="smoke, cpu or paper (SPEC §7; default: cpu, as for check)")
        p.add_argument("--amp", choices=["off", "bf16"], help="mixed precision (train.amp)")
        p.add_argument("--compile", action="store_true", default=None,
                       help="torch.compile the model (train.compile; CUDA only)")


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` values followed by the dedicated flags, as ``KEY=VALUE`` overrides."""
    out = list(args.overrides)
    if args.device:
        out.append(f"train.device={args.device}")
    if getattr(args, "amp", None):
        out.append(f"train.amp={args.amp}")
    if getattr(args, "compile", None):
        out.append("train.compile=true")
    return out


def register_commands(subparsers, experiments: Mapping[str, ExperimentSpec]) -> None:
    names = ", ".join(sorted(experiments))
    p = subparsers.add_parser("train", help="train an experiment into a new run directory")
    p.add_argument("experiment", help=f"the experiment to train (pgm-ladder list; one of: {names})")
    p.add_argument("--out", type=Path, help="run directory: new, empty, or a run killed before its first "
                                            "checkpoint (default runs/EXP-PRESET-seedS-TIME)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial parameters, the training data and the dropout (default 0)")
    _run_options(p, new_run=True)
    p.set_defaults(func=guard("train", with_threads(cmd_train)), experiments=experiments)

    p = subparsers.add_parser("resume", help="continue a run from its latest checkpoint")
    p.add_argument("run_dir", type=Path, help="the run directory to continue")
    p.add_argument("--checkpoint", type=Path,
                   help="resume from this checkpoint instead (default: the latest that loads)")
    _run_options(p, new_run=False)
    p.set_defaults(func=guard("resume", with_threads(cmd_resume)))

    p = subparsers.add_parser("eval", help="evaluate a run's latest checkpoint")
    p.add_argument("run_dir", type=Path, help="the run directory to evaluate")
    p.add_argument("--checkpoint", type=Path, help="evaluate this checkpoint instead")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a config field for this evaluation only, e.g. --set data.eval_split=valid "
                        "(repeatable; fields that change the network's shape will not load)")
    p.add_argument("--batch-statistics", action="store_true",
                   help="normalise every BatchNorm with the evaluation batch's statistics instead of "
                        "the running ones (diagnoses train/eval mismatch; writes eval-batch-statistics.json)")
    add_threads_argument(p)
    p.set_defaults(func=guard("eval", with_threads(cmd_eval)))

    p = subparsers.add_parser("figures", help="draw the figures of a run's latest checkpoint")
    p.add_argument("run_dir", type=Path, help="the run directory to draw")
    p.add_argument("--checkpoint", type=Path, help="draw this checkpoint instead")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out", type=Path, help="folder for the figures (default RUN_DIR/figures)")
    add_threads_argument(p)
    p.set_defaults(func=guard("figures", with_threads(cmd_figures)))

    p = subparsers.add_parser("list", help="list the experiments and their presets")
    p.set_defaults(func=guard("list", cmd_list), experiments=experiments)

    p = subparsers.add_parser("sweep", help="train one experiment with several seeds")
    p.add_argument("experiment", help=f"the experiment to train (pgm-ladder list; one of: {names})")
    p.add_argument("--seeds", type=int, nargs="+", required=True, metavar="S",
                   help="the seeds, one run each in OUT/seed-S")
    p.add_argument("--out", type=Path, help="sweep directory (default runs/EXP-PRESET-sweep-TIME); a "
                                            "seed folder there is reused only if it holds the same config")
    _run_options(p, new_run=True)
    p.set_defaults(func=guard("sweep", with_threads(cmd_sweep)), experiments=experiments)

    p = subparsers.add_parser("table", help="mean ± std tables over the runs' seeds")
    p.add_argument("run_dirs", type=Path, nargs="+",
                   help="run directories (or sweep directories holding them)")
    p.add_argument("--markdown", type=Path, help="also write the Markdown table here")
    p.add_argument("--csv", type=Path, help="also write the table as CSV here")
    p.set_defaults(func=guard("table", cmd_table))


def find_experiment(experiments: Mapping[str, ExperimentSpec], name: str) -> ExperimentSpec:
    """``experiments[name]``, or a :class:`ConfigError` naming the known ones."""
    if name not in experiments:
        raise ConfigError(f"unknown experiment {name!r} (known: {', '.join(sorted(experiments))})")
    return experiments[name]


def guard(name: str, command: Callable[[argparse.Namespace], int]):
    """Turn the training errors into a one-line message on stderr and an exit status:
    2 for a bad config or option, 1 for another failure, 128+N when stopped by signal N."""
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except TrainingInterrupted as err:
            print(f"pgm-ladder {name}: {err}", file=sys.stderr)
            return 128 + err.signum
        except TrainingError as err:
            print(f"pgm-ladder {name}: error: {err}", file=sys.stderr)
            return 2 if isinstance(err, ConfigError) else 1
    return run


def _main_process() -> bool:
    return ddp.from_environment().is_main


def cmd_train(args: argparse.Namespace) -> int:
    spec = find_experiment(args.experiments, args.experiment)
    overrides = spec.overrides(_flag_overrides(args))
    config = apply_overrides(spec.preset(args.preset), overrides)
    result = runner.train(spec, config, args.out, preset=args.preset, seed=args.seed,
                          overrides=overrides, quiet=args.quiet, tensorboard=args.tensorboard)
    if _main_process():
        print(result.run_dir)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    result = runner.resume(args.run_dir, checkpoint=args.checkpoint, overrides=_flag_overrides(args),
                           quiet=args.quiet, tensorboard=args.tensorboard)
    if _main_process():
        print(result.run_dir)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    metrics = runner.evaluate_run(args.run_dir, checkpoint=args.checkpoint, device=args.device,
                                  batch_statistics=args.batch_statistics, overrides=args.overrides)
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    print(runner.figures_run(args.run_dir, checkpoint=args.checkpoint, device=args.device, out=args.out))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = [(s.name, ", ".join(s.presets), s.description)
            for _, s in sorted(args.experiments.items())]
    print(text_table(["experiment", "presets", "description"], rows))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Train each seed in ``OUT/seed-S`` one after the other (a finished seed of the same
    config is kept, an interrupted one resumed, one of another config refused before
    anything is trained), then write ``OUT/table.md`` and ``OUT/table.csv``."""
    spec = find_experiment(args.experiments, args.experiment)
    overrides = spec.overrides(_flag_overrides(args))
    config = apply_overrides(spec.preset(args.preset), overrides)
    if args.out is None and ddp.from_environment().enabled:
        raise ConfigError("sweep under torchrun needs --out (every process must name the "
                          "same directory)")
    out = args.out or Path("runs") / f"{spec.name}-{args.preset}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    runs = {seed: RunDir(out / f"seed-{seed}") for seed in args.seeds}
    for seed, run in runs.items():
        if run.config.is_file():
            check_same_run(spec, run, config, seed, f"use another --out for this sweep, or delete {run.path}")
    for seed, run in runs.items():
        if run.results.is_file():
            continue
        if run.config.is_file():
            runner.resume(run.path, overrides=device_override(run, config), quiet=args.quiet,
                          tensorboard=args.tensorboard)
        else:
            runner.train(spec, config, run.path, preset=args.preset, seed=seed,
                         overrides=overrides, quiet=args.quiet, tensorboard=args.tensorboard)
    if _main_process():
        rows = tables.aggregate(tables.find_results(out / f"seed-{s}" for s in args.seeds))
        print(tables.write_tables(rows, out / "table.md", out / "table.csv"))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    rows = tables.aggregate(tables.find_results(args.run_dirs))
    print(tables.write_tables(rows, args.markdown, args.csv))
    return 0


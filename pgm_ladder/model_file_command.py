"""``pgm-ladder model-file EXPERIMENT``: write the parameter file of an experiment's embedded
explicit model (:mod:`explicit_models.model_files`), a starting point for a user's own
parameters and every check's ``--model-file`` (issue 17).

``--widths N0 N1 ... NL`` builds the same recipe (the same pinned constructor arguments and
seed) at other level widths, e.g. a scaling table of ``check static``; ``--arg KEY=VALUE``
changes any other argument of the recipe (the value read as JSON), e.g.
``--arg class_separation=0.4``."""
from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Mapping

from explicit_models.model_files import kind_of, save_model_file, sha256_of
from pgm_ladder.training.commands import guard
from pgm_ladder.training.errors import ConfigError
from pgm_ladder.training.spec import ExperimentSpec


def register(subparsers, experiments: Mapping[str, ExperimentSpec]) -> None:
    """Add ``model-file NAME`` for every experiment of ``experiments`` with explicit models."""
    p = subparsers.add_parser("model-file", help="write an embedded explicit model's parameter file "
                              "(a starting point for check --model-file)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    which.required = True
    for name in sorted(experiments):
        models = experiments[name].explicit_models
        if models is None:
            continue
        q = which.add_parser(name, help=f"the parameter file of an embedded {models.kind}")
        q.add_argument("--explicit-model", choices=sorted(models), default=next(iter(models)),
                       help=f"the embedded model (default: {next(iter(models))})")
        if any("widths" in models[m] for m in models):
            q.add_argument("--widths", type=int, nargs="+", metavar="N", default=None,
                           help="level widths n_0 .. n_L (default: the embedded model's): the same "
                                "recipe and seed at other widths")
        q.add_argument("--arg", dest="args", action="append", default=[], metavar="KEY=VALUE",
                       help="change one argument of the recipe (repeatable; VALUE read as JSON), one of: "
                            + ", ".join(sorted({k for m in models for k in models[m]})))
        q.add_argument("--out", type=Path, required=True, help="the parameter file to write (JSON)")
        q.add_argument("--force", action="store_true", help="replace --out if it exists")
        q.set_defaults(func=guard(f"model-file {name}", partial(write_model_file, name, models)))


def write_model_file(name: str, models, args) -> int:
    """Build the chosen embedded model (at ``--widths``), write it to ``--out`` and say how to
    run a check on it. A bad option is a :class:`ConfigError` and writes nothing."""
    changed = recipe_changes(args.args)
    if getattr(args, "widths", None) is not None:
        if len(args.widths) < 2 or min(args.widths) < 1:
            raise ConfigError(f"--widths: expected at least two widths >= 1, got {args.widths}")
        changed["widths"] = list(args.widths)
    if args.out.exists() and not args.force:
        raise ConfigError(f"--out {args.out}: exists; pass --force to replace it")
    try:
        model = models.build(args.explicit_model, **changed)
    except ValueError as err:
        raise ConfigError(f"the recipe of {args.explicit_model!r} changed by --arg/--widths to {changed}: {err}") from err
    recipe = {**models[args.explicit_model], **changed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model_file(model, args.out, description=f"pgm-ladder model-file {name}: embedded model "
                    f"{args.explicit_model!r} built as {recipe}")
    print(f"wrote {args.out}: {model} ({kind_of(model)}, sha256 {sha256_of(args.out)})")
    print(f"run a check on it: pgm-ladder check {name} --model-file {args.out}")
    return 0


def recipe_changes(items) -> dict:
    """``--arg KEY=VALUE`` items as ``{KEY: VALUE}`` (VALUE read as JSON; plain text if it is
    not JSON), or a :class:`ConfigError` naming the bad item."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--arg expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out

"""The grouping levers, measured: train the TAG engines on the embedded Tagger mixture with
each lever of ``pgm_ladder.grouping.TagSettings`` / ``learned_inference.tag`` switched on
and off, and write the ablation table (AMI per iteration, denoising cost).

    python -m experiments.mixture.levers --preset cpu --engines rtagger tagger \\
        --out runs/levers [--seeds 0 1] [--parallel 2] [--device auto] [--variants ...]

Variants: ``paper`` (every lever off: the papers' TAG), ``all`` (every lever in
:data:`LEVERS` on), ``all-<lever>`` (all but one) and ``+<lever>`` (the paper's TAG plus
one). Every variant starts from the papers' TAG
(:data:`experiments.mixture.experiment.PAPERS_TAG`, since the presets have the helpful levers
on) and switches its levers on after it. Every run is an ordinary ``pgm-ladder train mixture`` run directory
(``OUT/<engine>-<variant>-seed<S>``), trained in its own process with one torch thread,
``--parallel`` at a time; a finished run is reused and an interrupted one resumed. The
table goes to ``OUT/levers.md`` and ``OUT/levers.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pgm_ladder.atomic_io import write_json_atomic, write_text_atomic
from pgm_ladder.formatting import text_table

from .experiment import PAPERS_TAG

#: lever name -> the overrides that switch it on (off = its value in PAPERS_TAG / the defaults)
LEVERS: dict[str, tuple[str, ...]] = {
    "mask_skip": ("tag.mask_skip=output",),
    "z_skip": ("tag.z_skip=true",),
    "x_input": ("tag.x_input=true",),
    "z_rank4": ("tag.z_rank=4",),
    "layer_norm": ("tag.projection_norm=layer",),
    "init_std3": ("tag.init_logit_std=3.0",),
    "last_cost": ("tag.cost_weighting=last",),
    # the Ladder's combinator (SPEC §3.1) as the RLadder's decoder cell (RTagger only; the
    # Tagger's Ladder has it already)
    "ladder_decoder": ("rladder.decoder_cell=ladder", "rladder.combinator_sigmoid_v=true"),
    # per-iteration BatchNorm running statistics (Cooijmans et al. 2017): in the RLadder's
    # decoder cells (RTagger only) and in TAG's projection
    "step_stats": ("rladder.norm_steps=4",),
    "projection_step_stats": ("tag.projection_norm_steps=4",),
}
EVAL_ITERATIONS = 8


def variant_overrides(variant: str) -> list[str]:
    """The overrides of ``variant`` (module docstring): the papers' TAG, then its levers."""
    if variant == "paper":
        on = []
    elif variant == "all":
        on = list(LEVERS)
    elif variant.startswith("all-") and variant[4:] in LEVERS:
        on = [name for name in LEVERS if name != variant[4:]]
    elif variant.startswith("+") and variant[1:] in LEVERS:
        on = [variant[1:]]
    else:
        on = None
    if on is not None:
        return [*PAPERS_TAG, *(o for name in on for o in LEVERS[name])]
    known = ["paper", "all", *(f"all-{n}" for n in LEVERS), *(f"+{n}" for n in LEVERS)]
    raise SystemExit(f"unknown variant {variant!r} (known: {', '.join(known)})")


def default_variants() -> list[str]:
    return ["paper", "all", *(f"all-{n}" for n in LEVERS)]


def run_one(out: Path, engine: str, variant: str, seed: int, args) -> Path:
    """Train (or resume, or reuse) one run; returns its directory."""
    run = out / f"{engine}-{variant}-seed{seed}"
    if (run / "results.json").is_file():
        return run
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cli = [sys.executable, "-m", "pgm_ladder.cli"]
    if (run / "config.json").is_file():
        cmd = cli + ["resume", str(run), "--quiet"]
    else:
        sets = [f"task.engine={engine}", f"task.eval_iterations={EVAL_ITERATIONS}",
                *variant_overrides(variant), *args.set]
        if args.steps:
            sets.append(f"train.steps={args.steps}")
        cmd = cli + ["train", "mixture", "--preset", args.preset, "--seed", str(seed), "--out", str(run),
                     "--device", args.device, "--quiet"] + [a for s in sets for a in ("--set", s)]
    log = out / f"{run.name}.log"
    with open(log, "w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        print(f"{run.name}: failed (exit {done.returncode}), see {log}", file=sys.stderr)
    return run


def row(run: Path) -> dict | None:
    """The table row of a finished run (None if it has no results)."""
    path = run / "results.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text())
    m = res["metrics"]
    T = sum(1 for k in m if k.startswith("ami/iter"))
    steps = res.get("steps") or 0
    return {"run": run.name, "ami": [m[f"ami/iter{t}"] for t in range(1, T + 1)],
            "cost": [m[f"cost/iter{t}"] for t in range(1, T + 1)], "wall_time_s": res["wall_time_s"],
            "steps": steps, "steps_per_s": steps / res["wall_time_s"] if res["wall_time_s"] else None,
            "device": res.get("hardware", {}).get("device"), "git_revision": res.get("git_revision")}


def table(rows: list[dict]) -> str:
    T = max(len(r["ami"]) for r in rows)
    head = ["run"] + [f"AMI {t}" for t in range(1, T + 1)] + ["cost 4", f"cost {T}", "steps/s (whole run)"]
    body = [[r["run"], *r["ami"], r["cost"][min(3, len(r["cost"]) - 1)], r["cost"][-1], r["steps_per_s"]]
            for r in rows]
    return text_table(head, body)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.mixture.levers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--engines", nargs="+", default=["rtagger", "tagger"], choices=["rtagger", "tagger"])
    p.add_argument("--variants", nargs="+", default=None, help="default: paper, all, all-<lever> for each")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=None, help="train.steps (default: the preset's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override applied to every run (repeatable)")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time (one torch thread each)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    variants = args.variants or default_variants()
    for v in variants:
        variant_overrides(v)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(e, v, s) for e in args.engines for v in variants for s in args.seeds]
    start = time.time()
    runs = [args.out / f"{e}-{v}-seed{s}" for e, v, s in jobs]
    lock = threading.Lock()

    def write_tables() -> list[dict]:
        """The table of the runs finished so far (rewritten after every run, so that an
        interrupted sweep leaves what it measured)."""
        rows = [r for r in map(row, runs) if r is not None]
        if rows:
            write_text_atomic(args.out / "levers.md", table(rows) + "\n")
            write_json_atomic(args.out / "levers.json", {
                "rows": rows, "levers": {k: list(v) for k, v in LEVERS.items()}, "preset": args.preset,
                "seeds": args.seeds, "overrides": args.set, "wall_time_s": time.time() - start})
        return rows

    def one(job):
        run_one(args.out, *job, args)
        with lock:
            write_tables()

    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        list(pool.map(one, jobs))
    rows = write_tables()
    if not rows:
        print("no run finished", file=sys.stderr)
        return 1
    print(table(rows))
    print(f"\n{len(rows)}/{len(jobs)} runs, {time.time() - start:.0f} s; wrote {args.out / 'levers.md'}")
    return 0 if len(rows) == len(jobs) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

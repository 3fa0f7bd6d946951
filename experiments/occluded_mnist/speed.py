"""Training speed of ``occluded_mnist`` runs from their ``metrics.jsonl``, and whether two
runs followed the same loss curve (docs/results/occluded_moving_mnist.md, "Training speed")::

    pgm-ladder train occluded_mnist --preset cpu --set row=rladder --set train.steps=22 \\
        --set train.log_every=1 --set train.checkpoint_every=0 --set data.eval_size=100 \\
        --set figure_sequences=0 --quiet --out RUN
    python -m experiments.occluded_mnist.speed RUN [RUN2 ...] [--skip 2]

Seconds per step are the differences of the logged ``wall_time_s`` (training only: no
set-up, no evaluation) after ``--skip`` warm-up steps; sequences per second = batch size /
seconds per step. With two or more runs, the largest relative difference of each run's
logged loss from the first run's, step by step (0: the same arithmetic to the last bit).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pgm_ladder.training.run_dir import RunDir, read_metrics


def speed(run: Path, skip: int) -> dict:
    """``{"s_per_step", "seq_per_s", "steps", "losses"}`` of the run in ``run``."""
    rows = [r for r in read_metrics(RunDir(run).metrics) if "loss" in r]
    steps = [r["step"] for r in rows]
    if steps != list(range(1, len(rows) + 1)) or len(rows) <= skip + 1:
        raise ValueError(f"{run}: needs a loss logged at every step (train.log_every=1) and more "
                         f"than --skip + 1 = {skip + 1} steps, got steps {steps[:5]}...")
    timed = rows[skip:]
    per_step = (timed[-1]["wall_time_s"] - timed[0]["wall_time_s"]) / (len(timed) - 1)
    batch = RunDir(run).read_manifest()["config"]["train"]["batch_size"]
    return {"s_per_step": per_step, "seq_per_s": batch / per_step, "steps": len(timed) - 1,
            "losses": [r["loss"] for r in rows]}


def largest_relative_difference(losses: list, reference: list) -> float:
    """``max_t |l_t - r_t| / |r_t|`` over the steps both curves have."""
    return max(abs(a - b) / abs(b) for a, b in zip(losses, reference))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run directories of pgm-ladder train occluded_mnist")
    p.add_argument("--skip", type=int, default=2, help="warm-up steps left out of the timing (default 2)")
    args = p.parse_args(argv)
    results = [speed(run, args.skip) for run in args.runs]
    for run, res in zip(args.runs, results):
        diff = largest_relative_difference(res["losses"], results[0]["losses"])
        print(json.dumps({"run": str(run), "s_per_step": round(res["s_per_step"], 4),
                          "seq_per_s": round(res["seq_per_s"], 1), "timed_steps": res["steps"],
                          "loss_max_rel_diff_vs_first": diff}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

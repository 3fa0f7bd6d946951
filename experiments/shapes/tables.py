"""Table 1 of the Tagger paper (Shapes) from finished ``shapes`` runs: AMI and denoising cost
after iteration 3 and after the last iteration, mean ± std over seeds, beside the paper's
numbers for the same variant (SPEC §6; Tagger Table 1, medians over 20 seeds; the AMI std
after 5 iterations is Table 1b's)::

    python -m experiments.shapes.tables RUN_OR_SWEEP_DIR... [--markdown FILE]

Runs are read with :func:`pgm_ladder.training.tables.find_results` and grouped by preset,
``tag.projection_norm`` (``batch``: the paper's Tagger, ``layer``: its Tagger*) and
``task.engine``; each group is reduced by :func:`pgm_ladder.training.tables.summarise`,
which refuses to pool runs whose configs differ (other than the device) — tabulate those
separately. The paper's numbers are Tagger's; an RTagger row shows them for reference.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from pgm_ladder.formatting import text_table
from pgm_ladder.training import tables as shared

from .experiment import PAPER_TABLE1

VARIANTS = {"batch": "Tagger (BatchNorm)", "layer": "Tagger* (LayerNorm)", "none": "no projection norm"}
ENGINE_LABELS = {"tagger": "Tagger", "rtagger": "RTagger"}
PAPER_ITERATIONS = (3, 5)


def scored_iterations(config: dict) -> int:
    task = config.get("task", {})
    return max(int(task.get("iterations", 1)), int(task.get("eval_iterations", 0)))


def group(results: Sequence[dict]) -> dict:
    """``{(preset, projection_norm, engine): (shared.Row, last iteration)}``."""
    groups: dict = {}
    for res in results:
        if res.get("experiment") != "shapes":
            continue
        cfg = res["config"]
        key = (res["preset"], cfg["tag"]["projection_norm"], cfg["task"]["engine"])
        groups.setdefault(key, []).append(res)
    return {key: (shared.summarise(runs, f"{key[2]} / projection_norm={key[1]} (preset {key[0]})"),
                  scored_iterations(runs[0]["config"]))
            for key, runs in groups.items()}


def fmt(mean: float, std: Optional[float], digits: int = 3) -> str:
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def ours(row: shared.Row, metric: str) -> str:
    return fmt(*row.stats[metric]) if metric in row.stats else "–"


def paper(norm: str, iteration: int, metric: str) -> str:
    value = PAPER_TABLE1.get(norm, {}).get(iteration, {}).get(metric)
    return fmt(*value) if value else ""


def render(results: Sequence[dict]) -> str:
    """Markdown: one table per preset, one row per (projection_norm, engine)."""
    groups = group(results)
    if not groups:
        return "no finished shapes runs found\n"
    parts = []
    for preset in sorted({key[0] for key in groups}):
        header = ["variant", "engine", "seeds", "iterations", "AMI iter 3", "paper", "AMI last", "paper (iter 5)",
                  "cost iter 3", "paper", "cost last", "paper (iter 5)"]
        body = []
        for (p, norm, engine), (row, last) in sorted(groups.items()):
            if p != preset:
                continue
            cells = [VARIANTS.get(norm, norm), ENGINE_LABELS.get(engine, engine), str(len(row.seeds)), str(last)]
            for metric in ("ami", "cost"):
                cells += [ours(row, f"{metric}/iter3"), paper(norm, 3, metric),
                          ours(row, f"{metric}/iter{last}"), paper(norm, 5, metric)]
            body.append(cells)
        parts += [f"### Tagger Table 1 — Shapes (preset `{preset}`)", "",
                  "AMI with the clean input on the pixels of exactly one shape (higher is better); denoising "
                  "cost: BCE of the clean image given the corrupted one, nats per pixel (lower is better). "
                  "Ours: mean ± std over seeds; paper: median over 20 seeds (± std of Table 1b).", "",
                  text_table(header, body), ""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    return shared.render_runs_command("python -m experiments.shapes.tables", __doc__, render, argv)


if __name__ == "__main__":
    raise SystemExit(main())

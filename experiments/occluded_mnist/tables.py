"""Tables 1 and 2 of the RLadder paper (§3.1) from finished ``occluded_mnist`` runs, in the
paper's layout, mean ± std over seeds beside the paper's numbers (SPEC §6; the standard
deviations the SPEC omits are those of the RLadder talk slides)::

    python -m experiments.occluded_mnist.tables RUN_OR_SWEEP_DIR... [--markdown FILE]

Runs are read with :func:`pgm_ladder.training.tables.find_results` and grouped by preset,
row (``model``) and ``regime``; each group is reduced by
:func:`pgm_ladder.training.tables.summarise`; runs of one row whose configs differ (other than
the device, e.g. ``--set train.steps=3600`` beside the preset's budget) are refused —
tabulate them separately. Table 1 holds the ``supervised`` runs, Table 2
the semi-supervised ones. As in the paper, a row without an unsupervised task
(optimal_static, temporal_baseline) shows its "1k labelled" result in the "w/o MT" column
when it was not run there (marked "= 1k").
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from pgm_ladder.formatting import text_table
from pgm_ladder.training import tables as shared

from .config import ROWS
from .rows import ROW_SPECS

#: (mean, std); prediction error in units of 10⁻³ (per-pixel MSE), as the paper prints it
PAPER_TABLE1 = {
    "optimal_static": {"class_error": (0.71, 0.03)},
    "temporal_baseline": {"class_error": (2.02, 0.16)},
    "hierarchical_rnn": {"class_error": (1.60, 0.05)},
    "rladder_no_prediction": {"class_error": (1.51, 0.21)},
    "rladder_no_dec_to_enc": {"class_error": (1.24, 0.05), "prediction_mse": (1.567, 0.004)},
    "rladder_no_classification": {"prediction_mse": (1.552, 0.025)},
    "rladder": {"class_error": (0.74, 0.09), "prediction_mse": (1.501, 0.001)},
}
TABLE2_REGIMES = ("labelled_only", "unlabelled", "mean_teacher")
TABLE2_ROWS = ("optimal_static", "temporal_baseline", "rladder")
PAPER_TABLE2 = {
    "optimal_static": {"labelled_only": (3.50, 0.28), "unlabelled": (3.50, 0.28), "mean_teacher": (1.34, 0.04)},
    "temporal_baseline": {"labelled_only": (10.86, 0.43), "unlabelled": (10.86, 0.43), "mean_teacher": (3.14, 0.16)},
    "rladder": {"labelled_only": (10.49, 0.81), "unlabelled": (5.20, 0.77), "mean_teacher": (1.69, 0.14)},
}
SCALE = {"class_error": 1.0, "prediction_mse": 1e3}
DIGITS = {"class_error": 2, "prediction_mse": 3}


def group(results: Sequence[dict]) -> dict:
    """``{(preset, row, regime): shared.Row}`` (mean ± std of every metric over seeds)."""
    groups: dict = {}
    for res in results:
        if res.get("experiment") != "occluded_mnist":
            continue
        cfg = res["config"]
        groups.setdefault((res["preset"], cfg.get("row", cfg.get("model")), cfg["regime"]), []).append(res)
    return {(preset, row, regime): shared.summarise(runs, f"{row} / {regime} (preset {preset})")
            for (preset, row, regime), runs in groups.items()}


def fmt(mean: float, std: Optional[float], digits: int) -> str:
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def ours(row: Optional[shared.Row], metric: str) -> str:
    if row is None:
        return "not run"
    if metric not in row.stats:
        return "–"
    mean, std = row.stats[metric]
    return f"{fmt(mean * SCALE[metric], std * SCALE[metric], DIGITS[metric])} (n={len(row.seeds)})"


def paper(value: Optional[tuple], metric: str) -> str:
    return fmt(value[0], value[1], DIGITS[metric]) if value else ""


def table1(groups: dict, preset: str) -> str:
    header = ["Model", "Classification error (%)", "paper", "Prediction error ·10⁻³", "paper"]
    body = []
    for name in ROWS:
        spec, row, ref = ROW_SPECS[name], groups.get((preset, name, "supervised")), PAPER_TABLE1[name]
        cells = [spec.label]
        for metric, present in (("class_error", spec.classify), ("prediction_mse", spec.predict)):
            cells += [ours(row, metric) if present else "", paper(ref.get(metric), metric)]
        body.append(cells)
    return text_table(header, body)


def table2(groups: dict, preset: str) -> str:
    header = ["Model", "1k labelled", "paper", "1k labelled & 59k unlabelled, w/o MT", "paper", "MT", "paper"]
    body = []
    for name in TABLE2_ROWS:
        cells = [ROW_SPECS[name].label]
        for regime in TABLE2_REGIMES:
            row = groups.get((preset, name, regime))
            text = ours(row, "class_error")
            if row is None and regime == "unlabelled" and not ROW_SPECS[name].predict:
                fallback = groups.get((preset, name, "labelled_only"))
                text = ours(fallback, "class_error") + " = 1k" if fallback is not None else text
            cells += [text, paper(PAPER_TABLE2[name][regime], "class_error")]
        body.append(cells)
    return text_table(header, body)


def render(results: Sequence[dict]) -> str:
    """Markdown: Table 1 and (where semi-supervised runs exist) Table 2, per preset."""
    groups = group(results)
    presets = sorted({key[0] for key in groups})
    if not presets:
        return "no finished occluded_mnist runs found"
    parts = []
    for preset in presets:
        parts += [f"### Table 1 — Occluded Moving MNIST, fully supervised (preset `{preset}`)", "",
                  table1(groups, preset), ""]
        if any(key[0] == preset and key[2] in TABLE2_REGIMES for key in groups):
            parts += [f"### Table 2 — classification error (%), semi-supervised (preset `{preset}`)", "",
                      table2(groups, preset), ""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    return shared.render_runs_command("python -m experiments.occluded_mnist.tables", __doc__, render, argv)


if __name__ == "__main__":
    raise SystemExit(main())

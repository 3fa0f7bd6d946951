"""Mean ± std over seeds of the final metrics of finished runs, as a Markdown table (one
row per experiment and preset, one column per metric, the paper's number beside ours as
in the papers' tables) and as CSV."""
from __future__ import annotations

import argparse
import csv
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from pgm_ladder.formatting import text_table
from pgm_ladder.training.config import config_differences
from pgm_ladder.training.errors import TableError
from pgm_ladder.training.run_dir import RunDir

#: config fields that may differ between the runs pooled into one row
POOLABLE_FIELDS = ("train.device",)


@dataclass
class Row:
    """The runs of one experiment and preset: per metric ``(mean, std)`` over seeds
    (``std`` is NaN for a single seed) and the paper's number where there is one."""

    experiment: str
    preset: str
    seeds: list[int]
    stats: dict[str, tuple[float, float]] = field(default_factory=dict)
    paper: dict[str, dict] = field(default_factory=dict)


def find_results(paths: Iterable[Path]) -> list[dict]:
    """The ``results.json`` of each run directory; a directory without one (a sweep)
    contributes the runs directly inside it."""
    runs: dict[Path, Path] = {}  # resolved path -> the path as given
    for path in map(Path, paths):
        run = RunDir(path)
        if run.results.is_file():
            inner = [path]
        else:
            inner = sorted(p.parent for p in path.glob("*/results.json")) if path.is_dir() else []
            if not inner:
                run.read_results()  # raises, naming the directory
        for run_path in inner:
            key = run_path.resolve()
            if key in runs:
                raise TableError(f"run {run_path} is given twice (also as {runs[key]}); "
                                 "a mean ± std over seeds counts each run once")
            runs[key] = run_path
    return [RunDir(path).read_results() for path in runs.values()]


def check_poolable(results: Sequence[dict], what: str) -> None:
    """Raise :class:`TableError` naming the config fields (other than
    :data:`POOLABLE_FIELDS`) on which the runs of one table row differ: a mean ± std over
    seeds must not mix, say, two training budgets."""
    differing = config_differences([res.get("config", {}) for res in results], POOLABLE_FIELDS)
    if differing:
        listed = "; ".join(f"{name}: {', '.join(values)}" for name, values in differing.items())
        raise TableError(f"the runs of {what} differ in their config ({listed}); tabulate them separately")


def summarise(runs: Sequence[dict], what: str) -> Row:
    """The :class:`Row` of the runs of one table row (one experiment and preset): seeds,
    the paper's numbers and, per metric, ``(mean, std)`` over the runs; the runs must be
    poolable (:func:`check_poolable`, ``what`` names the row in its error)."""
    check_poolable(runs, what)
    seeds = [seed for res in runs for seed in res["seeds"]]
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise TableError(f"the runs of {what} repeat seed(s) {', '.join(map(str, repeated))}: the "
                         "same seed and config is the same run; tabulate distinct seeds")
    row = Row(runs[0]["experiment"], runs[0]["preset"], [])
    values: dict[str, list[float]] = {}
    for res in runs:
        row.seeds += res["seeds"]
        row.paper.update(res.get("paper_numbers", {}))
        for name, value in res["metrics"].items():
            values.setdefault(name, []).append(float(value))
    for name, vals in values.items():
        std = statistics.stdev(vals) if len(vals) > 1 else math.nan
        row.stats[name] = (statistics.fmean(vals), std)
    return row


def aggregate(results: Sequence[dict]) -> list[Row]:
    """One :class:`Row` per experiment and preset (:func:`summarise`), in order of appearance."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for res in results:
        groups.setdefault((res["experiment"], res["preset"]), []).append(res)
    return [summarise(runs, f"{experiment} (preset {preset})") for (experiment, preset), runs in groups.items()]


def _metrics(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(name for row in rows for name in row.stats))


def _with_paper(rows: Sequence[Row]) -> set[str]:
    return {name for row in rows for name in row.paper}


def _pm(mean: float, std: Optional[float]) -> str:
    if std is None or math.isnan(std):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {std:.2g}"


def to_markdown(rows: Sequence[Row]) -> str:
    metrics, paper = _metrics(rows), _with_paper(rows)
    header = ["experiment", "preset", "seeds"]
    for name in metrics:
        header += [name] + ([f"{name} (paper)"] if name in paper else [])
    body = []
    for row in rows:
        cells = [row.experiment, row.preset, str(len(row.seeds))]
        for name in metrics:
            cells.append(_pm(*row.stats[name]) if name in row.stats else None)
            if name in paper:
                p = row.paper.get(name)
                cells.append(_pm(p["value"], p.get("std")) if p else None)
        body.append(cells)
    return text_table(header, body)


def write_csv(rows: Sequence[Row], path: Path) -> None:
    metrics, paper = _metrics(rows), _with_paper(rows)
    header = ["experiment", "preset", "n_seeds", "seeds"]
    for name in metrics:
        header += [f"{name}_mean", f"{name}_std"]
        if name in paper:
            header += [f"{name}_paper", f"{name}_paper_std"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        for row in rows:
            cells: list = [row.experiment, row.preset, len(row.seeds),
                           " ".join(map(str, row.seeds))]
            for name in metrics:
                cells += list(row.stats.get(name, ("", "")))
                if name in paper:
                    p = row.paper.get(name) or {}
                    cells += [p.get("value", ""), p.get("std", "")]
            out.writerow(["" if isinstance(c, float) and math.isnan(c) else
                          ("" if c is None else c) for c in cells])


def write_tables(rows: Sequence[Row], markdown: Optional[Path], csv_path: Optional[Path]) -> str:
    text = to_markdown(rows)
    if markdown is not None:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown).write_text(text + "\n", encoding="utf-8")
    if csv_path is not None:
        write_csv(rows, csv_path)
    return text



def render_runs_command(prog: str, description: str, render: Callable[[list[dict]], str],
                        argv: Optional[Sequence[str]] = None) -> int:
    """An experiment's table command, ``python -m PROG RUN_DIR... [--markdown FILE]``:
    ``render`` the finished runs found under the given run or sweep directories
    (:func:`find_results`), print it and optionally write it to a Markdown file."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run directories or sweep directories")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    text = render(find_results(args.run_dirs))
    print(text, end="")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    return 0

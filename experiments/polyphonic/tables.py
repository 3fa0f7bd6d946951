"""Table 3 of the RLadder paper from finished ``polyphonic`` runs: the NLL per time step on
the test split of each corpus, ours as mean ± std over seeds beside the paper's rows::

    python -m experiments.polyphonic.tables RUN_OR_SWEEP_DIR... [--markdown FILE]

Runs are grouped by preset, row and corpus and each group is reduced by
:func:`pgm_ladder.training.tables.summarise` (which refuses to pool runs whose configs
differ). The paper's RLadder numbers are means over 10 seeds (its stds are lost from our
copy); the other rows are the papers it cites, as printed in Table 3 (a blank: not given).
"""
from __future__ import annotations

from typing import Optional, Sequence

from pgm_ladder.formatting import text_table
from pgm_ladder.training import tables as shared

from .config import CORPORA
from .paper import PAPER_JOINT, PAPER_MARGINAL

COLUMNS = {"piano_midi": "Piano-midi.de", "nottingham": "Nottingham", "musedata": "MuseData",
           "jsb_chorales": "JSB Chorales"}
ROW_LABELS = {"rladder": "RLadder (ours)", "hierarchical_rnn": "hierarchical RNN, encoder only (ours)",
              "lstm": "LSTM (ours)", "frequency": "note frequencies (ours)"}


def group(results: Sequence[dict]) -> dict:
    """``{(preset, row, corpus): shared.Row}`` over the finished polyphonic runs."""
    groups: dict = {}
    for res in results:
        if res.get("experiment") != "polyphonic":
            continue
        cfg = res["config"]
        groups.setdefault((res["preset"], cfg["row"], cfg["data"]["corpus"]), []).append(res)
    return {key: shared.summarise(runs, f"{key[1]} on {key[2]} (preset {key[0]})")
            for key, runs in groups.items()}


def cell(row: Optional[shared.Row], corpus: str) -> str:
    if row is None:
        return "not run"
    mean, std = row.stats[f"nll/{corpus}"]
    spread = "" if std != std else f" ± {std:.2f}"  # NaN std: one seed
    return f"{mean:.2f}{spread} (n={len(row.seeds)})"


def render(results: Sequence[dict]) -> str:
    """Markdown: per preset, the paper's rows then ours, one column per corpus."""
    groups = group(results)
    if not groups:
        return "no finished polyphonic runs found\n"
    header = ["model"] + [COLUMNS[c] for c in CORPORA]
    paper_rows = [["*joint-output models (paper)*"] + [""] * len(CORPORA)]
    paper_rows += [[name] + ["" if v is None else f"{v:g}" for v in values] for name, values in PAPER_JOINT.items()]
    paper_rows += [["*marginal-output models (paper)*"] + [""] * len(CORPORA)]
    paper_rows += [[name] + ["" if v is None else f"{v:g}" for v in values]
                   for name, values in PAPER_MARGINAL.items()]
    parts = []
    for preset in sorted({key[0] for key in groups}):
        ours = [[ROW_LABELS[row]] + [cell(groups.get((preset, row, c)), c) for c in CORPORA]
                for row in ROW_LABELS if any((preset, row, c) in groups for c in CORPORA)]
        parts += [f"### RLadder Table 3 — polyphonic music (preset `{preset}`)", "",
                  "Negative log-likelihood per time step on the test split (nats, sum over the 88 notes, "
                  "averaged over the test time steps; lower is better). Ours: mean ± std over n seeds.", "",
                  text_table(header, paper_rows + [["*ours*"] + [""] * len(CORPORA)] + ours), ""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    return shared.render_runs_command("python -m experiments.polyphonic.tables", __doc__, render, argv)


if __name__ == "__main__":
    raise SystemExit(main())

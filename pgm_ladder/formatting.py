"""Plain-text (Markdown pipe) tables, readable in a terminal and pasteable into ``docs/results``."""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence


def format_cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def text_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A Markdown pipe table (readable in a terminal, pasteable into ``docs/results``)."""
    cells = [list(map(str, header))] + [[format_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def at(values: Optional[Sequence[float]], index: int) -> Optional[float]:
    """``values[index]`` or None when the list is shorter (a one-pass engine)."""
    if not values or index >= len(values):
        return None
    return values[index]

"""Validation helpers shared by the engine configs (SPEC §3).

Every check raises :class:`ValueError` whose message starts with the offending field's
name, so that a bad config fails at construction, not deep inside a forward pass.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence


def check_positive_int(value: Any, name: str) -> int:
    """``value`` must be an int (not a bool) and > 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def check_nonnegative_int(value: Any, name: str) -> int:
    """``value`` must be an int (not a bool) and >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
    return value


def check_widths(value: Any, name: str) -> tuple[int, ...]:
    """A non-empty sequence of positive ints; returned as a tuple."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ValueError(f"{name}: expected a non-empty tuple of positive ints, got {value!r}")
    for i, w in enumerate(value):
        check_positive_int(w, f"{name}[{i}]")
    return tuple(value)


def check_nonnegative_float(value: Any, name: str) -> float:
    """A finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite float >= 0, got {value!r}")
    return float(value)


def check_weights(value: Any, length: int, name: str) -> tuple[float, ...]:
    """A sequence of ``length`` finite non-negative floats; returned as a tuple."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != length:
        raise ValueError(f"{name}: expected {length} non-negative floats, got {value!r}")
    return tuple(check_nonnegative_float(w, f"{name}[{i}]") for i, w in enumerate(value))


def check_choice(value: Any, choices: Iterable[str], name: str) -> str:
    """``value`` must be one of ``choices`` (simple enum-like strings)."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return value


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected a bool, got {value!r}")
    return value


def optional_weights(value: Optional[Sequence[float]], default: tuple[float, ...],
                     name: str) -> tuple[float, ...]:
    """``None`` -> ``default``; otherwise validated like :func:`check_weights`."""
    if value is None:
        return default
    return check_weights(value, len(default), name)

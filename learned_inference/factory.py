"""``build_engine(config)``: config type -> static engine class (SPEC §3).

The registry is fixed: :class:`LadderConfig` -> :class:`Ladder`, :class:`RLadderConfig` ->
:class:`RLadder`, :class:`TagConfig` -> :class:`Tag` (Tagger or RTagger by its inner
engine config). No engine module imports this one (the TAG engine builds its inner Ladder
or RLadder with :func:`~learned_inference.tag.build_inner_engine`), so the import graph
stays acyclic.
"""
from __future__ import annotations

from typing import Any

from .base import InferenceEngine
from .ladder import Ladder, LadderConfig
from .rladder import RLadder, RLadderConfig
from .tag import Tag, TagConfig

_REGISTRY: dict[type, type[InferenceEngine]] = {
    LadderConfig: Ladder,
    RLadderConfig: RLadder,
    TagConfig: Tag,
}


def build_engine(config: Any) -> InferenceEngine:
    """Build the engine registered for ``type(config)`` (exact type first, then bases)."""
    for cls in type(config).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls](config)
    known = ", ".join(sorted(c.__name__ for c in _REGISTRY))
    raise TypeError(f"config: no engine registered for {type(config).__name__} (known: {known})")

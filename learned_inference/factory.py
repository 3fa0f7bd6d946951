"""``build_engine(config)``: config type -> engine class (SPEC §3).

Later engines (convolutional RLadder, TAG engines) add themselves with
:func:`register_engine` and are then built the same way.
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


def register_engine(config_type: type, engine_type: type[InferenceEngine]) -> None:
    """Make :func:`build_engine` build ``engine_type(config)`` for ``config_type`` instances."""
    if not (isinstance(engine_type, type) and issubclass(engine_type, InferenceEngine)):
        raise TypeError(f"engine_type: expected an InferenceEngine subclass, got {engine_type!r}")
    _REGISTRY[config_type] = engine_type


def build_engine(config: Any) -> InferenceEngine:
    """Build the engine registered for ``type(config)`` (exact type first, then bases)."""
    for cls in type(config).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls](config)
    known = ", ".join(sorted(c.__name__ for c in _REGISTRY))
    raise TypeError(f"config: no engine registered for {type(config).__name__} (known: {known})")

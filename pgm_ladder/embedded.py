"""Embedded explicit models: named models whose every constructor argument is pinned (ours),
so that a change of a constructor's defaults cannot change them. Every run and every engine
of an experiment is scored on the same explicit model, whatever the run seed."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Generic, Iterator, TypeVar

M = TypeVar("M")


class EmbeddedModels(Mapping, Generic[M]):
    """``name -> constructor arguments`` (a read-only mapping) with :meth:`build`.

    ``construct(**arguments[name])`` makes model ``name``; ``field`` is the config key that
    selects it (named in the error for an unknown name).
    """

    def __init__(self, construct: Callable[..., M], arguments: Mapping[str, Mapping[str, Any]],
                 field: str = "task.explicit_model"):
        self._construct = construct
        self._arguments = {name: dict(args) for name, args in arguments.items()}
        self.field = field

    def __getitem__(self, name: str) -> dict:
        return dict(self._arguments[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._arguments)

    def __len__(self) -> int:
        return len(self._arguments)

    def build(self, name: str) -> M:
        """The embedded model ``name`` (a :class:`ValueError` names the known ones)."""
        if name not in self._arguments:
            raise ValueError(f"{self.field}: expected one of {sorted(self._arguments)}, got {name!r}")
        return self._construct(**self._arguments[name])

"""Embedded explicit models: named models whose every constructor argument is pinned (ours),
so that a change of a constructor's defaults cannot change them. Every run and every engine
of an experiment is scored on the same explicit model, whatever the run seed.

A task may name a parameter file instead (``task.model_file``, checked against
``task.model_file_sha256``; :mod:`explicit_models.model_files`): :meth:`EmbeddedModels.for_task`
is the one place that decides which model a task means."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Generic, Iterator, Optional, TypeVar

from explicit_models.model_files import KINDS, ModelFileError, load_model_file, sha256_of
from pgm_ladder.training.errors import ConfigError

M = TypeVar("M")


class EmbeddedModels(Mapping, Generic[M]):
    """``name -> constructor arguments`` (a read-only mapping) with :meth:`build`.

    ``construct(**arguments[name])`` makes model ``name``; ``field`` is the config key that
    selects it (named in the error for an unknown name); ``kind`` is the parameter-file kind
    of the models (:data:`explicit_models.model_files.KINDS`), the one a task's
    ``model_file`` must hold.
    """

    def __init__(self, construct: Callable[..., M], arguments: Mapping[str, Mapping[str, Any]],
                 field: str = "task.explicit_model", kind: Optional[str] = None):
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind: expected one of {sorted(KINDS)}, got {kind!r}")
        self._construct = construct
        self._arguments = {name: dict(args) for name, args in arguments.items()}
        self.field = field
        self.kind = kind

    def __getitem__(self, name: str) -> dict:
        return dict(self._arguments[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._arguments)

    def __len__(self) -> int:
        return len(self._arguments)

    def build(self, name: str, **changed) -> M:
        """The embedded model ``name`` (a :class:`ValueError` names the known ones); with
        ``changed`` arguments, its recipe with those replaced (e.g. other ``widths``, the
        same seed)."""
        if name not in self._arguments:
            raise ValueError(f"{self.field}: expected one of {sorted(self._arguments)}, got {name!r}")
        if unknown := sorted(set(changed) - set(self._arguments[name])):
            raise ValueError(f"{self.field}={name}: its recipe has no argument(s) {unknown} "
                             f"(it has {sorted(self._arguments[name])})")
        return self._construct(**{**self._arguments[name], **changed})

    def for_task(self, task) -> M:
        """The explicit model ``task`` means: the parameter file ``task.model_file`` when set
        (its sha256 must be ``task.model_file_sha256``, its kind :attr:`kind`), else the
        embedded ``task.explicit_model``. A bad file is a :class:`ConfigError` naming the
        file and the field."""
        if not task.model_file:
            return self.build(task.explicit_model)
        try:
            return load_model_file(task.model_file, self.kind, task.model_file_sha256)
        except ModelFileError as err:
            raise ConfigError(str(err)) from err

    def settings(self, task) -> dict:
        """What ``results.json`` records of the model: the parameter file and its sha256, or
        the embedded model's name and constructor arguments."""
        if task.model_file:
            return {"model_file": task.model_file, "model_file_sha256": task.model_file_sha256,
                    "model_kind": self.kind}
        return {"explicit_model": task.explicit_model, "model_args": self[task.explicit_model]}


def check_model_file_fields(task) -> None:
    """Validate a task's ``model_file`` / ``model_file_sha256``: strings, given together, the
    sha256 64 hex digits (a missing one is named with the file's digest now, to copy); the
    file itself is read by :meth:`EmbeddedModels.for_task`."""
    file, digest = task.model_file, task.model_file_sha256
    if not isinstance(file, str) or not isinstance(digest, str):
        raise ValueError("task.model_file and task.model_file_sha256 must be strings")
    if digest and (len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest)):
        raise ValueError(f"task.model_file_sha256: expected 64 hex digits, got {digest!r}")
    if digest and not file:
        raise ValueError("task.model_file_sha256: given without task.model_file")
    if file and not digest:
        raise ValueError(f"task.model_file_sha256: required with task.model_file (the run must not be "
                         f"reused after the file changes); {file} has sha256 {sha256_of(file)} now")

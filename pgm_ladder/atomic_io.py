"""Atomic writes: a reader (or a run killed mid-write) sees the old file or the new one,
never a torn one. Every results file, checkpoint and log rewrite goes through here."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, fsync it, give it the
    umask's permissions (``mkstemp`` makes 0600), rename it over ``path`` and fsync the
    directory. On any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text_atomic(path: Path, text: str) -> None:
    """:func:`atomic_write` of UTF-8 text."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json_atomic(path: Path, payload: dict) -> None:
    """:func:`atomic_write` of ``payload`` as indented JSON (NaN allowed)."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False, allow_nan=True))

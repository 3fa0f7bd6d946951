"""Where the data and the caches live, and sha256 verification of real files (SPEC §5).

Data directory, in this order of precedence:

1. an explicit ``override`` (what the ``--data-dir`` CLI flag passes, see
   :func:`add_data_dir_argument`);
2. ``../shared/data`` beside the checkout (the repository root's sibling ``shared/data``),
   when that directory exists;
3. the ``PGM_LADDER_DATA`` environment variable.

Cache directory (generated sets and the checksum cache): an explicit ``override``, else
``PGM_LADDER_CACHE``, else ``~/.cache/pgm-ladder``.

Every real file is verified against :data:`checksums.EXPECTED`. The verified sha256 is
remembered in ``<cache>/sha256.json`` keyed on (absolute path, size, mtime), so a file is
hashed once; a missing file raises :class:`DataFileMissing`, a corrupted one
:class:`DataFileCorrupt`. Nothing is ever downloaded.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from experiments.datasets.checksums import EXPECTED

DATA_ENV = "PGM_LADDER_DATA"
CACHE_ENV = "PGM_LADDER_CACHE"
CHECKSUM_CACHE_NAME = "sha256.json"
PathLike = Union[str, "os.PathLike[str]"]

#: The repository root (``experiments/datasets/paths.py`` -> two levels up).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: ``../shared/data`` beside the checkout.
SIBLING_DATA_DIR = REPO_ROOT.parent / "shared" / "data"

# In-process memo: absolute path -> (size, mtime_ns, sha256) of files verified this run.
_VERIFIED: Dict[str, Tuple[int, int, str]] = {}


class DataFileMissing(FileNotFoundError):
    """A real data file (or the data directory) is not where it is expected."""


class DataFileCorrupt(ValueError):
    """A real data file exists but its sha256 is not the expected one."""


def data_dir(override: Optional[PathLike] = None) -> Path:
    """The data directory: ``override`` > ``../shared/data`` beside the checkout > ``$PGM_LADDER_DATA``.

    Raises :class:`DataFileMissing` (naming both places and the variable) when none is set.
    """
    if override is not None:
        return Path(override).expanduser()
    if SIBLING_DATA_DIR.is_dir():
        return SIBLING_DATA_DIR
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    raise DataFileMissing(
        f"no data directory: {SIBLING_DATA_DIR} does not exist and {DATA_ENV} is not set; "
        f"set {DATA_ENV} (or pass --data-dir) to a directory holding mnist/, polyphonic/ and "
        "brodatz/ as listed in docs/datasets.md"
    )


def cache_dir(override: Optional[PathLike] = None) -> Path:
    """The cache directory: ``override`` > ``$PGM_LADDER_CACHE`` > ``~/.cache/pgm-ladder``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pgm-ladder"


def add_data_dir_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--data-dir`` to a CLI parser; pass ``args.data_dir`` to :func:`data_dir`."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=(
            "directory holding mnist/, polyphonic/ and brodatz/ (default: ../shared/data beside "
            f"the checkout when it exists, else ${DATA_ENV})"
        ),
    )
    return parser


def add_cache_dir_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--cache-dir`` to a CLI parser; pass ``args.cache_dir`` to :func:`cache_dir`."""
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"cache for generated data sets and checksums (default: ${CACHE_ENV} or ~/.cache/pgm-ladder)",
    )
    return parser


def sha256_of_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_checksum_cache(path: Path) -> Dict[str, list]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            table = json.load(f)
        return table if isinstance(table, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or an unreadable one: start afresh


def _write_checksum_cache(path: Path, table: Dict[str, list]) -> None:
    """Atomic write (temp file + ``os.replace``); an unwritable cache is skipped silently."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sha256-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(table, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def _file_sha256_cached(path: Path, cache: Optional[PathLike], full: bool = False) -> str:
    """sha256 of ``path``, reusing a value recorded for the same (path, size, mtime)
    unless ``full`` (then the bytes are hashed again and the record renewed)."""
    stat = path.stat()
    key = str(path.resolve())
    stamp = (stat.st_size, stat.st_mtime_ns)
    memo = _VERIFIED.get(key)
    if memo is not None and memo[:2] == stamp and not full:
        return memo[2]
    cache_file = cache_dir(cache) / CHECKSUM_CACHE_NAME
    table = _read_checksum_cache(cache_file)
    entry = table.get(key)
    if not full and isinstance(entry, list) and len(entry) == 3 and tuple(entry[:2]) == stamp:
        digest = str(entry[2])
    else:
        digest = sha256_of_file(path)
        table = _read_checksum_cache(cache_file)  # re-read: another process may have written
        table[key] = [stat.st_size, stat.st_mtime_ns, digest]
        _write_checksum_cache(cache_file, table)
    _VERIFIED[key] = (stat.st_size, stat.st_mtime_ns, digest)
    return digest


def verified_path(
    relpath: str, data: Optional[PathLike] = None, cache: Optional[PathLike] = None, full: bool = False
) -> Path:
    """The path of data file ``relpath`` (e.g. ``"mnist/t10k-labels-idx1-ubyte.gz"``), verified.

    ``data`` overrides the data directory (see :func:`data_dir`), ``cache`` the cache directory;
    ``full`` hashes the file again even if its (size, mtime) matches a recorded checksum.
    Raises :class:`DataFileMissing` naming the expected path and ``PGM_LADDER_DATA``, or
    :class:`DataFileCorrupt` naming the file and both checksums.
    """
    if relpath not in EXPECTED:
        raise KeyError(f"{relpath!r} is not a known data file (see experiments/datasets/checksums.py)")
    expected = EXPECTED[relpath]
    root = data_dir(data)
    path = root / relpath
    if not path.is_file():
        raise DataFileMissing(
            f"missing data file {path} (expected sha256 {expected.sha256}, {expected.size} bytes); "
            f"put it there, or set {DATA_ENV} (or pass --data-dir) to a directory that holds "
            f"{relpath}; see docs/datasets.md. Nothing is downloaded."
        )
    actual = _file_sha256_cached(path, cache, full)
    if actual != expected.sha256:
        raise DataFileCorrupt(
            f"corrupted data file {path}: sha256 is {actual} but expected {expected.sha256}; "
            "replace it with the original (see docs/datasets.md)"
        )
    return path


def clear_verification_memo() -> None:
    """Forget the in-process memo (the on-disk checksum cache stays); for tests."""
    _VERIFIED.clear()

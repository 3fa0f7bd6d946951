"""Caching of generated data sets as ``.npz`` files (SPEC §5: generated, deterministic, cached).

A generated set is identified by ``(name, settings, split, n, seed)``; the sha256 of that key's
canonical JSON goes into the file name ``<name>-<split>-n<n>-s<seed>-<hash16>.npz`` under
:func:`~experiments.datasets.paths.cache_dir`. The key's JSON is also stored in the file and
checked on load. Writes are atomic (temp file in the same directory + ``os.replace``). A file
that cannot be read back (truncated, bad zip CRC, missing arrays, wrong key) is corrupt: it is
regenerated with a warning (``on_corrupt="regenerate"``, the default) or reported with
:class:`CacheCorrupt` (``on_corrupt="raise"``). :func:`load_generated` is the body of every
generated set's ``load_*``; :func:`generated_loader` makes the ``load_*`` of a set drawn from files.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Type, TypeVar

import numpy as np

from experiments.datasets._common import ArrayBundle, check_count, check_split, settings_dict
from experiments.datasets.paths import PathLike, cache_dir

META_KEY = "__cache_key__"
DIGEST_KEY = "__sha256__"
Arrays = Dict[str, np.ndarray]
B = TypeVar("B", bound=ArrayBundle)


class CacheCorrupt(ValueError):
    """A cache file exists but cannot be read back as the set it should hold."""


def cache_key(name: str, settings, split: str, n: int, seed: int) -> str:
    """Canonical JSON of what identifies a generated set."""
    key = {"name": name, "settings": settings_dict(settings), "split": split, "n": int(n), "seed": int(seed)}
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def cache_path(name: str, settings, split: str, n: int, seed: int, cache: Optional[PathLike] = None) -> Path:
    """Where the set ``(name, settings, split, n, seed)`` is cached."""
    digest = hashlib.sha256(cache_key(name, settings, split, n, seed).encode()).hexdigest()[:16]
    stem = name.replace("/", "_")
    return cache_dir(cache) / f"{stem}-{split}-n{int(n)}-s{int(seed)}-{digest}.npz"


def arrays_digest(arrays: Arrays) -> str:
    """sha256 over the names, dtypes, shapes and bytes of ``arrays`` (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def save_arrays(path: Path, arrays: Arrays, key: str, compress: bool = True) -> None:
    """Write ``arrays`` (+ the key and their digest) to ``path`` atomically."""
    if META_KEY in arrays or DIGEST_KEY in arrays:
        raise ValueError(f"array names {META_KEY!r} and {DIGEST_KEY!r} are reserved")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer = np.savez_compressed if compress else np.savez
            writer(f, **{META_KEY: np.array(key), DIGEST_KEY: np.array(arrays_digest(arrays))}, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_arrays(path: Path, key: str, names: Optional[Sequence[str]] = None) -> Arrays:
    """Read a cache file fully; :class:`CacheCorrupt` naming the file if anything is wrong."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            stored_key = str(npz[META_KEY][()])
            stored_digest = str(npz[DIGEST_KEY][()])
            arrays = {k: npz[k] for k in npz.files if k not in (META_KEY, DIGEST_KEY)}
    except Exception as exc:  # any failure to read back (zip, zlib, npy header, I/O) means corrupt
        raise CacheCorrupt(f"cache file {path} is corrupt or incomplete ({type(exc).__name__}: {exc})") from exc
    if stored_key != key:
        raise CacheCorrupt(f"cache file {path} holds a different set (key {stored_key[:200]})")
    missing = sorted(set(names or ()) - set(arrays))
    if missing:
        raise CacheCorrupt(f"cache file {path} lacks arrays {missing}")
    if arrays_digest(arrays) != stored_digest:
        raise CacheCorrupt(f"cache file {path} is corrupt: its arrays do not match their stored sha256")
    return arrays


def load_or_generate(
    name: str,
    settings,
    split: str,
    n: int,
    seed: int,
    generate: Callable[[], Arrays],
    cache: Optional[PathLike] = None,
    use_cache: bool = True,
    on_corrupt: str = "regenerate",
    compress: bool = True,
    names: Optional[Sequence[str]] = None,
) -> Arrays:
    """The cached arrays of a generated set, generating (and caching) them when absent.

    ``generate()`` must return the same dict of arrays for the same arguments (deterministic);
    ``names`` (default: whatever the file holds) are the arrays a valid cache file must hold.
    """
    if on_corrupt not in ("regenerate", "raise"):
        raise ValueError(f"on_corrupt must be 'regenerate' or 'raise', got {on_corrupt!r}")
    if not use_cache:
        return generate()
    key = cache_key(name, settings, split, n, seed)
    path = cache_path(name, settings, split, n, seed, cache)
    if path.exists():
        try:
            return load_arrays(path, key, names)
        except CacheCorrupt as exc:
            if on_corrupt == "raise":
                raise
            warnings.warn(f"regenerating corrupt cache file {path}: {exc}", RuntimeWarning, stacklevel=2)
    arrays = generate()
    save_arrays(path, arrays, key, compress=compress)
    return arrays


def load_generated(
    name: str,
    bundle: Type[B],
    generate: Callable[[int], B],
    settings,
    split: str,
    n: Optional[int],
    seed: int,
    split_size: Callable[[], int],
    cache: Optional[PathLike] = None,
    use_cache: bool = True,
    on_corrupt: str = "regenerate",
) -> B:
    """``generate(n)`` (a ``bundle`` of ``n`` samples of ``split``) through the cache.

    ``split`` is checked first; ``n`` ``None`` means ``split_size()``. A valid cache file holds
    every array of ``bundle``; ``(name, settings, split, n, seed)`` is the key.
    """
    check_split(split)
    n = check_count(n, split_size())
    arrays = load_or_generate(
        name, settings, split, n, seed, lambda: generate(n).to_arrays(),
        cache=cache, use_cache=use_cache, on_corrupt=on_corrupt, names=bundle.names(),
    )
    return bundle.from_arrays(arrays)


def generated_loader(
    name: str, bundle: Type[B], settings_type: type, generate: Callable[..., B],
    split_size: Callable[[str, Optional[PathLike]], int],
) -> Callable[..., B]:
    """The ``load_*`` of a generated set whose ``generate(split, n, seed, settings, data_dir)`` reads files.

    ``load(split="train", n=None, seed=0, settings=None, data_dir=None, cache_dir=None, use_cache=True,
    on_corrupt="regenerate")`` is :func:`load_generated` with ``settings`` ``None`` meaning
    ``settings_type()`` and ``n`` ``None`` meaning ``split_size(split, data_dir)``.
    """
    def load(split: str = "train", n: Optional[int] = None, seed: int = 0, settings=None,
             data_dir: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None, use_cache: bool = True,
             on_corrupt: str = "regenerate") -> B:
        settings = settings or settings_type()
        return load_generated(name, bundle, lambda k: generate(split, k, seed, settings, data_dir), settings, split,
                              n, seed, lambda: split_size(split, data_dir), cache_dir, use_cache, on_corrupt)

    load.__name__ = load.__qualname__ = generate.__name__.replace("generate_", "load_", 1)
    load.__module__ = generate.__module__
    load.__annotations__ = {**load.__annotations__, "settings": Optional[settings_type], "return": bundle}
    load.__doc__ = f":func:`{generate.__name__}` through the ``.npz`` cache (see :func:`{__name__}.generated_loader`)."
    return load

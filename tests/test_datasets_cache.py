"""The ``.npz`` cache of generated sets: round trip, keys, atomic writes, corrupt files (SPEC §5)."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from experiments.datasets import cache as cache_mod
from experiments.datasets import shapes as shapes_mod
from experiments.datasets.cache import CacheCorrupt, cache_path, load_or_generate
from experiments.datasets.shapes import NAME, ShapesSettings, generate_shapes, load_shapes


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.to_arrays().values(), b.to_arrays().values()))


def test_round_trip_and_no_regeneration(tmp_path, monkeypatch):
    first = load_shapes("test", n=300, seed=5, cache_dir=tmp_path)
    path = cache_path(NAME, ShapesSettings(), "test", 300, 5, tmp_path)
    assert path.is_file()
    assert _same(first, generate_shapes("test", n=300, seed=5))

    def boom(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(shapes_mod, "generate_shapes", boom)
    again = load_shapes("test", n=300, seed=5, cache_dir=tmp_path)
    assert _same(first, again)


def test_key_covers_settings_seed_split_and_n(tmp_path):
    base = cache_path(NAME, ShapesSettings(), "test", 300, 5, tmp_path)
    others = [
        cache_path(NAME, ShapesSettings(n_shapes=2), "test", 300, 5, tmp_path),
        cache_path(NAME, ShapesSettings(), "test", 300, 6, tmp_path),
        cache_path(NAME, ShapesSettings(), "valid", 300, 5, tmp_path),
        cache_path(NAME, ShapesSettings(), "test", 301, 5, tmp_path),
        cache_path("shapes/v2", ShapesSettings(), "test", 300, 5, tmp_path),
    ]
    assert len({base, *others}) == 6
    assert base == cache_path(NAME, ShapesSettings(), "test", 300, 5, tmp_path)


def test_env_variable_chooses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PGM_LADDER_CACHE", str(tmp_path / "env"))
    load_shapes("test", n=10, seed=1)
    assert list((tmp_path / "env").glob("shapes_v1-test-n10-s1-*.npz"))


def test_no_temp_files_left_and_failed_generation_writes_nothing(tmp_path):
    load_shapes("test", n=50, seed=1, cache_dir=tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]

    def failing():
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        load_or_generate("x/v1", ShapesSettings(), "test", 1, 0, failing, cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1


def test_use_cache_false_writes_nothing(tmp_path):
    load_shapes("test", n=20, seed=1, cache_dir=tmp_path, use_cache=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("where", [0.25, 0.5, 0.75, 0.999])
def test_flipped_byte_is_detected_and_regenerated(tmp_path, where):
    good = load_shapes("test", n=400, seed=2, cache_dir=tmp_path)
    path = cache_path(NAME, ShapesSettings(), "test", 400, 2, tmp_path)
    raw = bytearray(path.read_bytes())
    raw[int(where * (len(raw) - 1))] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CacheCorrupt, match=str(path)):
        load_shapes("test", n=400, seed=2, cache_dir=tmp_path, on_corrupt="raise")
    with pytest.warns(RuntimeWarning, match="regenerating corrupt cache file"):
        repaired = load_shapes("test", n=400, seed=2, cache_dir=tmp_path)
    assert _same(good, repaired)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _same(good, load_shapes("test", n=400, seed=2, cache_dir=tmp_path, on_corrupt="raise"))


def test_truncated_and_garbage_files_are_detected(tmp_path):
    load_shapes("test", n=100, seed=3, cache_dir=tmp_path)
    path = cache_path(NAME, ShapesSettings(), "test", 100, 3, tmp_path)
    raw = path.read_bytes()
    for broken in (raw[: len(raw) // 2], b"", b"not a zip file"):
        path.write_bytes(broken)
        with pytest.raises(CacheCorrupt, match="corrupt"):
            load_shapes("test", n=100, seed=3, cache_dir=tmp_path, on_corrupt="raise")


def test_file_of_another_set_is_refused(tmp_path):
    load_shapes("test", n=100, seed=3, cache_dir=tmp_path)
    src = cache_path(NAME, ShapesSettings(), "test", 100, 3, tmp_path)
    dst = cache_path(NAME, ShapesSettings(), "test", 100, 4, tmp_path)
    dst.write_bytes(src.read_bytes())
    with pytest.raises(CacheCorrupt, match="different set"):
        load_shapes("test", n=100, seed=4, cache_dir=tmp_path, on_corrupt="raise")


def test_missing_array_is_detected(tmp_path):
    key = cache_mod.cache_key(NAME, ShapesSettings(), "test", 5, 0)
    path = cache_path(NAME, ShapesSettings(), "test", 5, 0, tmp_path)
    arrays = generate_shapes("test", n=5, seed=0).to_arrays()
    del arrays["groups"]
    cache_mod.save_arrays(path, arrays, key)
    with pytest.raises(CacheCorrupt, match="groups"):
        load_shapes("test", n=5, seed=0, cache_dir=tmp_path, on_corrupt="raise")


def test_bad_arguments():
    with pytest.raises(ValueError, match="on_corrupt"):
        load_or_generate("x/v1", ShapesSettings(), "test", 1, 0, dict, on_corrupt="ignore")
    with pytest.raises(ValueError, match="seed"):
        generate_shapes("test", n=2, seed=-1)
    with pytest.raises(ValueError, match="n must"):
        generate_shapes("test", n=0)
    assert dataclasses.is_dataclass(ShapesSettings())

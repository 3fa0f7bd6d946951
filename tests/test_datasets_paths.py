"""Data-directory resolution, sha256 verification and its cache, missing/corrupt files (SPEC §5)."""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest

from experiments.datasets import paths
from experiments.datasets.checksums import EXPECTED
from experiments.datasets.mnist import load_mnist
from experiments.datasets.paths import DataFileCorrupt, DataFileMissing, verified_path

HAVE_DATA = paths.SIBLING_DATA_DIR.is_dir() or bool(os.environ.get(paths.DATA_ENV))
requires_data = pytest.mark.skipif(not HAVE_DATA, reason="real data files (../shared/data or PGM_LADDER_DATA) absent")
SMALL = "mnist/t10k-labels-idx1-ubyte.gz"  # 4542 bytes
DOCS = paths.REPO_ROOT / "docs" / "datasets.md"
SHARED_README = paths.SIBLING_DATA_DIR / "README.md"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    paths.clear_verification_memo()
    yield
    paths.clear_verification_memo()


def _counting_hash(monkeypatch):
    calls = []
    real = paths.sha256_of_file

    def counted(path, *args, **kwargs):
        calls.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(paths, "sha256_of_file", counted)
    return calls


# ---------------------------------------------------------------- data directory resolution

def test_override_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "env"))
    assert paths.data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert paths.data_dir(str(tmp_path / "flag")) == tmp_path / "flag"


def test_sibling_shared_data_before_env(tmp_path, monkeypatch):
    sibling = tmp_path / "shared" / "data"
    sibling.mkdir(parents=True)
    monkeypatch.setattr(paths, "SIBLING_DATA_DIR", sibling)
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "env"))
    assert paths.data_dir() == sibling


def test_env_when_no_sibling(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "SIBLING_DATA_DIR", tmp_path / "absent")
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "env"))
    assert paths.data_dir() == tmp_path / "env"


def test_nothing_configured_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "SIBLING_DATA_DIR", tmp_path / "absent")
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    with pytest.raises(DataFileMissing, match="PGM_LADDER_DATA"):
        paths.data_dir()


def test_sibling_is_beside_the_checkout():
    assert paths.SIBLING_DATA_DIR == Path(paths.__file__).resolve().parents[3] / "shared" / "data"


def test_cli_flags():
    parser = argparse.ArgumentParser()
    paths.add_data_dir_argument(parser)
    paths.add_cache_dir_argument(parser)
    args = parser.parse_args(["--data-dir", "/some/where", "--cache-dir", "/c"])
    assert args.data_dir == Path("/some/where") and args.cache_dir == Path("/c")
    assert parser.parse_args([]).data_dir is None


def test_cache_dir_order(tmp_path, monkeypatch):
    assert paths.cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "env"))
    assert paths.cache_dir() == tmp_path / "env"
    monkeypatch.delenv(paths.CACHE_ENV)
    assert paths.cache_dir() == Path.home() / ".cache" / "pgm-ladder"


# ---------------------------------------------------------------- verification

@requires_data
def test_checksum_is_computed_once_and_cached_on_disk(tmp_path, monkeypatch):
    calls = _counting_hash(monkeypatch)
    path = verified_path(SMALL)
    verified_path(SMALL)
    assert len(calls) == 1
    paths.clear_verification_memo()  # a new process: only the JSON cache remains
    assert verified_path(SMALL) == path
    assert len(calls) == 1
    assert (tmp_path / "cache" / paths.CHECKSUM_CACHE_NAME).is_file()


@requires_data
def test_changed_file_is_rehashed(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    copy = data / SMALL
    shutil.copyfile(paths.data_dir() / SMALL, copy)
    calls = _counting_hash(monkeypatch)
    verified_path(SMALL, data)
    verified_path(SMALL, data)
    assert len(calls) == 1
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    verified_path(SMALL, data)
    assert len(calls) == 2


@requires_data
def test_every_shared_file_verifies():
    for relpath in EXPECTED:
        assert verified_path(relpath).stat().st_size == EXPECTED[relpath].size


def test_missing_file_names_path_and_variable(tmp_path):
    with pytest.raises(DataFileMissing) as info:
        verified_path(SMALL, tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / SMALL) in message and "PGM_LADDER_DATA" in message
    with pytest.raises(DataFileMissing, match=re.escape(str(tmp_path / "mnist"))):
        load_mnist("test", data_dir=tmp_path)


def _corrupt_copy(tmp_path, relpath) -> Path:
    target = tmp_path / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    if HAVE_DATA:
        raw = bytearray((paths.data_dir() / relpath).read_bytes())
        raw[len(raw) // 2] ^= 0x01
    else:
        raw = bytearray(b"garbage" * 100)
    target.write_bytes(bytes(raw))
    return target


def test_corrupt_file_names_file_and_both_checksums(tmp_path):
    target = _corrupt_copy(tmp_path, SMALL)
    actual = hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(DataFileCorrupt) as info:
        verified_path(SMALL, tmp_path)
    message = str(info.value)
    assert str(target) in message and actual in message and EXPECTED[SMALL].sha256 in message
    if HAVE_DATA:  # the loader reports it too (the images file next to it is intact)
        images = "mnist/t10k-images-idx3-ubyte.gz"
        shutil.copyfile(paths.data_dir() / images, tmp_path / images)
        with pytest.raises(DataFileCorrupt, match=actual):
            load_mnist("test", data_dir=tmp_path)


def test_unknown_file_is_refused(tmp_path):
    with pytest.raises(KeyError):
        verified_path("mnist/other.gz", tmp_path)


# ---------------------------------------------------------------- the table, the docs and the source README

def _table_rows(text: str):
    pattern = r"^\| `?([\w./\-]+)`? \| (\d+) \| `?([0-9a-f]{64})`? \|"
    return {m[0]: (int(m[1]), m[2]) for m in re.findall(pattern, text, re.M)}


def test_docs_table_matches_code():
    rows = _table_rows(DOCS.read_text(encoding="utf-8"))
    assert rows == {k: (v.size, v.sha256) for k, v in EXPECTED.items()}
    assert len(rows) == 121


@pytest.mark.skipif(not SHARED_README.is_file(), reason="../shared/data/README.md absent")
def test_code_table_matches_shared_readme():
    text = SHARED_README.read_text(encoding="utf-8")
    rows = {}
    for name, (size, sha) in _table_rows(text).items():
        folder = "brodatz" if name.startswith("D") else "mnist" if "ubyte" in name else "polyphonic"
        rows[f"{folder}/{name}"] = (size, sha)
    assert rows == {k: (v.size, v.sha256) for k, v in EXPECTED.items()}

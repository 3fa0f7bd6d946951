"""``pgm-ladder data verify`` and its ``--data-dir`` flag."""
import os
import shutil

import pytest

from experiments.datasets import checksums
from experiments.datasets.paths import SIBLING_DATA_DIR, clear_verification_memo
from pgm_ladder.cli import main

SMALL = "mnist/t10k-labels-idx1-ubyte.gz"


@pytest.fixture(autouse=True)
def _fresh_memo():
    clear_verification_memo()
    yield
    clear_verification_memo()


@pytest.mark.skipif(not SIBLING_DATA_DIR.is_dir(), reason="../shared/data is not beside the checkout")
def test_verify_real_files(tmp_path, capsys):
    assert main(["data", "verify", "--only", "mnist/t10k", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 files verified" in out and f"ok       {SMALL}" in out


def test_verify_reports_missing_files_in_the_given_dir(tmp_path, capsys):
    assert main(["data", "verify", "--data-dir", str(tmp_path), "--only", "polyphonic/",
                 "--cache-dir", str(tmp_path / "cache")]) == 1
    out = capsys.readouterr().out
    assert f"data directory: {tmp_path}" in out
    assert "MISSING  polyphonic/Nottingham.mat" in out and "0 of 5 files verified" in out


@pytest.mark.skipif(not SIBLING_DATA_DIR.is_dir(), reason="../shared/data is not beside the checkout")
def test_verify_names_a_corrupt_file_and_both_checksums(tmp_path, capsys):
    (tmp_path / "mnist").mkdir()
    copy = tmp_path / SMALL
    shutil.copy(SIBLING_DATA_DIR / SMALL, copy)
    data = bytearray(copy.read_bytes())
    data[100] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert main(["data", "verify", "--data-dir", str(tmp_path), "--only", SMALL,
                 "--cache-dir", str(tmp_path / "cache")]) == 1
    out = capsys.readouterr().out
    assert "CORRUPT" in out and str(copy) in out
    assert checksums.EXPECTED[SMALL].sha256 in out


def test_verify_says_when_the_data_folder_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["data", "verify", "--data-dir", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"data directory {missing} does not exist" in captured.err


def test_full_rehashes_a_file_changed_in_place(tmp_path, capsys, monkeypatch):
    from experiments.datasets import paths

    name = "polyphonic/Nottingham.mat"
    (tmp_path / "polyphonic").mkdir()
    target = tmp_path / name
    target.write_bytes(b"original bytes")
    monkeypatch.setitem(checksums.EXPECTED, name, checksums.EXPECTED[name]._replace(
        sha256=paths.sha256_of_file(target)))
    argv = ["data", "verify", "--data-dir", str(tmp_path), "--only", name, "--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 0
    stat = target.stat()
    target.write_bytes(b"changed bytes!")  # same size, same mtime: the cache cannot tell
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    paths.clear_verification_memo()
    assert main(argv) == 0  # trusted from the recorded (size, mtime)
    assert main([*argv, "--full"]) == 1
    assert "CORRUPT" in capsys.readouterr().out

"""A training process killed with SIGKILL, or stopped with SIGTERM/SIGINT, and resumed,
ends with parameters bit-identical to an uninterrupted run of the same seed (CPU, one
thread, deterministic algorithms)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pgm_ladder.training.checkpoint import CheckpointDir, load_checkpoint
from pgm_ladder.training.run_dir import read_metrics

REPO = Path(__file__).resolve().parents[1]
STEPS, EVERY = 3000, 200
RUN = ["train", "toy", "--preset", "smoke", "--seed", "7", "--quiet",
       "--set", f"train.steps={STEPS}", "--set", f"train.checkpoint_every={EVERY}",
       "--set", "train.log_every=50", "--set", "train.schedule=cosine",
       "--set", "data.eval_size=64"]


def env() -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return e


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pgm_ladder.cli", *args]


def run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command(*args), cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def start_and_stop(out: Path, signum: int) -> tuple[subprocess.Popen, str]:
    """Start a run, wait for its first checkpoint, then send ``signum``."""
    proc = subprocess.Popen(command(*RUN, "--out", str(out)), cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpts = CheckpointDir(out / "checkpoints", 1)
    deadline = time.monotonic() + 120
    while not ckpts.all():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    time.sleep(0.05)  # land between checkpoints
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc, err


def final_params(out: Path) -> dict:
    latest = CheckpointDir(out / "checkpoints", 1).latest()
    state = load_checkpoint(latest, "toy")
    assert state["step"] == STEPS
    return state["model"]


def without_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kill") / "uninterrupted"
    run(*RUN, "--out", str(out))
    return out


def assert_resumes_identically(out: Path, reference: Path) -> None:
    assert not (out / "results.json").exists()
    run("resume", str(out), "--quiet")
    ours, theirs = final_params(out), final_params(reference)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert without_time(read_metrics(out / "metrics.jsonl")) == \
        without_time(read_metrics(reference / "metrics.jsonl"))


def test_sigkill_mid_training_then_resume_is_bit_identical(reference, tmp_path):
    out = tmp_path / "killed"
    proc, _ = start_and_stop(out, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(CheckpointDir(out / "checkpoints", 1).latest())["step"]
    assert 0 < killed_at < STEPS
    assert_resumes_identically(out, reference)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_write_a_final_checkpoint_then_resume_identically(
        reference, tmp_path, signum):
    out = tmp_path / signal.Signals(signum).name
    proc, err = start_and_stop(out, signum)
    assert proc.returncode == 128 + signum, err
    found = re.search(rf"{signal.Signals(signum).name} at step (\d+): checkpoint (\S+) written", err)
    assert found, err
    step, path = int(found.group(1)), Path(found.group(2))
    assert 0 < step < STEPS
    assert CheckpointDir(out / "checkpoints", 1).latest() == path
    assert load_checkpoint(path, "toy")["step"] == step
    assert_resumes_identically(out, reference)

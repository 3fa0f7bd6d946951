"""``train`` under torchrun: a 2-process gloo DDP job on CPU with a distributed sampler
trains, only rank 0 writes, and its checkpoint resumes in a single process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from pgm_ladder.training import resume
from pgm_ladder.training.checkpoint import CheckpointDir, load_checkpoint
from pgm_ladder.training.run_dir import RunDir, read_metrics

REPO = Path(__file__).resolve().parents[1]
DATASET, BATCH, EPOCHS = 512, 32, 4


def test_two_process_gloo_job_trains_and_resumes_in_one_process(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
         "-m", "pgm_ladder.cli", "train", "toy", "--preset", "smoke", "--device", "cpu",
         "--out", str(out), "--quiet", "--set", "data.map_style=true",
         "--set", f"data.dataset_size={DATASET}", "--set", f"train.batch_size={BATCH}",
         "--set", "train.steps=0", "--set", f"train.epochs={EPOCHS}",
         "--set", "train.checkpoint_every=10", "--set", "train.log_every=4"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)  # printed once: by rank 0 only

    run = RunDir(out)
    res = run.read_results()
    steps = EPOCHS * DATASET // (2 * BATCH)  # each process sees half of every epoch
    assert res["world_size"] == 2 and res["steps"] == steps
    records = [r for r in read_metrics(run.metrics) if "loss" in r]
    logged = [r["step"] for r in records]
    assert logged == sorted(set(logged)) and logged[-1] == steps  # one writer
    assert records[-1]["loss"] < records[0]["loss"]
    assert res["metrics"]["mse_ratio"] < 20

    state = load_checkpoint(CheckpointDir(run.checkpoints, 1).latest(), "toy")
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    assert state["step"] == steps and state["batches"] == {"epoch": EPOCHS, "index": 0}

    result = resume(out, overrides=[f"train.epochs={EPOCHS + 1}"], quiet=True)
    per_epoch = DATASET // BATCH  # one process now reads the whole epoch
    assert result.step == steps + per_epoch
    after = run.read_results()
    assert after["world_size"] == 1 and after["steps"] == steps + per_epoch
    trained = load_checkpoint(CheckpointDir(run.checkpoints, 1).latest(), "toy")["model"]
    assert any(not torch.equal(trained[k], state["model"][k]) for k in trained)
    assert read_metrics(run.metrics)[-1]["step"] == steps + per_epoch

"""Checkpoints: atomic writes, keep-last, RNG states, resumable batch sources, in-process
resume identity, and the load errors (truncated, wrong experiment, wrong model)."""
from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TOY, run_cli, toy_config
from pgm_ladder.training import (CheckpointError, ExperimentSpec, LoaderStream, SampledStream,
                                 resume, train)
from pgm_ladder.training.checkpoint import (CheckpointDir, load_checkpoint, rng_state,
                                            save_checkpoint, set_rng_state)
from pgm_ladder.training.run_dir import MetricsLog, RunDir, read_metrics
from experiments.toy.experiment import build as toy_build




def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def final_params(run_dir: Path) -> dict:
    return load_checkpoint(CheckpointDir(RunDir(run_dir).checkpoints, 1).latest())["model"]


def assert_same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def without_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in records]


# ----------------------------------------------------------------------------- unit level

def test_save_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "c" / "x.pt"
    save_checkpoint(path, {"a": torch.arange(3), "b": [1, 2]})
    assert [p.name for p in path.parent.iterdir()] == ["x.pt"]
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.arange(3))


def test_checkpoint_dir_keeps_the_last_k(tmp_path):
    ckpts = CheckpointDir(tmp_path, keep_last=2)
    for step in (5, 10, 15, 20):
        ckpts.save(step, {"step": step})
    (tmp_path / ".step-00000025.pt.123.tmp").write_bytes(b"half")  # a killed write
    assert [p.name for p in ckpts.all()] == ["step-00000015.pt", "step-00000020.pt"]
    assert ckpts.latest() == ckpts.path_for(20)
    ckpts.remove_stale_temporaries()
    assert not list(tmp_path.glob(".*.tmp"))


def test_rng_states_round_trip():
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]


def draws(source, n):
    return [source.next_batch() for _ in range(n)]


def sample_fn(g, n):
    return torch.randn(n, 2, generator=g)


def test_sampled_stream_resumes_exactly_and_differs_per_rank():
    a = SampledStream(sample_fn, 4, seed=3, batches_per_epoch=5)
    draws(a, 7)
    state = a.state_dict()
    rest = draws(a, 4)
    b = SampledStream(sample_fn, 4, seed=3, batches_per_epoch=5)
    b.load_state_dict(state)
    assert b.epoch == 1
    assert all(torch.equal(x, y) for x, y in zip(rest, draws(b, 4)))
    r0, r1 = SampledStream(sample_fn, 4, seed=3), SampledStream(sample_fn, 4, seed=3)
    r1.bind(1, 2)
    assert not torch.equal(r0.next_batch(), r1.next_batch())


def test_loader_stream_resumes_mid_epoch_and_shards_per_rank():
    data = torch.utils.data.TensorDataset(torch.arange(20))
    a = LoaderStream(data, batch_size=3, seed=1)
    assert a.batches_per_epoch == 7
    draws(a, 9)  # into epoch 1
    state = a.state_dict()
    assert state == {"epoch": 1, "index": 2}
    rest = draws(a, 10)
    b = LoaderStream(data, batch_size=3, seed=1)
    b.load_state_dict(state)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(rest, draws(b, 10)))
    # an epoch is a permutation, different from the next one
    c = LoaderStream(data, batch_size=4, seed=1)
    e0 = torch.cat([x[0] for x in draws(c, 5)])
    e1 = torch.cat([x[0] for x in draws(c, 5)])
    assert sorted(e0.tolist()) == list(range(20)) and not torch.equal(e0, e1)
    # two ranks see disjoint halves
    r0, r1 = LoaderStream(data, 5, seed=1), LoaderStream(data, 5, seed=1)
    r0.bind(0, 2)
    r1.bind(1, 2)
    seen0 = torch.cat([x[0] for x in draws(r0, 2)]).tolist()
    seen1 = torch.cat([x[0] for x in draws(r1, 2)]).tolist()
    assert sorted(seen0 + seen1) == list(range(20))


def test_metrics_log_truncation_drops_later_and_torn_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    log = MetricsLog(path)
    for step in (10, 20, 30):
        log.write({"step": step})
    log.close()
    with open(path, "a") as fh:
        fh.write('{"step": 4')  # torn by a kill
    MetricsLog.truncate_after(path, 20)
    assert [r["step"] for r in read_metrics(path)] == [10, 20]


# ----------------------------------------------------------------------------- resume identity

@pytest.mark.parametrize("map_style", [False, True])
def test_resume_from_an_intermediate_checkpoint_matches_the_uninterrupted_run(tmp_path, map_style):
    """A run 'killed' right after its step-30 checkpoint (later checkpoints and log lines
    removed, as SIGKILL would have left them) resumes to bit-identical parameters."""
    overrides = ["train.steps=70", "train.checkpoint_every=10", "train.keep_last=10",
                 "train.log_every=5", f"data.map_style={str(map_style).lower()}",
                 "data.dataset_size=100", "train.schedule=cosine", "train.grad_clip=1.0"]
    full = tmp_path / "full"
    train(TOY, toy_config(*overrides), full, preset="smoke", seed=4, quiet=True)
    killed = tmp_path / "killed"
    shutil.copytree(full, killed)
    (killed / "results.json").unlink()
    for p in CheckpointDir(killed / "checkpoints", 1).all():
        if int(p.stem[5:]) > 30:
            p.unlink()
    with open(killed / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 35, "loss": 1.0}\n{"step": 4')  # logged after the checkpoint
    result = resume(killed, quiet=True)
    assert result.step == 70
    assert_same_params(final_params(full), final_params(killed))
    assert without_time(read_metrics(full / "metrics.jsonl")) == \
        without_time(read_metrics(killed / "metrics.jsonl"))
    # (map-style: 100 examples / 32 = 4 batches an epoch, so step 30 is mid-epoch 7)


def test_resume_can_extend_a_finished_run(tmp_path):
    run = tmp_path / "run"
    train(TOY, toy_config(), run, preset="smoke", quiet=True)
    result = resume(run, overrides=["train.steps=80"], quiet=True)
    assert result.step == 80
    assert RunDir(run).read_manifest()["config"]["train"]["steps"] == 80
    assert RunDir(run).read_results()["steps"] == 80


# ----------------------------------------------------------------------------- load errors

@pytest.fixture
def finished_run(tmp_path) -> Path:
    run = tmp_path / "run"
    train(TOY, toy_config("train.steps=40", "train.checkpoint_every=10"), run,
          preset="smoke", quiet=True)
    return run


def test_truncated_checkpoint_names_the_file_and_the_one_before_and_changes_nothing(finished_run, capsys):
    latest = CheckpointDir(finished_run / "checkpoints", 1).latest()
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    before = snapshot(finished_run)
    with pytest.raises(CheckpointError, match=str(latest)):  # named explicitly: no fallback
        resume(finished_run, checkpoint=latest, overrides=["train.steps=60"], quiet=True)
    assert run_cli(["eval", str(finished_run)]) == 1
    err = capsys.readouterr().err
    assert str(latest) in err and f"--checkpoint {finished_run / 'checkpoints' / 'step-00000030.pt'}" in err
    assert snapshot(finished_run) == before


def test_resume_falls_back_past_a_corrupt_latest_checkpoint_and_names_both(finished_run, tmp_path, capsys):
    twin = tmp_path / "twin"
    shutil.copytree(finished_run, twin)
    latest = CheckpointDir(finished_run / "checkpoints", 1).latest()
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    assert run_cli(["resume", str(finished_run), "--set", "train.steps=60"]) == 0
    err = capsys.readouterr().err
    earlier = finished_run / "checkpoints" / "step-00000030.pt"
    assert f"{latest} does not load" in err and f"falling back to {earlier} (step 30)" in err
    resume(twin, checkpoint=twin / "checkpoints" / "step-00000030.pt", overrides=["train.steps=60"], quiet=True)
    assert_same_params(final_params(finished_run), final_params(twin))


def test_not_a_checkpoint_is_named(finished_run):
    bogus = finished_run / "bogus.pt"
    torch.save({"hello": 1}, bogus)
    with pytest.raises(CheckpointError, match=f"{bogus} is not a pgm-ladder"):
        resume(finished_run, checkpoint=bogus, quiet=True)


def test_wrong_experiment_checkpoint_is_refused(finished_run, tmp_path, capsys):
    twin = dataclasses.replace(TOY, name="toy-twin")
    other = tmp_path / "other"
    train(twin, toy_config("train.steps=20"), other, preset="smoke", quiet=True)
    foreign = CheckpointDir(other / "checkpoints", 1).latest()
    before = snapshot(finished_run)
    with pytest.raises(CheckpointError, match=rf"{foreign} belongs to experiment 'toy-twin', not 'toy'"):
        resume(finished_run, checkpoint=foreign, overrides=["train.steps=60"], quiet=True)
    assert run_cli(["eval", str(finished_run), "--checkpoint", str(foreign)]) == 1
    assert str(foreign) in capsys.readouterr().err
    assert snapshot(finished_run) == before


def test_checkpoint_of_another_model_shape_is_named(finished_run):
    before = snapshot(finished_run)
    with pytest.raises(CheckpointError, match=r"step-00000040\.pt does not fit the model"):
        resume(finished_run, overrides=["train.steps=60", "model.hidden=[7]"], quiet=True)
    assert snapshot(finished_run) == before


def test_resume_without_checkpoint_or_run_is_named(tmp_path):
    with pytest.raises(Exception, match=str(tmp_path / "nothing")):
        resume(tmp_path / "nothing", quiet=True)
    assert run_cli(["resume", str(tmp_path / "nothing")]) == 1


def test_toy_build_is_usable_directly():
    parts = toy_build(toy_config(), torch.device("cpu"), seed=0)
    out = parts.loss(parts.model, parts.train_batches.next_batch())
    assert out["loss"].dim() == 0 and set(parts.evaluate(parts.model)) >= {"mse", "mse_ratio"}
    assert isinstance(TOY, ExperimentSpec)

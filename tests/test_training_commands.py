"""The traps of the training commands (issue 14): threads, run folders that cannot be
reused or restarted, a run killed before its first checkpoint, duplicate runs in a table,
``--version``, help on every argument, progress lines off a terminal, TensorBoard files."""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
from pathlib import Path

import pytest
import torch

from helpers import TOY, run_cli, signal_once_logged, toy_config
from pgm_ladder.cli import build_parser, main
from pgm_ladder.training import TableError, train
from pgm_ladder.training.progress import Progress
from pgm_ladder.training.run_dir import RunDir, read_metrics
from pgm_ladder.training.tables import find_results
from pgm_ladder.training.threads import DEFAULT_THREADS

TRAINING = (["train", "toy"], ["resume", "RUN"], ["eval", "RUN"], ["figures", "RUN"],
            ["sweep", "toy", "--seeds", "0"], ["check", "static"], ["check", "temporal"],
            ["check", "mixture"])


def counting_threads(seen: list) -> object:
    """The toy experiment, recording torch's thread count whenever a run is built."""
    def build(config, device, seed):
        seen.append(torch.get_num_threads())
        return TOY.build(config, device, seed)
    return dataclasses.replace(TOY, name="toy-threads", build=build)


# ----------------------------------------------------------------------------- threads

@pytest.mark.parametrize("argv", TRAINING, ids=lambda a: " ".join(a[:2]))
def test_every_command_that_trains_or_scores_has_threads_defaulting_to_one(argv):
    parser = build_parser()
    assert parser.parse_args(argv).threads == DEFAULT_THREADS == 1
    assert parser.parse_args([*argv, "--threads", "3"]).threads == 3


def test_threads_reach_training_and_are_restored(tmp_path):
    seen: list = []
    spec = counting_threads(seen)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert run_cli(["train", spec.name, "--preset", "smoke", "--out", str(tmp_path / "a"), "--quiet"], spec) == 0
        assert run_cli(["train", spec.name, "--preset", "smoke", "--out", str(tmp_path / "b"), "--quiet",
                        "--threads", "3"], spec) == 0
        assert run_cli(["eval", str(tmp_path / "a"), "--threads", "0"], spec) == 0
        assert seen == [1, 3, 2]  # 0 keeps torch's setting
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_negative_thread_count_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "toy", "--threads", "-1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads: expected a whole number >= 0, got -1" in err


def test_train_preset_defaults_to_cpu():
    assert build_parser().parse_args(["train", "toy"]).preset == "cpu"


# ----------------------------------------------------------------------------- run folders

def test_train_refuses_a_folder_of_unrelated_files_and_leaves_it_alone(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "metrics.jsonl").write_text("not a run's\n")
    assert run_cli(["train", "toy", "--preset", "smoke", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files that are not a pgm-ladder run (metrics.jsonl, notes.txt)" in err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "notes.txt"]
    assert (out / "metrics.jsonl").read_text() == "not a run's\n"


def test_train_into_an_empty_folder_is_fine(tmp_path):
    (tmp_path / "empty").mkdir()
    assert run_cli(["train", "toy", "--preset", "smoke", "--out", str(tmp_path / "empty"), "--quiet"]) == 0


def kill_before_first_checkpoint(argv: list[str], run: Path) -> None:
    """SIGKILL ``pgm-ladder ARGV`` once ``run`` has logged a step, before its first checkpoint."""
    signal_once_logged(argv, run, signal.SIGKILL)
    assert RunDir(run).config.exists() and not RunDir(run).has_progress()


SLOW_TOY = ["--preset", "smoke", "--seed", "4", "--quiet", "--set", "train.steps=4000",
            "--set", "train.checkpoint_every=0", "--set", "train.log_every=1"]


@pytest.mark.parametrize("again", ["train", "resume"])
def test_a_run_killed_before_its_first_checkpoint_restarts_cleanly(again, tmp_path):
    out = tmp_path / "run"
    kill_before_first_checkpoint(["train", "toy", *SLOW_TOY, "--out", str(out)], out)
    short = ["--set", "train.steps=30", "--set", "train.log_every=10"]
    if again == "train":
        assert run_cli(["train", "toy", *SLOW_TOY, *short, "--out", str(out)]) == 0
    else:
        assert run_cli(["resume", str(out), "--quiet", *short]) == 0
    reference = tmp_path / "reference"
    assert run_cli(["train", "toy", *SLOW_TOY, *short, "--out", str(reference)]) == 0
    strip = lambda records: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in records]  # noqa: E731
    assert strip(read_metrics(out / "metrics.jsonl")) == strip(read_metrics(reference / "metrics.jsonl"))
    assert RunDir(out).read_results()["metrics"] == RunDir(reference).read_results()["metrics"]


def test_resume_says_it_starts_from_step_0(tmp_path, capsys):
    out = tmp_path / "run"
    RunDir(out).create({"experiment": "toy", "home": TOY.home, "preset": "smoke", "seed": 0,
                        "overrides": [], "config": json.loads(json.dumps(dataclasses.asdict(toy_config())))})
    assert run_cli(["resume", str(out)]) == 0
    assert f"{out} holds no checkpoint (killed before its first one): starting from step 0" in capsys.readouterr().err


def test_sweep_refuses_a_seed_folder_of_another_config_before_training(tmp_path, capsys):
    out = tmp_path / "sweep"
    base = ["sweep", "toy", "--preset", "smoke", "--out", str(out), "--quiet", "--set", "train.steps=20"]
    assert run_cli([*base, "--seeds", "0"]) == 0
    capsys.readouterr()
    assert run_cli([*base, "--seeds", "1", "0", "--set", "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{out / 'seed-0'} holds a run of another config (optim.lr: 0.01 there, 0.5 asked)" in err
    assert not (out / "seed-1").exists()


# ----------------------------------------------------------------------------- tables

def test_table_refuses_a_run_given_twice(tmp_path, capsys):
    run = tmp_path / "run"
    train(TOY, toy_config("train.steps=20"), run, preset="smoke", quiet=True)
    with pytest.raises(TableError, match=f"run {run} is given twice"):
        find_results([run, tmp_path / "." / "run"])
    assert run_cli(["table", str(run), str(run)]) == 1
    assert "given twice" in capsys.readouterr().err
    assert run_cli(["table", str(tmp_path), str(run)]) == 1  # inside a folder given too
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "results.json").write_text(RunDir(run).results.read_text())
    assert run_cli(["table", str(run), str(twin)]) == 1  # a copy: the same seed twice
    assert "repeat seed(s) 0" in capsys.readouterr().err


# ----------------------------------------------------------------------------- what users expect

def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("pgm-ladder 0.")


def parsers(parser: argparse.ArgumentParser, name: str = "pgm-ladder"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from parsers(child, f"{name} {sub}")


def test_every_argument_has_help():
    missing = [f"{name} {action.dest}" for name, parser in parsers(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert missing == []


def test_progress_lines_off_a_terminal_every_interval(capsys):
    now = [0.0]
    progress = Progress(100, 10, 0, enabled=False, lines=True, label="toy (runs/x)", every_s=30,
                        clock=lambda: now[0])
    for step in range(1, 101):
        now[0] = step * 1.0  # one step a second
        progress.update(step, 0.5)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"toy (runs/x): step {s}/100 ({s} %), loss 0.5, 1 steps/s, about {100 - s} s left"
                     for s in (30, 60, 90)]


def test_tensorboard_event_files_hold_the_logged_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert run_cli(["train", "toy", "--preset", "smoke", "--out", str(out), "--quiet", "--tensorboard"]) == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    losses = {r["step"]: r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r}
    logged = {e.step: e.value for e in events.Scalars("loss")}
    assert logged.keys() == losses.keys() and all(logged[s] == pytest.approx(losses[s]) for s in losses)
    assert "eval/mse_ratio" in events.Tags()["scalars"]

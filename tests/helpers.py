"""Helpers shared by the test modules (imported as ``helpers``; pytest puts ``tests/`` on
``sys.path``): the command line in-process and in a subprocess, the toy experiment's configs."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pgm_ladder.cli import build_parser
from pgm_ladder.training import apply_overrides
from pgm_ladder.training.spec import ExperimentSpec

from experiments import registry
from experiments.toy import SPEC as TOY

REPO = Path(__file__).resolve().parents[1]


def run_cli(argv: list[str], *extra: ExperimentSpec) -> int:
    """Run ``pgm-ladder ARGV`` in this process over the catalogue plus the specs ``extra``
    (experiments made on the fly by a test); returns the exit status."""
    experiments = {**registry.catalogue(), **{spec.name: spec for spec in extra}}
    args = build_parser(experiments).parse_args(argv)
    return int(args.func(args) or 0)


def toy_config(*overrides: str):
    """The toy experiment's smoke preset with ``KEY=VALUE`` overrides."""
    return apply_overrides(TOY.preset("smoke"), list(overrides))


def cli_env() -> dict:
    """The environment for ``python -m pgm_ladder.cli`` in a subprocess: one OpenMP thread,
    the repository on ``PYTHONPATH``."""
    import os

    e = dict(os.environ, OMP_NUM_THREADS="1")
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return e


def signal_once_logged(argv: list[str], run: Path, signum: int) -> subprocess.CompletedProcess:
    """Start ``pgm-ladder ARGV`` in a subprocess, send it ``signum`` as soon as the run
    directory ``run`` has logged a step, and wait for it to end (stdout and stderr captured)."""
    proc = subprocess.Popen([sys.executable, "-m", "pgm_ladder.cli", *argv], cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = Path(run) / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run logged no step"
        time.sleep(0.005)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

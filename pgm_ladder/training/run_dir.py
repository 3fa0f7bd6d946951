"""The layout of a run directory and its metrics log.

::

    RUN_DIR/config.json      experiment, preset, seed, overrides and the resolved config
    RUN_DIR/metrics.jsonl    one JSON object per logged step (step, epoch, wall_time_s, ...)
    RUN_DIR/checkpoints/     step-XXXXXXXX.pt, the last k
    RUN_DIR/figures/         whatever the experiment draws
    RUN_DIR/results.json     written when the run completes
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from pgm_ladder.atomic_io import write_json_atomic, write_text_atomic
from pgm_ladder.training.errors import RunDirError


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    def create(self, manifest: dict) -> None:
        """Make the directory and write ``config.json``; refuse one that holds a run."""
        if self.config.exists():
            raise self.occupied()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.config, manifest)

    def occupied(self) -> RunDirError:
        return RunDirError(f"run directory {self.path} already holds a run; continue it with "
                           f"`pgm-ladder resume {self.path}` or choose another --out")

    def read_manifest(self) -> dict:
        if not self.config.is_file():
            raise RunDirError(f"{self.path} is not a run directory (no {self.config.name})")
        try:
            return json.loads(self.config.read_text())
        except json.JSONDecodeError as err:
            raise RunDirError(f"{self.config} is not valid JSON: {err}") from err

    def write_manifest(self, manifest: dict) -> None:
        write_json_atomic(self.config, manifest)

    def read_results(self) -> dict:
        if not self.results.is_file():
            raise RunDirError(f"{self.path} holds no {self.results.name} (is the run finished?)")
        return json.loads(self.results.read_text())


def default_run_dir(experiment: str, preset: str, seed: int, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return root / f"{experiment}-{preset}-seed{seed}-{stamp}"


class MetricsLog:
    """Append-only JSON lines, flushed after every record."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    @staticmethod
    def truncate_after(path: Path, step: int) -> None:
        """Drop the records after ``step`` (written by a run killed after its last
        checkpoint), so that a resumed run's log reads like an uninterrupted one's."""
        path = Path(path)
        if not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                break  # a line torn by the kill: everything after it is gone too
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


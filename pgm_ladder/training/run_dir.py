"""The layout of a run directory and its metrics log.

::

    RUN_DIR/config.json      experiment, preset, seed, overrides and the resolved config
    RUN_DIR/metrics.jsonl    one JSON object per logged step (step, epoch, wall_time_s, ...)
    RUN_DIR/checkpoints/     step-XXXXXXXX.pt, the last k
    RUN_DIR/figures/         whatever the experiment draws
    RUN_DIR/tensorboard/     TensorBoard event files (``--tensorboard``)
    RUN_DIR/results.json     written when the run completes
    RUN_DIR/eval.json, eval-batch-statistics.json    written by ``pgm-ladder eval``

A new run goes into a folder that does not exist, an empty one, or one holding a run that
was killed before its first checkpoint (it has no progress to lose: it starts afresh).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pgm_ladder.atomic_io import write_json_atomic, write_text_atomic
from pgm_ladder.training.errors import RunDirError

#: what a run directory may hold (anything else there is not ours)
LAYOUT = frozenset({"config.json", "metrics.jsonl", "checkpoints", "figures", "tensorboard",
                    "results.json", "eval.json", "eval-batch-statistics.json"})


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

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    def has_progress(self) -> bool:
        """Whether the run got anywhere: a complete checkpoint or ``results.json``."""
        return self.results.exists() or any(self.checkpoints.glob("step-*.pt"))

    def new_run_refusal(self) -> str | None:
        """Why a new run cannot go here (``None``: it can): the folder holds a run with
        progress, or files that are not a run's."""
        if not self.path.exists():
            return None
        if not self.path.is_dir():
            return f"{self.path} exists and is not a directory; choose another --out"
        entries = sorted(p.name for p in self.path.iterdir())
        if self.config.exists():
            if self.has_progress():
                return str(self.occupied())
            entries = [name for name in entries if name not in LAYOUT]  # a stillborn run's are ours
        if not entries:
            return None
        more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        return (f"{self.path} holds files that are not a pgm-ladder run ({', '.join(entries[:5])}{more}); "
                "choose a new or empty --out")

    def clear_stillborn(self) -> bool:
        """Forget a run killed before its first checkpoint (its log, half-written
        checkpoints, event files) so that it starts afresh; ``True`` if there was one."""
        if not self.config.exists() or self.has_progress():
            return False
        self.metrics.unlink(missing_ok=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        shutil.rmtree(self.tensorboard, ignore_errors=True)
        return True

    def create(self, manifest: dict) -> None:
        """Make the directory and write ``config.json``; refuse a folder a new run cannot
        go into (:meth:`new_run_refusal`); a run killed before its first checkpoint is
        started afresh."""
        refusal = self.new_run_refusal()
        if refusal is not None:
            raise RunDirError(refusal)
        self.clear_stillborn()
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


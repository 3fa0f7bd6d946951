"""Checkpoints: atomic ``torch.save`` of the whole training state, validated loading,
and a directory of ``step-XXXXXXXX.pt`` files of which the last k are kept.

A checkpoint is a plain dict (loadable with ``torch.load(weights_only=True)``):
``format``, ``experiment``, ``step``, ``epoch``, ``world_size``, ``wall_time_s``,
``model``, ``optimizer``, ``scheduler``, ``batches`` (the source's position) and ``rng``
(torch, cuda, numpy, python).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from pgm_ladder.atomic_io import atomic_write
from pgm_ladder.training.errors import CheckpointError

FORMAT = 1
REQUIRED_KEYS = ("format", "experiment", "step", "model", "optimizer", "scheduler",
                 "batches", "rng")


def rng_state() -> dict:
    """The global random states of torch (CPU and CUDA), numpy and ``random``."""
    np_state = np.random.get_state(legacy=True)
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def seed_all(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` ``state`` to ``path`` atomically (:func:`~pgm_ladder.atomic_io.atomic_write`)."""
    atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path, experiment: Optional[str] = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load and check a checkpoint; :class:`CheckpointError` names the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} could not be loaded (truncated or corrupt?): "
                              f"{type(err).__name__}: {err}") from err
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CheckpointError(f"checkpoint {path} is not a pgm-ladder training checkpoint")
    if state["format"] != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}, "
                              f"this version reads format {FORMAT}")
    if experiment is not None and state["experiment"] != experiment:
        raise CheckpointError(f"checkpoint {path} belongs to experiment "
                              f"{state['experiment']!r}, not {experiment!r}")
    return state


class CheckpointDir:
    """The ``checkpoints/`` folder of a run: ``step-00000100.pt`` files, last k kept."""

    def __init__(self, directory: Path, keep_last: int):
        self.directory = Path(directory)
        self.keep_last = keep_last

    def path_for(self, step: int) -> Path:
        return self.directory / f"step-{step:08d}.pt"

    def all(self) -> list[Path]:
        """Complete checkpoints, oldest first (temporary files of a killed write are not)."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("step-*.pt") if p.stem[5:].isdigit())

    def latest(self) -> Optional[Path]:
        found = self.all()
        return found[-1] if found else None

    def save(self, step: int, state: dict) -> Path:
        path = self.path_for(step)
        save_checkpoint(path, state)
        for old in self.all()[: -self.keep_last]:
            old.unlink()
        return path

    def remove_stale_temporaries(self) -> None:
        """Delete ``.step-*.tmp`` files a killed process left half-written."""
        if self.directory.is_dir():
            for tmp in self.directory.glob(".step-*.tmp"):
                tmp.unlink()

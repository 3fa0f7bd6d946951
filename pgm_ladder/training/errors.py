"""The errors the training infrastructure raises; each message names its culprit."""
from __future__ import annotations


class TrainingError(Exception):
    """Base class: a training command failed for a reason the user can act on."""


class ConfigError(TrainingError, ValueError):
    """An unknown config key, an ill-typed value, an unknown preset/experiment, or an
    option the chosen device cannot use."""


class CheckpointError(TrainingError):
    """A checkpoint could not be loaded (truncated, corrupt, wrong experiment, wrong model)."""


class RunDirError(TrainingError):
    """A run directory is missing, incomplete, or already holds a run."""


class NonFiniteLossError(TrainingError):
    """The loss (or gradient norm) became NaN/inf; training stopped before applying it."""


class TrainingInterrupted(TrainingError):
    """SIGINT/SIGTERM stopped training after a final checkpoint was written; ``run_dir``
    is the run to continue."""

    def __init__(self, message: str, signum: int, run_dir=None):
        super().__init__(message)
        self.signum = signum
        self.run_dir = run_dir


class TableError(TrainingError):
    """Runs that cannot be pooled into one row of a table (their configs differ)."""


class ConfigMismatchError(ConfigError):
    """A run directory to be continued or reused holds a run of another config or seed."""

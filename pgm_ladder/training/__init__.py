"""Shared training infrastructure: typed configs with presets, the trainer (checkpoints,
resume, logging, progress, torchrun/DDP), the experiment registry, and the tables.

An experiment plugs in with an :class:`ExperimentSpec` passed to
:func:`register_experiment`; see :mod:`pgm_ladder.training.toy` for a complete example.
"""
from pgm_ladder.training.batches import BatchSource, LoaderStream, SampledStream
from pgm_ladder.training.config import (ExperimentConfig, OptimConfig, TrainConfig,
                                        apply_overrides, config_from_dict, config_to_dict)
from pgm_ladder.training.errors import (CheckpointError, ConfigError, NonFiniteLossError,
                                        RunDirError, TableError, TrainingError, TrainingInterrupted)
from pgm_ladder.training.optim import make_optimizer
from pgm_ladder.training.registry import (ExperimentSpec, PaperNumber, Parts, get_experiment,
                                          list_experiments, register_experiment)
from pgm_ladder.training.runner import TrainResult, evaluate_run, figures_run, resume, train

__all__ = [
    "BatchSource", "LoaderStream", "SampledStream",
    "ExperimentConfig", "OptimConfig", "TrainConfig",
    "apply_overrides", "config_from_dict", "config_to_dict",
    "CheckpointError", "ConfigError", "NonFiniteLossError", "RunDirError", "TableError",
    "TrainingError", "TrainingInterrupted",
    "make_optimizer",
    "ExperimentSpec", "PaperNumber", "Parts", "get_experiment", "list_experiments",
    "register_experiment",
    "TrainResult", "evaluate_run", "figures_run", "resume", "train",
]

"""Shared training infrastructure: typed configs with presets, the trainer (checkpoints,
resume, logging, progress, torchrun/DDP), what an experiment gives the trainer
(:class:`ExperimentSpec`), and the tables.

An experiment plugs in with an :class:`ExperimentSpec`; ``experiments/toy`` is a complete
example and ``docs/architecture.md`` says how to add one.
"""
from pgm_ladder.training.batches import BatchSource, LoaderStream, SampledStream
from pgm_ladder.training.config import (ExperimentConfig, OptimConfig, TrainConfig,
                                        apply_overrides, config_from_dict, config_to_dict)
from pgm_ladder.training.errors import (CheckpointError, ConfigError, NonFiniteLossError,
                                        RunDirError, TableError, TrainingError, TrainingInterrupted)
from pgm_ladder.training.optim import make_optimizer
from pgm_ladder.training.spec import ExperimentSpec, PaperNumber, Parts, load_spec
from pgm_ladder.training.runner import TrainResult, evaluate_run, figures_run, resume, train

__all__ = [
    "BatchSource", "LoaderStream", "SampledStream",
    "ExperimentConfig", "OptimConfig", "TrainConfig",
    "apply_overrides", "config_from_dict", "config_to_dict",
    "CheckpointError", "ConfigError", "NonFiniteLossError", "RunDirError", "TableError",
    "TrainingError", "TrainingInterrupted",
    "make_optimizer",
    "ExperimentSpec", "PaperNumber", "Parts", "load_spec",
    "TrainResult", "evaluate_run", "figures_run", "resume", "train",
]

"""The experiment registry: what an experiment gives the trainer, and how it is found.

An experiment module builds an :class:`ExperimentSpec` and calls
:func:`register_experiment` at import time. :func:`get_experiment` imports the modules of
:data:`EXPERIMENT_MODULES` lazily, the first time their name is asked for.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import torch
from torch import nn

from pgm_ladder.training.batches import BatchSource
from pgm_ladder.training.config import OptimConfig, TrainConfig
from pgm_ladder.training.errors import ConfigError

REQUIRED_PRESETS = ("smoke", "cpu", "paper")

#: Import table only: experiment name -> the module whose import registers it.
EXPERIMENT_MODULES: dict[str, str] = {
    "toy": "pgm_ladder.training.toy",
    "static": "pgm_ladder.checks.static_experiment",
    "temporal": "pgm_ladder.checks.temporal_experiment",
    "mixture": "pgm_ladder.checks.mixture_experiment",
    "occluded_mnist": "experiments.occluded_mnist.experiment",
}


@dataclass
class Parts:
    """What ``ExperimentSpec.build`` returns: everything one run trains and scores.

    ``loss(model, batch)`` returns a dict of scalars holding at least ``"loss"`` (the
    others are logged); under torchrun ``model`` is the DDP wrapper, so compute through
    ``model(...)``. ``evaluate(model)`` gets the bare model (eval mode, no grad) and
    returns the final metrics. ``optimizer`` defaults to one built from the ``optim``
    section, ``scheduler`` (stepped once per optimisation step) to the ``train.schedule``.
    ``figures(model, figures_dir)`` may write plots at the end of a run.
    """

    model: nn.Module
    train_batches: BatchSource
    loss: Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]
    evaluate: Callable[[nn.Module], Mapping[str, float]]
    optimizer: Optional[torch.optim.Optimizer] = None
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None
    figures: Optional[Callable[[nn.Module, Path], None]] = None


@dataclass(frozen=True)
class PaperNumber:
    """A number a paper reports for a metric (SPEC §6), printed beside ours in tables."""

    value: float
    std: Optional[float] = None
    source: str = ""


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment.

    ``config_type`` is a dataclass with ``train: TrainConfig`` and ``optim: OptimConfig``
    fields; ``presets`` maps ``smoke``/``cpu``/``paper`` (SPEC §7, more allowed) to a
    config instance or a zero-argument factory; ``build(config, device, seed)`` returns
    the :class:`Parts`; ``paper_numbers`` maps metric names of ``evaluate`` to the
    paper's values.
    """

    name: str
    config_type: type
    presets: Mapping[str, Union[Any, Callable[[], Any]]]
    build: Callable[[Any, torch.device, int], Parts]
    description: str = ""
    paper_numbers: Mapping[str, Union[float, PaperNumber]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.config_type):
            raise TypeError(f"experiment {self.name!r}: config_type must be a dataclass")
        hints = typing.get_type_hints(self.config_type)
        if hints.get("train") is not TrainConfig or hints.get("optim") is not OptimConfig:
            raise TypeError(f"experiment {self.name!r}: {self.config_type.__name__} needs fields "
                            "'train: TrainConfig' and 'optim: OptimConfig'")
        missing = [p for p in REQUIRED_PRESETS if p not in self.presets]
        if missing:
            raise TypeError(f"experiment {self.name!r}: missing presets {missing} (SPEC §7)")
        numbers = {k: v if isinstance(v, PaperNumber) else PaperNumber(float(v))
                   for k, v in self.paper_numbers.items()}
        object.__setattr__(self, "paper_numbers", numbers)

    def preset(self, name: str) -> Any:
        """A fresh config for preset ``name``."""
        if name not in self.presets:
            raise ConfigError(f"unknown preset {name!r} for experiment {self.name!r} "
                              f"(available: {', '.join(self.presets)})")
        made = self.presets[name]
        is_instance = dataclasses.is_dataclass(made) and not isinstance(made, type)
        config = copy.deepcopy(made) if is_instance else made()
        if not isinstance(config, self.config_type):
            raise TypeError(f"experiment {self.name!r}: preset {name!r} is not a "
                            f"{self.config_type.__name__}")
        return config


_REGISTRY: dict[str, ExperimentSpec] = {}


def register_experiment(spec: ExperimentSpec) -> ExperimentSpec:
    """Make ``spec`` available by name (re-registering the same name replaces it)."""
    _REGISTRY[spec.name] = spec
    return spec


def get_experiment(name: str) -> ExperimentSpec:
    if name not in _REGISTRY and name in EXPERIMENT_MODULES:
        importlib.import_module(EXPERIMENT_MODULES[name])
    if name not in _REGISTRY:
        known = sorted(set(_REGISTRY) | set(EXPERIMENT_MODULES))
        raise ConfigError(f"unknown experiment {name!r} (known: {', '.join(known)})")
    return _REGISTRY[name]


def list_experiments() -> list[ExperimentSpec]:
    """Every experiment, importing the known modules (one that fails to import is
    reported on stderr and left out)."""
    for name, module in EXPERIMENT_MODULES.items():
        if name not in _REGISTRY:
            try:
                importlib.import_module(module)
            except Exception as err:  # a broken experiment must not hide the others
                print(f"warning: experiment {name!r} ({module}) failed to import: {err}",
                      file=sys.stderr)
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]

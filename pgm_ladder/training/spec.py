"""What an experiment gives the trainer: an :class:`ExperimentSpec` (config type, presets,
``build`` -> :class:`Parts`, optionally a ``check`` command).

The trainer names no experiment. An experiment's package defines its ``SPEC`` and the
top-level catalogue (``experiments.registry``, read by the CLI) lists it; a run directory
records ``spec.home`` — the module that defines the spec — so that ``resume``/``eval`` find
the experiment again from the run directory alone (:func:`load_spec`).
"""
from __future__ import annotations

import copy
import dataclasses
import argparse
import importlib
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from pgm_ladder.training.batches import BatchSource
from pgm_ladder.training.config import OptimConfig, TrainConfig
from pgm_ladder.training.errors import ConfigError

REQUIRED_PRESETS = ("smoke", "cpu", "paper")


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
    paper's values. ``home`` is the importable module that defines this spec as a
    module-level attribute (pass ``__name__``): run directories record it. ``check``, if
    given, adds the ``pgm-ladder check NAME`` sub-command: ``check(subparsers, spec)``
    adds a parser to ``subparsers`` and sets its ``func``. ``renamed`` keeps deprecated
    config keys working: it maps an old ``KEY`` to the new one, or an old ``KEY=VALUE`` to
    the new ``KEY=VALUE``; :meth:`overrides` and :meth:`upgrade` apply it.
    ``explicit_models``, if given, are the experiment's embedded explicit models
    (:class:`pgm_ladder.embedded.EmbeddedModels`): ``pgm-ladder model-file NAME`` writes
    their parameter files.
    """

    name: str
    config_type: type
    presets: Mapping[str, Union[Any, Callable[[], Any]]]
    build: Callable[[Any, torch.device, int], Parts]
    home: str
    description: str = ""
    paper_numbers: Mapping[str, Union[float, PaperNumber]] = field(default_factory=dict)
    check: Optional[Callable[[argparse._SubParsersAction, "ExperimentSpec"], None]] = None
    renamed: Mapping[str, str] = field(default_factory=dict)
    explicit_models: Optional[Any] = None

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

    def overrides(self, items: Sequence[str]) -> list[str]:
        """``KEY=VALUE`` overrides with deprecated keys (:attr:`renamed`) replaced by the
        new ones; each replacement is named on stderr."""
        out = []
        for item in items:
            key, sep, value = item.partition("=")
            new = self.renamed.get(item) or (self.renamed[key] + sep + value
                                             if key in self.renamed else item)
            if new != item:
                print(f"warning: {self.name}: {item!r} is deprecated, use {new!r}", file=sys.stderr)
            out.append(new)
        return out

    def upgrade(self, data: dict) -> dict:
        """A config dict written by an older version (a run directory's), with the keys
        and values of :attr:`renamed` moved to their new names."""
        data = copy.deepcopy(data)
        for old, new in self.renamed.items():
            old_key, _, old_value = old.partition("=")
            new_key, _, new_value = new.partition("=")
            *path, leaf = old_key.split(".")
            section = data
            for part in path:
                section = section.get(part, {}) if isinstance(section, dict) else {}
            if not isinstance(section, dict) or leaf not in section:
                continue
            if old_value and str(section[leaf]) != old_value:
                continue
            value = section.pop(leaf)
            *new_path, new_leaf = new_key.split(".")
            target = data
            for part in new_path:
                target = target.setdefault(part, {})
            target[new_leaf] = new_value if old_value else value
        return data

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


#: specs used in this process, by name: a spec made on the fly (a test, a notebook) can be
#: resumed in the process that trained it even though no module defines it
_SEEN: dict[str, ExperimentSpec] = {}


def remember(spec: ExperimentSpec) -> None:
    """Note ``spec`` as used in this process (the trainer calls this for every run)."""
    _SEEN[spec.name] = spec


def load_spec(name: str, home: Optional[str]) -> ExperimentSpec:
    """The spec named ``name`` that module ``home`` defines (a run directory's record),
    or the one used under that name in this process."""
    if home:
        try:
            module = importlib.import_module(home)
        except ImportError as err:
            raise ConfigError(f"experiment {name!r}: its module {home!r} does not import "
                              f"({err})") from err
        for value in vars(module).values():
            if isinstance(value, ExperimentSpec) and value.name == name:
                return value
    if name in _SEEN:
        return _SEEN[name]
    raise ConfigError(f"experiment {name!r}: no spec of that name in module {home!r}"
                      if home else f"experiment {name!r}: the run directory names no module "
                      "defining it (written before runs recorded 'home')")

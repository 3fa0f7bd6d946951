"""Typed experiment configs: the trainer's and optimiser's sections, and command-line
overrides (``--set optim.lr=3e-4``) checked against the dataclass field types.

An experiment config is any dataclass with a ``train: TrainConfig`` and an
``optim: OptimConfig`` field (subclassing :class:`ExperimentConfig` gives both); its other
fields are the experiment's own (nested dataclasses are sections: ``model.hidden``).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Sequence, TypeVar, Union

from pgm_ladder.training.errors import ConfigError

C = TypeVar("C")

AMP_MODES = ("off", "bf16")
SCHEDULES = ("constant", "cosine", "linear")


def _is_device_name(name: str) -> bool:
    head, _, index = name.partition(":")
    if not index:
        return name in ("auto", "cpu", "cuda", "mps")
    return head == "cuda" and index.isdigit()


@dataclass
class TrainConfig:
    """The trainer's own settings, the ``train`` section of every experiment config.

    Exactly one of ``steps`` / ``epochs`` is positive. ``batch_size`` is per process
    (under torchrun the global batch is ``batch_size * world_size``). Checkpoints are
    written every ``checkpoint_every`` steps (0: only at the end) and the last
    ``keep_last`` are kept. ``schedule`` multiplies the optimiser's lr once per step
    after ``warmup_steps`` of linear warm-up.
    """

    steps: int = 0
    epochs: int = 0
    batch_size: int = 64
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    checkpoint_every: int = 0
    keep_last: int = 3
    grad_clip: Optional[float] = None
    log_every: int = 10
    eval_every: int = 0
    device: str = "auto"
    amp: Literal["off", "bf16"] = "off"
    compile: bool = False
    deterministic: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "epochs", "warmup_steps", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}: must be >= 1, got {getattr(self, name)}")
        if (self.steps > 0) == (self.epochs > 0):
            raise ConfigError(
                f"train.steps={self.steps} and train.epochs={self.epochs}: exactly one must be "
                "positive (e.g. --set train.steps=0 --set train.epochs=3)")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"train.grad_clip: must be > 0 or none, got {self.grad_clip}")
        if not _is_device_name(self.device):
            raise ConfigError(
                f"train.device: expected auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"train.amp: expected one of {AMP_MODES}, got {self.amp!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"train.schedule: expected one of {SCHEDULES}, got {self.schedule!r}")


@dataclass
class OptimConfig:
    """The ``optim`` section: which ``torch.optim`` optimiser and its hyper-parameters."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"optim.lr: must be > 0, got {self.lr}")


@dataclass
class ExperimentConfig:
    """Convenience base: subclass it (a dataclass with defaulted fields) to add sections."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=100))
    optim: OptimConfig = field(default_factory=OptimConfig)


# --------------------------------------------------------------------------- dict <-> config

def cosine_schedule(steps: int, batch_size: int, **fields: Any) -> TrainConfig:
    """The training section of the checks' presets: a cosine schedule with
    ``min(100, steps/10)`` warm-up steps, four checkpoints and 50 log lines per run
    (``fields`` sets any other :class:`TrainConfig` field)."""
    return TrainConfig(steps=steps, batch_size=batch_size, schedule="cosine",
                       warmup_steps=min(100, steps // 10), checkpoint_every=max(1, steps // 4),
                       log_every=max(1, steps // 50), **fields)


def config_to_dict(config: Any) -> dict:
    """The config as plain JSON-able data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def flatten(config: dict, prefix: str = "") -> dict:
    """``{"train": {"steps": 3}}`` -> ``{"train.steps": 3}``."""
    out: dict = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(configs: Sequence[dict], ignore: Sequence[str] = ()) -> dict[str, list[str]]:
    """The dotted fields (except ``ignore``) on which the config dicts ``configs`` differ,
    each with its distinct values as JSON text in order of appearance (a missing field
    reads ``null``)."""
    flat = [flatten(cfg) for cfg in configs]
    fields = sorted({name for cfg in flat for name in cfg} - set(ignore))
    values = {name: list(dict.fromkeys(json.dumps(cfg.get(name)) for cfg in flat)) for name in fields}
    return {name: seen for name, seen in values.items() if len(seen) > 1}


def config_from_dict(cls: type[C], data: dict, _prefix: str = "") -> C:
    """Build ``cls`` from :func:`config_to_dict` output, checking every key and type.

    Missing keys take the dataclass defaults; unknown keys and ill-typed values raise
    :class:`ConfigError` naming the dotted key.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config key {_prefix.rstrip('.') or '<root>'}: expected a section "
                          f"(mapping), got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(_unknown_key_message(_prefix + key, names))
        kwargs[key] = _coerce(value, hints[key], _prefix + key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config section {_prefix.rstrip('.') or cls.__name__}: {err}") from err


def apply_overrides(config: C, overrides: Sequence[str]) -> C:
    """A new config with ``KEY=VALUE`` overrides applied (``optim.lr=3e-4``,
    ``model.hidden=[64,32]``, ``train.grad_clip=none``). Values are read as JSON for
    numbers, booleans, lists and ``null``; string fields take the text as it is."""
    data = config_to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        section, cls, tp = data, type(config), None
        parts = key.split(".")
        for depth, name in enumerate(parts):
            names = [f.name for f in dataclasses.fields(cls)]
            if name not in names:
                raise ConfigError(_unknown_key_message(".".join(parts[: depth + 1]), names))
            tp = typing.get_type_hints(cls)[name]
            if depth < len(parts) - 1:
                if not _is_dataclass_type(tp):
                    raise ConfigError(f"config key {key!r}: {'.'.join(parts[:depth + 1])!r} "
                                      "is a value, not a section")
                section, cls = section[name], tp
        if _is_dataclass_type(tp):
            fields = ", ".join(f.name for f in dataclasses.fields(tp))
            raise ConfigError(f"config key {key!r} is a section; set one of its fields "
                              f"({fields}) as {key}.FIELD=VALUE")
        section[parts[-1]] = _coerce(_parse_text(raw, tp, key), tp, key)
    return config_from_dict(type(config), data)


# --------------------------------------------------------------------------- typing helpers

def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unknown_key_message(key: str, valid: Sequence[str]) -> str:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown config key {key!r} (valid here: {', '.join(valid)}){hint}"


def _union_args(tp: Any) -> Optional[tuple]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _takes_text(tp: Any) -> bool:
    """Whether a command-line value for ``tp`` is taken verbatim (not parsed as JSON)."""
    args = _union_args(tp)
    if args is not None:
        return any(_takes_text(a) for a in args if a is not type(None))
    if typing.get_origin(tp) is Literal:
        return all(isinstance(a, str) for a in typing.get_args(tp))
    return tp is str


def _parse_text(raw: str, tp: Any, key: str) -> Any:
    text = raw.strip()
    nullable = _union_args(tp) is not None and type(None) in _union_args(tp)
    if nullable and text.lower() in ("none", "null"):
        return None
    if _takes_text(tp):
        return raw
    if tp is bool and text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"config key {key!r}: cannot read {raw!r} as {_type_name(tp)}") from None


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return {bool: "a bool (true/false)", int: "an int", float: "a float",
                str: "a string"}.get(tp, tp.__name__)
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked (and minimally converted) to the field type ``tp``."""
    def bad() -> ConfigError:
        return ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r}")

    if tp is Any:
        return value
    args = _union_args(tp)
    if args is not None:
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) != 1:
            raise ConfigError(f"config key {key!r}: unsupported field type {tp}")
        return _coerce(value, members[0], key)
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"config key {key!r}: expected one of "
                              f"{list(typing.get_args(tp))}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad()
        items = typing.get_args(tp)
        if origin is tuple and not (len(items) == 2 and items[1] is Ellipsis):
            if len(value) != len(items):
                raise ConfigError(f"config key {key!r}: expected {len(items)} items, "
                                  f"got {value!r}")
            return tuple(_coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, items)))
        elem = items[0] if items else Any
        out = [_coerce(v, elem, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        return config_from_dict(tp, value, key + ".")
    raise ConfigError(f"config key {key!r}: unsupported field type {tp}")

"""Continue or reuse a run only when it is the run asked for: the same config and seed.

A check re-run (or a sweep's seed folder) that finds a run in its folder continues it if
interrupted and reuses it if finished; a run of another config or seed there is refused
with the differing fields named (never scored as if it were the one asked for)."""
from __future__ import annotations

from typing import Any

from pgm_ladder.training.config import config_differences, config_from_dict, config_to_dict
from pgm_ladder.training.errors import ConfigMismatchError
from pgm_ladder.training.run_dir import RunDir
from pgm_ladder.training.spec import ExperimentSpec

#: config fields a run may be continued or reused under another value of (passed on resume)
REUSABLE_ACROSS = ("train.device",)


def check_same_run(spec: ExperimentSpec, run: RunDir, config: Any, seed: int, way_out: str) -> None:
    """Raise :class:`ConfigMismatchError` unless the run in ``run`` was started with
    ``config`` and ``seed`` (except :data:`REUSABLE_ACROSS`); its message names each
    differing field with the value there and the value asked for, then ``way_out``."""
    manifest = run.read_manifest()
    if manifest.get("experiment") != spec.name:
        raise ConfigMismatchError(f"{run.path} holds a run of experiment {manifest.get('experiment')!r}, "
                                  f"not {spec.name!r}; {way_out}")
    stored = config_to_dict(config_from_dict(spec.config_type, spec.upgrade(manifest["config"])))
    there = {"seed": manifest.get("seed"), **stored}
    asked = {"seed": seed, **config_to_dict(config)}
    differing = config_differences([there, asked], REUSABLE_ACROSS)
    if differing:
        listed = "; ".join(f"{name}: {values[0]} there, {values[1]} asked" for name, values in differing.items())
        raise ConfigMismatchError(f"{run.path} holds a run of another config ({listed}); {way_out}")


def device_override(run: RunDir, config: Any) -> list[str]:
    """``["train.device=D"]`` when ``config`` asks for another device than the run's, else ``[]``."""
    stored = run.read_manifest()["config"].get("train", {}).get("device")
    return [] if stored == config.train.device else [f"train.device={config.train.device}"]

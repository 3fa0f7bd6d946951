"""The catalogue of experiments: every experiment the ``pgm-ladder`` command offers.

An experiment is a package under ``experiments/`` that defines ``SPEC``, an
:class:`~pgm_ladder.training.spec.ExperimentSpec`; it is added by one line in
:data:`BUILT_IN` below. A package outside this repository adds its experiments through the
entry-point group ``pgm_ladder.experiments`` (each entry point names an ``ExperimentSpec``,
e.g. ``mine = my_package.my_experiment:SPEC``); see ``docs/architecture.md``.

The trainer itself names no experiment: a run directory records the module that defines
its spec (``spec.home``), so ``pgm-ladder resume/eval`` need no catalogue.
"""
from __future__ import annotations

import sys
from importlib.metadata import entry_points

from pgm_ladder.training.errors import ConfigError
from pgm_ladder.training.spec import ExperimentSpec

from experiments import mixture, occluded_mnist, polyphonic, shapes, static, temporal, toy

#: the experiments of this repository, one line each
BUILT_IN: tuple[ExperimentSpec, ...] = (
    toy.SPEC,
    static.SPEC,
    temporal.SPEC,
    mixture.SPEC,
    occluded_mnist.SPEC,
    shapes.SPEC,
    polyphonic.SPEC,
)

ENTRY_POINT_GROUP = "pgm_ladder.experiments"


def plugins() -> list[ExperimentSpec]:
    """The specs installed packages offer under :data:`ENTRY_POINT_GROUP` (one that fails
    to load is reported on stderr and left out, so it cannot hide the others)."""
    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = point.load()
        except Exception as err:  # a broken plug-in must not break the command line
            print(f"warning: experiment plug-in {point.name!r} ({point.value}) failed to load: {err}",
                  file=sys.stderr)
            continue
        if not isinstance(spec, ExperimentSpec):
            print(f"warning: experiment plug-in {point.name!r} ({point.value}) is a "
                  f"{type(spec).__name__}, not an ExperimentSpec", file=sys.stderr)
            continue
        found.append(spec)
    return found


def catalogue() -> dict[str, ExperimentSpec]:
    """Every experiment by name: the built-in ones, then the plug-ins (a plug-in may not
    reuse a built-in name)."""
    out = {spec.name: spec for spec in BUILT_IN}
    for spec in plugins():
        if spec.name in out:
            raise ConfigError(f"experiment plug-in {spec.name!r} ({spec.home}) reuses the name "
                              f"of the experiment defined in {out[spec.name].home}")
        out[spec.name] = spec
    return out


def get(name: str) -> ExperimentSpec:
    """The experiment called ``name``, or a :class:`ConfigError` naming the known ones."""
    known = catalogue()
    if name not in known:
        raise ConfigError(f"unknown experiment {name!r} (known: {', '.join(sorted(known))})")
    return known[name]

"""What the two measurements share: the embedded static models scaled in width (SPEC §2.1;
the ``static`` experiment's fixed ``StaticGaussianHierarchy.random`` arguments, widths
``[w, w/2, w/4]``) and the record of where a measurement ran."""
from __future__ import annotations

import argparse
import os

import torch

from experiments.static.experiment import EMBEDDED_MODELS
from explicit_models.static_hierarchy import StaticGaussianHierarchy
from pgm_ladder.training.provenance import git_revision, hardware


def scaled_model(name: str, width: int) -> StaticGaussianHierarchy:
    """The embedded model ``name`` (``"linear"`` or ``"classes"``) with widths
    ``[width, width/2, width/4]`` (``width=64`` is the embedded model itself)."""
    if width < 4 or width % 4:
        raise ValueError(f"width must be a positive multiple of 4, got {width}")
    args = EMBEDDED_MODELS[name]
    args["widths"] = [width, width // 2, width // 4]
    return StaticGaussianHierarchy.random(**args)


def machine() -> dict:
    """Hardware, revision, threads and load of this run (the shared
    :func:`pgm_ladder.training.provenance.hardware` / ``git_revision``, plus the CPU's model
    name, which ``platform`` does not give on Linux, and what a timing depends on)."""
    hw = hardware("cpu")
    return {"cpu": _cpu_model() or hw["processor"], "cpu_count": hw["cpu_count"], "torch": hw["torch"],
            "revision": git_revision()["git_revision"], "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "load_average": os.getloadavg()}


def _cpu_model() -> str | None:
    """The first ``model name`` of ``/proc/cpuinfo`` (``None`` where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        return None
    return names[0] if names else None


def command(name: str, help_text: str, doc: str, add_arguments, run):
    """``(register, main)`` of a measurement: ``register(subparsers)`` adds sub-command
    ``name`` to a CLI, ``main(argv)`` runs it as ``python -m``."""
    def parser(p):
        add_arguments(p)
        return p

    def register(subparsers) -> None:
        p = subparsers.add_parser(name, help=help_text, description=doc,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        parser(p).set_defaults(func=run)

    def main(argv=None) -> int:
        p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        return run(parser(p).parse_args(argv))

    return register, main

"""Training an amortised guide with Pyro's SVI on fresh samples of its explicit model
(SPEC §3.5): every step draws a new batch ``x̃ ~ p(x̃)`` and takes one step on the ELBO —
``Trace_ELBO`` with a Gaussian top, ``TraceEnum_ELBO`` (the guide's ``c`` enumerated, so the
class part of the ELBO is exact) with a class-mixture top. Adam with the learning rate
decayed geometrically by ``lr_decay`` over the run (Pyro's ``ClippedAdam``). Models other
than the static hierarchy (the temporal one) pass ``draw``: the fresh batch as the
arguments of ``model.pyro_model``."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO


@dataclass
class FitResult:
    """``losses[t]``: the SVI loss (negative ELBO estimate, nats per sample) of step ``t``;
    ``wall_s``: seconds spent in the SVI steps (sampling of the data included)."""

    losses: list = field(default_factory=list)
    wall_s: float = 0.0
    steps: int = 0


def elbo_for(model, num_particles: int = 1):
    """The Pyro ELBO a guide of ``model`` is trained with (module docstring)."""
    if getattr(model, "has_mixture_top", False):
        return TraceEnum_ELBO(max_plate_nesting=1, num_particles=num_particles, vectorize_particles=num_particles > 1)
    return Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1)


def fit_guide(model, guide, steps: int, batch_size: int = 256, lr: float = 1e-2, lr_decay: float = 0.01,
              seed: int = 0, num_particles: int = 1, clear_param_store: bool = True,
              draw: Optional[Callable] = None) -> FitResult:
    """Train ``guide`` (a Pyro guide of ``model.pyro_model``) for ``steps`` SVI steps on fresh
    batches of ``batch_size`` samples drawn with a generator seeded by ``seed``;
    ``draw(generator, batch_size)`` returns a batch as ``pyro_model``'s arguments (default:
    ``(model.sample(batch_size).x_noisy,)``, the static hierarchy's)."""
    for name, value in (("steps", steps), ("batch_size", batch_size), ("num_particles", num_particles)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not lr > 0 or not 0 < lr_decay <= 1:
        raise ValueError(f"lr must be > 0 and lr_decay in (0, 1], got lr={lr}, lr_decay={lr_decay}")
    if clear_param_store:
        pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optim = pyro.optim.ClippedAdam({"lr": lr, "lrd": lr_decay ** (1.0 / steps)})
    svi = SVI(model.pyro_model, guide, optim, elbo_for(model, num_particles))
    result = FitResult()
    start = time.perf_counter()
    for _ in range(int(steps)):
        batch = (model.sample(batch_size, generator=generator).x_noisy,) if draw is None else \
            draw(generator, batch_size)
        result.losses.append(svi.step(*batch) / batch_size)
    result.wall_s = time.perf_counter() - start
    result.steps = int(steps)
    return result

"""Per-example inference baselines with Pyro's own machinery on the static hierarchy
(SPEC §2.1, §3.5): SVI with ``AutoNormal`` (mean field, diagonal) or
``AutoMultivariateNormal`` (one full Gaussian over all latents) fitted to one corrupted
input at a time, and NUTS on one input. Gaussian top only (the autoguides have no discrete
site): a class-mixture top raises ``ValueError``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import pyro
import torch
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

from .static_divergence import GaussianApproximation

AUTOGUIDES = {"normal": AutoNormal, "mvn": AutoMultivariateNormal}


@dataclass
class SVIFit:
    """One example's fit: its ``approximation`` (a ``GaussianApproximation``, or a
    ``TrajectoryApproximation`` for a temporal sequence), the ``steps`` run, ``wall_s`` spent in SVI
    steps (KL checks excluded), the ``kl`` at the last check and whether it reached ``target_kl``."""

    approximation: GaussianApproximation
    steps: int
    wall_s: float
    kl: float
    reached: bool


def _gaussian_top(model, what: str) -> None:
    if model.has_mixture_top:
        raise ValueError(f"{what}: needs a Gaussian top (the autoguides have no discrete site c)")


def latent_positions(guide) -> dict:
    """``{site: indices}``: where each latent site sits in the joint latent vector of an
    ``AutoContinuous`` guide (``AutoMultivariateNormal``): the sites in the order the model
    samples them, each flattened."""
    start, where = 0, {}
    for name, shape in guide._unconstrained_shapes.items():
        size = int(torch.Size(shape).numel())
        where[name] = torch.arange(start, start + size)
        start += size
    return where


def _moments(model, guide, kind: str) -> GaussianApproximation:
    """The autoguide's posterior as stacked ``s_0 .. s_L`` moments (batch of one)."""
    L = model.depth
    if kind == "normal":
        locs, scales = zip(*(guide._get_loc_and_scale(f"s_{l}") for l in range(L + 1)))
        mean = torch.cat([v.reshape(-1) for v in locs])
        var = torch.cat([v.reshape(-1) for v in scales]).pow(2)
        return GaussianApproximation(mean[None, None], variances=var[None, None])
    post = guide.get_posterior()
    where = latent_positions(guide)
    order = torch.cat([where[f"s_{l}"] for l in range(L + 1)])
    cov = post.covariance_matrix[order][:, order]
    return GaussianApproximation(post.loc[order][None, None], covs=cov[None])


def fit_autoguide(pyro_model, args: tuple, kind: str, moments, kl, max_steps: int = 5000, lr: float = 0.02,
                  num_particles: int = 8, target_kl: Optional[float] = None, check_every: int = 100,
                  max_wall_s: Optional[float] = None, seed: int = 0) -> SVIFit:
    """SVI with an autoguide (``kind`` ``"normal"``: ``AutoNormal``, ``"mvn"``:
    ``AutoMultivariateNormal``) and ``Trace_ELBO`` on ``pyro_model(*args)`` (one example);
    every ``check_every`` steps ``kl(moments(guide))`` is computed (outside the timing) and the
    fit stops once it is ``≤ target_kl``, or at ``max_steps`` / ``max_wall_s`` seconds of SVI
    steps. The loop shared by the static (:func:`fit_one`) and temporal
    (:func:`explicit_models.temporal_svi.fit_sequence`) per-example baselines."""
    if kind not in AUTOGUIDES:
        raise ValueError(f"kind must be one of {sorted(AUTOGUIDES)}, got {kind!r}")
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = AUTOGUIDES[kind](pyro_model, init_scale=0.1)
    svi = SVI(pyro_model, guide, pyro.optim.Adam({"lr": lr}),
              Trace_ELBO(num_particles=num_particles, vectorize_particles=True))
    wall, steps, value = 0.0, 0, float("inf")
    while steps < max_steps:
        start = time.perf_counter()
        for _ in range(check_every):
            svi.step(*args)
        wall += time.perf_counter() - start
        steps += check_every
        with torch.no_grad():
            q = moments(guide)
            value = float(kl(q))
        if (target_kl is not None and value <= target_kl) or (max_wall_s is not None and wall >= max_wall_s):
            break
    return SVIFit(q, steps, wall, value, target_kl is not None and value <= target_kl)


def fit_one(model, x_noisy, kind: str = "mvn", max_steps: int = 5000, lr: float = 0.02,
            num_particles: int = 8, target_kl: Optional[float] = None, check_every: int = 100,
            max_wall_s: Optional[float] = None, seed: int = 0) -> SVIFit:
    """Per-example SVI on one input ``x_noisy`` ``(1, n_0)`` (:func:`fit_autoguide`), scored
    by the closed-form KL to the exact posterior (SPEC §3.5)."""
    _gaussian_top(model, "fit_one")
    x = model.check_x_noisy(x_noisy)
    if x.shape[0] != 1:
        raise ValueError(f"x_noisy: per-example SVI takes one example, got a batch of {x.shape[0]}")
    return fit_autoguide(model.pyro_model, (x,), kind, lambda guide: _moments(model, guide, kind),
                         lambda q: q.kl(model, x)[0], max_steps, lr, num_particles, target_kl,
                         check_every, max_wall_s, seed)


def nuts_one(model, x_noisy, num_samples: int = 100, warmup: int = 100, seed: int = 0):
    """NUTS on one input (Gaussian top): ``(draws {site: (S, 1, n_l)}, wall seconds)``."""
    _gaussian_top(model, "nuts_one")
    x = model.check_x_noisy(x_noisy)
    pyro.set_rng_seed(seed)
    mcmc = MCMC(NUTS(model.pyro_model), num_samples=num_samples, warmup_steps=warmup, disable_progbar=True)
    start = time.perf_counter()
    mcmc.run(x)
    return mcmc.get_samples(), time.perf_counter() - start

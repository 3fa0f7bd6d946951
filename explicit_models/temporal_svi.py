"""Per-sequence SVI baselines on the temporal hierarchy with Pyro's autoguides (SPEC §2.2,
§3.5): ``AutoNormal`` (mean field, diagonal over every latent ``s_l,t``) or
``AutoMultivariateNormal`` (one full Gaussian over the whole trajectory) fitted by
``Trace_ELBO`` to one (masked) sequence at a time, read out as a
:class:`~explicit_models.temporal_divergence.TrajectoryApproximation` and scored by the
closed-form KL to the exact trajectory posterior.
"""
from __future__ import annotations

from typing import Optional

import torch

from .static_svi import SVIFit, fit_autoguide, latent_positions
from .temporal_divergence import TrajectoryApproximation, trajectory_posterior


def trajectory_sites(model, steps: int) -> list[str]:
    """The latent sites of :meth:`TemporalGaussianHierarchy.pyro_model` in the time-major
    trajectory order of :mod:`explicit_models.temporal_divergence` (``t = 0..T``, level
    ``0..L`` within a frame)."""
    return [f"s_{l}_{t}" for t in range(int(steps) + 1) for l in range(model.depth + 1)]


def autoguide_moments(model, guide, kind: str, steps: int) -> TrajectoryApproximation:
    """The fitted autoguide's posterior (batch of one sequence) as a trajectory Gaussian."""
    sites = trajectory_sites(model, steps)
    if kind == "normal":
        locs, scales = zip(*(guide._get_loc_and_scale(name) for name in sites))
        mean = torch.cat([v.reshape(-1) for v in locs])
        var = torch.cat([v.reshape(-1) for v in scales]).pow(2)
        return TrajectoryApproximation(mean[None], variances=var[None])
    post, where = guide.get_posterior(), latent_positions(guide)
    if sorted(where) != sorted(sites):
        raise ValueError(f"autoguide sites {sorted(where)[:3]}… are not the trajectory's {sites[:3]}…")
    order = torch.cat([where[name] for name in sites])
    cov = post.covariance_matrix[order][:, order]
    return TrajectoryApproximation(post.loc[order][None], covs=cov[None])


def fit_sequence(model, x_noisy, visibility=None, kind: str = "mvn", max_steps: int = 3000,
                 lr: float = 0.02, num_particles: int = 8, target_kl: Optional[float] = None,
                 check_every: int = 100, max_wall_s: Optional[float] = None, seed: int = 0) -> SVIFit:
    """Per-sequence SVI on one sequence ``x_noisy`` ``(1, T, n_0)`` (with its ``visibility``)
    by :func:`~explicit_models.static_svi.fit_autoguide`, scored every ``check_every`` steps
    by ``KL(q ‖ p(s_0:T | x̃))`` in closed form (SPEC §3.5)."""
    x, o = model.check_inputs(x_noisy, visibility)
    if x.shape[0] != 1:
        raise ValueError(f"x_noisy: per-sequence SVI takes one sequence, got a batch of {x.shape[0]}")
    steps = x.shape[1]
    exact = trajectory_posterior(model, x, o)
    return fit_autoguide(model.pyro_model, (x, o), kind,
                         lambda guide: autoguide_moments(model, guide, kind, steps),
                         lambda q: q.kl(model, x, o, exact=exact)[0], max_steps, lr, num_particles,
                         target_kl, check_every, max_wall_s, seed)

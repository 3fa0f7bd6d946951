"""The exact joint posterior over a whole trajectory of the temporal hierarchy, and how far a
Gaussian approximation of it is from it, in closed form (SPEC §2.2, §3.5, §4).

The trajectory ``s = (s_0, .., s_T)`` (each ``s_t = (s_0,t, .., s_L,t)``, size ``N``; ``D =
(T+1) N`` in all, time-major, the order of ``temporal_exact``'s state-space form) is written
through the model's structural equations: one residual per latent,

    r_l,0 = s_l,0 − μ_init,l  (std σ_init,l),    r_l,t = s_l,t − A_l s_l,t-1 − W_l s_l+1,t  (std σ_l)

i.e. ``r = E s − c`` with ``E`` unit triangular in the order (time up, level down; det 1), ``log p(s) = Σ log N(r; 0, σ²)``.
With the masked observations ``x̃_t = s_0,t + N(0, σ_n²)`` the posterior is Gaussian with
precision and information

    J = Eᵀ diag(σ⁻²) E + Σ_t Hᵀ diag(o_t / σ_n²) H,    h = Eᵀ diag(σ⁻²) c + Σ_t Hᵀ (o_t ⊙ x̃_t / σ_n²)

— dense ``(D, D)``: meant for the small widths and modest frame counts of the guides' scores
(the Kalman / RTS route of ``temporal_exact`` gives the same marginals, a test). For an
approximation ``q = N(m, Σ)`` (``Σ`` full ``(B, D, D)`` or diagonal ``(B, D)``):
``KL(q ‖ p(s | x̃))`` by :func:`static_divergence.gaussian_kl`, and the ELBO
``E_q log p(x̃, s) + H[q]`` factor by factor from the residuals' moments under ``q`` — a route
that does not use the exact posterior, so ``ELBO = log p(x̃) − KL`` (with ``log p(x̃)`` from the
Kalman filter) checks all three.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from . import gaussian_ops as ops
from .gaussian_ops import LOG_2PI
from .static_divergence import gaussian_kl


def structural_operator(model, steps: int):
    """``(E (D, D), c (D,), std (D,))`` of the residuals ``r = E s − c`` (module docstring)
    for ``steps`` frames, cached on the model."""
    key = ("structural_operator", int(steps))
    if key in model._cache:
        return model._cache[key]
    off, N, T = ops.level_offsets(model.widths), sum(model.widths), int(steps)
    E = torch.eye((T + 1) * N, dtype=model.dtype, device=model.device)
    for t in range(1, T + 1):
        row, prev = t * N, (t - 1) * N
        for l in range(model.depth + 1):
            a, b = off[l], off[l + 1]
            E[row + a:row + b, prev + a:prev + b] = -model.transitions[l]
            if l < model.depth:
                E[row + a:row + b, row + b:row + off[l + 2]] = -model.weights[l]
    c = torch.zeros((T + 1) * N, dtype=model.dtype, device=model.device)
    c[:N] = torch.cat(model.init_means)
    std = torch.cat([torch.cat(model.init_stds)] + [torch.cat(model.stds)] * T)
    model._cache[key] = (E, c, std)
    return E, c, std


def _observed_indices(model, steps: int) -> torch.Tensor:
    """Positions of ``s_0,1 .. s_0,T`` in the trajectory, ``(T, n_0)``."""
    N, n0 = sum(model.widths), model.widths[0]
    return (torch.arange(1, int(steps) + 1) * N)[:, None] + torch.arange(n0)


def posterior_information(model, x: torch.Tensor, o: torch.Tensor):
    """``(J (B, D, D), h (B, D))`` of ``p(s | x̃)`` (module docstring); ``x``, ``o`` ``(B, T, n_0)``
    as ``model.check_inputs`` returns them."""
    B, T = x.shape[:2]
    E, c, std = structural_operator(model, T)
    prec = std.pow(-2)
    J = (E.T * prec) @ E
    h = (E.T @ (prec * c)).expand(B, -1).clone()
    idx = _observed_indices(model, T).reshape(-1)
    obs_prec = (o * model.noise_std.pow(-2)).reshape(B, -1)
    J = J.expand(B, -1, -1).clone()
    J[:, idx, idx] += obs_prec
    h[:, idx] += obs_prec * x.reshape(B, -1)
    return J, h


@dataclass
class TrajectoryPosterior:
    """The exact posterior ``N(means, covs)`` of the trajectory (``(B, D)``, ``(B, D, D)``)
    and ``log_evidence`` ``(B,)`` = ``log p(x̃_visible)`` from the Kalman filter."""

    means: torch.Tensor
    covs: torch.Tensor
    log_evidence: torch.Tensor


def trajectory_posterior(model, x_noisy, visibility=None) -> TrajectoryPosterior:
    """The exact joint posterior over ``s_0 .. s_T`` (module docstring; SPEC §2.2)."""
    x, o = model.check_inputs(x_noisy, visibility)
    J, h = posterior_information(model, x, o)
    chol = torch.linalg.cholesky(J)
    cov = torch.cholesky_inverse(chol)
    return TrajectoryPosterior(torch.cholesky_solve(h.unsqueeze(-1), chol).squeeze(-1), 0.5 * (cov + cov.mT),
                               model.kalman_filter(x, o).log_likelihood)


def _check_moments(model, x, means, covs, variances):
    D = (x.shape[1] + 1) * sum(model.widths)
    if tuple(means.shape) != (x.shape[0], D):
        raise ValueError(f"means: expected shape ({x.shape[0]}, {D}) = (B, (T+1) N), got {tuple(means.shape)}")
    if (covs is None) == (variances is None):
        raise ValueError("give exactly one of covs (full) or variances (diagonal)")
    cov = covs if covs is not None else variances
    if cov.shape[-1] != D:
        raise ValueError(f"{'covs' if covs is not None else 'variances'}: last dimension must be D = {D}, "
                         f"got shape {tuple(cov.shape)}")


def trajectory_kl(model, x_noisy, means, covs=None, variances=None, visibility=None,
                  exact: Optional[TrajectoryPosterior] = None) -> torch.Tensor:
    """``KL(N(means, Σ) ‖ p(s | x̃))`` per sequence ``(B,)`` in nats (SPEC §3.5, §4)."""
    x, o = model.check_inputs(x_noisy, visibility)
    _check_moments(model, x, means, covs, variances)
    p = trajectory_posterior(model, x, o) if exact is None else exact
    # each sequence has its own exact covariance: its batch index plays gaussian_kl's K
    kl = gaussian_kl(means.unsqueeze(0), p.means.unsqueeze(0), p.covs,
                     cov_q=None if covs is None else covs.unsqueeze(0),
                     var_q=None if variances is None else variances.unsqueeze(0))
    return kl[0]


def expected_log_joint(model, x_noisy, means, covs=None, variances=None, visibility=None) -> torch.Tensor:
    """``E_q log p(x̃_visible, s_0:T)`` per sequence ``(B,)``: every structural residual and
    every visible observation residual is Gaussian under ``q``; its expected log density
    follows from its mean and variance (SPEC §2.2)."""
    x, o = model.check_inputs(x_noisy, visibility)
    _check_moments(model, x, means, covs, variances)
    B, T = x.shape[:2]
    E, c, std = structural_operator(model, T)
    if covs is not None:
        var_r, var_s = ((E @ covs) * E).sum(-1), covs.diagonal(dim1=-2, dim2=-1)
    else:
        var_r, var_s = variances @ E.pow(2).T, variances
    mean_r = means @ E.T - c
    out = -0.5 * ((mean_r.pow(2) + var_r) / std.pow(2) + LOG_2PI).sum(-1) - std.log().sum()
    idx = _observed_indices(model, T)
    noise_var = model.noise_std.pow(2)
    quad = ((x - means[:, idx]).pow(2) + var_s[..., idx].expand(B, -1, -1)) / noise_var
    return out - 0.5 * (o * (quad + LOG_2PI + noise_var.log())).sum((-1, -2))


def trajectory_elbo(model, x_noisy, means, covs=None, variances=None, visibility=None) -> torch.Tensor:
    """``E_q log p(x̃, s) + H[q]`` per sequence ``(B,)`` in closed form (module docstring)."""
    out = expected_log_joint(model, x_noisy, means, covs, variances, visibility)
    if covs is not None:
        logdet = 2.0 * torch.linalg.cholesky(covs).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    else:
        logdet = variances.log().sum(-1)
    return out + ops.gaussian_entropy_from_logdet(means.shape[-1], logdet)


@dataclass
class TrajectoryApproximation:
    """``q(s_0:T | x̃) = N(means, Σ)`` on the time-major trajectory: ``means`` ``(B, D)``;
    ``covs`` (full, ``(B, D, D)``) or ``variances`` (diagonal, ``(B, D)``)."""

    means: torch.Tensor
    covs: Optional[torch.Tensor] = None
    variances: Optional[torch.Tensor] = None

    def kl(self, model, x_noisy, visibility=None, exact: Optional[TrajectoryPosterior] = None) -> torch.Tensor:
        """``KL(q ‖ p(s | x̃))`` per sequence, see :func:`trajectory_kl`."""
        return trajectory_kl(model, x_noisy, self.means, self.covs, self.variances, visibility, exact)

    def elbo(self, model, x_noisy, visibility=None) -> torch.Tensor:
        """The ELBO per sequence in closed form, see :func:`trajectory_elbo`."""
        return trajectory_elbo(model, x_noisy, self.means, self.covs, self.variances, visibility)


def from_vb_smoother(result) -> TrajectoryApproximation:
    """The mean-field VB smoother's ``Π_l,t N(m_l,t, V_l,t)`` (a ``VBSmootherResult``) as a
    :class:`TrajectoryApproximation` with a block-diagonal covariance (SPEC §2.2)."""
    B = result.means[0].shape[0]
    means = torch.cat(result.means, -1).reshape(B, -1)
    if result.covariance == "diagonal":
        var = torch.cat([V.expand(B, *V.shape[1:]) for V in result.covs], -1)
        return TrajectoryApproximation(means, variances=var.reshape(B, -1))
    blocks = [V.expand(B, *V.shape[1:]) for V in result.covs]  # (B, T+1, n_l, n_l)
    T1 = blocks[0].shape[1]
    cov = torch.stack([torch.block_diag(*(V[b, t] for t in range(T1) for V in blocks)) for b in range(B)])
    return TrajectoryApproximation(means, covs=cov)

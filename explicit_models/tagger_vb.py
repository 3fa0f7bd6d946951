"""Variational Bayes, TAG inputs and grouping cost of the Tagger mixture (SPEC §2.3).

Model (continuous, x integrated out): ``h_k ~ N(0, I_d)``, ``μ_k = B h_k + β_k``,
``z_i ~ Cat(ρ)``, ``x̃_i | z_i=k, h ~ N(μ_ik, λ_k)`` with ``λ_k = σ_k² + σ²``.
Mean field ``q(z_i = k) = π_ik``, ``q(h_k) = N(η_k, S_k)``, ``m_ik = (B η_k + β_k)_i``,
``v_ik = (B S_k Bᵀ)_ii``:

    π_ik  ∝ ρ_k exp( −½ log 2πλ_k − ((x̃_i − m_ik)² + v_ik) / (2 λ_k) )
    S_k⁻¹ = I + Bᵀ diag(π_k / λ_k) B,     η_k = S_k Bᵀ diag(π_k / λ_k) (x̃ − β_k)

Each is the exact coordinate maximiser of the ELBO, so coordinate ascent never decreases it.
Order within one iteration (ours): ``q(h_k)`` for every ``k``, then ``q(z)``.
Small, stateless functions named after the mathematics; shapes: batch ``B``, groups ``K``,
pixels ``N``, basis size ``d``. Everything in log space (``logsumexp`` / ``log_softmax``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .gaussian_ops import LOG_2PI


@dataclass
class TaggerVBResult:
    """Trajectory of ``iters`` VB iterations on ``B`` inputs (SPEC §2.3).

    ``pi[t]`` ``(B, K, N)``, ``eta[t]`` ``(B, K, d)``, ``S[t]`` ``(B, K, d, d)``, ``m[t]`` and
    ``v[t]`` ``(B, K, N)``: the state after iteration ``t + 1``. ``elbo`` ``(B, iters)`` after
    each iteration; ``elbo_updates`` ``(B, 2·iters)`` after each coordinate update
    (``q(h)`` then ``q(z)``); ``elbo_init`` ``(B,)`` at the initial state. Binary variant
    (:mod:`tagger_binary`): ``m``/``v`` are moments of the logits, ``elbo`` is the
    Jaakkola–Jordan bound-ELBO with three ``elbo_updates`` per iteration, and ``x_probs[t]``
    ``(B, N)`` holds ``q(x_i = 1)`` (None for the Gaussian variant).
    """

    pi: list
    eta: list
    S: list
    m: list
    v: list
    elbo: torch.Tensor
    elbo_updates: torch.Tensor
    elbo_init: torch.Tensor
    x_probs: Optional[list] = None


def gaussian_log_density(x, mean, var):
    """``log N(x; mean, var)`` elementwise (broadcasting)."""
    return -0.5 * (LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)


def predicted_moments(eta, S, basis, offsets):
    """``m_ik = (B η_k + β_k)_i`` and ``v_ik = (B S_k Bᵀ)_ii`` → both ``(..., K, N)``."""
    m = eta @ basis.T + offsets
    v = torch.einsum("nd,...de,ne->...n", basis, S, basis).clamp_min(0.0)
    return m, v


def expected_log_likelihood_terms(x_noisy, m, v, lam):
    """``E_q(h)[log N(x̃_i; μ_ik, λ_k)] = −½ log 2πλ_k − ((x̃_i − m_ik)² + v_ik) / (2λ_k)``,
    ``(B, K, N)``; ``lam`` ``(K,)``."""
    lam = lam.unsqueeze(-1)
    return -0.5 * (LOG_2PI + torch.log(lam)) - ((x_noisy.unsqueeze(-2) - m) ** 2 + v) / (2.0 * lam)


def assignment_update(x_noisy, m, v, lam, log_rho):
    """``q(z)`` update: ``π_ik ∝ ρ_k exp(E[log N(x̃_i; μ_ik, λ_k)])`` (SPEC §2.3), normalised
    over ``k`` with ``log_softmax``. Returns ``(π, log π)``, ``(B, K, N)``."""
    logits = log_rho.unsqueeze(-1) + expected_log_likelihood_terms(x_noisy, m, v, lam)
    log_pi = torch.log_softmax(logits, dim=-2)
    return log_pi.exp(), log_pi


def appearance_update(x_noisy, pi, basis, offsets, lam):
    """``q(h_k)`` update: ``S_k⁻¹ = I + Bᵀ diag(π_k/λ_k) B``,
    ``η_k = S_k Bᵀ diag(π_k/λ_k)(x̃ − β_k)`` (SPEC §2.3), via Cholesky of ``S_k⁻¹``.
    Returns ``(η (B, K, d), S (B, K, d, d), log det S_k (B, K))``."""
    d = basis.shape[1]
    w = pi / lam.unsqueeze(-1)  # (B, K, N)
    prec = torch.eye(d, dtype=basis.dtype, device=basis.device) + torch.einsum("nd,bkn,ne->bkde", basis, w, basis)
    chol = torch.linalg.cholesky(prec)
    rhs = ((w * (x_noisy.unsqueeze(-2) - offsets)) @ basis).unsqueeze(-1)  # (B, K, d, 1)
    eta = torch.cholesky_solve(rhs, chol).squeeze(-1)
    eye = torch.eye(d, dtype=basis.dtype, device=basis.device).expand_as(prec)
    S = torch.cholesky_solve(eye, chol)
    S = 0.5 * (S + S.transpose(-1, -2))
    logdet_S = -2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return eta, S, logdet_S


def elbo_terms(x_noisy, pi, log_pi, eta, S, logdet_S, basis, offsets, lam, log_rho):
    """The five ELBO terms ``(B,)`` each, in the order
    ``E[log p(x̃|z,h)], E[log p(z)], E[log p(h)], H[q(z)], H[q(h)]`` (SPEC §2.3)."""
    m, v = predicted_moments(eta, S, basis, offsets)
    ell = (pi * expected_log_likelihood_terms(x_noisy, m, v, lam)).sum((-1, -2))
    # π log ρ and −π log π with the convention 0 log 0 = 0
    e_log_pz = (pi * log_rho.unsqueeze(-1)).sum((-1, -2))
    ent_z = -torch.where(pi > 0, pi * log_pi, torch.zeros_like(pi)).sum((-1, -2))
    e_log_ph, ent_h = appearance_elbo_terms(eta, S, logdet_S)
    return ell, e_log_pz, e_log_ph, ent_z, ent_h


def appearance_elbo_terms(eta, S, logdet_S):
    """``E_q[log p(h)]`` and ``H[q(h)]`` ``(B,)`` each, summed over groups, for
    ``p(h_k) = N(0, I_d)`` and ``q(h_k) = N(η_k, S_k)`` (shared by the Gaussian and binary ELBOs)."""
    d = eta.shape[-1]
    trace_S = torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)
    e_log_ph = (-0.5 * (d * LOG_2PI + (eta ** 2).sum(-1) + trace_S)).sum(-1)
    ent_h = (0.5 * d * (1.0 + LOG_2PI) + 0.5 * logdet_S).sum(-1)
    return e_log_ph, ent_h


def elbo(x_noisy, pi, log_pi, eta, S, logdet_S, basis, offsets, lam, log_rho):
    """``ELBO = E_q[log p(x̃|z,h)] + E_q[log p(z)] + E_q[log p(h)] + H[q(z)] + H[q(h)]``, ``(B,)``."""
    return sum(elbo_terms(x_noisy, pi, log_pi, eta, S, logdet_S, basis, offsets, lam, log_rho))


def run_vb(x_noisy, basis, offsets, lam, log_rho, iters: int, log_pi0, eta0, S0, logdet_S0) -> TaggerVBResult:
    """Coordinate ascent from ``(π₀, q₀(h))``: per iteration ``q(h_k)`` for all ``k``, then ``q(z)``."""
    log_pi, eta, S, logdet_S = log_pi0, eta0, S0, logdet_S0
    pi = log_pi.exp()
    args = (basis, offsets, lam, log_rho)
    out = dict(pi=[], eta=[], S=[], m=[], v=[])
    e_init = elbo(x_noisy, pi, log_pi, eta, S, logdet_S, *args)
    e_upd, e_iter = [], []
    for _ in range(int(iters)):
        eta, S, logdet_S = appearance_update(x_noisy, pi, basis, offsets, lam)
        e_upd.append(elbo(x_noisy, pi, log_pi, eta, S, logdet_S, *args))
        m, v = predicted_moments(eta, S, basis, offsets)
        pi, log_pi = assignment_update(x_noisy, m, v, lam, log_rho)
        e_upd.append(elbo(x_noisy, pi, log_pi, eta, S, logdet_S, *args))
        e_iter.append(e_upd[-1])
        for key, val in zip(("pi", "eta", "S", "m", "v"), (pi, eta, S, m, v)):
            out[key].append(val)
    stack = lambda xs: torch.stack(xs, -1) if xs else e_init.new_zeros(e_init.shape + (0,))  # noqa: E731
    return TaggerVBResult(**out, elbo=stack(e_iter), elbo_updates=stack(e_upd), elbo_init=e_init)


# ---------------------------------------------------------------- TAG inputs (Tagger eq. 4–5)
def mask_likelihood(x_noisy, z_est, lam):
    """``L(m)_ik = N(x̃_i; z_ik, λ_k) / Σ_h N(x̃_i; z_ih, λ_h)`` (SPEC §2.3), a softmax over
    groups of the log densities; ``x_noisy`` ``(B, N)``, ``z_est`` ``(B, K, N)``, ``lam``
    broadcastable to ``(B, K, N)`` — a per-group variance must be passed as ``(K, 1)``."""
    return torch.softmax(gaussian_log_density(x_noisy.unsqueeze(-2), z_est, lam), dim=-2)


def mean_gradient(x_noisy, z_est, m_est, lam):
    """``δz_ik = ∂/∂z_ik log Σ_h m_ih N(x̃_i; z_ih, λ_h) = r_ik (x̃_i − z_ik)/λ_k`` with
    ``r_ik = m_ik N_ik / Σ_h m_ih N_ih`` (SPEC §2.3; ``m_est`` plays the role of ``ρ``).
    Shapes as in :func:`mask_likelihood` (``lam`` per group as ``(K, 1)``)."""
    x = x_noisy.unsqueeze(-2)
    r = torch.softmax(torch.log(m_est) + gaussian_log_density(x, z_est, lam), dim=-2)
    return r * (x - z_est) / lam


def flipped_probs(z_est, flip_prob):
    """``ξ_k = z_k(1 − 2β) + β = p(x̃ = 1 | group k)`` for the bit-flip channel."""
    return z_est * (1.0 - 2.0 * flip_prob) + flip_prob


def binary_mean_gradient(x_noisy, z_est, m_est, flip_prob):
    """``δz_k = m_k / (Σ_h ξ_h m_h − 1 + x̃)`` (SPEC §2.3) — equal to
    ``∂/∂z_k log p(x̃) / (1 − 2β)`` with ``p(x̃=1) = Σ_h m_h ξ_h`` (``z_k`` is the group's
    probability of a clean 1, ``x̃ ∈ {0, 1}``). For ``x̃ = 1`` it is ``m_k / p(x̃=1)``, for
    ``x̃ = 0`` it is ``−m_k / p(x̃=0)``."""
    p1 = (m_est * flipped_probs(z_est, flip_prob)).sum(-2, keepdim=True)
    return m_est / (p1 - 1.0 + x_noisy.unsqueeze(-2))


def binary_mask_likelihood(x_noisy, z_est, flip_prob):
    """``L(m)_k = p(x̃ | group k) / Σ_h p(x̃ | group h)`` with ``p(x̃|k) = ξ_k^x̃ (1−ξ_k)^(1−x̃)``,
    a softmax over groups of the log probabilities."""
    xi = flipped_probs(z_est, flip_prob)
    x = x_noisy.unsqueeze(-2)
    logp = torch.where(x > 0.5, torch.log(xi), torch.log1p(-xi))
    return torch.softmax(logp, dim=-2)


def bernoulli_log_prob(x, log_p1, log_p0):
    """``x log p₁ + (1 − x) log p₀`` for ``x ∈ {0, 1}`` without ``0 · (−∞)`` NaNs."""
    return torch.where(x > 0.5, log_p1, log_p0)


def grouping_cost(x, pi, m, v, group_vars):
    """Slides' cost ``C = −Σ_i log Σ_k π_ik N(x_i; m_ik, σ_k² + v_ik)`` (SPEC §2.3), ``(B,)``;
    ``x`` ``(B, N)``, ``pi``/``m``/``v`` ``(B, K, N)``, ``group_vars`` ``σ_k²`` ``(K,)``."""
    var = group_vars.unsqueeze(-1) + v
    logp = torch.log(pi) + gaussian_log_density(x.unsqueeze(-2), m, var)
    return -torch.logsumexp(logp, dim=-2).sum(-1)


def binary_grouping_cost(x, pi, m):
    """Binary analogue of the slides' cost (ours; SPEC §2.3):
    ``C = −Σ_i log Σ_k π_ik m_ik^x_i (1 − m_ik)^(1 − x_i)`` with ``m_ik`` the group's
    probability that the clean pixel is 1 (what a binary TAG engine outputs as ``z_k``),
    ``x ∈ {0, 1}`` ``(B, N)``, ``pi``/``m`` ``(B, K, N)``; returns ``(B,)``."""
    logp = torch.log(pi) + bernoulli_log_prob(x.unsqueeze(-2), torch.log(m), torch.log1p(-m))
    return -torch.logsumexp(logp, dim=-2).sum(-1)

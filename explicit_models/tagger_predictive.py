"""Posterior predictive of the clean image in the Gaussian Tagger mixture (SPEC §2.3):
the denoising cost ``−Σ_i log p(x_i | x̃)`` of a grouping estimate, comparable with TAG's
``−Σ_i log Σ_k m_ik N(x_i; z_ik, v)`` (SPEC §3.3).

Given the group ``z_i = k`` and the appearance ``μ_ik``, the clean pixel's posterior is
Gaussian (product of ``N(x_i; μ_ik, σ_k²)`` and ``N(x̃_i; x_i, σ²)``)::

    x_i | z_i=k, μ_ik, x̃_i  ~  N( (σ² μ_ik + σ_k² x̃_i) / λ_k,  σ_k² σ² / λ_k ),   λ_k = σ_k² + σ²

* under mean-field VB, ``μ_ik ~ N(m_ik, v_ik)`` and ``q(z_i=k) = π_ik``: the mean is linear
  in ``μ_ik``, so ``q(x_i) = Σ_k π_ik N(x_i; (σ² m_ik + σ_k² x̃_i)/λ_k,
  σ_k²σ²/λ_k + (σ²/λ_k)² v_ik)`` exactly (:func:`vb_predictive_cost`);
* for posterior draws ``h^(s)`` (NUTS), ``p(x_i | x̃) ≈ (1/S) Σ_s Σ_k p(z_i=k | h^(s), x̃_i)
  N(x_i; (σ² μ_ik^(s) + σ_k² x̃_i)/λ_k, σ_k²σ²/λ_k)`` (:func:`sampled_predictive_cost`).
"""
from __future__ import annotations

import math

import torch

from .tagger_vb import gaussian_log_density


def conditional_clean_moments(x_noisy, mu, group_vars, noise_var):
    """Mean and variance of ``x_i | z_i=k, μ_ik, x̃_i``, ``(..., K, N)`` each (module doc)."""
    sk2 = group_vars.unsqueeze(-1)
    lam = sk2 + noise_var
    mean = (noise_var * mu + sk2 * x_noisy.unsqueeze(-2)) / lam
    return mean, (sk2 * noise_var / lam).expand_as(mean), noise_var / lam


def vb_predictive_cost(x, x_noisy, pi, m, v, group_vars, noise_var):
    """``−Σ_i log q(x_i)`` ``(B,)`` under a VB state ``(π, m, v)`` ``(B, K, N)``."""
    mean, var, gain = conditional_clean_moments(x_noisy, m, group_vars, noise_var)
    var = var + gain ** 2 * v
    log_pi = torch.log(pi.clamp_min(torch.finfo(pi.dtype).tiny))
    return -torch.logsumexp(log_pi + gaussian_log_density(x.unsqueeze(-2), mean, var), dim=-2).sum(-1)


def sampled_predictive_cost(x, x_noisy, assign_probs_s, mu_s, group_vars, noise_var):
    """``−Σ_i log (1/S) Σ_s Σ_k p(z_i=k | h^(s), x̃_i) N(x_i; ...)`` ``(B,)`` from ``S`` draws:
    ``assign_probs_s`` and ``mu_s`` ``(S, B, K, N)``."""
    mean, var, _ = conditional_clean_moments(x_noisy, mu_s, group_vars, noise_var)
    log_r = torch.log(assign_probs_s.clamp_min(torch.finfo(assign_probs_s.dtype).tiny))
    terms = log_r + gaussian_log_density(x.unsqueeze(-2), mean, var)            # (S, B, K, N)
    per_draw = torch.logsumexp(terms, dim=-2)                           # (S, B, N)
    log_p = torch.logsumexp(per_draw, dim=0) - math.log(per_draw.shape[0])
    return -log_p.sum(-1)

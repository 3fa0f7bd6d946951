"""Exact inference and the Bayes-optimal scores of the static Gaussian hierarchy.

SPEC §2.1 ("Exact posterior") and §4 (denoising MSE, Wiener baseline, Bayes error).
A Gaussian top is treated internally as a mixture with a single component (``K = 1``), so
one code path serves both; the public results report class quantities only for a
class-mixture top.

Given the class (component) ``c``, the joint of the stacked latents ``s = (s_0..s_L)`` and
``x̃`` is Gaussian. Its posterior precision ``P_c = Λ_c + σ_n⁻² E₀E₀ᵀ`` (block tridiagonal
prior precision plus the observation term on the ``s_0`` block) does not depend on ``x̃``,
and the posterior mean is affine in ``x̃``: ``E[s | x̃, c] = a_c + G_c x̃`` with
``a_c = P_c⁻¹ η_c`` and ``G_c = σ_n⁻² P_c⁻¹ E₀``. The Cholesky factorisation is done once
per class (and cached on the model); a batch of ``x̃`` then costs one matrix product.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from . import gaussian_ops as ops


@dataclass
class ExactPosterior:
    """Exact posterior of a batch of ``B`` corrupted inputs (SPEC §2.1).

    ``means[l]`` ``(B, n_l)`` = ``E[s_l | x̃]``; ``covs[l]`` = ``Cov(s_l | x̃)``, of shape
    ``(n_l, n_l)`` with a Gaussian top (it does not depend on ``x̃``) or ``(B, n_l, n_l)``
    with a mixture top, or ``None`` when not requested; ``class_probs`` ``(B, C)`` =
    ``p(c | x̃)``; ``log_evidence`` ``(B,)`` = ``log p(x̃)`` (differentiable in ``x̃``).
    Mixture top only: ``class_means[l]`` ``(B, C, n_l)`` = ``E[s_l | x̃, c]``,
    ``class_covs[l]`` ``(C, n_l, n_l)`` = ``Cov(s_l | x̃, c)``, ``class_log_evidence``
    ``(B, C)`` = ``log p(x̃ | c)``.
    """

    means: list
    covs: Optional[list]
    class_probs: Optional[torch.Tensor]
    log_evidence: torch.Tensor
    class_means: Optional[list] = None
    class_covs: Optional[list] = None
    class_log_evidence: Optional[torch.Tensor] = None


@dataclass
class _Operators:
    """Per-component constants: ``E[s | x̃, c] = a[c] + G[c] x̃``, ``Cov = cov[c]``;
    evidence ``p(x̃ | c) = N(x̃; ev_mean[c], ev_tril[c] ev_tril[c]ᵀ)``."""

    offsets: list
    a: torch.Tensor  # (K, N)
    G: torch.Tensor  # (K, N, n_0)
    cov: torch.Tensor  # (K, N, N)
    ev_mean: torch.Tensor  # (K, n_0)
    ev_tril: torch.Tensor  # (K, n_0, n_0)
    log_weights: torch.Tensor  # (K,)


def top_components(model):
    """``(means (K, n_L), precision diagonals (K, n_L), log weights (K,))`` of the top prior."""
    if model.has_mixture_top:
        return model.class_means, model.class_stds.pow(-2), model.class_probs.log()
    return (model.top_mean.unsqueeze(0), model.top_std.pow(-2).unsqueeze(0),
            model.top_mean.new_zeros(1))


def _cholesky(matrix: torch.Tensor, what: str) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(matrix)
    if bool((info != 0).any()):
        raise ValueError(f"{what} is not numerically positive definite; the model's variance "
                         "ratios are too extreme for this dtype")
    return chol


def operators(model) -> _Operators:
    """Build (once per model, then cached) the per-class posterior and evidence operators."""
    cached = model._cache.get("exact_operators")
    if cached is not None:
        return cached
    top_mean, top_prec, log_w = top_components(model)
    widths = model.widths
    off = ops.level_offsets(widths)
    n0 = widths[0]
    noise_prec = model.noise_std.pow(-2)
    # posterior precision and its Cholesky factor, one per component (SPEC §2.1)
    P = ops.chain_prior_precision(model.weights, model.stds, top_prec)
    P[..., :n0, :n0] += noise_prec * torch.eye(n0, dtype=P.dtype, device=P.device)
    chol = _cholesky(P, "the posterior precision")
    eta = ops.chain_prior_information(model.weights, model.biases, model.stds, top_mean, top_prec)
    a = torch.cholesky_solve(eta.unsqueeze(-1), chol).squeeze(-1)
    E0 = P.new_zeros(P.shape[:-1] + (n0,))
    E0[..., :n0, :] = noise_prec * torch.eye(n0, dtype=P.dtype, device=P.device)
    G = torch.cholesky_solve(E0, chol)
    cov = torch.cholesky_inverse(chol)
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    # evidence p(x̃ | c): prior moments propagated top-down, plus the corruption noise
    means, covs = ops.marginal_moments_top_down(model.weights, model.biases, model.stds,
                                                top_mean, torch.diag_embed(top_prec.reciprocal()))
    ev_cov = covs[0] + model.noise_std.pow(2) * torch.eye(n0, dtype=P.dtype, device=P.device)
    ev_tril = _cholesky(0.5 * (ev_cov + ev_cov.transpose(-1, -2)), "the evidence covariance")
    result = _Operators(off, a, G, cov, means[0], ev_tril, log_w)
    model._cache["exact_operators"] = result
    return result


def component_means(op: _Operators, x: torch.Tensor, stop: Optional[int] = None) -> torch.Tensor:
    """``E[s_0:stop | x̃, c]`` for every sample and component, shape ``(B, K, stop)``."""
    K, N, n0 = op.G.shape
    stop = N if stop is None else stop
    G = op.G[:, :stop, :].reshape(K * stop, n0)
    return (x @ G.T).reshape(x.shape[0], K, stop) + op.a[:, :stop]


def class_log_evidence(op: _Operators, x: torch.Tensor) -> torch.Tensor:
    """``log p(x̃ | c)`` ``(B, K)`` (SPEC §2.1)."""
    return ops.mvn_log_density_tril(x, op.ev_mean, op.ev_tril)


def exact_posterior(model, x: torch.Tensor, return_covs: bool = True) -> ExactPosterior:
    """Exact posterior of every level, ``p(c | x̃)`` and ``log p(x̃)`` (SPEC §2.1)."""
    op = operators(model)
    off = op.offsets
    L = model.depth
    joint_ev = class_log_evidence(op, x) + op.log_weights  # (B, K)
    log_evidence = torch.logsumexp(joint_ev, dim=-1)
    cm = component_means(op, x)  # (B, K, N)
    levels = range(L + 1)
    if not model.has_mixture_top:
        means = [cm[:, 0, off[l]:off[l + 1]] for l in levels]
        covs = [op.cov[0, off[l]:off[l + 1], off[l]:off[l + 1]].clone() for l in levels] if return_covs else None
        return ExactPosterior(means, covs, None, log_evidence)
    probs = torch.softmax(joint_ev, dim=-1)
    class_means = [cm[:, :, off[l]:off[l + 1]] for l in levels]
    class_covs = [op.cov[:, off[l]:off[l + 1], off[l]:off[l + 1]].clone() for l in levels]
    means = [torch.einsum("bk,bkn->bn", probs, m) for m in class_means]
    covs = None
    if return_covs:
        covs = []
        for m_c, S_c, m in zip(class_means, class_covs, means):
            n = S_c.shape[-1]
            d = m_c - m.unsqueeze(1)  # (B, K, n)
            within = (probs @ S_c.reshape(S_c.shape[0], n * n)).reshape(-1, n, n)
            covs.append(torch.baddbmm(within, (probs.unsqueeze(-1) * d).transpose(1, 2), d))
    return ExactPosterior(means, covs, probs, log_evidence, class_means, class_covs,
                          joint_ev - op.log_weights)


def optimal_denoiser(model, x: torch.Tensor) -> torch.Tensor:
    """Bayes-optimal denoiser ``E[s_0 | x̃]`` ``(B, n_0)`` (SPEC §4)."""
    op = operators(model)
    n0 = model.widths[0]
    cm = component_means(op, x, stop=n0)
    if not model.has_mixture_top:
        return cm[:, 0]
    probs = torch.softmax(class_log_evidence(op, x) + op.log_weights, dim=-1)
    return torch.einsum("bk,bkn->bn", probs, cm)


def bayes_mse(model, x: torch.Tensor) -> torch.Tensor:
    """Bayes-optimal denoising MSE on a batch, ``mean_b tr Cov(s_0 | x̃_b)`` (SPEC §4),
    summed over the ``n_0`` units. With a mixture top: ``Σ_c p(c|x̃) tr Cov(s_0|x̃,c)`` plus
    the spread of the class-conditional means (no ``(B, n, n)`` tensor is formed)."""
    op = operators(model)
    n0 = model.widths[0]
    traces = op.cov[:, :n0, :n0].diagonal(dim1=-2, dim2=-1).sum(-1)  # (K,)
    if not model.has_mixture_top:
        return traces[0].clone()
    probs = torch.softmax(class_log_evidence(op, x) + op.log_weights, dim=-1)
    return ops.mixture_trace_cov(probs, component_means(op, x, stop=n0), traces).mean()


def bayes_error(model, x: torch.Tensor) -> torch.Tensor:
    """Bayes-optimal classification error on a batch, ``mean_b (1 − max_c p(c | x̃_b))``."""
    if not model.has_mixture_top:
        raise ValueError("bayes_error needs a class-mixture top (class_means/class_stds/class_probs)")
    op = operators(model)
    probs = torch.softmax(class_log_evidence(op, x) + op.log_weights, dim=-1)
    return (1.0 - probs.max(dim=-1).values).mean()


def prior_marginals(model):
    """Class-averaged prior moments ``(means[l] (n_l,), covs[l] (n_l, n_l))`` of every level."""
    top_mean, top_prec, log_w = top_components(model)
    means, covs = ops.marginal_moments_top_down(model.weights, model.biases, model.stds,
                                                top_mean, torch.diag_embed(top_prec.reciprocal()))
    w = log_w.exp()
    out = [ops.mixture_moments(w, m, S) for m, S in zip(means, covs)]
    return [m for m, _ in out], [S for _, S in out]


def wiener(model):
    """Best affine denoiser from the exact marginal moments of ``s_0`` (SPEC §4).
    Returns ``(A, a, mse)`` with ``x̂ = x̃ @ A.T + a`` and ``mse`` its expected squared
    error summed over units."""
    cached = model._cache.get("wiener")
    if cached is None:
        means, covs = prior_marginals(model)
        cached = ops.wiener_filter(means[0], covs[0], model.noise_std.pow(2))
        model._cache["wiener"] = cached
    return tuple(t.clone() for t in cached)

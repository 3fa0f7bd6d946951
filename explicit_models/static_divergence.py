"""How far a Gaussian (or class-mixture) posterior approximation is from the exact posterior
of the static hierarchy, in closed form (SPEC §2.1, §3.5, §4).

An approximation is described by its moments on the stacked latents ``s = (s_0 .. s_L)``
(size ``N``, levels at ``gaussian_ops.level_offsets``), per component ``k`` (``K = 1`` for
a Gaussian top, ``K = C`` for a class-mixture top):

    q(c, s | x̃) = q(c | x̃) · N(s; mean_k, cov_k)

``means`` ``(B, K, N)``; either ``covs`` (full, broadcastable to ``(B, K, N, N)``) or
``variances`` (diagonal, broadcastable to ``(B, K, N)``); ``class_probs`` ``(B, C)`` (None
for a Gaussian top). The exact posterior has the same shape (``static_exact``: given ``c``
it is Gaussian with ``E[s | x̃, c] = a_c + G_c x̃`` and a data-independent covariance), so

    KL(q ‖ p(·|x̃)) = KL(q(c) ‖ p(c|x̃)) + Σ_c q(c) KL(N(mean_c, cov_c) ‖ N(E[s|x̃,c], Cov(s|x̃,c)))

and the ELBO is ``E_q log p(x̃, s, c) + H[q]`` (SPEC §2.1), computed here factor by factor
from the joint moments of ``q`` — a route independent of the exact posterior, so that
``ELBO = log p(x̃) − KL`` is a real check of both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from . import gaussian_ops as ops
from . import static_exact
from .gaussian_ops import LOG_2PI


def gaussian_kl(mean_q: torch.Tensor, mean_p: torch.Tensor, cov_p: torch.Tensor,
                cov_q: Optional[torch.Tensor] = None, var_q: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``KL(N(mean_q, Σ_q) ‖ N(mean_p, Σ_p))`` for a batch of samples:

        ½ [ tr(Σ_p⁻¹ Σ_q) + (m_p − m_q)ᵀ Σ_p⁻¹ (m_p − m_q) − N + log det Σ_p − log det Σ_q ]

    ``mean_q`` and ``mean_p`` ``(B, *K, N)``; ``cov_p`` ``(*K, N, N)`` (shared by the ``B``
    samples: the samples are solved as columns, no ``(B, *K, N, N)`` tensor is formed);
    ``Σ_q`` either full (``cov_q``, broadcastable to ``(B, *K, N, N)``) or diagonal
    (``var_q``, broadcastable to ``(B, *K, N)``). Returns ``(B, *K)``.
    """
    if (cov_q is None) == (var_q is None):
        raise ValueError("gaussian_kl: give exactly one of cov_q (full) or var_q (diagonal)")
    if mean_q.shape != mean_p.shape or mean_p.shape[1:] != cov_p.shape[:-1]:
        raise ValueError(f"gaussian_kl: means {tuple(mean_q.shape)} and {tuple(mean_p.shape)} must both be "
                         f"(B, *K, N) with cov_p (*K, N, N), got cov_p {tuple(cov_p.shape)}")
    n = mean_q.shape[-1]
    chol_p = torch.linalg.cholesky(cov_p)
    cols = (mean_p - mean_q).movedim(0, -1)  # (*K, N, B)
    maha = torch.linalg.solve_triangular(chol_p, cols, upper=False).pow(2).sum(-2).movedim(-1, 0)
    logdet_p = 2.0 * chol_p.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    prec_p = torch.cholesky_inverse(chol_p)
    if var_q is not None:
        trace = (prec_p.diagonal(dim1=-2, dim2=-1) * var_q).sum(-1)
        logdet_q = var_q.log().sum(-1)
    else:
        trace = (prec_p * cov_q).sum((-2, -1))
        logdet_q = 2.0 * torch.linalg.cholesky(cov_q).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (trace + maha - n + logdet_p - logdet_q)


def categorical_kl(q: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """``KL(q ‖ p) = Σ_c q_c (log q_c − log p_c)`` over the last dimension (``0 log 0 = 0``)."""
    return torch.special.xlogy(q, q).sum(-1) - (q * log_p).where(q > 0, torch.zeros_like(q)).sum(-1)


def chain_moments(top_mean: torch.Tensor, top_cov: torch.Tensor, links: list, offsets: list,
                  cond_covs: list):
    """Joint moments of a top-down Gaussian chain (the ladder guide's posterior, SPEC §3.5):
    ``s_L ~ N(top_mean, top_cov)``, ``s_l | s_l+1 ~ N(s_l+1 @ links[l].T + offsets[l], cond_covs[l])``.

    ``top_mean`` ``(..., n_L)``, ``offsets[l]`` ``(..., n_l)``; ``top_cov``, ``cond_covs[l]``
    and ``links[l]`` ``(n_l, n_l+1)`` may carry leading dims that broadcast. Returns the
    stacked ``(mean (..., N), cov (..., N, N))`` in level order ``s_0 .. s_L``.
    """
    L = len(links)
    means = [None] * (L + 1)
    means[L] = top_mean
    # cross[l][k] = Cov(s_l, s_k) for k >= l, built top-down: Cov(s_l, s_k) = A_l Cov(s_l+1, s_k)
    cross = {(L, L): top_cov}
    for l in reversed(range(L)):
        A = links[l]
        means[l] = means[l + 1] @ A.transpose(-1, -2) + offsets[l]
        for k in range(l + 1, L + 1):
            cross[(l, k)] = A @ cross[(l + 1, k)]
        cross[(l, l)] = cross[(l, l + 1)] @ A.transpose(-1, -2) + cond_covs[l]
    rows = []
    for l in range(L + 1):
        blocks = [cross[(l, k)] if k >= l else cross[(k, l)].transpose(-1, -2) for k in range(L + 1)]
        shape = torch.broadcast_shapes(*(b.shape[:-2] for b in blocks))
        rows.append(torch.cat([b.expand(shape + b.shape[-2:]) for b in blocks], dim=-1))
    shape = torch.broadcast_shapes(*(r.shape[:-2] for r in rows))
    cov = torch.cat([r.expand(shape + r.shape[-2:]) for r in rows], dim=-2)
    return torch.cat(means, dim=-1), 0.5 * (cov + cov.transpose(-1, -2))


def _check_moments(model, x, means, covs, variances, class_probs):
    N = sum(model.widths)
    K = model.num_classes if model.has_mixture_top else 1
    if means.dim() != 3 or tuple(means.shape) != (x.shape[0], K, N):
        raise ValueError(f"means: expected shape ({x.shape[0]}, {K}, {N}) = (B, K, N), got {tuple(means.shape)}")
    if (covs is None) == (variances is None):
        raise ValueError("give exactly one of covs (full) or variances (diagonal)")
    if model.has_mixture_top:
        if class_probs is None or tuple(class_probs.shape) != (x.shape[0], K):
            shape = None if class_probs is None else tuple(class_probs.shape)
            raise ValueError(f"class_probs: expected shape ({x.shape[0]}, {K}) for a class-mixture top, got {shape}")
    elif class_probs is not None:
        raise ValueError("class_probs: a Gaussian-top model has no class; pass None")


def posterior_kl(model, x_noisy, means, covs=None, variances=None, class_probs=None) -> torch.Tensor:
    """``KL(q ‖ p(c, s | x̃))`` per sample ``(B,)`` in nats (module docstring; SPEC §3.5, §4)."""
    x = model.check_x_noisy(x_noisy)
    _check_moments(model, x, means, covs, variances, class_probs)
    op = static_exact.operators(model)
    p_means = static_exact.component_means(op, x)  # (B, K, N)
    kl = gaussian_kl(means, p_means, op.cov, cov_q=covs, var_q=variances)  # (B, K)
    if not model.has_mixture_top:
        return kl[:, 0]
    log_p_c = torch.log_softmax(static_exact.class_log_evidence(op, x) + op.log_weights, dim=-1)
    return categorical_kl(class_probs, log_p_c) + (class_probs * kl).sum(-1)


def expected_log_joint(model, x_noisy, means, covs=None, variances=None, class_probs=None) -> torch.Tensor:
    """``E_q log p(x̃, s, c)`` per sample ``(B,)`` (SPEC §2.1): every factor's expected log
    density from the mean and covariance of its residual under ``q`` (cross-level covariances
    included), averaged over ``q(c)``. Needs ``covs``, or ``variances`` (levels independent)."""
    x = model.check_x_noisy(x_noisy)
    _check_moments(model, x, means, covs, variances, class_probs)
    off = ops.level_offsets(model.widths)
    L = model.depth
    full = covs is not None

    def block(l, k):  # Cov_q(s_l, s_k) (..., n_l, n_k); zero across levels when diagonal
        if full:
            return covs[..., off[l]:off[l + 1], off[k]:off[k + 1]]
        if l != k:
            return None
        return torch.diag_embed(variances[..., off[l]:off[l + 1]])

    def expected(mean_resid, cov_resid, std):  # E log N(r; 0, diag std²) for r ~ (mean, cov)
        quad = (mean_resid.pow(2) + cov_resid.diagonal(dim1=-2, dim2=-1)) / std.pow(2)
        return -0.5 * (quad + LOG_2PI).sum(-1) - std.log().expand_as(quad).sum(-1)

    m = [means[..., off[l]:off[l + 1]] for l in range(L + 1)]
    xk = x.unsqueeze(1)
    total = expected(xk - m[0], block(0, 0), model.noise_std.expand(model.widths[0]))
    for l in range(L):
        W = model.weights[l]
        cross = block(l, l + 1)
        cov_r = block(l, l) + W @ block(l + 1, l + 1) @ W.T
        if cross is not None:
            cov_r = cov_r - cross @ W.T - W @ cross.transpose(-1, -2)
        total = total + expected(m[l] - m[l + 1] @ W.T - model.biases[l], cov_r, model.stds[l])
    if not model.has_mixture_top:
        return (total + expected(m[L] - model.top_mean, block(L, L), model.top_std))[:, 0]
    top = expected(m[L] - model.class_means, block(L, L), model.class_stds) + model.class_probs.log()
    return (class_probs * (total + top)).sum(-1)


def gaussian_elbo(model, x_noisy, means, covs=None, variances=None, class_probs=None) -> torch.Tensor:
    """``E_q log p(x̃, s, c) + H[q]`` per sample ``(B,)`` in closed form (SPEC §2.1), with
    ``H[q] = H[q(c)] + Σ_c q(c) H[N(mean_c, cov_c)]``."""
    out = expected_log_joint(model, x_noisy, means, covs, variances, class_probs)
    N = means.shape[-1]
    if covs is not None:
        logdet = 2.0 * torch.linalg.cholesky(covs).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    else:
        logdet = variances.log().sum(-1)
    entropy = ops.gaussian_entropy_from_logdet(N, logdet).expand(means.shape[:-1])  # (B, K)
    if not model.has_mixture_top:
        return out + entropy[:, 0]
    return out + (class_probs * entropy).sum(-1) - torch.special.xlogy(class_probs, class_probs).sum(-1)


@dataclass
class GaussianApproximation:
    """``q(c, s | x̃)`` by its moments on the stacked latents (module docstring): ``means``
    ``(B, K, N)``; ``covs`` (full, broadcastable to ``(B, K, N, N)``) or ``variances``
    (diagonal, ``(B, K, N)``); ``class_probs`` ``(B, C)`` or None (Gaussian top)."""

    means: torch.Tensor
    covs: Optional[torch.Tensor] = None
    variances: Optional[torch.Tensor] = None
    class_probs: Optional[torch.Tensor] = None

    def kl(self, model, x_noisy) -> torch.Tensor:
        """``KL(q ‖ p(c, s | x̃))`` per sample, see :func:`posterior_kl`."""
        return posterior_kl(model, x_noisy, self.means, self.covs, self.variances, self.class_probs)

    def elbo(self, model, x_noisy) -> torch.Tensor:
        """The ELBO per sample in closed form, see :func:`gaussian_elbo`."""
        return gaussian_elbo(model, x_noisy, self.means, self.covs, self.variances, self.class_probs)


def from_vb(model, means: list, covs: list, class_probs=None, covariance: str = "full") -> GaussianApproximation:
    """The mean-field VB posterior ``q(c) Π_l N(m_l, V_l)`` (SPEC §2.1; a ``VBFixedPoint``'s
    or ``VBResult``'s state) as a :class:`GaussianApproximation` with a block-diagonal
    covariance (``(1, N, N)``, or ``(B, 1, N, N)`` when the top block depends on the sample)."""
    K = model.num_classes if model.has_mixture_top else 1
    stacked = torch.cat(means, dim=-1)
    B, N = stacked.shape
    mean = stacked.unsqueeze(1).expand(B, K, N)
    if covariance == "diagonal":
        var = torch.cat([v.expand(B, v.shape[-1]) for v in covs], dim=-1)
        return GaussianApproximation(mean, variances=var.unsqueeze(1).expand(B, K, N), class_probs=class_probs)
    batched = any(V.dim() == 3 for V in covs)
    blocks = [V.expand(B, *V.shape[-2:]) if batched else V for V in covs]
    cov = torch.block_diag(*blocks) if not batched else torch.stack(
        [torch.block_diag(*(V[b] for V in blocks)) for b in range(B)])
    return GaussianApproximation(mean, covs=cov.unsqueeze(-3), class_probs=class_probs)

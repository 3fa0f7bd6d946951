"""Pure Gaussian algebra for the static hierarchy (SPEC §2.1 and §4).

Small, stateless functions named after the mathematics, in the style of
``pyro/ops/gaussian.py``. Every function works in any floating dtype (float64 is what the
library uses), on any device, and is batched over leading dimensions where stated. Nothing
here knows about model objects: inputs are tensors and lists of per-level tensors.

Conventions: levels ``s_0 .. s_L``; ``weights[l]`` has shape ``(n_l, n_l+1)``;
``stds[l]`` and ``biases[l]`` have shape ``(n_l,)``; the stacked latent vector is
``s = (s_0, ..., s_L)`` of size ``N = Σ n_l``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

#: ``log 2π``, the constant of every Gaussian log density here and in the model modules
LOG_2PI = math.log(2.0 * math.pi)


def level_offsets(widths: Sequence[int]) -> list[int]:
    """Start index of every level in the stacked vector, plus the total ``N`` at the end."""
    offsets = [0]
    for n in widths:
        offsets.append(offsets[-1] + int(n))
    return offsets


def marginal_moments_top_down(weights, biases, stds, top_mean, top_cov):
    """Prior marginal moments of every level, propagated top-down (SPEC §2.1):
    ``mean_l = W_l mean_l+1 + b_l``, ``cov_l = W_l cov_l+1 W_lᵀ + diag σ_l²``.

    ``top_mean`` ``(..., n_L)`` and ``top_cov`` ``(..., n_L, n_L)`` may carry leading
    (class) dimensions. Returns ``(means, covs)``, lists indexed by level ``0..L``.
    """
    depth = len(weights)
    means = [None] * (depth + 1)
    covs = [None] * (depth + 1)
    means[depth], covs[depth] = top_mean, top_cov
    for l in reversed(range(depth)):
        W = weights[l]
        means[l] = means[l + 1] @ W.T + biases[l]
        cov = W @ covs[l + 1] @ W.T
        covs[l] = cov + torch.diag_embed(stds[l].pow(2)).expand_as(cov)
    return means, covs


def chain_prior_precision(weights, stds, top_precision_diag: torch.Tensor) -> torch.Tensor:
    """Block-tridiagonal prior precision of the stacked latents (SPEC §2.1).

    With ``D_l = diag σ_l²``: block ``(l, l)`` is ``D_l⁻¹ + W_l-1ᵀ D_l-1⁻¹ W_l-1`` (the
    first term replaced at the top by ``diag(top_precision_diag)``), block ``(l, l+1)`` is
    ``−D_l⁻¹ W_l``. ``top_precision_diag`` ``(..., n_L)`` may have leading (class) dims;
    the result has shape ``(..., N, N)``.
    """
    widths = [s.shape[-1] for s in stds] + [top_precision_diag.shape[-1]]
    off = level_offsets(widths)
    depth = len(weights)
    ref = top_precision_diag
    Lam = ref.new_zeros(ref.shape[:-1] + (off[-1], off[-1]))
    for l in range(depth):
        a, b, c = off[l], off[l + 1], off[l + 2]
        prec = stds[l].pow(-2)
        PW = prec[:, None] * weights[l]  # D_l⁻¹ W_l
        Lam[..., a:b, a:b] += torch.diag(prec)
        Lam[..., a:b, b:c] -= PW
        Lam[..., b:c, a:b] -= PW.T
        Lam[..., b:c, b:c] += weights[l].T @ PW
    a, b = off[depth], off[depth + 1]
    Lam[..., a:b, a:b] += torch.diag_embed(top_precision_diag)
    return Lam


def chain_prior_information(weights, biases, stds, top_mean, top_precision_diag) -> torch.Tensor:
    """Information vector ``Λ E[s]`` of the stacked prior (SPEC §2.1): block ``l`` gets
    ``D_l⁻¹ b_l``, block ``l+1`` gets ``−W_lᵀ D_l⁻¹ b_l``, the top block
    ``diag(top_precision_diag) μ_top``. Leading (class) dims of the top are kept."""
    widths = [s.shape[-1] for s in stds] + [top_mean.shape[-1]]
    off = level_offsets(widths)
    depth = len(weights)
    eta = top_mean.new_zeros(top_mean.shape[:-1] + (off[-1],))
    for l in range(depth):
        a, b, c = off[l], off[l + 1], off[l + 2]
        Db = biases[l] * stds[l].pow(-2)
        eta[..., a:b] += Db
        eta[..., b:c] -= Db @ weights[l]
    eta[..., off[depth]:] += top_precision_diag * top_mean
    return eta


def mvn_log_density_tril(x: torch.Tensor, mean: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """``log N(x_b; mean_k, L_k L_kᵀ)`` for every sample ``b`` and component ``k``.

    ``x`` ``(B, n)``; ``mean`` ``(*K, n)``; ``scale_tril`` ``(*K, n, n)`` (lower Cholesky
    factor). Returns ``(B, *K)``. The samples are solved as the columns of one triangular
    system per component, so no ``(B, *K, n, n)`` tensor is ever formed.
    """
    k_dims = mean.dim() - 1
    diff = x.reshape((x.shape[0],) + (1,) * k_dims + (x.shape[-1],)) - mean  # (B, *K, n)
    cols = diff.movedim(0, -1)  # (*K, n, B)
    z = torch.linalg.solve_triangular(scale_tril, cols, upper=False)
    maha = z.pow(2).sum(-2).movedim(-1, 0)  # (B, *K)
    half_logdet = scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return -0.5 * (x.shape[-1] * LOG_2PI + maha) - half_logdet


def diag_normal_log_density(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``Σ_j log N(x_j; mean_j, std_j²)`` over the last dimension."""
    z = (x - mean) / std
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1) - std.log().expand_as(z).sum(-1)


def mixture_moments(probs: torch.Tensor, means: torch.Tensor, covs: torch.Tensor):
    """Mean and covariance of a Gaussian mixture (SPEC §4, Wiener baseline):
    ``m = Σ_c π_c m_c``, ``S = Σ_c π_c (S_c + (m_c − m)(m_c − m)ᵀ)`` (within + between).
    ``probs`` ``(C,)``, ``means`` ``(C, n)``, ``covs`` ``(C, n, n)``."""
    m = probs @ means
    d = means - m
    S = torch.einsum("c,cij->ij", probs, covs) + torch.einsum("c,ci,cj->ij", probs, d, d)
    return m, 0.5 * (S + S.T)


def mixture_trace_cov(probs: torch.Tensor, means: torch.Tensor, cov_traces: torch.Tensor) -> torch.Tensor:
    """``tr Cov`` of a Gaussian mixture without forming the covariance (SPEC §4):
    ``Σ_c p_c tr S_c + Σ_c p_c ||m_c − m||²``. ``probs`` ``(B, C)``, ``means`` ``(B, C, n)``,
    ``cov_traces`` ``(C,)``; returns ``(B,)``."""
    m = torch.einsum("bc,bcn->bn", probs, means)
    spread = (means - m.unsqueeze(1)).pow(2).sum(-1)
    return probs @ cov_traces + (probs * spread).sum(-1)


def wiener_filter(mean: torch.Tensor, cov: torch.Tensor, noise_var: torch.Tensor):
    """Best affine estimator of ``x`` from ``x̃ = x + ε``, ``ε ~ N(0, σ_n² I)`` (SPEC §4).

    With ``Cov x = S``: ``A = S (S + σ_n² I)⁻¹``, ``a = m − A m``; its expected squared
    error summed over units is ``tr(S − A S) = σ_n² tr A``. Returns ``(A, a, mse)``.
    """
    n = cov.shape[-1]
    eye = torch.eye(n, dtype=cov.dtype, device=cov.device)
    chol = torch.linalg.cholesky(cov + noise_var * eye)
    # (S + σ²I)⁻¹ S = I − σ² (S + σ²I)⁻¹ ; S and (S + σ²I) commute, so A is symmetric
    A = eye - noise_var * torch.cholesky_inverse(chol)
    A = 0.5 * (A + A.T)
    a = mean - A @ mean
    return A, a, noise_var * torch.diagonal(A).sum()


def gaussian_entropy_from_logdet(n: int, logdet_cov: torch.Tensor) -> torch.Tensor:
    """Differential entropy ``½ log det(2πe V) = ½ n (1 + log 2π) + ½ log det V``."""
    return 0.5 * n * (1.0 + LOG_2PI) + 0.5 * logdet_cov


def gated_update(top_down: torch.Tensor, bottom_up: torch.Tensor, prior_var: torch.Tensor,
                 likelihood_var: torch.Tensor):
    """The gated ("Ladder") form of a scalar/diagonal Gaussian update (SPEC §2.1).

    ``gate = sig(log prior_var − log likelihood_var)`` and
    ``m = gate ⊙ bottom_up + (1 − gate) ⊙ top_down``: the precision-weighted average of a
    top-down prediction (variance ``prior_var``) and a bottom-up estimate (variance
    ``likelihood_var``). ``1 − gate`` is evaluated as ``sig(−·)`` so neither weight loses
    relative precision when the other is close to one. Returns ``(m, gate)``.
    """
    logit = torch.log(prior_var) - torch.log(likelihood_var)
    gate = torch.sigmoid(logit)
    m = gate * bottom_up + torch.sigmoid(-logit) * top_down
    return m, gate

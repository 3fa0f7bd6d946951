"""Exact inference in the temporal Gaussian hierarchy: the state-space form, the Kalman
filter with masked observations and the Rauch–Tung–Striebel smoother (SPEC §2.2).

Stacking ``s_t = (s_0,t, .., s_L,t)`` (size ``N = Σ n_l``), with ``A = blockdiag(A_l)``,
``B`` the strictly block-upper matrix holding ``W_l`` in block ``(l, l+1)`` and
``D = diag σ²``, the model ``(I − B) s_t = A s_t-1 + ε_t`` is the linear dynamical system

    s_t = M s_t-1 + η_t,   M = (I − B)⁻¹ A,   η_t ~ N(0, Q),  Q = (I − B)⁻¹ D (I − B)⁻ᵀ
    x̃_t = H s_t + N(0, σ_n² I),   H = [I_n0 0 .. 0]     (entries with o_t = 0 unobserved)

started from ``s_0 ~ N(μ_init, diag σ_init²)`` (the state *before* the first step; no
observation at ``t = 0``).

Masked observations stay batched by giving an occluded entry zero observation
precision: with ``S = H P Hᵀ`` the innovation covariance used is
``S_o = (o oᵀ) ⊙ S + diag(o σ_n² + (1 − o))`` and the innovation ``v = o ⊙ (x̃ − H m)``.
After permuting visible entries first ``S_o = blockdiag(S_vv + σ_n² I, I)``, so the gain
``K = P Hᵀ diag(o) S_o⁻¹`` has zero columns at occluded entries, ``log det S_o`` and
``vᵀ S_o⁻¹ v`` are those of the visible sub-problem, and every sample keeps its own mask.
The covariance update uses the Joseph form (symmetric and positive by construction).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from . import gaussian_ops as ops
from .gaussian_ops import LOG_2PI



@dataclass
class StateSpace:
    """``s_t = M s_t-1 + N(0, Q)``, ``s_0 ~ N(init_mean, init_cov)``, ``x_t = s_t[:n_0]``.
    ``coupling = (I − B)⁻¹`` maps the level innovations ``ε_t`` to ``η_t``."""

    M: torch.Tensor  # (N, N)
    Q: torch.Tensor  # (N, N)
    init_mean: torch.Tensor  # (N,)
    init_cov: torch.Tensor  # (N, N)
    coupling: torch.Tensor  # (N, N)
    offsets: list
    obs_dim: int


@dataclass
class KalmanResult:
    """Kalman filter on a batch of ``B`` sequences of ``T`` frames (SPEC §2.2).

    Time index convention (all temporal results): index ``t`` = after the frames
    ``1..t``; index 0 is the state before the first frame, ``s_0``.
    ``filtered_means`` ``(B, T+1, N)``, ``filtered_covs`` ``(B, T+1, N, N)``: index ``t``
    holds ``E / Cov[s_t | x̃_1:t]`` (index 0: the prior of ``s_0``).
    ``predicted_means`` ``(B, T+1, N)``, ``predicted_covs`` ``(B, T+1, N, N)``: index ``t``
    holds ``E / Cov[s_t+1 | x̃_1:t]`` (index ``T`` predicts the frame after the data).
    ``obs_means`` ``(B, T+1, n_0)``: index ``t`` = ``E[x_t+1 | x̃_1:t]``, the optimal
    one-step-ahead prediction of the clean (and of the noisy) observation; ``obs_covs``
    ``(B, T+1, n_0, n_0)`` = ``Cov(x̃_t+1 | x̃_1:t)`` of the *noisy* observation (the clean
    ``x_t+1`` has ``σ_n² I`` less: :meth:`clean_prediction_trace`).
    ``step_log_likelihood`` ``(B, T)`` = ``log p(x̃_t,visible | x̃_1:t-1)``;
    ``log_likelihood`` ``(B,)`` their sum.
    """

    filtered_means: torch.Tensor
    filtered_covs: torch.Tensor
    predicted_means: torch.Tensor
    predicted_covs: torch.Tensor
    obs_means: torch.Tensor
    obs_covs: torch.Tensor
    step_log_likelihood: torch.Tensor
    log_likelihood: torch.Tensor
    noise_var: torch.Tensor

    def clean_prediction_trace(self) -> torch.Tensor:
        """``tr Cov(x_t+1 | x̃_1:t)`` of the clean observation, ``(B, T+1)``: at index ``t``
        the Bayes-optimal MSE of predicting ``x_t+1`` from ``x̃_1:t`` (summed over units)."""
        n0 = self.obs_covs.shape[-1]
        return self.obs_covs.diagonal(dim1=-2, dim2=-1).sum(-1) - n0 * self.noise_var


@dataclass
class SmootherResult:
    """RTS smoother: ``means`` ``(B, T+1, N)`` and ``covs`` ``(B, T+1, N, N)`` hold
    ``E / Cov[s_t | x̃_1:T]`` at index ``t = 0..T`` (index 0: the state before the first
    frame); ``filter`` the :class:`KalmanResult` it was built on."""

    means: torch.Tensor
    covs: torch.Tensor
    filter: KalmanResult

    @property
    def log_likelihood(self) -> torch.Tensor:
        return self.filter.log_likelihood


def _sym(P: torch.Tensor) -> torch.Tensor:
    return 0.5 * (P + P.transpose(-1, -2))


def block_matrices(model):
    """``(A, B, D)``: ``blockdiag(A_l)``, the strictly block-upper ``B`` of the ``W_l``
    blocks and the diagonal ``σ²`` (``N``-vector) of the stacked level innovations."""
    off = ops.level_offsets(model.widths)
    N = off[-1]
    A = model.transitions[0].new_zeros(N, N)
    B = torch.zeros_like(A)
    for l, A_l in enumerate(model.transitions):
        A[off[l]:off[l + 1], off[l]:off[l + 1]] = A_l
    for l, W in enumerate(model.weights):
        B[off[l]:off[l + 1], off[l + 1]:off[l + 2]] = W
    return A, B, torch.cat(model.stds).pow(2)


def state_space(model) -> StateSpace:
    """The LDS form of the model (cached on it): ``M = (I − B)⁻¹ A``,
    ``Q = (I − B)⁻¹ D (I − B)⁻ᵀ`` (SPEC §2.2 "Exact")."""
    cached = model._cache.get("state_space")
    if cached is not None:
        return cached
    A, B, d = block_matrices(model)
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    F = torch.linalg.solve_triangular(eye - B, eye, upper=True, unitriangular=True)
    Q = _sym((F * d) @ F.T)
    init_cov = torch.diag(torch.cat(model.init_stds).pow(2))
    result = StateSpace(F @ A, Q, torch.cat(model.init_means), init_cov, F,
                        ops.level_offsets(model.widths), model.widths[0])
    model._cache["state_space"] = result
    return result


def masked_update(mean, cov, x, o, noise_var):
    """One masked Kalman measurement update (see module docstring), batched.

    ``mean`` ``(B, N)``, ``cov`` ``(B, N, N)``, ``x`` and ``o`` (float 0/1) ``(B, n_0)``.
    Returns ``(mean⁺, cov⁺, log p(x̃_visible | past))``."""
    n0 = x.shape[-1]
    S = cov[:, :n0, :n0] * (o.unsqueeze(-1) * o.unsqueeze(-2)) + torch.diag_embed(o * noise_var + (1.0 - o))
    chol = torch.linalg.cholesky(_sym(S))
    v = o * (x - mean[:, :n0])
    Kt = torch.cholesky_solve(o.unsqueeze(-1) * cov[:, :n0, :], chol)  # (B, n0, N) = Kᵀ
    mean = mean + (v.unsqueeze(-2) @ Kt).squeeze(-2)
    K = Kt.transpose(-1, -2)
    IKH = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device).repeat(cov.shape[0], 1, 1)
    IKH[:, :, :n0] -= K
    cov = IKH @ cov @ IKH.transpose(-1, -2) + (K * (o * noise_var).unsqueeze(-2)) @ Kt
    z = torch.linalg.solve_triangular(chol, v.unsqueeze(-1), upper=False).squeeze(-1)
    half_logdet = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return mean, _sym(cov), -0.5 * (o.sum(-1) * LOG_2PI + z.pow(2).sum(-1)) - half_logdet


def predict(ss: StateSpace, mean, cov):
    """Time update ``m ← M m``, ``P ← M P Mᵀ + Q``."""
    return mean @ ss.M.T, _sym(ss.M @ cov @ ss.M.T + ss.Q)


def kalman_filter(model, x: torch.Tensor, o: torch.Tensor) -> KalmanResult:
    """Kalman filter with masked observations (SPEC §2.2). ``x`` ``(B, T, n_0)`` (values
    at occluded entries are ignored), ``o`` ``(B, T, n_0)`` float 0/1."""
    ss = state_space(model)
    Bsz, T, n0 = x.shape
    noise_var = model.noise_std.pow(2)
    mean, cov = ss.init_mean.expand(Bsz, -1), ss.init_cov.expand(Bsz, -1, -1)
    f_m, f_P, p_m, p_P, ll = [mean], [cov], [], [], []
    for t in range(T + 1):
        mean, cov = predict(ss, mean, cov)
        p_m.append(mean)
        p_P.append(cov)
        if t == T:
            break
        mean, cov, step_ll = masked_update(mean, cov, x[:, t], o[:, t], noise_var)
        f_m.append(mean)
        f_P.append(cov)
        ll.append(step_ll)
    p_m, p_P = torch.stack(p_m, 1), torch.stack(p_P, 1)
    eye = torch.eye(n0, dtype=x.dtype, device=x.device)
    step_ll = torch.stack(ll, 1) if ll else x.new_zeros(Bsz, 0)
    return KalmanResult(torch.stack(f_m, 1), torch.stack(f_P, 1), p_m, p_P, p_m[..., :n0],
                        p_P[..., :n0, :n0] + noise_var * eye, step_ll, step_ll.sum(-1), noise_var)


def rts_smoother(model, x: torch.Tensor, o: torch.Tensor,
                 filtered: Optional[KalmanResult] = None) -> SmootherResult:
    """Rauch–Tung–Striebel smoother (SPEC §2.2): backwards from ``t = T`` with the gain
    ``G_t = P_t|t Mᵀ P_t+1|t⁻¹``, ``m_t|T = m_t|t + G_t (m_t+1|T − m_t+1|t)``,
    ``P_t|T = P_t|t + G_t (P_t+1|T − P_t+1|t) G_tᵀ``, down to the initial state ``s_0``."""
    ss = state_space(model)
    kf = kalman_filter(model, x, o) if filtered is None else filtered
    T = x.shape[1]
    means, covs = [kf.filtered_means[:, T]], [kf.filtered_covs[:, T]]
    for t in range(T - 1, -1, -1):
        P_t, P_pred, m_pred = kf.filtered_covs[:, t], kf.predicted_covs[:, t], kf.predicted_means[:, t]
        Gt = torch.cholesky_solve(ss.M @ P_t, torch.linalg.cholesky(P_pred))  # Gᵀ = P_pred⁻¹ M P_t|t
        means.append(kf.filtered_means[:, t] + ((means[-1] - m_pred).unsqueeze(-2) @ Gt).squeeze(-2))
        covs.append(_sym(P_t + Gt.transpose(-1, -2) @ (covs[-1] - P_pred) @ Gt))
    return SmootherResult(torch.stack(means[::-1], 1), torch.stack(covs[::-1], 1), kf)


@dataclass
class PredictionMSE:
    """Monte Carlo estimate of the Bayes-optimal next-frame prediction MSE (SPEC §4).

    ``per_step[t-1]`` = ``E tr Cov(x_t+1 | x̃_1:t)`` (clean target, summed over units) for
    ``t = 1..steps``, ``per_step_sem`` its standard error; ``mean`` the average over steps
    (a per-sequence average, so ``sem`` accounts for the correlation across steps)."""

    per_step: list
    per_step_sem: list
    mean: float
    sem: float
    num_sequences: int


def optimal_prediction_mse(model, num_sequences: int, steps: int, visibility=None, seed: int = 0,
                           batch_size: int = 1000) -> PredictionMSE:
    """``E tr Cov(x_t+1 | x̃_1:t)`` over fresh sequences (masks drawn per ``visibility``, see
    ``sample``), ``t = 1..steps``. The trace is Rao-Blackwellised (exact given the masks);
    the Monte Carlo error comes from the random masks only, so without occlusion
    ``sem`` is 0."""
    n, steps = int(num_sequences), int(steps)
    if n < 2 or steps < 1:
        raise ValueError(f"num_sequences must be >= 2 and steps >= 1, got {num_sequences}, {steps}")
    g = torch.Generator().manual_seed(int(seed))
    traces = []
    for start in range(0, n, batch_size):
        s = model.sample(min(batch_size, n - start), steps, generator=g, visibility=visibility)
        kf = kalman_filter(model, *model.check_inputs(s.x_noisy, s.visibility))
        traces.append(kf.clean_prediction_trace()[:, 1:])
    tr = torch.cat(traces)
    per_seq = tr.mean(1)
    return PredictionMSE(tr.mean(0).tolist(), (tr.std(0) / n ** 0.5).tolist(), float(per_seq.mean()),
                         float(per_seq.std() / n ** 0.5), n)

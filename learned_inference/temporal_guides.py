"""Amortised Pyro guides for the temporal Gaussian hierarchy (SPEC §2.2, §3.5; the thesis'
VAE–Ladder hybrid in ``papers/``, in the Ladder-VAE form, run over time).

Both guides take the model's ``pyro_model`` signature (``guide(x_noisy, visibility)``, the
occluded entries masked as in the model), register their parameters with ``pyro.module``
and sample one site ``s_{l}_{t}`` per latent of the model (``t = 0..T``) inside
``pyro.plate("data", B)``. ``approximation(x_noisy, visibility)`` gives their Gaussian over
the whole trajectory for the closed-form scores of :mod:`explicit_models.temporal_divergence`.

* :class:`TemporalLadderGuide` — a deterministic bottom-up pass runs *backwards* over the
  frames and gives, per frame, a Gaussian message in information form on the stacked state
  ``s_t`` (precision ``Λ_t``, information ``η_t(x̃_t:T, o_t:T)``), a recurrent cell of the
  backward information filter's form with learned maps (``Û``, ``P̂_obs``, ``M̂``, ``Q̂``):

      Λ_t = Ûᵀ (o_t P̂_obs o_tᵀ) Û + M̂ᵀ (I + Λ_t+1 Q̂)⁻¹ Λ_t+1 M̂
      η_t = Ûᵀ (o_t P̂_obs o_tᵀ) x̃_t + M̂ᵀ (I + Λ_t+1 Q̂)⁻¹ η_t+1

  Then a stochastic pass forward in time and top-down within a frame: the model's own prior
  message ``p(s_t | s_t-1)`` — from the previous frame (``A_l s_l,t-1``) and the level above
  (``W_l s_l+1,t``), precision ``Q⁻¹ = (I − B)ᵀ D⁻¹ (I − B)``, information ``G s_t-1`` with
  ``G = (I − B)ᵀ D⁻¹ A`` (``temporal_exact``'s block matrices) — is combined with the
  bottom-up message by precision weighting, the Ladder combinator's Gaussian case:

      q(s_t | s_t-1, x̃) = N(P_t⁻¹ (G s_t-1 + η_t), P_t⁻¹),   P_t = Q⁻¹ + Λ_t

  (at ``t = 0`` the prior ``N(μ_init, D_init)`` instead). The levels of a frame are drawn
  top-down from it: with ``P_t = C Cᵀ`` (``C`` lower triangular in level order ``0..L``),
  ``s_l,t | s_>l,t`` is ``N(μ_l − C_llᵀ⁻¹ Σ_k>l C_klᵀ (s_k − μ_k), (C_ll C_llᵀ)⁻¹)``.
  The backward information filter of the model has exactly this form (``Û = [I 0]``,
  ``P̂_obs = σ_n⁻² I``, ``M̂ = M``, ``Q̂ = Q``), so the family contains the exact posterior,
  occlusion included, and the KL can go to zero.
* :class:`TemporalMeanFieldGuide` — the plain encoder for contrast: a bidirectional GRU over
  the frames (inputs ``(o_t ⊙ x̃_t, o_t)``, a zero frame at ``t = 0``) and independent
  diagonal Gaussians ``q(s_l,t | x̃) = N(loc, diag scale²)`` from linear heads.

Everything is float64 by default, like the explicit models.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from explicit_models import gaussian_ops as ops
from explicit_models.temporal_divergence import TrajectoryApproximation
from explicit_models.temporal_exact import block_matrices

from .guides import MessagePrecision, _inverse_and_tril

SOFTPLUS_INV_1 = 0.5413248546129181  # softplus⁻¹(1): scales start at 1


def frame_prior(model):
    """``(Q⁻¹ (N, N), G (N, N), init_precision (N,), init_information (N,))`` of the model's
    per-frame prior ``p(s_t | s_t-1)`` and of ``p(s_0)`` in information form (module docstring)."""
    A, Bm, d = block_matrices(model)
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    scaled = (eye - Bm).T / d
    init_prec = torch.cat(model.init_stds).pow(-2)
    return scaled @ (eye - Bm), scaled @ A, init_prec, init_prec * torch.cat(model.init_means)


def _check_model(model) -> None:
    if not hasattr(model, "transitions") or not hasattr(model, "pyro_model"):
        raise ValueError(f"model: expected a TemporalGaussianHierarchy, got {type(model).__name__}")


class BackwardMessages(nn.Module):
    """The bottom-up pass: the learned backward information filter (module docstring).
    Returns ``(Λ (B, T+1, N, N), η (B, T+1, N))`` for ``t = 0..T``."""

    def __init__(self, widths: list, message: str, dtype: torch.dtype):
        super().__init__()
        N, n0 = sum(widths), widths[0]
        self.obs_map = nn.Parameter(torch.eye(n0, N, dtype=dtype))
        self.obs_precision = MessagePrecision(n0, message, dtype)
        self.transition = nn.Parameter(0.5 * torch.eye(N, dtype=dtype))
        self.noise = MessagePrecision(N, "full", dtype)  # Q̂ = T Tᵀ

    def forward(self, x: torch.Tensor, o: torch.Tensor):
        B, T, _ = x.shape
        U, P_obs, M, Q = self.obs_map, self.obs_precision(), self.transition, self.noise()
        masked = o.unsqueeze(-1) * P_obs * o.unsqueeze(-2)  # (B, T, n0, n0)
        obs_lam = U.T @ masked @ U
        obs_eta = ((masked @ x.unsqueeze(-1)).squeeze(-1)) @ U
        eye = torch.eye(M.shape[0], dtype=x.dtype, device=x.device)
        lam, eta = [obs_lam[:, T - 1]], [obs_eta[:, T - 1]]
        for t in range(T - 1, -1, -1):  # message on s_t from frames t..T (t = 0: no frame)
            solved = torch.linalg.solve(eye + lam[-1] @ Q, torch.cat([lam[-1], eta[-1].unsqueeze(-1)], -1))
            prop_lam, prop_eta = M.T @ solved[..., :-1] @ M, (M.T @ solved[..., -1:]).squeeze(-1)
            prop_lam = 0.5 * (prop_lam + prop_lam.mT)
            if t > 0:
                prop_lam, prop_eta = prop_lam + obs_lam[:, t - 1], prop_eta + obs_eta[:, t - 1]
            lam.append(prop_lam)
            eta.append(prop_eta)
        return torch.stack(lam[::-1], 1), torch.stack(eta[::-1], 1)


class _TemporalGuide(nn.Module):
    """What both guides share: the model, input checks and the Pyro entry point."""

    def __init__(self, model, name: str):
        super().__init__()
        _check_model(model)
        self.model, self.name, self.widths = model, name, model.widths
        self.offsets = ops.level_offsets(self.widths)

    def _inputs(self, x_noisy, visibility):
        x, o = self.model.check_inputs(x_noisy, visibility)
        dtype = next(self.parameters()).dtype
        return x.to(dtype), o.to(dtype)

    def __call__(self, x_noisy=None, visibility=None, num_samples: int = 1, steps=None):  # noqa: D102
        if x_noisy is None:
            raise ValueError(f"{self.name}: x_noisy is required (a guide conditions on the data)")
        return super().__call__(x_noisy, visibility)


@dataclass
class FrameConditionals:
    """The ladder guide's ``q(s_t | s_t-1, x̃)`` for ``t = 0..T``: precision ``P_t``
    (``precision`` ``(B, T+1, N, N)``, its Cholesky factor ``chol``), information ``info``
    ``(B, T+1, N)`` (plus ``G s_t-1`` for ``t ≥ 1``); per level the top-down conditional's
    ``couplings[l]`` ``(B, T+1, n_l, N_>l)`` and ``trils[l]`` ``(B, T+1, n_l, n_l)``."""

    precision: torch.Tensor
    chol: torch.Tensor
    info: torch.Tensor
    link: torch.Tensor
    couplings: list
    trils: list


class TemporalLadderGuide(_TemporalGuide):
    """Ladder-structured amortised guide over the trajectory (module docstring; SPEC §3.5)."""

    def __init__(self, model, message: str = "diagonal", name: str = "temporal_ladder_guide",
                 dtype: torch.dtype = torch.float64):
        super().__init__(model, name)
        self.bottom_up = BackwardMessages(self.widths, message, dtype)

    def conditionals(self, x_noisy, visibility=None) -> FrameConditionals:
        """Bottom-up pass, then every frame's combination of message and prior."""
        x, o = self._inputs(x_noisy, visibility)
        lam, eta = self.bottom_up(x, o)
        Q_inv, G, init_prec, init_info = frame_prior(self.model)
        prior = torch.cat([torch.diag(init_prec)[None], Q_inv.expand(x.shape[1], -1, -1)])  # (T+1, N, N)
        info = eta + torch.cat([init_info[None], torch.zeros_like(eta[0, 1:])])
        P = prior + lam
        C = torch.linalg.cholesky(P)
        off, couplings, trils = self.offsets, [], []
        for l in range(len(self.widths)):
            a, b = off[l], off[l + 1]
            C_ll = C[..., a:b, a:b]
            couplings.append(torch.linalg.solve_triangular(C_ll.mT, C[..., b:, a:b].mT, upper=True))
            trils.append(_inverse_and_tril(C_ll @ C_ll.mT)[1])
        return FrameConditionals(P, C, info, G, couplings, trils)

    def forward(self, x_noisy, visibility=None):
        pyro.module(self.name, self)
        q = self.conditionals(x_noisy, visibility)
        off, L = self.offsets, len(self.widths) - 1
        # per-frame views by unbind: indexing [:, t] would back-propagate a full-size zero
        # tensor per frame and site
        infos, chols = q.info.unbind(1), q.chol.unbind(1)
        couplings, trils = [c.unbind(1) for c in q.couplings], [c.unbind(1) for c in q.trils]
        prev = None
        with pyro.plate("data", q.info.shape[0]):
            for t in range(q.info.shape[1]):
                info = infos[t] if prev is None else infos[t] + prev @ q.link.T
                mu = torch.cholesky_solve(info.unsqueeze(-1), chols[t]).squeeze(-1)
                levels = [None] * (L + 1)
                for l in range(L, -1, -1):
                    a, b = off[l], off[l + 1]
                    loc = mu[..., a:b]
                    if l < L:
                        above = torch.cat(levels[l + 1:], -1) - mu[..., b:]
                        loc = loc - (couplings[l][t] @ above.unsqueeze(-1)).squeeze(-1)
                    levels[l] = pyro.sample(f"s_{l}_{t}", dist.MultivariateNormal(
                        loc, scale_tril=trils[l][t], validate_args=False))
                prev = torch.cat(levels, -1)

    def approximation(self, x_noisy, visibility=None) -> TrajectoryApproximation:
        """The guide's joint Gaussian over the trajectory, from the chain's precision
        (block tridiagonal: ``P_t + Gᵀ P_t+1⁻¹ G`` on the diagonal, ``−G`` below it)."""
        q = self.conditionals(x_noisy, visibility)
        B, T1, N = q.info.shape
        G = q.link
        J = q.info.new_zeros(B, T1 * N, T1 * N)
        means, mean = [], None
        for t in range(T1):
            block = slice(t * N, (t + 1) * N)
            J[:, block, block] = q.precision[:, t]
            if t > 0:
                prev = slice((t - 1) * N, t * N)
                J[:, prev, prev] += G.T @ torch.cholesky_solve(G.expand(B, -1, -1), q.chol[:, t])
                J[:, block, prev] = -G
                J[:, prev, block] = -G.T
            info = q.info[:, t] if mean is None else q.info[:, t] + mean @ G.T
            mean = torch.cholesky_solve(info.unsqueeze(-1), q.chol[:, t]).squeeze(-1)
            means.append(mean)
        cov = torch.cholesky_inverse(torch.linalg.cholesky(J))
        return TrajectoryApproximation(torch.cat(means, -1), covs=0.5 * (cov + cov.mT))


class TemporalMeanFieldGuide(_TemporalGuide):
    """Mean-field encoder guide (module docstring): a bidirectional GRU and independent
    diagonal Gaussians per latent and frame."""

    def __init__(self, model, hidden: int = 64, name: str = "temporal_mean_field_guide",
                 dtype: torch.dtype = torch.float64):
        super().__init__(model, name)
        if int(hidden) < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        N, n0 = sum(self.widths), self.widths[0]
        self.rnn = nn.GRU(2 * n0, int(hidden), batch_first=True, bidirectional=True, dtype=dtype)
        self.loc = nn.Linear(2 * int(hidden), N, dtype=dtype)
        self.scale = nn.Linear(2 * int(hidden), N, dtype=dtype)
        nn.init.zeros_(self.scale.weight)
        nn.init.constant_(self.scale.bias, SOFTPLUS_INV_1)

    def parts(self, x_noisy, visibility=None):
        """``(locs, scales)``, each ``(B, T+1, N)``."""
        x, o = self._inputs(x_noisy, visibility)
        inputs = torch.cat([o * x, o], -1)
        h, _ = self.rnn(torch.cat([torch.zeros_like(inputs[:, :1]), inputs], 1))
        return self.loc(h), F.softplus(self.scale(h))

    def forward(self, x_noisy, visibility=None):
        pyro.module(self.name, self)
        locs, scales = self.parts(x_noisy, visibility)
        off = self.offsets
        with pyro.plate("data", locs.shape[0]):
            for t in range(locs.shape[1]):
                for l in range(len(self.widths) - 1, -1, -1):
                    pyro.sample(f"s_{l}_{t}", dist.Normal(locs[:, t, off[l]:off[l + 1]],
                                                          scales[:, t, off[l]:off[l + 1]]).to_event(1))

    def approximation(self, x_noisy, visibility=None) -> TrajectoryApproximation:
        locs, scales = self.parts(x_noisy, visibility)
        B = locs.shape[0]
        return TrajectoryApproximation(locs.reshape(B, -1), variances=scales.pow(2).reshape(B, -1))

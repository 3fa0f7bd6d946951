"""Binary Tagger mixture: bit-flip likelihood and Jaakkola–Jordan VB (SPEC §2.3; derivation ours).

Model: ``x_i | z_i=k, h ~ Bern(sig(μ_ik))``, ``x̃_i = x_i XOR Bern(β)``, ``μ_k = B h_k + β_k``
(here ``β_k`` are the offsets and ``β`` the flip probability). Integrating ``x`` out,
``p(x̃_i = 1 | z_i=k, h) = ξ_ik = sig(μ_ik)(1 − 2β) + β`` — not a logistic function of
``μ`` unless ``β = 0``, so VB keeps the clean pixel as a latent: mean field

    q(z, x, h) = Π_i q(z_i, x_i) · Π_k N(h_k; η_k, S_k)

with a joint ``q(z_i = k, x_i = x) = φ_ikx`` (``2K`` states per pixel: ``x`` and ``z`` are
strongly coupled a posteriori) and the Jaakkola–Jordan bound on
``log p(x_i | μ_ik) = log sig(s μ_ik)``, ``s = 2x − 1``:

    log sig(t) ≥ log sig(ζ) + (t − ζ)/2 − λ(ζ)(t² − ζ²),    λ(ζ) = tanh(ζ/2) / (4ζ)

(``t² = μ²`` whatever ``s``). The bound makes ``q(h_k)`` Gaussian; with ``q_ik = φ_ik0 + φ_ik1``
and ``a_ik = φ_ik1 − φ_ik0`` the coordinate maximisers of the bound-ELBO are

    S_k⁻¹ = I + 2 Bᵀ diag(q_k λ(ζ_k)) B,      η_k = S_k Bᵀ (a_k / 2 − 2 q_k λ(ζ_k) β_k)
    ζ_ik  = sqrt(m_ik² + v_ik)                (tight at the current q(h))
    φ_ikx ∝ ρ_k p(x̃_i | x) exp( log sig(ζ_ik) + (s m_ik − ζ_ik)/2 − λ(ζ_ik)(m_ik² + v_ik − ζ_ik²) )

(``m``, ``v`` as in the Gaussian case, now moments of the logits). Each update maximises the
bound-ELBO in its block, so the bound-ELBO never decreases; it is ``≤`` the true ELBO of
the same ``q``, hence ``≤ log p(x̃)``. Order within one iteration (ours): ``q(h)``, ``ζ``,
``q(z, x)``. Initial ``q(x_i | z_i)``: ``P(x_i = x̃_i) = 1 − β`` (the flip channel alone).
"""
from __future__ import annotations

import torch

from .tagger_vb import TaggerVBResult, appearance_elbo_terms, bernoulli_log_prob, predicted_moments


def flipped_log_probs(mu, flip_prob):
    """``(log ξ, log(1 − ξ))`` with ``ξ = sig(μ)(1 − 2β) + β = p(x̃ = 1 | μ)``, in log space
    (``logaddexp`` of ``log β`` and ``log(1 − 2β) + log sig(±μ)``; exact for ``β = 0``)."""
    log_beta = torch.log(flip_prob)
    log_keep = torch.log1p(-2.0 * flip_prob)
    ls = torch.nn.functional.logsigmoid
    return (torch.logaddexp(log_beta, log_keep + ls(mu)), torch.logaddexp(log_beta, log_keep + ls(-mu)))


def jj_lambda(zeta):
    """``λ(ζ) = tanh(ζ/2) / (4ζ)`` (even in ``ζ``; ``1/8 − ζ²/96`` near 0)."""
    a = zeta.abs()
    small = a < 1e-4
    safe = torch.where(small, torch.ones_like(a), a)
    return torch.where(small, 0.125 - a ** 2 / 96.0, torch.tanh(safe / 2.0) / (4.0 * safe))


def jj_bound_terms(m, v, zeta):
    """The two parts of ``E_q(h)`` of the JJ bound, ``(B, K, N)`` each:
    ``c = log sig(ζ) − ζ/2 − λ(ζ)(m² + v − ζ²)`` and the slope ``m/2``; the bound on
    ``E log sig(s μ)`` is ``c + s m / 2``."""
    lam = jj_lambda(zeta)
    c = torch.nn.functional.logsigmoid(zeta) - zeta / 2.0 - lam * (m ** 2 + v - zeta ** 2)
    return c, m / 2.0


def noise_log_probs(x_noisy, flip_prob):
    """``log p(x̃_i | x_i = x)`` for ``x = 0, 1``: ``(B, 1, N, 2)``."""
    x = x_noisy.unsqueeze(-2).unsqueeze(-1)
    clean = torch.tensor([0.0, 1.0], dtype=x_noisy.dtype, device=x_noisy.device)
    same = (x == clean)
    return torch.where(same, torch.log1p(-flip_prob), torch.log(flip_prob))


def initial_log_phi(x_noisy, log_pi0, flip_prob):
    """``log φ_ikx = log π0_ik + log p(x_i = x | x̃_i)`` with ``p(x = x̃ | x̃) = 1 − β``."""
    return log_pi0.unsqueeze(-1) + noise_log_probs(x_noisy, flip_prob)


def joint_assignment_update(x_noisy, m, v, zeta, log_rho, flip_prob):
    """``q(z_i, x_i)`` update, normalised over the ``2K`` states: ``log φ`` ``(B, K, N, 2)``."""
    c, slope = jj_bound_terms(m, v, zeta)
    s = torch.tensor([-1.0, 1.0], dtype=m.dtype, device=m.device)
    logits = (log_rho.reshape(-1, 1, 1) + noise_log_probs(x_noisy, flip_prob)
              + c.unsqueeze(-1) + s * slope.unsqueeze(-1))
    B, K, N, _ = logits.shape
    flat = logits.transpose(-3, -2).reshape(B, N, 2 * K)
    return torch.log_softmax(flat, -1).reshape(B, N, K, 2).transpose(-3, -2)


def appearance_update_binary(log_phi, basis, offsets, zeta):
    """``q(h_k)`` update under the JJ bound: ``S_k⁻¹ = I + 2 Bᵀ diag(q_k λ(ζ_k)) B``,
    ``η_k = S_k Bᵀ (a_k/2 − 2 q_k λ(ζ_k) β_k)``. Returns ``(η, S, log det S)``."""
    phi = log_phi.exp()
    q, a = phi.sum(-1), phi[..., 1] - phi[..., 0]
    w = 2.0 * q * jj_lambda(zeta)  # (B, K, N)
    d = basis.shape[1]
    eye = torch.eye(d, dtype=basis.dtype, device=basis.device)
    prec = eye + torch.einsum("nd,bkn,ne->bkde", basis, w, basis)
    chol = torch.linalg.cholesky(prec)
    rhs = ((a / 2.0 - w * offsets) @ basis).unsqueeze(-1)
    eta = torch.cholesky_solve(rhs, chol).squeeze(-1)
    S = torch.cholesky_solve(eye.expand_as(prec), chol)
    S = 0.5 * (S + S.transpose(-1, -2))
    logdet_S = -2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return eta, S, logdet_S


def zeta_update(m, v):
    """``ζ_ik = sqrt(m_ik² + v_ik)``: makes the bound tight at the current ``q(h)``."""
    return torch.sqrt(m ** 2 + v)


def elbo_binary(x_noisy, log_phi, eta, S, logdet_S, zeta, basis, offsets, flip_prob, log_rho):
    """Bound-ELBO ``(B,)``: ``E_q[log p(x̃|x) + JJ(log p(x|z,h)) + log p(z) + log p(h)] + H[q]``."""
    phi = log_phi.exp()
    m, v = predicted_moments(eta, S, basis, offsets)
    c, slope = jj_bound_terms(m, v, zeta)
    s = torch.tensor([-1.0, 1.0], dtype=m.dtype, device=m.device)
    per_state = (log_rho.reshape(-1, 1, 1) + noise_log_probs(x_noisy, flip_prob)
                 + c.unsqueeze(-1) + s * slope.unsqueeze(-1))
    expected = torch.where(phi > 0, phi * per_state, torch.zeros_like(phi)).sum((-1, -2, -3))
    ent_zx = -torch.where(phi > 0, phi * log_phi, torch.zeros_like(phi)).sum((-1, -2, -3))
    e_log_ph, ent_h = appearance_elbo_terms(eta, S, logdet_S)
    return expected + ent_zx + e_log_ph + ent_h


def vb_iteration_binary(x_noisy, log_phi, zeta, basis, offsets, flip_prob, log_rho, record=None):
    """One iteration ``q(h) → ζ → q(z, x)``; appends the bound-ELBO after each update to
    ``record`` (a list) if given. Returns ``(log φ, ζ, η, S, log det S, m, v)``."""
    args = (basis, offsets, flip_prob, log_rho)
    eta, S, logdet_S = appearance_update_binary(log_phi, basis, offsets, zeta)
    if record is not None:
        record.append(elbo_binary(x_noisy, log_phi, eta, S, logdet_S, zeta, *args))
    m, v = predicted_moments(eta, S, basis, offsets)
    zeta = zeta_update(m, v)
    if record is not None:
        record.append(elbo_binary(x_noisy, log_phi, eta, S, logdet_S, zeta, *args))
    log_phi = joint_assignment_update(x_noisy, m, v, zeta, log_rho, flip_prob)
    if record is not None:
        record.append(elbo_binary(x_noisy, log_phi, eta, S, logdet_S, zeta, *args))
    return log_phi, zeta, eta, S, logdet_S, m, v


def run_vb_binary(x_noisy, basis, offsets, flip_prob, log_rho, iters: int, log_pi0, eta0, S0,
                  logdet_S0) -> TaggerVBResult:
    """Binary VB from ``π0`` (``q(x | z)`` from the flip channel, ``ζ`` tight at ``q0(h)``).
    ``elbo_updates`` has three entries per iteration (``q(h)``, ``ζ``, ``q(z, x)``); ``pi``
    the marginal ``q(z)``, ``x_probs`` ``q(x_i = 1)`` ``(B, N)``, ``m``/``v`` logit moments."""
    log_phi = initial_log_phi(x_noisy, log_pi0, flip_prob)
    m0, v0 = predicted_moments(eta0, S0, basis, offsets)
    zeta = zeta_update(m0, v0)
    args = (basis, offsets, flip_prob, log_rho)
    e_init = elbo_binary(x_noisy, log_phi, eta0, S0, logdet_S0, zeta, *args)
    out = dict(pi=[], eta=[], S=[], m=[], v=[], x_probs=[])
    e_upd, e_iter = [], []
    for _ in range(int(iters)):
        log_phi, zeta, eta, S, _, m, v = vb_iteration_binary(x_noisy, log_phi, zeta, *args, record=e_upd)
        e_iter.append(e_upd[-1])
        phi = log_phi.exp()
        for key, val in zip(("pi", "eta", "S", "m", "v", "x_probs"), (phi.sum(-1), eta, S, m, v,
                                                                      phi[..., 1].sum(-2).clamp(0.0, 1.0))):
            out[key].append(val)
    stack = lambda xs: torch.stack(xs, -1) if xs else e_init.new_zeros(e_init.shape + (0,))  # noqa: E731
    return TaggerVBResult(**out, elbo=stack(e_iter), elbo_updates=stack(e_upd), elbo_init=e_init)


def clean_log_probs_given_mu(x_noisy, mu, flip_prob):
    """``log p(x̃_i | x_i = x)`` + ``log p(x_i = x | μ_ik)`` ``(…, B, K, N, 2)``: used by the
    brute-force check ``p(x̃ | μ) = Σ_x p(x | μ) p(x̃ | x)``."""
    ls = torch.nn.functional.logsigmoid
    prior = torch.stack([ls(-mu), ls(mu)], -1)
    return prior + noise_log_probs(x_noisy, flip_prob)


__all__ = ["flipped_log_probs", "jj_lambda", "jj_bound_terms", "joint_assignment_update",
           "appearance_update_binary", "zeta_update", "elbo_binary", "run_vb_binary",
           "vb_iteration_binary", "bernoulli_log_prob"]

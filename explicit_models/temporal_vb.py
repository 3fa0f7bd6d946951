"""Mean-field variational Bayes for the temporal Gaussian hierarchy (SPEC §2.2).

``q = Π_l,t q(s_l,t)``, ``q(s_l,t) = N(m_l,t, V_l,t)`` with a full (``covariance="full"``)
or diagonal (``"diagonal"``) ``V``, over ``t = 0..T`` (``s_0`` is the state before the
first frame, prior ``N(μ_init, D_init)``). With ``D_l = diag σ_l²`` the generic update of
level ``l`` at time ``t ≥ 1`` is (vector form of SPEC §2.2)

    P_l,t = D_l⁻¹ + [t<T] A_lᵀ D_l⁻¹ A_l + W_l-1ᵀ D_l-1⁻¹ W_l-1
    h_l,t = D_l⁻¹ (A_l m_l,t-1 + W_l m_l+1,t)                          top-down + past
          + [t<T] A_lᵀ D_l⁻¹ (m_l,t+1 − W_l m_l+1,t+1)                  future (smoother only)
          + W_l-1ᵀ D_l-1⁻¹ (m_l-1,t − A_l-1 m_l-1,t-1)                 bottom-up
    m_l,t = P_l,t⁻¹ h_l,t,    V_l,t = P_l,t⁻¹  (full)  or  1 / diag P_l,t  (diagonal)

where level ``L`` has no ``W_L`` terms and at level 0 the bottom-up pair is
``(diag(o_t) / σ_n², o_t ⊙ x̃_t / σ_n²)``. At ``t = 0`` the first terms are the prior's,
``D_init⁻¹`` and ``D_init⁻¹ μ_init``, and there is no bottom-up term. The ELBO is concave
quadratic in each ``m_l,t``, so the update is its exact coordinate optimum in both modes.

* :func:`vb_smoother` sweeps all times. Factors of one level at times of equal parity
  share no ELBO term, so each sweep updates, for ``l = 0..L``, all even ``t`` and then all
  odd ``t`` at once (exact block coordinate ascent: the ELBO never decreases).
* :func:`vb_filter` is the paper's online scheme (Appendix C): at each new frame the past
  posteriors are fixed, the future term is dropped, the new frame's means start at the
  top-down ("decoder") prediction ``m_l,t = A_l m_l,t-1 + W_l m_l+1,t`` and
  ``sweeps_per_step`` sweeps ``l = 0..L`` follow. It propagates no past uncertainty, so its
  predictions are worse than the Kalman filter's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from . import gaussian_ops as ops
from .gaussian_ops import LOG_2PI
from .temporal_exact import state_space

COVARIANCES = ("full", "diagonal")


@dataclass
class VBFilterResult:
    """Online VB on ``B`` sequences of ``T`` frames. ``means[l]`` ``(B, T+1, n_l)`` and
    ``covs[l]`` (full ``(B, T+1, n_l, n_l)``, diagonal ``(B, T+1, n_l)``): index ``t`` is
    ``q(s_l,t)`` after frame ``t`` (index 0: the prior of ``s_0``). ``predictions``
    ``(B, T+1, n_0)``: index ``t`` = ``E_q[x_t+1]``, the filter's prediction of the next frame."""

    means: list
    covs: list
    predictions: torch.Tensor
    sweeps_per_step: int
    covariance: str


@dataclass
class VBSmootherResult:
    """VB smoother state: ``means[l]`` ``(B, T+1, n_l)``, ``covs[l]`` as in
    :class:`VBFilterResult`; ``elbo`` ``(B, K)`` after every block update (``2 (L+1)`` per
    sweep: each level's even then odd times; empty for the fixed-point solver),
    ``elbo_init`` ``(B,)``; ``sweeps`` run; ``step`` the last largest mean change in units
    of the posterior std; ``converged`` whether ``step`` fell below the tolerance."""

    means: list
    covs: list
    elbo: torch.Tensor
    elbo_init: torch.Tensor
    sweeps: int
    step: float
    converged: bool
    covariance: str

    def stacked_means(self) -> torch.Tensor:
        """``(B, T+1, N)``: the levels side by side (the order of the state-space form)."""
        return torch.cat(self.means, -1)


def _check_covariance(covariance: str) -> None:
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")


def _constants(model) -> dict:
    k = model._cache.get("temporal_vb")
    if k is None:
        Dinv = [s.pow(-2) for s in model.stds]
        k = dict(Dinv=Dinv, Dinit=[s.pow(-2) for s in model.init_stds],
                 AtDA=[A.T @ (d[:, None] * A) for A, d in zip(model.transitions, Dinv)],
                 WtDW=[W.T @ (Dinv[l][:, None] * W) for l, W in enumerate(model.weights)])
        model._cache["temporal_vb"] = k
    return k


def _diag(V, covariance):
    return V.diagonal(dim1=-2, dim2=-1) if covariance == "full" else V


def _logdet(V, covariance):
    if covariance == "full":
        return 2.0 * torch.linalg.cholesky(V).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return V.log().sum(-1)


def _trace(C, V, covariance):
    """``tr(C V)`` for a constant symmetric ``C`` and (batched) ``V``."""
    return (C * V).sum((-2, -1)) if covariance == "full" else V @ C.diagonal()


def _from_precision(P, covariance):
    """``(Cholesky of P, V, 1/sqrt(diag P), log det V)`` for the update ``m = P⁻¹ h``."""
    chol = torch.linalg.cholesky(P)
    diag = P.diagonal(dim1=-2, dim2=-1)
    if covariance == "full":
        V, logdet = torch.cholesky_inverse(chol), -2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    else:
        V, logdet = diag.reciprocal(), -diag.log().sum(-1)
    return chol, V, diag.rsqrt(), logdet


# --------------------------------------------------------------------------- smoother
def smoother_precisions(model, o: torch.Tensor) -> list:
    """``P_l,t`` for ``t = 0..T``: ``(B, T+1, n_0, n_0)`` at level 0, ``(1, T+1, n_l, n_l)`` above."""
    k, L, T = _constants(model), model.depth, o.shape[1]
    out = []
    for l, n in enumerate(model.widths):
        P = torch.diag(k["Dinv"][l]).repeat(T + 1, 1, 1)
        P[0] = torch.diag(k["Dinit"][l])
        P[:T] += k["AtDA"][l]
        if l >= 1:
            P[1:] += k["WtDW"][l - 1]
        P = P.unsqueeze(0)
        if l == 0:
            obs = torch.cat([torch.zeros_like(o[:, :1]), o], 1) * model.noise_std.pow(-2)
            P = P + torch.diag_embed(obs)
        out.append(P)
    return out


def smoother_information(model, x, o, means: list, l: int) -> torch.Tensor:
    """``h_l,t`` ``(B, T+1, n_l)`` of the generic update (module docstring) for all ``t``."""
    k, L = _constants(model), model.depth
    m, A = means[l], model.transitions[l]
    h = torch.zeros_like(m)
    h[:, 0] = k["Dinit"][l] * model.init_means[l]
    own = m[:, :-1] @ A.T
    nxt = m[:, 1:]
    if l < L:
        down = means[l + 1][:, 1:] @ model.weights[l].T
        own, nxt = own + down, nxt - down
    h[:, 1:] += own * k["Dinv"][l]
    h[:, :-1] += (nxt * k["Dinv"][l]) @ A
    if l == 0:
        h[:, 1:] += o * x * model.noise_std.pow(-2)
    else:
        below = means[l - 1]
        resid = below[:, 1:] - below[:, :-1] @ model.transitions[l - 1].T
        h[:, 1:] += (resid * k["Dinv"][l - 1]) @ model.weights[l - 1]
    return h


def elbo(model, x, o, means: list, covs: list, covariance: str = "full", logdets=None) -> torch.Tensor:
    """``E_q[log p(x̃_visible, s_0:T)] + H[q]`` per sequence ``(B,)`` (SPEC §2.2);
    ``means[l]`` ``(B, T+1, n_l)``, ``covs[l]`` full ``(.., T+1, n_l, n_l)`` or diagonal
    ``(.., T+1, n_l)`` (leading dimension ``B`` or 1). ``logdets[l]`` ``(.., T+1)``, if
    given, must be ``log det covs[l]`` (saves the factorisations)."""
    _check_covariance(covariance)
    k, L, B = _constants(model), model.depth, x.shape[0]
    noise_var = model.noise_std.pow(2)
    dV0 = _diag(covs[0], covariance)[:, 1:]
    out = -0.5 * (o * (LOG_2PI + noise_var.log() + ((x - means[0][:, 1:]).pow(2) + dV0) / noise_var)).sum((-1, -2))
    for l, n in enumerate(model.widths):
        m, V = means[l], covs[l]
        dV = _diag(V, covariance)
        d0 = (m[:, 0] - model.init_means[l]).pow(2) + dV[:, 0]
        out = out - 0.5 * (LOG_2PI - k["Dinit"][l].log() + d0 * k["Dinit"][l]).sum(-1)
        resid = m[:, 1:] - m[:, :-1] @ model.transitions[l].T
        quad = _trace(k["AtDA"][l], V[:, :-1], covariance)
        if l < L:
            resid = resid - means[l + 1][:, 1:] @ model.weights[l].T
            quad = quad + _trace(k["WtDW"][l], covs[l + 1][:, 1:], covariance)
        quad = quad + ((resid.pow(2) + dV[:, 1:]) * k["Dinv"][l]).sum(-1)
        out = out - 0.5 * (quad + (LOG_2PI - k["Dinv"][l].log()).sum()).sum(-1)
        logdet = _logdet(V, covariance) if logdets is None else logdets[l]
        out = out + ops.gaussian_entropy_from_logdet(n, logdet).sum(-1)
    return out.expand(B)


def _init_state(model, x, covariance, init):
    B, T = x.shape[:2]
    if isinstance(init, VBSmootherResult):
        init = {"means": init.means, "covs": init.covs if init.covariance == covariance else None}
    if isinstance(init, str) and init == "prior":
        ss = state_space(model)
        mean, cov, means, covs = ss.init_mean, ss.init_cov, [ss.init_mean], [ss.init_cov]
        for _ in range(T):
            mean, cov = ss.M @ mean, ss.M @ cov @ ss.M.T + ss.Q
            means.append(mean)
            covs.append(cov)
        means, covs = torch.stack(means), torch.stack(covs)
        off = ss.offsets
        m = [means[:, off[l]:off[l + 1]].expand(B, -1, -1).clone() for l in range(model.depth + 1)]
        V = [covs[:, off[l]:off[l + 1], off[l]:off[l + 1]] for l in range(model.depth + 1)]
        V = [(v if covariance == "full" else v.diagonal(dim1=-2, dim2=-1)).unsqueeze(0) for v in V]
        return m, [v.expand((B,) + v.shape[1:]).clone() for v in V]
    if not isinstance(init, dict) or "means" not in init:
        raise ValueError("init must be 'prior', a VBSmootherResult or a dict with 'means' [(B, T+1, n_l)]")
    means = [torch.as_tensor(m, dtype=model.dtype, device=model.device).clone() for m in init["means"]]
    if len(means) != model.depth + 1 or any(tuple(m.shape) != (B, T + 1, n) for m, n in zip(means, model.widths)):
        raise ValueError(f"init['means']: expected {model.depth + 1} tensors of shape ({B}, {T + 1}, n_l)")
    covs = init.get("covs") or _init_state(model, x, covariance, "prior")[1]
    return means, [c.clone() for c in covs]


def _sweep(model, x, o, means, covs, logdets, prec, on_update=None) -> float:
    """One smoother sweep in place (levels ``0..L``, even then odd times); returns the
    largest mean change in posterior-std units."""
    step = 0.0
    for l in range(model.depth + 1):
        chol, V, inv_std, logdet = prec[l]
        for parity in (0, 1):
            sel = slice(parity, None, 2)
            h = smoother_information(model, x, o, means, l)
            new = torch.cholesky_solve(h[:, sel].unsqueeze(-1), chol[:, sel]).squeeze(-1)
            step = max(step, float(((new - means[l][:, sel]).abs() * inv_std[:, sel]).max()))
            means[l][:, sel] = new
            covs[l][:, sel] = V[:, sel]
            logdets[l][:, sel] = logdet[:, sel]
            if on_update is not None:
                on_update()
    return step


def vb_smoother(model, x, o, sweeps: int = 100, covariance: str = "full", init="prior",
                tol: Optional[float] = None) -> VBSmootherResult:
    """Run up to ``sweeps`` smoother sweeps (stopping early once the largest mean change
    is below ``tol`` posterior stds), recording the ELBO after every block update."""
    _check_covariance(covariance)
    if int(sweeps) < 0:
        raise ValueError(f"sweeps must be non-negative, got {sweeps}")
    means, covs = _init_state(model, x, covariance, init)
    prec = [_from_precision(P, covariance) for P in smoother_precisions(model, o)]
    logdets = [_logdet(V, covariance) for V in covs]
    elbos = []
    record = lambda: elbos.append(elbo(model, x, o, means, covs, covariance, logdets))  # noqa: E731
    elbo_init = elbo(model, x, o, means, covs, covariance, logdets)
    done, step, converged = 0, float("inf"), False
    while done < int(sweeps) and not converged:
        step = _sweep(model, x, o, means, covs, logdets, prec, record)
        done += 1
        converged = tol is not None and step <= tol
    elbo_t = torch.stack(elbos, -1) if elbos else x.new_zeros(x.shape[0], 0)
    return VBSmootherResult(means, covs, elbo_t, elbo_init, done, step, converged, covariance)


def vb_smoother_fixed_point(model, x, o, covariance: str = "full", tol: float = 1e-12,
                            max_sweeps: int = 5000, init="prior", memory: Optional[int] = None,
                            patience: int = 10) -> VBSmootherResult:
    """Iterate the smoother sweep ``F`` to its fixed point with Anderson acceleration (type
    II, per sequence, ``memory`` past residuals, default ``(T+1) N + 1``): ``F`` is affine,
    so this is GMRES on ``(I − F)``; its fixed points are those of plain VB. Stops when the
    residual ``F(m) − m`` is below ``tol`` posterior stds (``converged``), when it has not
    reached a new minimum for ``patience`` sweeps (the floating-point floor; ``tol=0``
    iterates down to it), or after ``max_sweeps``."""
    _check_covariance(covariance)
    means, covs = _init_state(model, x, covariance, init)
    prec = [_from_precision(P, covariance) for P in smoother_precisions(model, o)]
    logdets = [_logdet(V, covariance) for V in covs]
    widths, B = model.widths, x.shape[0]
    inv_std = torch.cat([p[2].expand(B, -1, -1) for p in prec], -1).reshape(B, -1)
    memory = inv_std.shape[1] + 1 if memory is None else int(memory)

    def F(flat):
        ms = [m.clone() for m in torch.split(flat.reshape(B, x.shape[1] + 1, -1), widths, -1)]
        _sweep(model, x, o, ms, covs, logdets, prec)
        return torch.cat(ms, -1).reshape(B, -1)

    xk = torch.cat(means, -1).reshape(B, -1)
    fk = F(xk)
    gk = (fk - xk) * inv_std
    dG, dF, sweeps = [], [], 1
    best, best_at = float(gk.abs().max()), 1
    while best > tol and sweeps < int(max_sweeps) and sweeps - best_at < patience:
        if dG:
            gamma = torch.linalg.lstsq(torch.stack(dG, -1), gk.unsqueeze(-1)).solution
            x_new = fk - (torch.stack(dF, -1) @ gamma).squeeze(-1)
        else:
            x_new = fk
        f_new = F(x_new)
        g_new = (f_new - x_new) * inv_std
        dG.append(g_new - gk)
        dF.append(f_new - fk)
        if len(dG) > memory:
            dG.pop(0)
            dF.pop(0)
        xk, fk, gk, sweeps = x_new, f_new, g_new, sweeps + 1
        if float(gk.abs().max()) < best:
            best, best_at = float(gk.abs().max()), sweeps
    step = float(gk.abs().max())
    means = [m.clone() for m in torch.split(fk.reshape(B, x.shape[1] + 1, -1), widths, -1)]
    return VBSmootherResult(means, covs, x.new_zeros(B, 0), elbo(model, x, o, means, covs, covariance, logdets),
                            sweeps, step, step <= tol, covariance)


# --------------------------------------------------------------------------- online filter
def vb_filter(model, x, o, sweeps_per_step: int = 50, covariance: str = "full") -> VBFilterResult:
    """The online VB filter (module docstring; SPEC §2.2 "online variant")."""
    _check_covariance(covariance)
    if int(sweeps_per_step) < 1:
        raise ValueError(f"sweeps_per_step must be >= 1, got {sweeps_per_step}")
    k, L, (B, T, n0) = _constants(model), model.depth, x.shape
    A, W, Dinv = model.transitions, model.weights, k["Dinv"]
    noise_prec = model.noise_std.pow(-2)
    upper = [None] + [_from_precision(torch.diag(Dinv[l]) + k["WtDW"][l - 1], covariance) for l in range(1, L + 1)]
    past = [m.expand(B, -1) for m in model.init_means]
    seq_m = [[p] for p in past]
    for t in range(T):
        cur = [None] * (L + 1)
        for l in range(L, -1, -1):  # top-down ("decoder") prediction
            cur[l] = past[l] @ A[l].T + (cur[l + 1] @ W[l].T if l < L else 0.0)
        prec0 = Dinv[0] + o[:, t] * noise_prec  # level 0: diagonal precision
        for _ in range(int(sweeps_per_step)):
            for l in range(L + 1):
                h = past[l] @ A[l].T + (cur[l + 1] @ W[l].T if l < L else 0.0)
                h = h * Dinv[l]
                if l == 0:
                    cur[0] = (h + o[:, t] * x[:, t] * noise_prec) / prec0
                else:
                    resid = cur[l - 1] - past[l - 1] @ A[l - 1].T
                    h = h + (resid * Dinv[l - 1]) @ W[l - 1]
                    cur[l] = torch.cholesky_solve(h.unsqueeze(-1), upper[l][0]).squeeze(-1)
        for l in range(L + 1):
            seq_m[l].append(cur[l])
        past = cur
    means = [torch.stack(s, 1) for s in seq_m]
    prec0 = Dinv[0] + torch.cat([torch.zeros_like(o[:, :1]), o], 1) * noise_prec
    V0 = prec0.reciprocal()
    V0[:, 0] = model.init_stds[0].pow(2)
    covs = [torch.diag_embed(V0) if covariance == "full" else V0]
    for l in range(1, L + 1):
        init_V = model.init_stds[l].pow(2)
        V = torch.stack([torch.diag(init_V) if covariance == "full" else init_V]
                        + [upper[l][1]] * T).unsqueeze(0).expand((B, T + 1) + upper[l][1].shape)
        covs.append(V)
    ss = state_space(model)
    predictions = (torch.cat(means, -1) @ ss.M[:n0].T)
    return VBFilterResult(means, covs, predictions, int(sweeps_per_step), covariance)

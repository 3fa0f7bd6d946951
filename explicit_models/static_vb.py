"""Mean-field variational Bayes for the static Gaussian hierarchy (SPEC §2.1).

``q = q(c) Π_l q(s_l)``, ``q(s_l) = N(m_l, V_l)`` with a full (``covariance="full"``) or
diagonal (``"diagonal"``) ``V_l``. With ``D_l = diag σ_l²`` and, below level 0, ``x̃`` with
identity link and ``D_-1 = σ_n² I``, the coordinate update of level ``l`` is

    P_l = V_l⁻¹ = D_l⁻¹ + W_l-1ᵀ D_l-1⁻¹ W_l-1
    m_l = P_l⁻¹ [ D_l⁻¹ (W_l m_l+1 + b_l) + W_l-1ᵀ D_l-1⁻¹ (m_l-1 − b_l-1) ]

(at the top ``D_L⁻¹(W m + b)`` → ``D_L⁻¹ μ_L``, or ``Σ_c r_c diag(τ_c⁻²) μ_c`` and
``D_L⁻¹`` → ``Σ_c r_c diag(τ_c⁻²)`` with a class-mixture top), and
``r_c = q(c) ∝ π_c exp(−½ Σ_j [log 2πτ_cj² + ((m_Lj − μ_cj)² + (V_L)_jj) / τ_cj²])``.
The ELBO is concave quadratic in ``m_l`` (``−½ m_lᵀ P_l m_l + h_lᵀ m_l`` whatever the
form of ``V``), so ``m_l = P_l⁻¹ h_l`` is the exact coordinate optimum in both modes; the
diagonal mode's variances are ``1 / diag P_l``.

The gated ("Ladder") form of the same update, for elementwise links, is
:func:`vb_level_update_gated` (built on :func:`gaussian_ops.gated_update`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from . import gaussian_ops as ops
from .gaussian_ops import LOG_2PI, gated_update  # noqa: F401  (gated_update re-exported: the gated form lives here too)
from .static_exact import prior_marginals

COVARIANCES = ("full", "diagonal")


@dataclass
class VBResult:
    """Trajectory of VB coordinate ascent on a batch of ``B`` inputs.

    ``means[t][l]`` ``(B, n_l)``, ``covs[t][l]`` and ``class_probs[t]`` are the state after
    sweep ``t + 1``. Full mode: ``covs[t][l]`` is ``(n_l, n_l)``, or ``(B, n_L, n_L)`` at the
    top with a mixture top; diagonal mode: variances ``(n_l,)`` / ``(B, n_L)``.
    ``class_probs[t]`` is ``q(c)`` ``(B, C)``, or None without a mixture top.
    ``elbo`` ``(B, sweeps · len(update_labels))`` is the ELBO after every coordinate update
    (labels ``"s_0" .. "s_L"`` then ``"c"``); ``elbo_init`` ``(B,)`` before the first.
    """

    means: list
    covs: list
    class_probs: list
    elbo: torch.Tensor
    elbo_init: torch.Tensor
    covariance: str
    update_labels: list
    init_means: list
    init_covs: list
    init_class_probs: Optional[torch.Tensor]

    @property
    def updates_per_sweep(self) -> int:
        return len(self.update_labels)


@dataclass
class _State:
    means: list
    covs: list
    r: Optional[torch.Tensor]
    logdets: Optional[list] = None  # log det V_l, kept alongside covs (None: recompute)


@dataclass
class _Constants:
    """Data-independent pieces of the updates and the ELBO."""

    prec: list  # σ_l⁻² (n_l,), l < L
    Q: list  # W_lᵀ D_l⁻¹ W_l (n_l+1, n_l+1), l < L
    base_top: torch.Tensor  # P_L without its prior term
    chol: list  # Cholesky of P_l (levels with data-independent P_l), else None
    cov: list  # P_l⁻¹ (full) or 1 / diag P_l (diagonal), same levels
    logdet: list  # log det of cov, same levels
    top_prec: torch.Tensor  # (K, n_L) diag precisions of the top components
    top_prec_mean: torch.Tensor  # (K, n_L) τ⁻² μ
    top_log_norm: torch.Tensor  # (K,) −½ Σ_j log 2πτ_j²


def _check_covariance(covariance: str) -> None:
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")


def constants(model, covariance: str) -> _Constants:
    """Build (once per model and mode, then cached) the constants of the VB updates."""
    _check_covariance(covariance)
    key = "vb_constants_" + covariance
    if key in model._cache:
        return model._cache[key]
    L = model.depth
    W = model.weights
    prec = [s.pow(-2) for s in model.stds]
    Q = [W[l].T @ (prec[l][:, None] * W[l]) for l in range(L)]
    eye0 = torch.eye(model.widths[0], dtype=model.dtype, device=model.device)
    if model.has_mixture_top:
        top_prec, top_mean = model.class_stds.pow(-2), model.class_means
    else:
        top_prec, top_mean = model.top_std.pow(-2).unsqueeze(0), model.top_mean.unsqueeze(0)
    P = [torch.diag(prec[0]) + model.noise_std.pow(-2) * eye0]
    P += [torch.diag(prec[l]) + Q[l - 1] for l in range(1, L)]
    P.append(None if model.has_mixture_top else Q[L - 1] + torch.diag(top_prec[0]))
    chol = [None if p is None else torch.linalg.cholesky(p) for p in P]
    cov = [None if c is None else (torch.cholesky_inverse(c) if covariance == "full" else p.diagonal().reciprocal())
           for p, c in zip(P, chol)]
    logdet = [None if v is None else _logdet(v, covariance) for v in cov]
    k = _Constants(prec, Q, Q[L - 1], chol, cov, logdet, top_prec, top_prec * top_mean,
                   -0.5 * (LOG_2PI - top_prec.log()).sum(-1))
    model._cache[key] = k
    return k


def _diag(V: torch.Tensor, covariance: str) -> torch.Tensor:
    return V.diagonal(dim1=-2, dim2=-1) if covariance == "full" else V


def _trace_prod(A: torch.Tensor, V: torch.Tensor, covariance: str) -> torch.Tensor:
    """``tr(A V)`` for a constant symmetric ``A`` and ``V`` (batched or not)."""
    return (A * V).sum((-2, -1)) if covariance == "full" else V @ A.diagonal()


def _logdet(V: torch.Tensor, covariance: str) -> torch.Tensor:
    if covariance == "full":
        return 2.0 * torch.linalg.cholesky(V).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return V.log().sum(-1)


def _class_log_weights(model, k: _Constants, m_top, V_top, covariance) -> torch.Tensor:
    """``log π_c − ½ Σ_j [log 2πτ_cj² + ((m_Lj − μ_cj)² + (V_L)_jj) / τ_cj²]`` ``(B, C)``."""
    d2 = (m_top.unsqueeze(1) - model.class_means).pow(2) + _diag(V_top, covariance).unsqueeze(-2)
    return model.class_probs.log() + k.top_log_norm - 0.5 * (d2 * k.top_prec).sum(-1)


def elbo_terms(model, x, means, covs, class_probs=None, covariance: str = "full", logdets=None,
               keys=None) -> dict:
    """The ELBO's terms per sample (SPEC §2.1), keyed by factor: ``"obs"``
    (``E log p(x̃|s_0)``), ``("link", l)`` (``E log p(s_l|s_l+1)``), ``"top"``
    (``E log p(s_L, c) + H[q(c)]``) and ``("entropy", l)`` (``H[q(s_l)]``). ``keys``
    restricts the computation (a coordinate update changes only the factors it touches)."""
    k = constants(model, covariance)
    L, B = model.depth, x.shape[0]
    keys = _all_terms(L) if keys is None else keys
    out = {}
    for key in keys:
        if key == "obs":
            noise_var = model.noise_std.pow(2)
            out[key] = -0.5 * model.widths[0] * torch.log(2 * math.pi * noise_var) - 0.5 * (
                (x - means[0]).pow(2).sum(-1) + _diag(covs[0], covariance).sum(-1)) / noise_var
        elif key == "top" and model.has_mixture_top:
            r = model.class_probs.expand(B, -1) if class_probs is None else class_probs
            logw = _class_log_weights(model, k, means[L], covs[L], covariance)
            out[key] = (r * logw).sum(-1) - torch.special.xlogy(r, r).sum(-1)
        elif key == "top":
            d2 = (means[L] - model.top_mean).pow(2) + _diag(covs[L], covariance)
            out[key] = k.top_log_norm[0] - 0.5 * (d2 * k.top_prec[0]).sum(-1)
        elif key[0] == "link":
            l = key[1]
            resid = means[l] - means[l + 1] @ model.weights[l].T - model.biases[l]
            quad = ((resid.pow(2) + _diag(covs[l], covariance)) * k.prec[l]).sum(-1)
            quad = quad + _trace_prod(k.Q[l], covs[l + 1], covariance)
            out[key] = -0.5 * (LOG_2PI - k.prec[l].log()).sum() - 0.5 * quad
        else:
            l = key[1]
            ld = _logdet(covs[l], covariance) if logdets is None or logdets[l] is None else logdets[l]
            out[key] = ops.gaussian_entropy_from_logdet(model.widths[l], ld).expand(B)
    return out


def _all_terms(L: int) -> list:
    return ["obs"] + [("link", l) for l in range(L)] + ["top"] + [("entropy", l) for l in range(L + 1)]


def _terms_touched(L: int, level: Optional[int]) -> list:
    """Factors that involve ``q(s_level)`` (``level=None``: ``q(c)``)."""
    if level is None:
        return ["top"]
    keys = [("entropy", level)]
    keys += ["obs"] if level == 0 else [("link", level - 1)]
    keys += ["top"] if level == L else [("link", level)]
    return keys


def elbo(model, x, means, covs, class_probs=None, covariance: str = "full", logdets=None) -> torch.Tensor:
    """``E_q[log p(x̃, s, c)] + H[q]`` per sample ``(B,)``, analytically (SPEC §2.1).

    ``means[l]`` ``(B, n_l)``; ``covs[l]`` full ``(n_l, n_l)`` / ``(B, n_l, n_l)`` or diagonal
    ``(n_l,)`` / ``(B, n_l)`` per ``covariance``; ``class_probs`` ``q(c)`` ``(B, C)`` (default
    ``π``). ``logdets[l]``, if given, must be ``log det covs[l]`` (saves factorisations)."""
    terms = elbo_terms(model, x, means, covs, class_probs, covariance, logdets)
    return sum(t.expand(x.shape[0]) for t in terms.values())


def _level_information(model, k, x, means, level, r):
    """``h_l``: top-down ``D_l⁻¹(W_l m_l+1 + b_l)`` (or the top prior) plus bottom-up term."""
    L = model.depth
    if level < L:
        h = (means[level + 1] @ model.weights[level].T + model.biases[level]) * k.prec[level]
    elif model.has_mixture_top:
        h = r @ k.top_prec_mean
    else:
        h = k.top_prec_mean[0].expand(x.shape[0], -1)
    if level == 0:
        return h + x * model.noise_std.pow(-2)
    below = level - 1
    return h + ((means[below] - model.biases[below]) * k.prec[below]) @ model.weights[below]


def vb_level_update(model, x, level: int, means, class_probs=None, covariance: str = "full"):
    """Precision-weighted coordinate update of ``q(s_level)`` (SPEC §2.1). Returns
    ``(m, V)``: ``m`` ``(B, n_l)`` = ``P_l⁻¹ h_l``, ``V`` = ``P_l⁻¹`` or ``1/diag P_l``."""
    m, V, _ = _level_update(model, x, level, means, class_probs, covariance)
    return m, V


def _level_update(model, x, level, means, class_probs, covariance):
    """:func:`vb_level_update` plus ``log det V``."""
    k = constants(model, covariance)
    h = _level_information(model, k, x, means, level, class_probs)
    if k.chol[level] is not None:
        return torch.cholesky_solve(h.T, k.chol[level]).T, k.cov[level].clone(), k.logdet[level]
    r = model.class_probs.expand(x.shape[0], -1) if class_probs is None else class_probs
    P = k.base_top + torch.diag_embed(r @ k.top_prec)  # (B, n_L, n_L)
    chol = torch.linalg.cholesky(P)
    m = torch.cholesky_solve(h.unsqueeze(-1), chol).squeeze(-1)
    if covariance == "full":
        V, logdet = torch.cholesky_inverse(chol), -2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    else:
        V = P.diagonal(dim1=-2, dim2=-1).reciprocal()
        logdet = V.log().sum(-1)
    return m, V, logdet


def class_update(model, means, covs, covariance: str = "full") -> torch.Tensor:
    """``q(c) = r`` ``(B, C)``, the exact coordinate optimum (SPEC §2.1)."""
    k = constants(model, covariance)
    return torch.softmax(_class_log_weights(model, k, means[-1], covs[-1], covariance), dim=-1)


def _init_state(model, x, covariance, init) -> _State:
    B = x.shape[0]
    pm, pc = prior_marginals(model)
    prior_covs = pc if covariance == "full" else [S.diagonal() for S in pc]
    prior_r = model.class_probs.expand(B, -1).clone() if model.has_mixture_top else None
    if isinstance(init, str):
        if init != "prior":
            raise ValueError(f"init must be 'prior', a VBResult, a VBFixedPoint or a dict, got {init!r}")
        return _State([m.expand(B, -1).clone() for m in pm], list(prior_covs), prior_r)
    if isinstance(init, VBResult):
        if init.covariance != covariance:
            raise ValueError(f"init: a {init.covariance!r} VBResult cannot start a {covariance!r} run")
        if not init.means:
            return _State(list(init.init_means), list(init.init_covs), init.init_class_probs)
        return _State(list(init.means[-1]), list(init.covs[-1]), init.class_probs[-1])
    if hasattr(init, "means") and hasattr(init, "covariance"):  # a VBFixedPoint
        init = {"means": init.means, "covs": init.covs if init.covariance == covariance else None,
                "class_probs": init.class_probs}
    if not isinstance(init, dict) or "means" not in init:
        raise ValueError("init must be 'prior', a VBResult, a VBFixedPoint or a dict with 'means'")
    means = [torch.as_tensor(m, dtype=model.dtype, device=model.device) for m in init["means"]]
    if len(means) != model.depth + 1:
        raise ValueError(f"init['means']: expected {model.depth + 1} levels, got {len(means)}")
    for l, m in enumerate(means):
        if tuple(m.shape) != (B, model.widths[l]):
            raise ValueError(f"init['means'][{l}]: expected shape ({B}, {model.widths[l]}), got {tuple(m.shape)}")
    covs = init.get("covs") or prior_covs
    r = init.get("class_probs")
    return _State(means, list(covs), prior_r if r is None else r)


def _sweep(model, x, state: _State, covariance: str, relaxation: float, on_update=None,
           update_classes: bool = True) -> float:
    """One sweep (levels bottom-up, then ``q(c)``) in place; returns the largest mean step
    in units of the updated posterior std."""
    step = 0.0
    for l in range(model.depth + 1):
        m, V, logdet = _level_update(model, x, l, state.means, state.r, covariance)
        old = state.means[l]
        if relaxation != 1.0:
            m = old + relaxation * (m - old)
        dev = ((m - old).abs() / _diag(V, covariance).sqrt()).max()
        step = max(step, float(dev))
        state.means = state.means[:l] + [m] + state.means[l + 1:]
        state.covs = state.covs[:l] + [V] + state.covs[l + 1:]
        if state.logdets is None:
            state.logdets = [None] * len(state.covs)
        state.logdets = state.logdets[:l] + [logdet] + state.logdets[l + 1:]
        if on_update is not None:
            on_update(state, l)
    if model.has_mixture_top:
        if update_classes:
            state.r = class_update(model, state.means, state.covs, covariance)
        if on_update is not None:
            on_update(state, None)
    return step


def run_vb(model, x, sweeps: int, covariance: str = "full", init="prior", relaxation: float = 1.0,
           class_warmup: int = 0) -> VBResult:
    """Run ``sweeps`` VB coordinate sweeps and record the ELBO after every update (SPEC §2.1).
    ``relaxation`` ω ∈ (0, 2) over-relaxes the mean updates (``m ← m + ω(m* − m)``); the
    ELBO, concave quadratic in each ``m_l``, still never decreases; ω = 1 is plain VB.
    ``class_warmup`` (ours; default 0 = the SPEC's schedule) keeps ``q(c)`` at its initial
    value for that many sweeps (its ELBO slot is still recorded). From the prior init the
    first ``q(c)`` update sees a top level that bottom-up evidence has barely reached, and
    coordinate ascent can lock into a wrong class; a warm-up of a few sweeps avoids that."""
    _check_covariance(covariance)
    if int(sweeps) < 0:
        raise ValueError(f"sweeps must be non-negative, got {sweeps}")
    if not 0.0 < float(relaxation) < 2.0:
        raise ValueError(f"relaxation must lie in (0, 2), got {relaxation}")
    state = _init_state(model, x, covariance, init)
    init_copy = (list(state.means), list(state.covs), state.r)
    elbos = []
    terms = elbo_terms(model, x, state.means, state.covs, state.r, covariance)
    elbo_init = sum(t.expand(x.shape[0]) for t in terms.values())

    def record(s, level):  # refresh only the factors the update touched
        terms.update(elbo_terms(model, x, s.means, s.covs, s.r, covariance, s.logdets,
                                keys=_terms_touched(model.depth, level)))
        elbos.append(sum(t.expand(x.shape[0]) for t in terms.values()))

    means, covs, probs = [], [], []
    for _ in range(int(sweeps)):
        _sweep(model, x, state, covariance, float(relaxation), record, update_classes=_ >= class_warmup)
        means.append(list(state.means))
        covs.append(list(state.covs))
        probs.append(state.r)
    labels = [f"s_{l}" for l in range(model.depth + 1)] + (["c"] if model.has_mixture_top else [])
    elbo_t = torch.stack(elbos, dim=-1) if elbos else x.new_zeros(x.shape[0], 0)
    return VBResult(means, covs, probs, elbo_t, elbo_init, covariance, labels, *init_copy)


def _elementwise_links(model) -> list:
    widths = model.widths
    if len(set(widths)) != 1:
        raise ValueError(f"gated form needs elementwise links: all widths equal, got {widths}")
    diags = []
    for l, W in enumerate(model.weights):
        d = W.diagonal()
        if bool((W - torch.diag(d)).abs().max() > 0):
            raise ValueError(f"gated form needs elementwise links: weights[{l}] is not diagonal")
        if bool((d == 0).any()):
            raise ValueError(f"gated form needs elementwise links: weights[{l}] has a zero on its diagonal")
        diags.append(d)
    return diags


def vb_level_update_gated(model, level: int, means, x_noisy=None, class_probs=None):
    """Gated form of the level-``level`` mean update for elementwise links (SPEC §2.1).

    Top-down prediction ``μ̂_l = w_l m_l+1 + b_l`` (the top prior mean at ``L``; with a
    mixture top the ``r``-precision-weighted class mean), with variance ``σ_l²`` (or
    ``1 / Σ_c r_c τ_c⁻²``); bottom-up estimate ``z̃_l = (m_l-1 − b_l-1) / w_l-1`` (``x̃``
    at level 0) with variance ``σ_l-1² / w_l-1²`` (``σ_n²``). For the paper's ``y`` this is
    ``s_y = sig(log(σ_y² w_x²) − log σ_x²)``. Returns ``(m, gate)``.
    """
    w = _elementwise_links(model)
    L = model.depth
    if not 0 <= level <= L:
        raise ValueError(f"level must be in 0..{L}, got {level}")
    B = means[0].shape[0]
    if level < L:
        top_down = w[level] * means[level + 1] + model.biases[level]
        prior_var = model.stds[level].pow(2).expand_as(top_down)
    elif model.has_mixture_top:
        r = model.class_probs.expand(B, -1) if class_probs is None else class_probs
        prec = r @ model.class_stds.pow(-2)
        top_down = (r @ (model.class_stds.pow(-2) * model.class_means)) / prec
        prior_var = prec.reciprocal()
    else:
        top_down = model.top_mean.expand(B, -1)
        prior_var = model.top_std.pow(2).expand(B, -1)
    if level == 0:
        if x_noisy is None:
            raise ValueError("x_noisy is required for the level-0 update")
        bottom_up = model.check_x_noisy(x_noisy)
        lik_var = model.noise_std.pow(2).expand_as(bottom_up)
    else:
        bottom_up = (means[level - 1] - model.biases[level - 1]) / w[level - 1]
        lik_var = (model.stds[level - 1] / w[level - 1]).pow(2).expand_as(bottom_up)
    return gated_update(top_down, bottom_up, prior_var, lik_var)

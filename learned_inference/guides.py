"""Amortised Pyro guides for the static Gaussian hierarchy (SPEC §3.5; the thesis' VAE–Ladder
hybrid in ``papers/``, in the Ladder-VAE form of a top-down pass that combines messages).

Both guides take the model's ``pyro_model`` signature (``guide(x_noisy)``), register their
parameters with ``pyro.module`` and have one site per latent of the model (``c`` with a
class-mixture top, marked for parallel enumeration, then ``s_L .. s_0``) inside
``pyro.plate("data", B)``: ``SVI``, ``Importance``, ``Predictive`` and ``TraceEnum_ELBO``
accept them. ``approximation(x_noisy)`` gives their posterior's moments for the closed-form
scores of :mod:`explicit_models.static_divergence`.

* :class:`LadderGuide` — a deterministic bottom-up pass computes, per level, a Gaussian
  message in information form (precision ``Λ_l``, information ``η_l(x̃)``); a stochastic
  top-down pass draws ``s_L`` and then every ``s_l`` from the precision-weighted
  combination of that message with the model's own top-down prior
  ``p(s_l | s_l+1) = N(W_l s_l+1 + b_l, D_l)``:

      q(s_l | s_l+1, x̃) = N(S_l (D_l⁻¹ (W_l s_l+1 + b_l) + η_l),  S_l = (D_l⁻¹ + Λ_l)⁻¹)

  — the Ladder combinator of the Gaussian case (SPEC §2.1, gated form) and the Ladder VAE's
  update. At the top the message is combined with ``N(μ_L, σ_L²)``, or with every class
  prior ``N(μ_c, τ_c²)``, and ``q(c | x̃) ∝ π_c ∫ N(s; μ_c, τ_c²) m(s) ds`` weighs the
  classes by how well each explains the message (the combinator applied to the class).
  The bottom-up pass is affine, ``η_0 = U_0 x̃ + u_0``, ``η_l = U_l η_l-1 + u_l``: the
  backward information filter of a linear-Gaussian chain has exactly this form, so for the
  models of SPEC §2.1 the family contains the exact posterior (``q(s_l | s_l+1, x̃) =
  p(s_l | s_l+1, x̃)``, ``q(c | x̃) = p(c | x̃)``) and the KL can go to zero.
* :class:`MeanFieldEncoderGuide` — the plain VAE encoder for contrast: the same bottom-up
  pass, then ``q(s_l | x̃) = N(loc_l(η_l), diag scale_l(η_l)²)`` independently per level
  and ``q(c | x̃) = softmax(head(η_L))`` (a classifier head) independent of ``s``.

The message precisions are ``Λ_l = T_l T_lᵀ`` with ``T_l`` lower triangular
(``message="full"``) or diagonal (``message="diagonal"``, the original Ladder VAE's).
Everything is float64 by default, like the explicit models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.ops.indexing import Vindex
from torch import nn

from explicit_models.static_divergence import GaussianApproximation, chain_moments

MESSAGES = ("full", "diagonal")


class BottomUp(nn.Module):
    """The deterministic bottom-up pass: ``η_0 = U_0 x̃ + u_0``, ``η_l = U_l η_l-1 + u_l``
    (one affine map per level, widths of the model's levels). Returns ``[η_0 .. η_L]``."""

    def __init__(self, widths: list, dtype: torch.dtype):
        super().__init__()
        ins = [widths[0]] + list(widths[:-1])
        self.maps = nn.ModuleList(nn.Linear(i, o, dtype=dtype) for i, o in zip(ins, widths))

    def forward(self, x: torch.Tensor) -> list:
        out, h = [], x
        for layer in self.maps:
            h = layer(h)
            out.append(h)
        return out


class MessagePrecision(nn.Module):
    """``Λ = T Tᵀ`` (``"full"``: ``T`` lower triangular, positive diagonal) or
    ``diag(softplus(θ)²)`` (``"diagonal"``); initialised to the identity."""

    def __init__(self, width: int, kind: str, dtype: torch.dtype):
        super().__init__()
        if kind not in MESSAGES:
            raise ValueError(f"message must be one of {MESSAGES}, got {kind!r}")
        self.kind = kind
        self.raw_diag = nn.Parameter(torch.full((width,), 0.5413248546129181, dtype=dtype))  # softplus⁻¹(1)
        self.raw_lower = nn.Parameter(torch.zeros(width, width, dtype=dtype)) if kind == "full" else None

    def forward(self) -> torch.Tensor:
        d = F.softplus(self.raw_diag)
        if self.raw_lower is None:
            return torch.diag(d.pow(2))
        T = torch.tril(self.raw_lower, -1) + torch.diag(d)
        return T @ T.T


class SharedScaleMultivariateNormal(dist.MultivariateNormal):
    """``MultivariateNormal`` whose draws are ``loc + ε Lᵀ``: with one ``scale_tril`` ``L``
    shared by a batch this is one matrix product, where torch's ``rsample`` broadcasts ``L``
    to a ``(B, n, n)`` copy first (80 GB at B = 10⁴, n = 1024). Same law, same ``log_prob``.
    The guides create it with ``validate_args=False``: validation would check the broadcast
    ``(B, n, n)`` factor element by element, and ``L`` comes from a Cholesky factorisation."""

    def rsample(self, sample_shape=torch.Size()):
        eps = torch.randn(self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        L = self._unbroadcasted_scale_tril
        if L.dim() == 2:
            return self.loc + eps @ L.T
        return self.loc + (L @ eps.unsqueeze(-1)).squeeze(-1)


def _check_model(model) -> None:
    if not hasattr(model, "widths") or not hasattr(model, "pyro_model"):
        raise ValueError(f"model: expected a StaticGaussianHierarchy, got {type(model).__name__}")


def _inverse_and_tril(precision: torch.Tensor):
    """``(S = P⁻¹, cholesky(S))`` of a batch of precision matrices."""
    cov = torch.cholesky_inverse(torch.linalg.cholesky(precision))
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    return cov, torch.linalg.cholesky(cov)


@dataclass
class LadderConditionals:
    """The ladder guide's posterior for a batch: ``q(c | x̃)`` (``class_logits`` ``(B, C)`` or
    None), ``q(s_L | c, x̃) = N(top_means[:, k], top_covs[k])`` (``(B, K, n_L)``,
    ``(K, n_L, n_L)``) and ``q(s_l | s_l+1, x̃) = N(s_l+1 @ links[l].T + offsets[l],
    cond_covs[l])``; ``*_trils`` are the Cholesky factors of the covariances."""

    class_logits: Optional[torch.Tensor]
    top_means: torch.Tensor
    top_covs: torch.Tensor
    top_trils: torch.Tensor
    links: list
    offsets: list
    cond_covs: list
    cond_trils: list


class _Guide(nn.Module):
    """What both guides share: the model, its bottom-up pass and the Pyro entry point."""

    def __init__(self, model, name: str, dtype: torch.dtype):
        super().__init__()
        _check_model(model)
        self.model, self.name, self.widths = model, name, model.widths
        self.bottom_up = BottomUp(self.widths, dtype)

    def _inputs(self, x_noisy) -> torch.Tensor:
        return self.model.check_x_noisy(x_noisy).to(next(self.parameters()).dtype)

    def __call__(self, x_noisy=None, num_samples: int = 1):  # noqa: D102 (the pyro guide)
        if x_noisy is None:
            raise ValueError(f"{self.name}: x_noisy is required (a guide conditions on the data)")
        return super().__call__(x_noisy)


class LadderGuide(_Guide):
    """Ladder-structured amortised guide (module docstring; SPEC §3.5)."""

    def __init__(self, model, message: str = "full", name: str = "ladder_guide",
                 dtype: torch.dtype = torch.float64):
        super().__init__(model, name, dtype)
        self.precisions = nn.ModuleList(MessagePrecision(n, message, dtype) for n in self.widths)

    def conditionals(self, x_noisy) -> LadderConditionals:
        """Bottom-up pass, then every level's combination of message and prior."""
        m, x = self.model, self._inputs(x_noisy)
        eta = self.bottom_up(x)
        Lam = [p() for p in self.precisions]
        links, offsets, covs, trils = [], [], [], []
        for l in range(m.depth):
            d_inv = m.stds[l].pow(-2)
            S, T = _inverse_and_tril(torch.diag(d_inv) + Lam[l])
            links.append(S @ (d_inv[:, None] * m.weights[l]))
            offsets.append((m.biases[l] * d_inv + eta[l]) @ S)
            covs.append(S)
            trils.append(T)
        if m.has_mixture_top:
            prior_prec, prior_mean, log_w = m.class_stds.pow(-2), m.class_means, m.class_probs.log()
        else:
            prior_prec, prior_mean, log_w = m.top_std.pow(-2)[None], m.top_mean[None], None
        S_top, T_top = _inverse_and_tril(torch.diag_embed(prior_prec) + Lam[-1])  # (K, n, n)
        info = (prior_prec * prior_mean) + eta[-1][:, None, :]  # (B, K, n)
        top_means = (S_top @ info.unsqueeze(-1)).squeeze(-1)
        logits = None
        if log_w is not None:  # log π_c + log ∫ N(s; μ_c, τ_c²) exp(−½ sᵀΛs + ηᵀs) ds
            logits = log_w + 0.5 * ((info * top_means).sum(-1) - (prior_prec * prior_mean.pow(2)).sum(-1)
                                    + 2 * T_top.diagonal(dim1=-2, dim2=-1).log().sum(-1)
                                    + prior_prec.log().sum(-1))
        return LadderConditionals(logits, top_means, S_top, T_top, links, offsets, covs, trils)

    def forward(self, x_noisy):
        pyro.module(self.name, self)
        q = self.conditionals(x_noisy)
        L = self.model.depth
        with pyro.plate("data", q.top_means.shape[0]):
            if q.class_logits is not None:
                c = pyro.sample("c", dist.Categorical(logits=q.class_logits), infer={"enumerate": "parallel"})
                loc, tril = Vindex(q.top_means)[..., c, :], q.top_trils[c]
            else:
                loc, tril = q.top_means[:, 0], q.top_trils[0]
            s = pyro.sample(f"s_{L}", SharedScaleMultivariateNormal(loc, scale_tril=tril, validate_args=False))
            for l in reversed(range(L)):
                s = pyro.sample(f"s_{l}", SharedScaleMultivariateNormal(s @ q.links[l].T + q.offsets[l],
                                                                        scale_tril=q.cond_trils[l],
                                                                        validate_args=False))

    def approximation(self, x_noisy) -> GaussianApproximation:
        """The guide's joint posterior moments (the chain's, :func:`chain_moments`)."""
        q = self.conditionals(x_noisy)
        means, cov = chain_moments(q.top_means, q.top_covs, q.links, [o.unsqueeze(1) for o in q.offsets],
                                   q.cond_covs)
        probs = None if q.class_logits is None else torch.softmax(q.class_logits, -1)
        return GaussianApproximation(means, covs=cov, class_probs=probs)


class MeanFieldEncoderGuide(_Guide):
    """Mean-field encoder guide (module docstring): independent diagonal Gaussians per level,
    a classifier head for ``q(c | x̃)``."""

    def __init__(self, model, name: str = "mean_field_guide", dtype: torch.dtype = torch.float64):
        super().__init__(model, name, dtype)
        self.locs = nn.ModuleList(nn.Linear(n, n, dtype=dtype) for n in self.widths)
        self.scales = nn.ModuleList(nn.Linear(n, n, dtype=dtype) for n in self.widths)
        for layer in self.scales:  # start at scale softplus(0.54) = 1
            nn.init.zeros_(layer.weight)
            nn.init.constant_(layer.bias, 0.5413248546129181)
        C = model.num_classes
        self.head = nn.Linear(self.widths[-1], C, dtype=dtype) if model.has_mixture_top else None

    def parts(self, x_noisy):
        """``(class_logits (B, C) or None, locs[l] (B, n_l), scales[l] (B, n_l))``."""
        eta = self.bottom_up(self._inputs(x_noisy))
        logits = None if self.head is None else self.head(eta[-1])
        return (logits, [f(h) for f, h in zip(self.locs, eta)],
                [F.softplus(f(h)) for f, h in zip(self.scales, eta)])

    def forward(self, x_noisy):
        pyro.module(self.name, self)
        logits, locs, scales = self.parts(x_noisy)
        with pyro.plate("data", locs[0].shape[0]):
            if logits is not None:
                pyro.sample("c", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
            for l in reversed(range(self.model.depth + 1)):
                pyro.sample(f"s_{l}", dist.Normal(locs[l], scales[l]).to_event(1))

    def approximation(self, x_noisy) -> GaussianApproximation:
        logits, locs, scales = self.parts(x_noisy)
        K = self.model.num_classes if self.model.has_mixture_top else 1
        means, var = torch.cat(locs, -1), torch.cat(scales, -1).pow(2)
        B, N = means.shape
        probs = None if logits is None else torch.softmax(logits, -1)
        return GaussianApproximation(means.unsqueeze(1).expand(B, K, N), variances=var.unsqueeze(1).expand(B, K, N),
                                     class_probs=probs)

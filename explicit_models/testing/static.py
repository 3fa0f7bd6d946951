"""Test support for the static hierarchy: Hypothesis strategies for random models and
reference computations written independently of the library's own algebra.

Part of :mod:`explicit_models.testing` (needs ``hypothesis``); nothing in the library
imports it. The reference joint uses the structural-equation form ``s = M s + β + ε`` of SPEC
§2.1 (dense ``M`` holding the ``W_l`` blocks), so its precision
``(I − M)ᵀ D⁻¹ (I − M)`` is built by different algebra from the block-tridiagonal
assembly in :mod:`explicit_models.gaussian_ops`.
"""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from ..static_hierarchy import StaticGaussianHierarchy

EPS64 = float(np.finfo(np.float64).eps)


@st.composite
def static_models(draw, mixture=None, elementwise: bool = False, max_depth: int = 4,
                  max_width: int = 8, log10_std=(-1.0, 1.0), max_classes: int = 4):
    """Random float64 models: depth 1..``max_depth``, widths 1..``max_width``, every std
    (levels, top, classes, noise) log-uniform in ``10**log10_std`` — the default range
    spans variance ratios 1e-4..1e4. ``mixture``: None (either), True or False.
    ``elementwise``: equal widths and diagonal ``W_l`` (for the gated form)."""
    depth = draw(st.integers(1, max_depth), label="depth")
    if elementwise:
        widths = [draw(st.integers(1, max_width), label="width")] * (depth + 1)
    else:
        widths = draw(st.lists(st.integers(1, max_width), min_size=depth + 1, max_size=depth + 1), label="widths")
    mix = draw(st.booleans(), label="mixture") if mixture is None else bool(mixture)
    lo, hi = log10_std
    level_log = draw(st.lists(st.floats(lo, hi), min_size=depth + 1, max_size=depth + 1), label="log10 stds")
    noise_log = draw(st.floats(lo, hi), label="log10 noise std")
    weight_log = draw(st.floats(-0.5, 0.5), label="log10 weight scale")
    num_classes = draw(st.integers(2, max_classes), label="classes") if mix else 0
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)

    def stds(centre, shape):
        return 10.0 ** np.clip(centre + rng.uniform(-0.2, 0.2, size=shape), lo, hi)

    weights, biases, level_stds = [], [], []
    for l in range(depth):
        n, m = widths[l], widths[l + 1]
        if elementwise:
            d = rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.5, 1.5, size=n)
            weights.append(np.diag(d) * 10.0 ** weight_log)
        else:
            weights.append(rng.normal(size=(n, m)) / np.sqrt(m) * 10.0 ** weight_log)
        biases.append(rng.normal(size=n))
        level_stds.append(stds(level_log[l], n))
    nL = widths[-1]
    if mix:
        probs = rng.dirichlet(np.full(num_classes, 2.0)) + 1e-3
        top = dict(class_means=2.0 * rng.normal(size=(num_classes, nL)),
                   class_stds=stds(level_log[depth], (num_classes, nL)), class_probs=probs / probs.sum())
    else:
        top = dict(top_mean=rng.normal(size=nL), top_std=stds(level_log[depth], nL))
    return StaticGaussianHierarchy(weights, biases, level_stds, 10.0 ** noise_log, **top)


def sem_prior(model, c=None):
    """Reference prior ``(precision Λ (N, N), information η (N,))`` of the stacked latents
    given class ``c`` (ignored with a Gaussian top), from ``(I − M) s = β + ε``."""
    widths = model.widths
    off = np.concatenate([[0], np.cumsum(widths)])
    N = int(off[-1])
    M = torch.zeros(N, N, dtype=model.dtype)
    beta = torch.zeros(N, dtype=model.dtype)
    var = torch.zeros(N, dtype=model.dtype)
    for l in range(model.depth):
        M[off[l]:off[l + 1], off[l + 1]:off[l + 2]] = model.weights[l]
        beta[off[l]:off[l + 1]] = model.biases[l]
        var[off[l]:off[l + 1]] = model.stds[l] ** 2
    top = slice(int(off[-2]), N)
    if model.has_mixture_top:
        beta[top], var[top] = model.class_means[c], model.class_stds[c] ** 2
    else:
        beta[top], var[top] = model.top_mean, model.top_std ** 2
    A = torch.eye(N, dtype=model.dtype) - M
    AtDinv = A.T / var
    return AtDinv @ A, AtDinv @ beta


def sem_posterior_precision(model, c=None):
    """Reference posterior precision ``Λ + σ_n⁻² E₀E₀ᵀ`` (does not depend on ``x̃``)."""
    Lam, _ = sem_prior(model, c)
    n0 = model.widths[0]
    Lam[:n0, :n0] += torch.eye(n0, dtype=model.dtype) / model.noise_std ** 2
    return Lam


def sem_posterior_means(model, x, c=None):
    """Reference ``E[s | x̃, c]`` ``(B, N)`` by a dense solve."""
    P = sem_posterior_precision(model, c)
    _, eta = sem_prior(model, c)
    n0 = model.widths[0]
    rhs = eta.expand(x.shape[0], -1).clone()
    rhs[:, :n0] += x / model.noise_std ** 2
    return torch.linalg.solve(P, rhs.T).T


def jacobi_condition(P: torch.Tensor) -> float:
    """2-norm condition number of ``D^-1/2 P D^-1/2``, ``D = diag P``: the quantity that
    bounds the relative error of Cholesky-based solves (it is invariant to rescaling the
    units, unlike ``κ(P)``)."""
    d = P.diagonal().rsqrt()
    ev = torch.linalg.eigvalsh(d[:, None] * P * d[None, :])
    return float(ev[-1] / ev[0])


def split_levels(v: torch.Tensor, widths) -> list:
    """Split the last dimension of a stacked vector into per-level pieces."""
    return list(torch.split(v, list(widths), dim=-1))

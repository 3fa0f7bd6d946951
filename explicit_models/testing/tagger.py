"""Test support for the Tagger mixture (SPEC §2.3): Hypothesis strategies for random
models and data.

``tagger_models``: K = 1..3 groups, N = 1..6 pixels, d = 1..3, every variance (``σ_k²``,
``σ²``) log-uniform in [1e-6, 1e6], basis scale 10^[−1, 1]; ``data_for`` samples from the
model or draws "wild" data (``N(0, 10²)``, far off-model).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import strategies as st

from ..tagger_mixture import TaggerMixture

F64 = torch.float64


@st.composite
def tagger_models(draw, likelihood="gaussian", max_groups=3, max_pixels=6, max_dim=3, log10_var=(-6.0, 6.0),
                  min_groups=1, log10_basis=(-1.0, 1.0)):
    K = draw(st.integers(min_groups, max_groups), label="K")
    N = draw(st.integers(1, max_pixels), label="N")
    d = draw(st.integers(1, max_dim), label="d")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(N, d)) * 10.0 ** draw(st.floats(*log10_basis), label="log10 basis scale") / math.sqrt(d)
    offsets = rng.normal(size=(K, N)) * draw(st.floats(0.0, 2.0), label="offset scale")
    probs = rng.dirichlet(np.full(K, 2.0)) + 1e-3
    probs = probs / probs.sum()
    if likelihood == "gaussian":
        lo, hi = log10_var
        group_vars = draw(st.lists(st.floats(lo, hi), min_size=K, max_size=K), label="log10 group vars")
        noise_var = draw(st.floats(lo, hi), label="log10 noise var")
        return TaggerMixture(basis, offsets, 10.0 ** (0.5 * np.asarray(group_vars)), 10.0 ** (0.5 * noise_var),
                             mix_probs=probs)
    flip = draw(st.floats(0.0, 0.45), label="flip prob")
    return TaggerMixture(basis, offsets, None, None, mix_probs=probs, likelihood="bernoulli", flip_prob=flip)


def data_for(model, draw_wild: bool, B: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if draw_wild and model.likelihood == "gaussian":
        return 10.0 * torch.randn(B, model.num_pixels, generator=g, dtype=F64)
    return model.sample(B, g).x_noisy


def random_masks(B, K, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2.0 * torch.randn(B, K, N, generator=g, dtype=F64), dim=1)


def tiny_model(likelihood="gaussian", K=2, N=6, d=2, seed=0):
    """Non-exchangeable groups (separated offsets, unequal ρ) so that the posterior over ``h``
    has one dominant mode and no label switching."""
    rng = np.random.default_rng(seed)
    basis = 0.8 * rng.normal(size=(N, d)) / math.sqrt(d)
    offsets = np.linspace(-1.5, 1.5, K)[:, None] + 0.2 * rng.normal(size=(K, N))
    probs = np.linspace(1.0, 2.0, K)
    probs = probs / probs.sum()
    if likelihood == "gaussian":
        return TaggerMixture(basis, offsets, np.linspace(0.3, 0.6, K), 0.3, mix_probs=probs)
    return TaggerMixture(basis, 2.0 * offsets, None, None, mix_probs=probs, likelihood="bernoulli", flip_prob=0.1)

"""The clean-image predictive of the Gaussian Tagger mixture against direct computation."""
import math

import torch
from hypothesis import given, strategies as st

from explicit_models.tagger_predictive import (conditional_clean_moments, sampled_predictive_cost,
                                               vb_predictive_cost)

log_var = st.floats(-6.0, 6.0)
F64 = torch.float64


def T(value):
    return torch.tensor(value, dtype=F64)


def R(*shape, generator):
    return torch.randn(*shape, generator=generator, dtype=F64)


def U(*shape, generator):
    return torch.rand(*shape, generator=generator, dtype=F64)


@given(sk2=log_var, s2=log_var, mu=st.floats(-5, 5), xn=st.floats(-5, 5))
def test_conditional_moments_are_the_product_of_two_gaussians(sk2, s2, mu, xn):
    """``N(x; μ, σ_k²) N(x̃; x, σ²) ∝ N(x; mean, var)``: compare log densities on a grid."""
    sk2, s2 = 10.0 ** sk2, 10.0 ** s2
    mean, var, _ = conditional_clean_moments(T([[xn]]), T([[[mu]]]),
                                             T([sk2]), s2)
    mean, var = float(mean), float(var)
    assert var > 0
    grid = mean + math.sqrt(var) * torch.linspace(-3, 3, 7, dtype=F64)
    lhs = -(grid - mu) ** 2 / (2 * sk2) - (xn - grid) ** 2 / (2 * s2)
    rhs = -(grid - mean) ** 2 / (2 * var)
    diff = lhs - rhs
    assert torch.allclose(diff, diff[0].expand_as(diff), atol=1e-6 * (1 + diff.abs().max()))


@given(m=st.floats(-3, 3), v=st.floats(1e-3, 4.0), sk2=st.floats(1e-2, 2.0), s2=st.floats(1e-2, 2.0),
       xn=st.floats(-3, 3), x=st.floats(-3, 3))
def test_vb_predictive_integrates_over_q_h(m, v, sk2, s2, xn, x):
    """One group, one pixel: ``q(x) = ∫ N(μ; m, v) N(x; E[x|μ, x̃], Var) dμ`` by quadrature."""
    # E[x|μ, x̃] = a μ + c is linear in μ, so the integrand is a Gaussian in μ: put the
    # quadrature grid around *its* peak (±12 of its widths), not around q(μ)'s — for a narrow
    # q(h) and a far x the two are many q-widths apart.
    ends, var0, _ = conditional_clean_moments(T([[xn]]), T([0.0, 1.0]).view(1, -1, 1), T([sk2]), s2)
    c, a, var0 = float(ends.view(-1)[0]), float(ends.view(-1)[1] - ends.view(-1)[0]), float(var0.view(-1)[0])
    prec = 1.0 / v + a * a / var0
    peak = (m / v + a * (x - c) / var0) / prec
    mu = peak + 12.0 / math.sqrt(prec) * torch.linspace(-1, 1, 20001, dtype=F64)
    mean, var, _ = conditional_clean_moments(T([[xn]]), mu.view(1, -1, 1),
                                             T([sk2]), s2)
    log_dens = -(mu - m) ** 2 / (2 * v) - 0.5 * math.log(2 * math.pi * v) \
        - (x - mean.view(-1)) ** 2 / (2 * var.view(-1)) - 0.5 * torch.log(2 * math.pi * var.view(-1))
    # trapezoid rule in log space (a far x makes q underflow): ends weighted 1/2
    log_w = torch.zeros_like(mu)
    log_w[[0, -1]] = math.log(0.5)
    log_q = float(torch.logsumexp(log_dens + log_w, 0)) + math.log(float(mu[1] - mu[0]))
    cost = vb_predictive_cost(T([[x]]), T([[xn]]), torch.ones(1, 1, 1, dtype=F64),
                              T([[[m]]]), T([[[v]]]), T([sk2]), s2)
    assert math.isclose(float(cost), -log_q, rel_tol=1e-6, abs_tol=1e-6)


def test_vb_predictive_is_a_mixture_over_groups_and_sums_pixels():
    gen = torch.Generator().manual_seed(0)
    B, K, N = 2, 3, 5
    x, xn = R(B, N, generator=gen), R(B, N, generator=gen)
    pi = torch.softmax(R(B, K, N, generator=gen), 1)
    m, v = R(B, K, N, generator=gen), U(B, K, N, generator=gen)
    gv = T([0.1, 0.2, 0.3])
    total = vb_predictive_cost(x, xn, pi, m, v, gv, 0.5)
    # direct: per pixel mixture density
    mean, var, gain = conditional_clean_moments(xn, m, gv, 0.5)
    var = var + gain ** 2 * v
    dens = (pi * torch.exp(-(x.unsqueeze(1) - mean) ** 2 / (2 * var)) / torch.sqrt(2 * math.pi * var)).sum(1)
    assert torch.allclose(total, -torch.log(dens).sum(-1))


def test_sampled_predictive_averages_densities_over_draws():
    gen = torch.Generator().manual_seed(1)
    S, B, K, N = 4, 2, 2, 3
    x, xn = R(B, N, generator=gen), R(B, N, generator=gen)
    r = torch.softmax(R(S, B, K, N, generator=gen), 2)
    mu = R(S, B, K, N, generator=gen)
    gv = T([0.2, 0.4])
    got = sampled_predictive_cost(x, xn, r, mu, gv, 0.3)
    mean, var, _ = conditional_clean_moments(xn, mu, gv, 0.3)
    dens = (r * torch.exp(-(x.unsqueeze(-2) - mean) ** 2 / (2 * var)) / torch.sqrt(2 * math.pi * var)).sum(-2)
    assert torch.allclose(got, -torch.log(dens.mean(0)).sum(-1))
    # one draw with zero variance of q(h) is the VB formula
    one = vb_predictive_cost(x, xn, r[0], mu[0], torch.zeros_like(mu[0]), gv, 0.3)
    assert torch.allclose(sampled_predictive_cost(x, xn, r[:1], mu[:1], gv, 0.3), one)

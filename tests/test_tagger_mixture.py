"""The Tagger mixture (SPEC §2.3): TAG inputs, VB, the binary formulas, sampling, the
grouping cost and validation (exact enumeration, the Pyro model and the NUTS gold
standard: test_tagger_exact.py).

Random float64 models (``explicit_models.testing.tagger_models``): K = 1..3 groups, N = 1..6 pixels,
d = 1..3, every variance (``σ_k²``, ``σ²``) log-uniform in [1e-6, 1e6], basis scale
10^[−1, 1], data either sampled from the model or "wild" (``N(0, 10²)``, far off-model).
Round-off tolerances are relative to the magnitude of the quantities compared: sums of
``O(N K)`` float64 terms of size ``|ELBO|`` are exact to ``~ N K eps |ELBO|``; we allow
``1e-9 (1 + |ELBO|)``, well above that and far below any real decrease of the ELBO.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from explicit_models import TaggerMixture, TaggerVBResult, TagInputs
from explicit_models import tagger_binary as tb
from explicit_models import tagger_vb as tvb
from explicit_models.testing import F64, data_for, random_masks, tagger_models, tiny_model


# ---------------------------------------------------------------- TAG inputs
@settings(max_examples=50)
@given(tagger_models(), st.booleans(), st.booleans())
def test_delta_z_is_the_gradient_of_the_mixture_log_likelihood(model, wild, use_var):
    """δz_ik = ∂/∂z_ik Σ_i log Σ_h m_ih N(x̃_i; z_ih, λ_h) (autograd), with λ or an override."""
    x = data_for(model, wild)
    B, K, N = x.shape[0], model.num_groups, model.num_pixels
    g = torch.Generator().manual_seed(1)
    spread = model.lam.sqrt().unsqueeze(-1)
    z = (x.unsqueeze(1) + torch.randn(B, K, N, generator=g, dtype=F64) * spread).requires_grad_()
    m = random_masks(B, K, N)
    var = model.lam.unsqueeze(-1) * torch.exp(torch.randn(B, K, N, generator=g, dtype=F64)) if use_var else None
    lam = model.lam.unsqueeze(-1) if var is None else var
    logp = torch.logsumexp(torch.log(m) - 0.5 * (torch.log(2 * math.pi * lam) + (x.unsqueeze(1) - z) ** 2 / lam), 1)
    (grad,) = torch.autograd.grad(logp.sum(), z)
    tag = model.tag_inputs(x, z.detach(), m, var=var)
    assert isinstance(tag, TagInputs)
    assert torch.isfinite(tag.delta_z).all()
    torch.testing.assert_close(tag.delta_z, grad, rtol=1e-9, atol=1e-12 * float(grad.abs().max()) + 1e-300)


@settings(max_examples=50)
@given(tagger_models(likelihood="bernoulli"), st.integers(0, 1000))
def test_binary_delta_z_times_one_minus_two_beta_is_the_gradient(model, seed):
    """Binary: δz_k (1 − 2β) = ∂/∂z_k log p(x̃) with p(x̃=1) = Σ_h m_h ξ_h, ξ_h = z_h(1 − 2β) + β."""
    x = data_for(model, False, seed=seed)
    B, K, N = x.shape[0], model.num_groups, model.num_pixels
    g = torch.Generator().manual_seed(seed)
    z = (0.01 + 0.98 * torch.rand(B, K, N, generator=g, dtype=F64)).requires_grad_()
    m = random_masks(B, K, N, seed)
    beta = model.flip_prob
    p1 = (m * (z * (1 - 2 * beta) + beta)).sum(1)
    logp = torch.where(x > 0.5, torch.log(p1), torch.log1p(-p1))
    (grad,) = torch.autograd.grad(logp.sum(), z)
    tag = model.tag_inputs(x, z.detach(), m)
    torch.testing.assert_close(tag.delta_z * (1 - 2 * beta), grad, rtol=1e-10, atol=1e-12)
    # L(m) ∝ p(x̃ | group k) = ξ_k^x̃ (1 − ξ_k)^(1 − x̃)
    xi = z.detach() * (1 - 2 * beta) + beta
    lik = torch.where(x.unsqueeze(1) > 0.5, xi, 1 - xi)
    torch.testing.assert_close(tag.mask_likelihood, lik / lik.sum(1, keepdim=True), rtol=1e-12, atol=1e-14)


@settings(max_examples=50)
@given(tagger_models(), st.booleans())
def test_mask_likelihood_is_a_normalised_likelihood_ratio(model, wild):
    """L(m)_ik = N(x̃_i; z_ik, λ_k) / Σ_h N(x̃_i; z_ih, λ_h): sums to one, finite for any λ,
    and equals 1 / Σ_h exp(ℓ_h − ℓ_k) (a form that never forms the densities)."""
    x = data_for(model, wild)
    B, K, N = x.shape[0], model.num_groups, model.num_pixels
    z = x.unsqueeze(1) + 3.0 * torch.randn(B, K, N, generator=torch.Generator().manual_seed(2), dtype=F64)
    L = model.tag_inputs(x, z, random_masks(B, K, N)).mask_likelihood
    assert torch.isfinite(L).all()
    torch.testing.assert_close(L.sum(1), torch.ones(B, N, dtype=F64), rtol=0, atol=1e-12)
    ell = tvb.gaussian_log_density(x.unsqueeze(1), z, model.lam.unsqueeze(-1))
    ref = 1.0 / torch.exp(ell.unsqueeze(1) - ell.unsqueeze(2)).sum(2)  # [b, k, i] = 1 / Σ_h exp(ℓ_h − ℓ_k)
    torch.testing.assert_close(L, ref, rtol=1e-9, atol=1e-300)


@settings(max_examples=30)
@given(st.integers(1, 4), st.floats(-1e8, 1e8), st.integers(0, 100))
def test_mask_likelihood_invariant_to_a_common_shift_of_the_log_likelihoods(K, shift, seed):
    """Multiplying every group's likelihood at a pixel by the same factor leaves L(m) unchanged:
    with a per-element variance, ``N(x̃; z, λ)`` for groups sharing the pixel's λ — realised here
    by shifting x̃_i and all z_ik by a common constant — and, for the softmax form itself, a
    huge common additive shift of ℓ."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, generator=g, dtype=F64)
    z = torch.randn(2, K, 5, generator=g, dtype=F64)
    lam = torch.exp(torch.randn(K, 1, generator=g, dtype=F64))
    L = tvb.mask_likelihood(x, z, lam)
    torch.testing.assert_close(tvb.mask_likelihood(x + shift, z + shift, lam), L, rtol=0,
                               atol=1e-9 * (1 + abs(shift)) / lam.min().item())
    ell = tvb.gaussian_log_density(x.unsqueeze(1), z, lam)
    torch.testing.assert_close(torch.softmax(ell + shift, 1), L, rtol=0, atol=1e-15 * (1 + abs(shift)) * 8)


# ---------------------------------------------------------------- VB
def _elbo_tol(e):
    return 1e-9 * (1.0 + e.abs())


@settings(max_examples=50)
@given(tagger_models(), st.booleans(), st.integers(0, 1000))
def test_vb_never_decreases_the_elbo(model, wild, seed):
    """Every coordinate update (q(h), then q(z)) leaves the ELBO non-decreasing; π sums to one;
    nothing is NaN for variances 1e-6..1e6, on- and off-model data."""
    x = data_for(model, wild, seed=seed)
    res = model.vb(x, 6, init="random", generator=torch.Generator().manual_seed(seed))
    assert isinstance(res, TaggerVBResult)
    e = torch.cat([res.elbo_init.unsqueeze(-1), res.elbo_updates], -1)
    assert torch.isfinite(e).all()
    steps = e[:, 1:] - e[:, :-1]
    assert bool((steps >= -_elbo_tol(e[:, 1:])).all()), steps.min()
    torch.testing.assert_close(res.elbo, res.elbo_updates[:, 1::2])
    for t in range(6):
        assert torch.isfinite(res.pi[t]).all() and torch.isfinite(res.m[t]).all() and torch.isfinite(res.v[t]).all()
        assert bool((res.v[t] >= 0).all())
        torch.testing.assert_close(res.pi[t].sum(1), torch.ones_like(x), rtol=0, atol=1e-12)


@settings(max_examples=25)
@given(tagger_models(max_pixels=5), st.integers(0, 1000))
def test_elbo_is_below_the_exact_log_evidence(model, seed):
    """ELBO ≤ log p(x̃) (exact enumeration over K^N assignments, h integrated in closed form)."""
    x = data_for(model, False, seed=seed)
    log_z = model.exact_log_evidence(x)
    res = model.vb(x, 8, generator=torch.Generator().manual_seed(seed))
    assert torch.isfinite(log_z).all()
    assert bool((res.elbo <= log_z.unsqueeze(-1) + _elbo_tol(log_z).unsqueeze(-1)).all()), (res.elbo.max(1), log_z)


def test_vb_prior_init_stays_on_the_symmetric_saddle():
    """Exchangeable groups + π0 = ρ: every q(h_k) is the same and π stays ρ (documented)."""
    model = TaggerMixture.textures(4, 4, 3)
    x = model.sample(2, torch.Generator().manual_seed(0)).x_noisy
    res = model.vb(x, 5, init="prior")
    torch.testing.assert_close(res.pi[-1], torch.full_like(res.pi[-1], 1 / 3))
    rnd = model.vb(x, 5, init="random", generator=torch.Generator().manual_seed(0))
    assert bool((rnd.elbo[:, -1] > res.elbo[:, -1]).all())


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_vb_converged_matches_plain_vb_and_stops(likelihood):
    extra = dict(likelihood="bernoulli", flip_prob=0.1) if likelihood == "bernoulli" else {}
    model = TaggerMixture.textures(5, 5, 2, num_freqs=2, **extra)
    x = model.sample(3, torch.Generator().manual_seed(0)).x_noisy
    st_ = model.vb_converged(x, max_iters=400, tol=1e-9, generator=torch.Generator().manual_seed(5))
    res = model.vb(x, st_.iterations, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(st_.pi, res.pi[-1])
    torch.testing.assert_close(st_.elbo, res.elbo[:, -1])
    assert st_.iterations < 400 and bool(st_.converged.all())
    assert float((res.elbo[:, -1] - res.elbo[:, -2]).abs().max()) < 1e-9


def test_vb_is_close_to_exact_when_the_posterior_is_concentrated():
    """Well-separated groups and little noise: q(z) at the VB fixed point ≈ p(z | x̃)."""
    rng = np.random.default_rng(0)
    basis = 0.3 * rng.normal(size=(8, 2))
    model = TaggerMixture(basis, np.array([[-2.0] * 8, [2.0] * 8]), [0.2, 0.2], 0.1, mix_probs=[0.4, 0.6])
    x = model.sample(4, torch.Generator().manual_seed(1)).x_noisy
    exact = model.exact_assignment_posterior(x)
    q = model.vb_converged(x, tol=1e-12, init="prior").pi
    assert float((q - exact).abs().max()) < 1e-6


@settings(max_examples=20)
@given(tagger_models(likelihood="bernoulli", max_pixels=4, max_dim=2, log10_basis=(-1.0, 0.5)), st.integers(0, 1000))
def test_binary_vb_bound_never_decreases_and_stays_below_the_evidence(model, seed):
    """Jaakkola–Jordan VB: each update (q(h), ζ, q(z, x)) leaves the bound-ELBO non-decreasing;
    the bound-ELBO ≤ log p(x̃) (enumeration × Gauss–Hermite quadrature); q(z) sums to one."""
    x = data_for(model, False, seed=seed)
    res = model.vb(x, 5, generator=torch.Generator().manual_seed(seed))
    e = torch.cat([res.elbo_init.unsqueeze(-1), res.elbo_updates], -1)
    assert torch.isfinite(e).all() and e.shape[-1] == 1 + 3 * 5
    assert bool((e[:, 1:] - e[:, :-1] >= -_elbo_tol(e[:, 1:])).all())
    torch.testing.assert_close(res.pi[-1].sum(1), torch.ones_like(x), rtol=0, atol=1e-12)
    assert bool(((res.x_probs[-1] >= 0) & (res.x_probs[-1] <= 1)).all())
    log_z = model.exact_log_evidence(x, quadrature_points=30)
    assert bool((res.elbo[:, -1] <= log_z + 1e-6 * (1 + log_z.abs())).all())


@given(st.floats(-30.0, 30.0), st.floats(-30.0, 30.0))
def test_jaakkola_jordan_bound_is_a_lower_bound_tight_at_zeta(t, zeta):
    """log sig(t) ≥ log sig(ζ) + (t − ζ)/2 − λ(ζ)(t² − ζ²), with equality at t = ±ζ."""
    t_, z_ = torch.tensor(t, dtype=F64), torch.tensor(zeta, dtype=F64)
    c, _ = tb.jj_bound_terms(torch.zeros((), dtype=F64), t_ ** 2, z_)  # E over μ with m=0, v=t²
    bound = c + t_ / 2.0
    exact = torch.nn.functional.logsigmoid(t_)
    assert float(bound) <= float(exact) + 1e-12 * (1 + t * t)
    at = torch.nn.functional.logsigmoid(z_)
    c_tight, _ = tb.jj_bound_terms(torch.zeros((), dtype=F64), z_ ** 2, z_)
    assert abs(float(c_tight + z_ / 2.0 - at)) < 1e-12 * (1 + zeta * zeta)


# ---------------------------------------------------------------- binary formulas
@settings(max_examples=40)
@given(tagger_models(likelihood="bernoulli"), st.integers(0, 1000))
def test_binary_likelihood_matches_brute_force_over_the_clean_pixel(model, seed):
    """p(x̃ | z=k, h) = Σ_x p(x | μ_k) p(x̃ | x) and P(x=1 | h, x̃) by Bayes' rule over (z, x)."""
    g = torch.Generator().manual_seed(seed)
    x = data_for(model, False, seed=seed)
    h = 3.0 * torch.randn(x.shape[0], model.num_groups, model.basis_dim, generator=g, dtype=F64)
    mu = model.group_means(h)
    beta = float(model.flip_prob)
    xt = x.unsqueeze(1)
    p_obs_given = lambda clean: torch.where(xt == clean, torch.tensor(1 - beta, dtype=F64),  # noqa: E731
                                            torch.tensor(beta, dtype=F64))
    joint1 = torch.sigmoid(mu) * p_obs_given(1.0)  # p(x = 1 | μ) p(x̃ | x = 1)
    joint0 = torch.sigmoid(-mu) * p_obs_given(0.0)
    ls = torch.nn.functional.logsigmoid
    log_ref = torch.logaddexp(ls(mu) + torch.log(p_obs_given(1.0)), ls(-mu) + torch.log(p_obs_given(0.0)))
    torch.testing.assert_close(model.log_likelihood_terms(x, h), log_ref, rtol=1e-10, atol=1e-10)
    w = model.mix_probs.reshape(1, -1, 1)
    post1 = (w * joint1).sum(1) / (w * (joint1 + joint0)).sum(1)
    torch.testing.assert_close(model.clean_mean_given_h(x, h), post1, rtol=1e-9, atol=1e-12)


def test_binary_sampling_flips_bits_at_the_flip_rate():
    model = TaggerMixture.textures(6, 6, 2, likelihood="bernoulli", flip_prob=0.2)
    s = model.sample(400, torch.Generator().manual_seed(0))
    rate = float((s.x != s.x_noisy).double().mean())
    n = s.x.numel()
    assert abs(rate - 0.2) < 5 * math.sqrt(0.2 * 0.8 / n)
    assert set(s.x.unique().tolist()) <= {0.0, 1.0} and s.z.dtype == torch.long


def test_gaussian_sampling_moments():
    """x̃_i | z_i=k, h ~ N(μ_ik, λ_k): standardised residuals have mean 0 and variance 1."""
    model = TaggerMixture.textures(6, 6, 3, group_std=0.3, noise_std=0.2)
    s = model.sample(500, torch.Generator().manual_seed(0))
    mu_z = s.mu.gather(1, s.z.unsqueeze(1)).squeeze(1)
    r = (s.x_noisy - mu_z) / model.lam[s.z].sqrt()
    n = r.numel()
    assert abs(float(r.mean())) < 5 / math.sqrt(n) and abs(float(r.var()) - 1) < 5 * math.sqrt(2 / n)
    assert s.x.shape == (500, 36) and s.h.shape == (500, 3, 8) and s.mu.shape == (500, 3, 36)


def test_texture_basis_is_orthogonal_with_per_pixel_variance_amplitude_squared():
    model = TaggerMixture.textures(12, 12, 3, num_freqs=6, amplitude=1.7)
    Bm = model.basis
    assert Bm.shape == (144, 12)
    torch.testing.assert_close((Bm ** 2).sum(1), torch.full((144,), 1.7 ** 2, dtype=F64))
    gram = Bm.T @ Bm
    torch.testing.assert_close(gram, torch.diag(gram.diagonal()), atol=1e-10, rtol=0)


# ---------------------------------------------------------------- grouping cost
@settings(max_examples=50)
@given(tagger_models(), st.floats(-6.0, 6.0))
def test_grouping_cost_formula(model, log10_v):
    x = data_for(model, False)
    B, K, N = x.shape[0], model.num_groups, model.num_pixels
    pi = random_masks(B, K, N)
    m = x.unsqueeze(1) + torch.randn(B, K, N, generator=torch.Generator().manual_seed(0), dtype=F64)
    v = torch.full((B, K, N), 10.0 ** log10_v, dtype=F64)
    c = model.grouping_cost(x, pi, m, v)
    var = model.group_vars.unsqueeze(-1) + v
    log_n = torch.distributions.Normal(m, var.sqrt()).log_prob(x.unsqueeze(1))
    ref = -torch.logsumexp(torch.log(pi) + log_n, 1).sum(-1)
    assert torch.isfinite(c).all()
    torch.testing.assert_close(c, ref, rtol=1e-10, atol=1e-10)


def test_binary_grouping_cost_formula():
    model = tiny_model("bernoulli", K=3)
    s = model.sample(4, torch.Generator().manual_seed(0))
    pi = random_masks(4, 3, 6)
    m = torch.rand(4, 3, 6, generator=torch.Generator().manual_seed(1), dtype=F64)
    ref = -torch.log((pi * torch.distributions.Bernoulli(probs=m).log_prob(s.x.unsqueeze(1)).exp()).sum(1)).sum(-1)
    torch.testing.assert_close(model.grouping_cost(s.x, pi, m), ref)


# ---------------------------------------------------------------- validation
BASIS = np.ones((4, 2))


@pytest.mark.parametrize("kwargs,name", [
    (dict(group_stds=[1.0, -1.0]), "group_stds"),
    (dict(group_stds=[1.0, float("nan")]), "group_stds"),
    (dict(noise_std=0.0), "noise_std"),
    (dict(noise_std=[0.1, 0.2]), "noise_std"),
    (dict(basis=np.full((4, 2), np.nan)), "basis"),
    (dict(basis=np.ones(4)), "basis"),
    (dict(offsets=np.zeros((3, 4))), "offsets"),
    (dict(offsets=np.zeros(5)), "offsets"),
    (dict(mix_probs=[0.3, 0.3]), "mix_probs"),
    (dict(mix_probs=[0.5, 0.25, 0.25]), "mix_probs"),
    (dict(likelihood="poisson"), "likelihood"),
    (dict(flip_prob=0.1), "flip_prob"),
    (dict(likelihood="bernoulli", flip_prob=0.5), "flip_prob"),
    (dict(likelihood="bernoulli", flip_prob=-0.1), "flip_prob"),
    (dict(likelihood="bernoulli"), "flip_prob"),
])
def test_invalid_parameters_raise_naming_the_parameter(kwargs, name):
    args = dict(basis=BASIS, offsets=np.zeros((2, 4)), group_stds=[1.0, 2.0], noise_std=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        TaggerMixture(**args)


def test_wrong_input_shapes_raise_stating_the_expected_shape():
    model = tiny_model("gaussian", K=2, N=6)
    with pytest.raises(ValueError, match=r"expected shape \(batch, 6\)"):
        model.vb(torch.zeros(2, 5, dtype=F64), 1)
    x = torch.zeros(2, 6, dtype=F64)
    with pytest.raises(ValueError, match=r"z_est: expected shape \(2, 2, 6\)"):
        model.tag_inputs(x, torch.zeros(2, 3, 6, dtype=F64), torch.full((2, 2, 6), 0.5, dtype=F64))
    with pytest.raises(ValueError, match="init"):
        model.vb(x, 1, init="banana")
    binary = tiny_model("bernoulli")
    with pytest.raises(ValueError, match="binary"):
        binary.vb(torch.full((1, 6), 0.5, dtype=F64), 1)



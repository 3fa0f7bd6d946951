"""Amortised guides of the static hierarchy (SPEC §3.5) and the closed-form scores of
``explicit_models.static_divergence`` (float64, random models from Hypothesis):

* every guide passes Pyro's own model/guide check (``pyro.util.check_model_guide_match``:
  the model's latent sites, same supports and shapes) and Pyro's validated ELBO runs on it
  (``Trace_ELBO`` / ``TraceEnum_ELBO`` with ``strict_enumeration_warning``);
* the closed-form KL against Monte Carlo: ``gaussian_kl`` against sampled log-density
  differences, ``posterior_kl`` (class part included) against ``log p(x̃) − E_q log w`` from
  Pyro traces of the guide and the replayed model;
* the closed-form ELBO equals the exact log evidence minus the KL (float tolerance) on the
  linear model, and Pyro's ``Trace_ELBO`` estimate agrees with it within its Monte Carlo error;
* the joint moments of the ladder chain equal the sample moments of the guide's draws;
* SVI training lowers the KL; the importance-sampled log evidence approaches the exact one;
* bad inputs raise clear errors.
"""
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from hypothesis import given, settings
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.util import check_model_guide_match

from explicit_models import StaticGaussianHierarchy
from explicit_models.static_divergence import GaussianApproximation, gaussian_kl, posterior_kl
from explicit_models.testing import static_models
from learned_inference.guide_training import elbo_for, fit_guide
from learned_inference.guides import LadderGuide, MeanFieldEncoderGuide, MessagePrecision
from pgm_ladder.harness.inference import importance_log_evidence, score_approximation

GUIDES = (lambda m: LadderGuide(m), lambda m: LadderGuide(m, message="diagonal"), MeanFieldEncoderGuide)
SMALL = dict(max_depth=3, max_width=5, log10_std=(-0.5, 0.5))


def _x(model, n=5, seed=0):
    return model.sample(n, torch.Generator().manual_seed(seed)).x_noisy


def _log_weights(model, guide, x, particles):
    """``log p(x̃, s, c) − log q(s, c | x̃)`` ``(particles, B)`` from Pyro traces."""
    xs = x.repeat(particles, 1)
    with torch.no_grad():
        g = poutine.trace(guide).get_trace(xs)
        m = poutine.trace(poutine.replay(model.pyro_model, trace=g)).get_trace(xs)
    g.compute_log_prob()
    m.compute_log_prob()
    lw = sum(s["log_prob"] for n, s in m.nodes.items() if s["type"] == "sample" and n != "data")
    lw = lw - sum(s["log_prob"] for n, s in g.nodes.items() if s["type"] == "sample" and n != "data")
    return lw.reshape(particles, x.shape[0])


@settings(max_examples=20)
@given(static_models(**SMALL))
def test_every_guide_passes_pyros_model_guide_check(model):
    x = _x(model)
    for make in GUIDES:
        guide = make(model)
        g = poutine.trace(guide).get_trace(x)
        m = poutine.trace(poutine.replay(model.pyro_model, trace=g)).get_trace(x)
        check_model_guide_match(m, g, max_plate_nesting=1)
        latents = {n for n, s in m.nodes.items() if s["type"] == "sample" and not s["is_observed"] and n != "data"}
        assert latents == {n for n, s in g.nodes.items() if s["type"] == "sample" and n != "data"}
        for name in latents:
            assert type(g.nodes[name]["fn"].support) is type(m.nodes[name]["fn"].support)  # noqa: E721
            assert g.nodes[name]["fn"].event_dim == m.nodes[name]["fn"].event_dim
            assert g.nodes[name]["value"].shape == m.nodes[name]["value"].shape


@settings(max_examples=10)
@given(static_models(**SMALL))
def test_pyros_validated_elbo_runs_on_every_guide_without_warnings(model):
    x = _x(model)
    with pyro.validation_enabled(True), warnings.catch_warnings():
        warnings.simplefilter("error")
        for make in GUIDES:
            elbo = elbo_for(model)
            if model.has_mixture_top:
                elbo = type(elbo)(max_plate_nesting=1, strict_enumeration_warning=True)
            assert torch.isfinite(torch.tensor(elbo.loss(model.pyro_model, make(model), x)))


@settings(max_examples=20)
@given(static_models(**SMALL))
def test_gaussian_kl_against_monte_carlo(model):
    g = torch.Generator().manual_seed(0)
    n = sum(model.widths)
    A = torch.randn(2, n, n, generator=g, dtype=torch.float64)
    cov_p, cov_q = A[0] @ A[0].T + 0.5 * torch.eye(n), A[1] @ A[1].T + 0.5 * torch.eye(n)
    mp, mq = torch.randn(2, 1, n, generator=g, dtype=torch.float64)
    p, q = dist.MultivariateNormal(mp[0], cov_p), dist.MultivariateNormal(mq[0], cov_q)
    draws = q.sample((40000,))
    diff = q.log_prob(draws) - p.log_prob(draws)
    kl = gaussian_kl(mq, mp, cov_p, cov_q=cov_q)[0]
    assert abs(float(kl - diff.mean())) < 5 * float(diff.std()) / 200 + 1e-9
    kl_diag = gaussian_kl(mq, mp, cov_p, var_q=cov_q.diagonal())[0]
    ref = torch.distributions.kl_divergence(dist.MultivariateNormal(mq[0], torch.diag(cov_q.diagonal())), p)
    torch.testing.assert_close(kl_diag, ref, rtol=1e-9, atol=1e-9)


@settings(max_examples=10)
@given(static_models(**SMALL))
def test_posterior_kl_against_monte_carlo_from_pyro_traces(model):
    """``KL(q ‖ p(c, s | x̃)) = log p(x̃) − E_q[log w]`` with ``w`` the importance weight."""
    x = _x(model, n=3)
    exact = model.exact_posterior(x, return_covs=False).log_evidence
    for make in GUIDES:
        guide = make(model)
        with torch.no_grad():
            kl = guide.approximation(x).kl(model, x)
        lw = _log_weights(model, guide, x, 20000)
        mc, se = exact - lw.mean(0), lw.std(0) / 20000 ** 0.5
        assert bool(((kl - mc).abs() <= 5 * se + 1e-8 * (1 + kl.abs())).all()), (kl, mc, se)


@given(static_models(mixture=False, **SMALL))
def test_guide_elbo_equals_log_evidence_minus_kl_on_the_linear_model(model):
    x = _x(model)
    exact = model.exact_posterior(x, return_covs=False).log_evidence
    for make in GUIDES:
        with torch.no_grad():
            q = make(model).approximation(x)
            elbo, kl = q.elbo(model, x), q.kl(model, x)
        torch.testing.assert_close(elbo, exact - kl, rtol=1e-10, atol=1e-9 * (1 + float(kl.abs().max())))


def test_pyros_trace_elbo_agrees_with_the_closed_form_elbo():
    model = StaticGaussianHierarchy.random([5, 4, 3], seed=4)
    x = _x(model, n=1)
    guide = LadderGuide(model)
    pyro.set_rng_seed(0)
    with torch.no_grad():
        closed = float(guide.approximation(x).elbo(model, x)[0])
        lw = _log_weights(model, guide, x, 20000)[:, 0]
        estimate = -Trace_ELBO(num_particles=20000, vectorize_particles=True).loss(model.pyro_model, guide, x)
    assert abs(estimate - closed) < 5 * float(lw.std()) / 20000 ** 0.5


def test_ladder_chain_moments_equal_the_sample_moments_of_its_draws():
    model = StaticGaussianHierarchy.random([4, 3, 2], seed=5)
    x = _x(model, n=1)
    guide = LadderGuide(model)
    with torch.no_grad():
        q = guide.approximation(x)
        tr = poutine.trace(guide).get_trace(x.repeat(40000, 1))
    s = torch.cat([tr.nodes[f"s_{l}"]["value"] for l in range(model.depth + 1)], -1)
    torch.testing.assert_close(s.mean(0), q.means[0, 0], rtol=0, atol=0.05)
    torch.testing.assert_close(torch.cov(s.T), q.covs[0], rtol=0, atol=0.05)


@pytest.mark.parametrize("classes", [None, 3])
def test_svi_training_lowers_the_kl_and_importance_sampling_approaches_the_evidence(classes):
    model = StaticGaussianHierarchy.random([6, 4, 3], num_classes=classes, seed=1)
    x = _x(model, n=20)
    guide = LadderGuide(model)
    with torch.no_grad():
        before = score_approximation(model, x, guide.approximation(x))["kl"]
    fit_guide(model, guide, steps=150, batch_size=64, lr=0.03)
    with torch.no_grad():
        after = score_approximation(model, x, guide.approximation(x))
    assert after["kl"] < 0.5 * before and after["kl"] < 1.0
    assert after["elbo_gap"] == pytest.approx(after["kl"], rel=1e-8)
    est = importance_log_evidence(model, guide, x, num_particles=500)
    exact = model.exact_posterior(x, return_covs=False).log_evidence
    assert float((est.log_evidence - exact).abs().mean()) < 0.1
    assert bool((est.ess >= 1).all() and (est.ess <= 500).all())


def test_bad_inputs_raise_clear_errors():
    model = StaticGaussianHierarchy.random([4, 3], num_classes=2, seed=0)
    x = _x(model, n=2)
    with pytest.raises(ValueError, match="x_noisy is required"):
        LadderGuide(model)()
    with pytest.raises(ValueError, match="message must be one of"):
        MessagePrecision(3, "dense", torch.float64)
    with pytest.raises(ValueError, match="expected a StaticGaussianHierarchy"):
        LadderGuide(object())
    with pytest.raises(ValueError, match="x_noisy"):
        LadderGuide(model).approximation(torch.zeros(2, 5, dtype=torch.float64))
    q = LadderGuide(model).approximation(x)
    with pytest.raises(ValueError, match="class_probs: expected shape"):
        posterior_kl(model, x, q.means, covs=q.covs)
    with pytest.raises(ValueError, match="means: expected shape"):
        posterior_kl(model, x, q.means[:, :1], covs=q.covs, class_probs=q.class_probs)
    with pytest.raises(ValueError, match="exactly one of"):
        gaussian_kl(q.means, q.means, q.covs[0], cov_q=q.covs, var_q=q.means)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit_guide(model, LadderGuide(model), steps=0)
    assert isinstance(q, GaussianApproximation)

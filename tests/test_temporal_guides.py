"""Amortised guides of the temporal hierarchy (SPEC §2.2, §3.5) and the closed-form trajectory
scores of ``explicit_models.temporal_divergence`` (float64, random models, occluded entries):

* the dense exact trajectory posterior has the RTS smoother's marginals; the factor-by-factor
  expected log joint is ``log_joint`` at a point mass and the VB smoother's own ELBO on its
  block-diagonal posterior;
* every guide passes Pyro's model/guide check (the model's latent sites, same supports, event
  dims and shapes) and Pyro's validated ``Trace_ELBO`` runs on it without warnings;
* the ladder guide's family contains the exact posterior (KL 0 at the backward information
  filter's parameters), and its joint moments are the sample moments of its draws;
* the closed-form KL against Monte Carlo from Pyro traces, ``ELBO = log p(x̃) − KL`` to float
  tolerance, Pyro's ``Trace_ELBO`` estimate against the closed-form ELBO;
* SVI training lowers the KL, importance sampling approaches the evidence; bad inputs raise.
"""
import warnings

import pyro
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.util import check_model_guide_match

from experiments.bench.temporal_guides import PackedSequences, importance
from explicit_models.temporal_divergence import (TrajectoryApproximation, expected_log_joint, from_vb_smoother,
                                                 trajectory_kl, trajectory_posterior)
from explicit_models.temporal_hierarchy import TemporalGaussianHierarchy
from learned_inference.guide_training import fit_guide
from learned_inference.temporal_guides import TemporalLadderGuide, TemporalMeanFieldGuide

GUIDES = (TemporalLadderGuide, lambda m: TemporalLadderGuide(m, message="full"),
          lambda m: TemporalMeanFieldGuide(m, hidden=8))


@st.composite
def temporal_models(draw):
    widths = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    return TemporalGaussianHierarchy.random(widths, seed=draw(st.integers(0, 10 ** 6)),
                                            noise_std=draw(st.floats(0.2, 1.0)))


def _data(model, n=3, steps=4, seed=0, visibility=0.7):
    s = model.sample(n, steps, torch.Generator().manual_seed(seed), visibility=visibility)
    return model.check_inputs(s.x_noisy, s.visibility)


def _exact_parameters(guide, model):
    """Set the bottom-up pass to the model's backward information filter (module docstring
    of ``learned_inference.temporal_guides``)."""
    ss, bu = model.state_space(), guide.bottom_up
    C = torch.linalg.cholesky(ss.Q)
    with torch.no_grad():
        bu.transition.copy_(ss.M)
        bu.obs_map.copy_(torch.eye(*bu.obs_map.shape, dtype=ss.M.dtype))
        bu.obs_precision.raw_diag.fill_(float(torch.log(torch.expm1(1 / model.noise_std))))
        bu.noise.raw_diag.copy_(torch.log(torch.expm1(C.diagonal())))
        bu.noise.raw_lower.copy_(torch.tril(C, -1))


def _log_weights(model, guide, x, o, particles):
    """``log p(x̃, s) − log q(s | x̃)`` ``(particles, B)`` from Pyro traces."""
    xs, os = x.repeat(particles, 1, 1), o.repeat(particles, 1, 1)
    with torch.no_grad():
        g = poutine.trace(guide).get_trace(xs, os)
        m = poutine.trace(poutine.replay(model.pyro_model, trace=g)).get_trace(xs, os)
    g.compute_log_prob()
    m.compute_log_prob()
    lw = sum(s["log_prob"] for n, s in m.nodes.items() if s["type"] == "sample" and n != "data")
    lw = lw - sum(s["log_prob"] for n, s in g.nodes.items() if s["type"] == "sample" and n != "data")
    return lw.reshape(particles, x.shape[0])


@settings(max_examples=15, deadline=None)
@given(temporal_models())
def test_exact_trajectory_posterior_and_expected_log_joint(model):
    x, o = _data(model)
    p = trajectory_posterior(model, x, o)
    sm = model.rts_smoother(x, o)
    B, T1, N = sm.means.shape
    torch.testing.assert_close(p.means.reshape(B, T1, N), sm.means, rtol=1e-8, atol=1e-8)
    blocks = torch.stack([p.covs[:, t * N:(t + 1) * N, t * N:(t + 1) * N] for t in range(T1)], 1)
    torch.testing.assert_close(blocks, sm.covs, rtol=1e-8, atol=1e-8)
    s = model.sample(B, x.shape[1], torch.Generator().manual_seed(3))
    point = torch.cat(s.levels, -1).reshape(B, -1)
    torch.testing.assert_close(expected_log_joint(model, x, point, variances=torch.zeros_like(point), visibility=o),
                               model.log_joint(s.levels, x, o), rtol=1e-10, atol=1e-9)
    for cov in ("full", "diagonal"):
        vb = model.vb_smoother(x, o, sweeps=3, covariance=cov)
        torch.testing.assert_close(from_vb_smoother(vb).elbo(model, x, o), vb.elbo[:, -1], rtol=1e-10, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(temporal_models())
def test_every_guide_passes_pyros_model_guide_check(model):
    x, o = _data(model)
    for make in GUIDES:
        guide = make(model)
        g = poutine.trace(guide).get_trace(x, o)
        m = poutine.trace(poutine.replay(model.pyro_model, trace=g)).get_trace(x, o)
        check_model_guide_match(m, g, max_plate_nesting=1)
        latents = {n for n, s in m.nodes.items() if s["type"] == "sample" and not s["is_observed"] and n != "data"}
        assert latents == {n for n, s in g.nodes.items() if s["type"] == "sample" and n != "data"}
        assert len(latents) == (x.shape[1] + 1) * len(model.widths)
        for name in latents:
            assert type(g.nodes[name]["fn"].support) is type(m.nodes[name]["fn"].support)  # noqa: E721
            assert g.nodes[name]["fn"].event_dim == m.nodes[name]["fn"].event_dim
            assert g.nodes[name]["value"].shape == m.nodes[name]["value"].shape
        with pyro.validation_enabled(True), warnings.catch_warnings():
            warnings.simplefilter("error")
            assert torch.isfinite(torch.tensor(Trace_ELBO().loss(model.pyro_model, guide, x, o)))


@settings(max_examples=15, deadline=None)
@given(temporal_models())
def test_ladder_family_contains_the_exact_posterior_occlusion_included(model):
    x, o = _data(model, visibility=0.6)
    guide = TemporalLadderGuide(model)
    _exact_parameters(guide, model)
    with torch.no_grad():
        q = guide.approximation(x, o)
        kl = q.kl(model, x, o)
    assert float(kl.abs().max()) < 1e-8
    torch.testing.assert_close(q.means, trajectory_posterior(model, x, o).means, rtol=1e-8, atol=1e-8)


@settings(max_examples=10, deadline=None)
@given(temporal_models())
def test_guide_elbo_equals_log_evidence_minus_kl(model):
    x, o = _data(model)
    exact = model.kalman_filter(x, o).log_likelihood
    for make in GUIDES:
        with torch.no_grad():
            q = make(model).approximation(x, o)
            elbo, kl = q.elbo(model, x, o), q.kl(model, x, o)
        torch.testing.assert_close(elbo, exact - kl, rtol=1e-10, atol=1e-9 * (1 + float(kl.abs().max())))


@pytest.mark.parametrize("make", GUIDES)
def test_closed_form_kl_against_monte_carlo_from_pyro_traces(make):
    """``KL(q ‖ p(s | x̃)) = log p(x̃) − E_q[log w]`` with ``w`` the importance weight."""
    model = TemporalGaussianHierarchy.random([2, 2, 1], seed=3, noise_std=0.7)
    x, o = _data(model, n=2, steps=3)
    guide = make(model)
    with torch.no_grad():
        kl = guide.approximation(x, o).kl(model, x, o)
    lw = _log_weights(model, guide, x, o, 20000)
    mc = model.kalman_filter(x, o).log_likelihood - lw.mean(0)
    se = lw.std(0) / 20000 ** 0.5
    assert bool(((kl - mc).abs() <= 5 * se + 1e-8).all()), (kl, mc, se)


def test_pyros_trace_elbo_agrees_with_the_closed_form_elbo():
    model = TemporalGaussianHierarchy.random([3, 2], seed=4)
    x, o = _data(model, n=1, steps=4)
    guide = TemporalLadderGuide(model)
    pyro.set_rng_seed(0)
    with torch.no_grad():
        closed = float(guide.approximation(x, o).elbo(model, x, o)[0])
        lw = _log_weights(model, guide, x, o, 20000)[:, 0]
        estimate = -Trace_ELBO(num_particles=20000, vectorize_particles=True).loss(model.pyro_model, guide, x, o)
    assert abs(estimate - closed) < 5 * float(lw.std()) / 20000 ** 0.5


def test_ladder_joint_moments_equal_the_sample_moments_of_its_draws():
    model = TemporalGaussianHierarchy.random([3, 2, 2], seed=5)
    x, o = _data(model, n=1, steps=3)
    guide = TemporalLadderGuide(model)
    with torch.no_grad():
        q = guide.approximation(x, o)
        tr = poutine.trace(guide).get_trace(x.repeat(40000, 1, 1), o.repeat(40000, 1, 1))
    s = torch.cat([tr.nodes[f"s_{l}_{t}"]["value"] for t in range(4) for l in range(3)], -1)
    torch.testing.assert_close(s.mean(0), q.means[0], rtol=0, atol=0.05)
    torch.testing.assert_close(torch.cov(s.T), q.covs[0], rtol=0, atol=0.05)


def test_svi_training_lowers_the_kl_and_importance_sampling_approaches_the_evidence():
    model = TemporalGaussianHierarchy.random([3, 2], seed=1)
    x, o = _data(model, n=10, steps=4)

    def draw(generator, n):
        s = model.sample(n, 4, generator=generator, visibility=0.7)
        return s.x_noisy, s.visibility

    guide = TemporalLadderGuide(model)
    with torch.no_grad():
        before = float(guide.approximation(x, o).kl(model, x, o).mean())
    fit_guide(model, guide, steps=150, batch_size=64, lr=0.03, draw=draw)
    with torch.no_grad():
        after = float(guide.approximation(x, o).kl(model, x, o).mean())
    assert after < 0.2 * before and after < 0.5
    est = importance(model, guide, x, o, particles=300)
    assert est["abs_error_mean"] < 0.1 and 1 <= est["ess_min"] <= 300 and est["examples"] == 10


def test_bad_inputs_raise_clear_errors():
    model = TemporalGaussianHierarchy.random([3, 2], seed=0)
    x, o = _data(model, n=2, steps=3)
    with pytest.raises(ValueError, match="x_noisy is required"):
        TemporalLadderGuide(model)()
    with pytest.raises(ValueError, match="expected a TemporalGaussianHierarchy"):
        TemporalMeanFieldGuide(object())
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        TemporalMeanFieldGuide(model, hidden=0)
    with pytest.raises(ValueError, match="message must be one of"):
        TemporalLadderGuide(model, message="dense")
    with pytest.raises(ValueError, match="x_noisy: expected shape"):
        TemporalLadderGuide(model).approximation(x[..., :2], None)
    with pytest.raises(ValueError, match="means: expected shape"):
        trajectory_kl(model, x, torch.zeros(2, 5, dtype=torch.float64), variances=torch.ones(2, 5))
    with pytest.raises(ValueError, match="exactly one of"):
        TrajectoryApproximation(torch.zeros(2, 20, dtype=torch.float64)).kl(model, x, o)
    with pytest.raises(ValueError, match="packed sequences: expected shape"):
        PackedSequences(model, 3).check_x_noisy(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit_guide(model, TemporalLadderGuide(model), steps=0)


def test_the_cli_runs_the_temporal_guides_measurement_and_checks_its_arguments(capsys):
    """``pgm-ladder guides-temporal`` is the ``python -m experiments.bench.temporal_guides``
    command (same parser, same run); bad arguments are refused by name before any work."""
    from experiments.bench import temporal_guides
    from pgm_ladder.cli import build_parser

    args = build_parser().parse_args(["guides-temporal", "--frames", "1"])
    assert args.func is temporal_guides.run
    with pytest.raises(ValueError, match="--frames is too small: 1"):
        args.func(args)
    args = build_parser().parse_args(["guides-temporal", "--occlusion", "1.0"])
    with pytest.raises(ValueError, match=r"--occlusion must lie in \[0, 1\)"):
        args.func(args)

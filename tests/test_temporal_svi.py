"""Per-sequence autoguide SVI on the temporal hierarchy (``explicit_models.temporal_svi``,
SPEC §3.5), float64: the autoguide read out in trajectory order is the guide itself — its
Gaussian log density at a draw from the guide's own Pyro trace equals the trace's log q (so
the means *and* the covariance are in the right order), its mean is the guide's median — the
fit's KL is the closed-form KL of its approximation, and bad inputs are refused."""
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

from explicit_models.temporal_hierarchy import TemporalGaussianHierarchy
from explicit_models.temporal_svi import autoguide_moments, fit_sequence, trajectory_sites


def _sequence(widths=(2, 2, 1), steps=3, seed=0):
    model = TemporalGaussianHierarchy.random(list(widths), seed=seed, noise_std=0.5)
    s = model.sample(1, steps, torch.Generator().manual_seed(seed), visibility=0.7)
    return (model, *model.check_inputs(s.x_noisy, s.visibility))


@pytest.mark.parametrize("kind, make", [("normal", AutoNormal), ("mvn", AutoMultivariateNormal)])
def test_autoguide_moments_are_the_guide_in_trajectory_order(kind, make):
    model, x, o = _sequence()
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = make(model.pyro_model, init_scale=0.3)
    svi = SVI(model.pyro_model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(30):  # move the parameters off their symmetric initial values
        svi.step(x, o)
    q = autoguide_moments(model, guide, kind, x.shape[1])
    sites = trajectory_sites(model, x.shape[1])
    median = guide.median(x, o)
    assert torch.allclose(q.means[0], torch.cat([median[n].reshape(-1) for n in sites]), atol=1e-12)
    cov = q.covs[0] if q.covs is not None else torch.diag(q.variances[0])
    if kind == "mvn":
        assert (cov - torch.diag(cov.diagonal())).abs().max() > 1e-4  # a real test of the order
    density = torch.distributions.MultivariateNormal(q.means[0], cov)
    with torch.no_grad():
        for _ in range(5):
            trace = poutine.trace(guide).get_trace(x, o)
            s = torch.cat([trace.nodes[n]["value"].reshape(-1) for n in sites])
            assert float(density.log_prob(s)) == pytest.approx(float(trace.log_prob_sum()), abs=1e-9)


def test_fit_sequence_reports_the_closed_form_kl_and_refuses_bad_input():
    model, x, o = _sequence()
    for kind in ("normal", "mvn"):
        fit = fit_sequence(model, x, o, kind, max_steps=200, check_every=100, target_kl=1e-9)
        assert fit.kl == pytest.approx(float(fit.approximation.kl(model, x, o)[0]), rel=1e-12)
        assert fit.steps == 200 and not fit.reached and fit.kl >= 0 and fit.wall_s > 0
    with pytest.raises(ValueError, match="one sequence"):
        fit_sequence(model, x.repeat(2, 1, 1), o.repeat(2, 1, 1))
    with pytest.raises(ValueError, match="kind must be one of"):
        fit_sequence(model, x, o, "laplace")


def test_per_sequence_svi_lowers_the_kl():
    model, x, o = _sequence(seed=1)
    short = fit_sequence(model, x, o, "mvn", max_steps=100, check_every=100, seed=0)
    longer = fit_sequence(model, x, o, "mvn", max_steps=800, check_every=100, seed=0)
    assert longer.kl < 0.5 * short.kl


def test_the_temporal_guides_command_refuses_bad_svi_arguments():
    from pgm_ladder.cli import build_parser

    for flag, value in (("--svi-sequences", "-1"), ("--svi-steps", "0")):
        args = build_parser().parse_args(["guides-temporal", flag, value])
        with pytest.raises(ValueError, match="--svi-sequences must lie in"):
            args.func(args)

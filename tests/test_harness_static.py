"""The comparison harness plumbing, checked with engines whose answers are known exactly:
an oracle engine that outputs the exact posterior must score as Bayes-optimal."""
import math

import torch

from explicit_models.static_hierarchy import StaticGaussianHierarchy
from learned_inference.base import EngineOutput, InferenceEngine, IterationOutput
from pgm_ladder.harness import static as harness


class OracleEngine(InferenceEngine):
    """Outputs the exact posterior (denoised mean, log p(c|x̃), per-level means) at every
    iteration, plus an ``error`` that grows the denoising error per iteration."""

    def __init__(self, model, error_per_iteration: float = 0.0):
        super().__init__()
        self.model = model
        self.input_dim = model.widths[0]
        self.num_classes = model.num_classes
        self.error = error_per_iteration
        self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_noisy, iterations=1, x_clean=None):
        self._check_inputs(x_noisy, iterations, x_clean)
        post = self.model.exact_posterior(x_noisy.double(), return_covs=False)
        logits = None if post.class_probs is None else torch.log(post.class_probs)
        its = [IterationOutput(post.means[0] + self.error * t, logits, list(post.means))
               for t in range(iterations)]
        return EngineOutput(its, torch.zeros(()))


def _mixture_model():
    return StaticGaussianHierarchy.random([6, 4, 3], num_classes=4, seed=1, noise_std=1.0,
                                          class_separation=1.0)


def test_oracle_engine_scores_as_bayes_optimal():
    model = _mixture_model()
    data = harness.posterior_eval_set(model, 600, seed=0)
    curves = harness.score_engine(OracleEngine(model), data, iterations=3)
    assert len(curves.mse_ratio) == 3
    for t in range(3):
        assert math.isclose(curves.mse_ratio[t], 1.0, abs_tol=1e-12)
        assert abs(curves.kl[t]) < 1e-12
        assert curves.error_gap[t] == 0.0
        assert all(r2 > 1 - 1e-6 for r2 in curves.probe_r2[t])


def test_engine_errors_show_up_per_iteration():
    model = _mixture_model()
    data = harness.posterior_eval_set(model, 400, seed=0)
    curves = harness.score_engine(OracleEngine(model, error_per_iteration=0.1), data, iterations=3)
    for t in range(3):
        want = 1.0 + model.widths[0] * (0.1 * t) ** 2 / data.bayes_mse
        assert math.isclose(curves.mse_ratio[t], want, rel_tol=1e-9)


def test_wiener_is_optimal_on_a_linear_model_and_not_on_a_mixture():
    linear = StaticGaussianHierarchy.random([6, 4, 3], seed=2, noise_std=1.0)
    data = harness.posterior_eval_set(linear, 500, seed=1)
    assert math.isclose(harness.score_wiener(linear, data).mse_ratio[0], 1.0, abs_tol=1e-9)
    mixture = _mixture_model()
    data = harness.posterior_eval_set(mixture, 2000, seed=1)
    assert harness.score_wiener(mixture, data).mse_ratio[0] > 1.01


def test_vb_converges_to_bayes_on_a_linear_model():
    # within-level stds comparable to the top's: weak coupling, fast mean-field
    # convergence (≈1e-13 after 50 sweeps on this model)
    linear = StaticGaussianHierarchy.random([6, 4, 3], seed=2, noise_std=1.0, std_range=(0.6, 1.0))
    data = harness.posterior_eval_set(linear, 300, seed=1)
    curves = harness.score_vb(linear, data, sweeps=100)
    assert curves.kl == [] and len(curves.mse_ratio) == 100
    assert curves.mse_ratio[-1] < 1 + 1e-10
    assert curves.mse_ratio[0] > curves.mse_ratio[-1] + 0.1


def test_eval_set_is_reproducible_from_its_seed():
    model = _mixture_model()
    a, b = harness.posterior_eval_set(model, 50, seed=9), harness.posterior_eval_set(model, 50, seed=9)
    assert torch.equal(a.x_noisy, b.x_noisy) and a.bayes_mse == b.bayes_mse


def test_linear_init_at_level0_is_the_wiener_filter_of_the_mixture():
    # Two independent computations of the best affine estimator of s_0: the model's
    # Wiener filter and the harness's level-by-level linear estimate.
    model = _mixture_model()
    x = model.sample(200, generator=torch.Generator().manual_seed(4)).x_noisy
    A, a = model.wiener_denoiser()
    init = harness.linear_gaussian_init(model, x)
    assert torch.allclose(init["means"][0], x @ A.T + a, rtol=1e-9, atol=1e-9)
    assert [m.shape[-1] for m in init["means"]] == model.widths


def test_vb_from_the_linear_init_is_at_the_fixed_point_on_a_linear_model():
    linear = StaticGaussianHierarchy.random([6, 4, 3], seed=2, noise_std=1.0)
    data = harness.posterior_eval_set(linear, 200, seed=1)
    init = harness.linear_gaussian_init(linear, data.x_noisy)
    for got, want in zip(init["means"], data.posterior_means):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-9)
    curves = harness.score_vb(linear, data, sweeps=2, init="linear")
    assert all(abs(r - 1.0) < 1e-10 for r in curves.mse_ratio)

"""The scoring functions of SPEC §4 against direct mathematics (float64)."""
import math

import torch
from hypothesis import given, settings, strategies as st
from torch.distributions import Categorical, kl_divergence

from pgm_ladder import metrics


def _probs(seed: int, n: int, c: int, temperature: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, c, generator=g, dtype=torch.float64) * temperature, -1)


def test_mse_ratio_is_one_at_the_posterior_mean_and_adds_the_excess():
    mean = torch.randn(50, 7, dtype=torch.float64)
    assert metrics.mse_ratio(mean, mean, bayes_mse=2.0) == 1.0
    offset = mean + 0.5  # excess 7 * 0.25 per sample
    assert math.isclose(metrics.mse_ratio(offset, mean, bayes_mse=2.0), 1 + 7 * 0.25 / 2.0)


def test_mse_ratio_rejects_nonpositive_bayes_mse():
    mean = torch.zeros(3, 2)
    try:
        metrics.mse_ratio(mean, mean, 0.0)
    except ValueError as err:
        assert "bayes_mse" in str(err)
    else:
        raise AssertionError("expected ValueError")


def test_rao_blackwellised_mse_matches_plain_mse_in_expectation():
    # x | x̃ ~ N(m(x̃), s²): E||x̂ − x||² = s² n + ||x̂ − m||² for any x̂(x̃).
    g = torch.Generator().manual_seed(0)
    n, d, s = 200_000, 3, 0.7
    post_mean = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = post_mean + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    estimate = 0.8 * post_mean + 0.1
    bayes = d * s**2
    plain = metrics.empirical_mse(estimate, x) / bayes
    rb = metrics.mse_ratio(estimate, post_mean, bayes)
    per_sample = ((estimate - x) ** 2).sum(-1) / bayes
    se = float(per_sample.std() / math.sqrt(n))
    assert abs(plain - rb) < 4 * se


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.integers(2, 12), temp=st.floats(0.1, 10.0))
def test_categorical_kl_equals_torch_kl(seed, c, temp):
    p, q = _probs(seed, 20, c, temp), _probs(seed + 1, 20, c, temp)
    # built from logits: Categorical(probs=...) clamps probabilities at machine eps
    want = float(kl_divergence(Categorical(logits=torch.log(p)),
                               Categorical(logits=torch.log(q))).mean())
    assert math.isclose(metrics.categorical_kl(p, torch.log(q)), want, rel_tol=1e-9, abs_tol=1e-12)
    assert abs(metrics.categorical_kl(p, torch.log(p))) < 1e-12


def test_categorical_kl_handles_zero_probabilities():
    p = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)
    assert math.isclose(metrics.categorical_kl(p, torch.log(q)), math.log(2.0))


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.integers(2, 12))
def test_error_gap_is_nonnegative_and_zero_for_the_bayes_decision(seed, c):
    p, q = _probs(seed, 30, c), _probs(seed + 7, 30, c)
    assert metrics.error_gap(p, torch.log(q)) >= 0.0
    assert metrics.error_gap(p, torch.log(p)) == 0.0


def test_error_gap_matches_simulated_error_rates():
    # Draw labels from p; the engine's and the Bayes classifier's empirical error rates
    # differ, in expectation, by the Rao-Blackwellised gap.
    n, c = 400_000, 5
    p = _probs(3, n, c, temperature=2.0)
    q_scores = torch.log(_probs(4, n, c, temperature=2.0)) + 2.0 * torch.log(p)
    labels = torch.multinomial(p, 1, generator=torch.Generator().manual_seed(5)).squeeze(-1)
    engine_wrong = (q_scores.argmax(-1) != labels).double()
    bayes_wrong = (p.argmax(-1) != labels).double()
    diff = engine_wrong - bayes_wrong
    se = float(diff.std() / math.sqrt(n))
    assert abs(float(diff.mean()) - metrics.error_gap(p, q_scores)) < 4 * se
    assert abs(float(bayes_wrong.mean()) - metrics.bayes_error(p)) < 4 * float(bayes_wrong.std() / math.sqrt(n))


def test_probe_r2_is_one_for_an_exact_linear_map_and_near_zero_for_noise():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2000, 6, generator=g, dtype=torch.float64)
    targets = feats @ torch.randn(6, 3, generator=g, dtype=torch.float64) + 1.0
    assert metrics.probe_r2(feats, targets, ridge=1e-9) > 1 - 1e-9
    unrelated = torch.randn(2000, 3, generator=g, dtype=torch.float64)
    assert abs(metrics.probe_r2(feats, unrelated)) < 0.02


def test_probe_r2_rejects_mismatched_rows():
    try:
        metrics.probe_r2(torch.zeros(10, 2), torch.zeros(9, 2))
    except ValueError as err:
        assert "10 rows" in str(err) and "9" in str(err)
    else:
        raise AssertionError("expected ValueError")

"""The temporal Gaussian hierarchy (SPEC §2.2): construction and validation, sampling, the
Pyro model, the optimal predictor's Monte Carlo estimate, and the statistical comparison
of the online VB filter with the Kalman filter."""
import pytest
import torch
from pyro import poutine

from explicit_models.temporal_hierarchy import TemporalGaussianHierarchy as TGH


def _model(**kw):
    return TGH.random([4, 3, 2], seed=5, **kw)


def _valid_args():
    return dict(transitions=[0.9 * torch.eye(3), 0.5 * torch.eye(2)], weights=[torch.ones(3, 2)],
                stds=[torch.ones(3), 0.5 * torch.ones(2)], noise_std=0.3)


@pytest.mark.parametrize("change, name", [
    (dict(transitions=[torch.eye(2), torch.eye(2)]), r"transitions\[0\]"),
    (dict(transitions=[torch.eye(3), torch.full((2, 2), float("nan"))]), r"transitions\[1\]"),
    (dict(weights=[torch.ones(3, 3)]), r"weights\[0\]"),
    (dict(weights=[]), "weights"),
    (dict(stds=[torch.ones(3), torch.tensor([0.5, -1.0])]), r"stds\[1\]"),
    (dict(stds=[torch.ones(3, 1), torch.ones(2)]), r"stds\[0\]"),
    (dict(noise_std=0.0), "noise_std"),
    (dict(noise_std=[0.1, 0.2]), "noise_std"),
    (dict(init_stds=[torch.ones(3)]), "init_stds"),
    (dict(init_stds=[torch.ones(3), torch.zeros(2)]), r"init_stds\[1\]"),
    (dict(init_means=[torch.ones(3), torch.ones(3)]), r"init_means\[1\]"),
])
def test_invalid_parameters_raise_naming_them(change, name):
    with pytest.raises(ValueError, match=name):
        TGH(**{**_valid_args(), **change})


def test_invalid_inputs_raise_naming_them():
    model = TGH(**_valid_args())
    x = torch.zeros(2, 4, 3)
    with pytest.raises(ValueError, match="visibility"):
        model.kalman_filter(x, torch.ones(2, 4, 2))
    with pytest.raises(ValueError, match="visibility"):
        model.vb_filter(x, torch.full((2, 4, 3), 0.5))
    with pytest.raises(ValueError, match="x_noisy"):
        model.rts_smoother(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="x_noisy"):
        model.kalman_filter(torch.full((2, 4, 3), float("nan")))
    with pytest.raises(ValueError, match="visibility"):
        model.sample(2, 3, visibility=1.5)
    with pytest.raises(ValueError, match="visibility"):
        model.sample(2, 3, visibility=torch.ones(5, 3))
    with pytest.raises(ValueError, match="covariance"):
        model.vb_smoother(x, covariance="block")
    with pytest.raises(ValueError, match="sweeps_per_step"):
        model.vb_filter(x, sweeps_per_step=0)
    with pytest.raises(ValueError, match="decays"):
        TGH.random([3, 2], decays=[0.5])


def test_sample_shapes_masks_and_reproducibility():
    model = _model()
    s = model.sample(400, 12, torch.Generator().manual_seed(3), visibility=0.7)
    assert [tuple(v.shape) for v in s.levels] == [(400, 13, 4), (400, 13, 3), (400, 13, 2)]
    assert s.x.shape == s.x_noisy.shape == s.visibility.shape == (400, 12, 4)
    assert s.visibility.dtype == torch.bool and torch.equal(s.x, s.levels[0][:, 1:])
    assert bool((s.x_noisy[~s.visibility] == 0).all())
    rate = float(s.visibility.double().mean())
    assert abs(rate - 0.7) < 4 * (0.21 / s.visibility.numel()) ** 0.5
    resid = (s.x_noisy - s.x)[s.visibility]
    assert abs(float(resid.std()) / float(model.noise_std) - 1) < 0.03
    again = model.sample(400, 12, torch.Generator().manual_seed(3), visibility=0.7)
    assert torch.equal(again.x_noisy, s.x_noisy) and torch.equal(again.visibility, s.visibility)
    fixed = model.sample(2, 3, visibility=torch.tensor([1, 0, 1, 1]))
    assert fixed.visibility[:, :, 1].sum() == 0 and fixed.visibility.sum() == 18


def test_filters_ignore_the_values_of_occluded_entries():
    model = _model()
    s = model.sample(3, 6, torch.Generator().manual_seed(0), visibility=0.6)
    poisoned = torch.where(s.visibility, s.x_noisy, torch.full_like(s.x_noisy, float("nan")))
    a, b = model.kalman_filter(s.x_noisy, s.visibility), model.kalman_filter(poisoned, s.visibility)
    assert torch.equal(a.filtered_means, b.filtered_means) and torch.equal(a.log_likelihood, b.log_likelihood)
    assert torch.equal(model.vb_filter(s.x_noisy, s.visibility).predictions,
                       model.vb_filter(poisoned, s.visibility).predictions)


def test_pyro_model_log_joint_equals_the_analytic_one():
    model = _model(init_means=[torch.randn(4), torch.randn(3), torch.randn(2)])
    s = model.sample(5, 4, torch.Generator().manual_seed(1), visibility=0.5)
    data = {f"s_{l}_{t}": s.levels[l][:, t] for l in range(3) for t in range(5)}
    trace = poutine.trace(poutine.condition(model.pyro_model, data=data)).get_trace(s.x_noisy, s.visibility)
    trace.compute_log_prob()
    per_seq = sum(site["log_prob"] for site in trace.nodes.values() if site["type"] == "sample")
    assert torch.allclose(per_seq, model.log_joint(s.levels, s.x_noisy, s.visibility), rtol=1e-12, atol=1e-10)
    sampled = model.pyro_model(num_samples=3, steps=7)
    assert [tuple(v.shape) for v in sampled] == [(3, 8, 4), (3, 8, 3), (3, 8, 2)]


def test_optimal_prediction_mse_is_the_kalman_filters_expected_error():
    """The Monte Carlo estimate agrees with the Kalman filter's empirical squared error on
    other fresh sequences, within the combined standard errors (fixed seeds)."""
    model = _model()
    est = model.optimal_prediction_mse(3000, 8, visibility=0.7, seed=11)
    assert len(est.per_step) == len(est.per_step_sem) == 8 and est.sem > 0
    s = model.sample(3000, 9, torch.Generator().manual_seed(12), visibility=0.7)
    kf = model.kalman_filter(s.x_noisy[:, :8], s.visibility[:, :8])
    err = (kf.obs_means[:, 1:] - s.x[:, 1:]).pow(2).sum(-1).mean(1)
    sem = (est.sem ** 2 + float(err.var()) / 3000) ** 0.5
    assert abs(float(err.mean()) - est.mean) < 4 * sem
    clear = model.optimal_prediction_mse(10, 5)  # no occlusion: every sequence has the same error
    assert clear.sem <= 1e-12 * clear.mean  # zero up to rounding
    assert all(v <= 1e-12 * m for v, m in zip(clear.per_step_sem, clear.per_step))


def test_online_vb_filter_predicts_worse_than_the_kalman_filter():
    """Statistical (fixed seed): the online VB filter's empirical next-frame MSE is at least
    the Kalman filter's, within 3 standard errors of the per-sequence difference; the gap
    agrees with its Rao-Blackwellised value ``E‖x̂_VB − E[x_t+1|x̃_1:t]‖²``."""
    model = _model()
    s = model.sample(4000, 11, torch.Generator().manual_seed(7), visibility=0.7)
    x, o, target = s.x_noisy[:, :10], s.visibility[:, :10], s.x[:, 1:]
    kf = model.kalman_filter(x, o).obs_means[:, 1:]
    for sweeps in (1, 50):
        vb = model.vb_filter(x, o, sweeps_per_step=sweeps).predictions[:, 1:]
        d = ((vb - target).pow(2) - (kf - target).pow(2)).sum(-1).mean(1)
        se = float(d.std()) / len(d) ** 0.5
        assert float(d.mean()) >= -3 * se
        gap = float((vb - kf).pow(2).sum(-1).mean())
        assert abs(float(d.mean()) - gap) < 4 * se
        assert float(d.mean()) > 3 * se  # the approximation is measurably worse here

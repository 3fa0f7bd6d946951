"""Unit tests of ``StaticGaussianHierarchy`` (SPEC §2.1 and §4): construction and
validation, sampling, the paper's scalar model and its gate, the Bayes-optimal scores and
the Wiener baseline, result shapes."""
import math

import numpy as np
import pytest
import torch

from explicit_models import StaticGaussianHierarchy, static_vb

M = StaticGaussianHierarchy


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _valid(**over):
    kw = dict(weights=[np.ones((3, 4)), np.ones((4, 2))], biases=[np.zeros(3), np.zeros(4)],
              stds=[np.ones(3), np.ones(4)], noise_std=0.5, top_mean=np.zeros(2), top_std=np.ones(2))
    kw.update(over)
    return kw


def _mixture(**over):
    kw = _valid(top_mean=None, top_std=None, class_means=np.zeros((3, 2)), class_stds=np.ones((3, 2)),
                class_probs=np.full(3, 1 / 3))
    kw.update(over)
    return kw


# ---------------------------------------------------------------- construction and validation
def test_properties_and_conversion():
    m = M(**_valid())
    assert m.widths == [3, 4, 2] and m.depth == 2 and m.num_classes == 0 and not m.has_mixture_top
    assert all(w.dtype == torch.float64 for w in m.weights) and isinstance(m.weights[0], torch.Tensor)
    mm = M(**_mixture())
    assert mm.num_classes == 3 and mm.has_mixture_top and mm.widths == [3, 4, 2]
    m32 = mm.to(torch.float32)
    assert m32.dtype == torch.float32 and m32.class_means.dtype == torch.float32 and m32.widths == mm.widths
    lists = M(**{k: (v.tolist() if isinstance(v, np.ndarray) else
                     [a.tolist() for a in v] if isinstance(v, list) else v) for k, v in _valid().items()})
    assert lists.widths == [3, 4, 2]


@pytest.mark.parametrize("over, message", [
    (dict(stds=[np.ones(3), np.array([1.0, 0.0, 1.0, 1.0])]), r"stds\[1\] must be positive and finite"),
    (dict(stds=[np.ones(3), np.array([1.0, np.inf, 1.0, 1.0])]), r"stds\[1\] must be positive and finite"),
    (dict(noise_std=-0.1), r"noise_std must be positive and finite"),
    (dict(noise_std=float("nan")), r"noise_std must be positive and finite"),
    (dict(noise_std=[0.1, 0.2]), r"noise_std must be a scalar"),
    (dict(top_std=np.array([1.0, -1.0])), r"top_std must be positive and finite"),
    (dict(weights=[np.full((3, 4), np.nan), np.ones((4, 2))]), r"weights\[0\] contains NaN or infinite"),
    (dict(biases=[np.zeros(3), np.array([0, 0, np.nan, 0])]), r"biases\[1\] contains NaN or infinite"),
    (dict(top_mean=np.array([0.0, np.inf])), r"top_mean contains NaN or infinite"),
    (dict(weights=[np.ones((3, 5)), np.ones((4, 2))]),
     r"weights\[0\] has shape \(3, 5\) but levels 0 and 1 have widths 3 and 4"),
    (dict(weights=[np.ones(3), np.ones((4, 2))]), r"weights\[0\] must have shape \(n_0, n_1\)"),
    (dict(biases=[np.zeros(2), np.zeros(4)]), r"biases\[0\] has shape \(2,\) but level 0"),
    (dict(top_mean=np.zeros(3)), r"top_mean has shape \(3,\) but level 2"),
    (dict(stds=[np.ones(3)]), r"weights, biases and stds must be lists of the same length"),
    (dict(top_std=None), r"top_std is required"),
    (dict(top_mean=None, top_std=None), r"top: give either"),
    (dict(class_means=np.zeros((3, 2)), class_stds=np.ones((3, 2)), class_probs=np.full(3, 1 / 3)),
     r"top: .*not both"),
])
def test_invalid_parameters_raise_naming_the_parameter(over, message):
    with pytest.raises(ValueError, match=message):
        M(**_valid(**over))


@pytest.mark.parametrize("over, message", [
    (dict(class_probs=np.array([0.5, 0.5, 0.5])), r"class_probs must sum to 1"),
    (dict(class_probs=np.array([1.0, 0.0, 0.0])), r"class_probs must be positive"),
    (dict(class_probs=np.array([0.5, np.nan, 0.5])), r"class_probs contains NaN"),
    (dict(class_stds=np.zeros((3, 2))), r"class_stds must be positive and finite"),
    (dict(class_means=np.zeros((2, 2))), r"class_means has shape \(2, 2\) but class_stds has shape \(3, 2\)"),
    (dict(class_probs=np.full(4, 0.25)), r"class_probs has 4 entries but class_means has 3 classes"),
    (dict(class_stds=None), r"class_stds is required"),
])
def test_invalid_mixture_top_raises_naming_the_parameter(over, message):
    with pytest.raises(ValueError, match=message):
        M(**_mixture(**over))


def test_class_probs_sum_tolerance_is_1e_6():
    M(**_mixture(class_probs=np.array([1 / 3, 1 / 3, 1 / 3 + 5e-7])))
    with pytest.raises(ValueError, match="class_probs must sum to 1"):
        M(**_mixture(class_probs=np.array([1 / 3, 1 / 3, 1 / 3 + 5e-6])))


def test_x_noisy_shape_and_nan_are_rejected_by_every_method():
    m = M.random([64, 32, 16], num_classes=3, seed=0)
    bad = torch.zeros(10, 32, dtype=torch.float64)
    calls = [m.exact_posterior, m.optimal_denoiser, m.bayes_mse, m.bayes_error, m.pyro_model,
             lambda x: m.vb(x, 1), lambda x: m.vb_fixed_point(x, max_sweeps=2),
             lambda x: m.log_joint(m.sample(10).levels, x)]
    for call in calls:
        with pytest.raises(ValueError, match=r"x_noisy: expected shape \(batch, 64\), got \(10, 32\)"):
            call(bad)
    with pytest.raises(ValueError, match=r"x_noisy: expected shape \(batch, 64\), got \(64,\)"):
        m.exact_posterior(torch.zeros(64))
    x = torch.zeros(2, 64)
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="x_noisy contains NaN"):
        m.exact_posterior(x)


# ---------------------------------------------------------------- sampling
@pytest.mark.parametrize("classes", [None, 4])
def test_sample_shapes_determinism_and_moments(classes):
    m = M.random([5, 3, 2], num_classes=classes, seed=1)
    s = m.sample(7, _gen(0))
    assert [tuple(v.shape) for v in s.levels] == [(7, 5), (7, 3), (7, 2)]
    assert s.x is s.levels[0] and s.x_noisy.shape == (7, 5)
    assert (s.classes is None) == (classes is None)
    if classes:
        assert s.classes.dtype == torch.long and s.classes.shape == (7,)
    again = m.sample(7, _gen(0))
    assert torch.equal(again.x_noisy, s.x_noisy)
    big = m.sample(40000, _gen(1))  # moments of x̃ against the prior marginal (+ noise)
    means, covs = m.prior_marginals()
    cov = covs[0] + m.noise_std ** 2 * torch.eye(5, dtype=torch.float64)
    se = (cov.diagonal() / 40000).sqrt()
    assert bool(((big.x_noisy.mean(0) - means[0]).abs() < 5 * se).all())
    emp = torch.cov(big.x_noisy.T)
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov ** 2) / 40000).sqrt()
    assert bool(((emp - cov).abs() < 5 * se_cov).all())


def test_random_is_deterministic_and_pyro_model_samples():
    a, b = M.random([4, 3], num_classes=2, seed=5), M.random([4, 3], num_classes=2, seed=5)
    assert all(torch.equal(u, v) for u, v in zip(a.weights, b.weights))
    assert torch.equal(a.class_means, b.class_means)
    assert not torch.equal(a.weights[0], M.random([4, 3], num_classes=2, seed=6).weights[0])
    levels = a.pyro_model(num_samples=6)
    assert [tuple(v.shape) for v in levels] == [(6, 4), (6, 3)]
    with pytest.raises(ValueError, match="diagonal_links needs equal widths"):
        M.random([4, 3], diagonal_links=True)
    d = M.random([3, 3, 3], diagonal_links=True, seed=2)
    assert all(torch.equal(W, torch.diag(W.diagonal())) for W in d.weights)


# ---------------------------------------------------------------- the paper's scalar model
def test_paper_scalar_gate_is_the_slides_gate():
    """Level 1 (y): ``m_y = s_y m_x / w_x + (1 − s_y) w_yz m_z``,
    ``s_y = sig(log(σ_y² w_x²) − log σ_x²)`` (slides, "Gatings in the decoder")."""
    w_x, w_yz, s_x, s_y = 1.7, -0.6, 0.3, 0.8
    m = M.paper_scalar(mu_z=0.4, sigma_z=1.2, w_yz=w_yz, sigma_y=s_y, w_x=w_x, sigma_x=s_x, noise_std=0.5)
    assert m.widths == [1, 1, 1] and m.depth == 2
    means = [torch.tensor([[0.9], [-2.0]], dtype=torch.float64), torch.tensor([[0.1], [0.3]], dtype=torch.float64),
             torch.tensor([[1.5], [-0.7]], dtype=torch.float64)]
    x = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    m_y, gate = static_vb.vb_level_update_gated(m, 1, means, x_noisy=x)
    s = 1.0 / (1.0 + math.exp(-(math.log(s_y ** 2 * w_x ** 2) - math.log(s_x ** 2))))
    torch.testing.assert_close(gate, torch.full_like(gate, s), rtol=1e-15, atol=0)
    torch.testing.assert_close(m_y, s * means[0] / w_x + (1 - s) * w_yz * means[2], rtol=1e-14, atol=1e-15)
    m_prec, v = static_vb.vb_level_update(m, x, 1, means)
    torch.testing.assert_close(m_y, m_prec, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(v, torch.tensor([[1 / (s_y ** -2 + w_x ** 2 / s_x ** 2)]], dtype=torch.float64))
    with pytest.raises(ValueError, match="elementwise links"):
        static_vb.vb_level_update_gated(M.random([2, 3], seed=0), 0, [x, x], x_noisy=torch.zeros(2, 2))


# ---------------------------------------------------------------- scores (SPEC §4)
def test_wiener_is_bayes_optimal_for_a_gaussian_top():
    m = M.random([6, 4, 3], seed=2)
    x = m.sample(50, _gen(3)).x_noisy
    A, a = m.wiener_denoiser()
    torch.testing.assert_close(x @ A.T + a, m.optimal_denoiser(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.wiener_mse(), m.bayes_mse(x), rtol=1e-12, atol=0)


@pytest.mark.parametrize("classes", [None, 5])
def test_bayes_mse_and_error_match_monte_carlo(classes):
    m = M.random([8, 4, 3], num_classes=classes, seed=4)
    s = m.sample(40000, _gen(5))
    err = (m.optimal_denoiser(s.x_noisy) - s.x).pow(2).sum(-1)
    se = float(err.std() / math.sqrt(err.numel()))
    assert abs(float(err.mean()) - float(m.bayes_mse(s.x_noisy))) < 4 * se
    if classes is None:
        with pytest.raises(ValueError, match="class-mixture top"):
            m.bayes_error(s.x_noisy)
        return
    post = m.exact_posterior(s.x_noisy, return_covs=False)
    wrong = (post.class_probs.argmax(-1) != s.classes).double()
    se = float(wrong.std() / math.sqrt(wrong.numel()))
    assert abs(float(wrong.mean()) - float(m.bayes_error(s.x_noisy))) < 4 * se + 1e-12


def test_wiener_mse_on_a_mixture_top():
    """Closed-form Wiener MSE matches its Rao-Blackwellised Monte-Carlo estimate
    ``E[tr Cov(x|x̃) + ||x̂_W − E[x|x̃]||²]``, and exceeds the Bayes MSE by many SE."""
    m = M.random([8, 4, 3], num_classes=5, seed=4, class_std=0.25)
    s = m.sample(40000, _gen(6))
    A, a = m.wiener_denoiser()
    post = m.exact_posterior(s.x_noisy, return_covs=True)
    tr = post.covs[0].diagonal(dim1=-2, dim2=-1).sum(-1)
    wiener = tr + (s.x_noisy @ A.T + a - post.means[0]).pow(2).sum(-1)
    se = float(wiener.std() / math.sqrt(wiener.numel()))
    assert abs(float(wiener.mean()) - float(m.wiener_mse())) < 4 * se
    torch.testing.assert_close(m.bayes_mse(s.x_noisy), tr.mean(), rtol=1e-12, atol=0)
    excess = wiener - tr
    assert float(excess.mean()) > 10 * float(excess.std() / math.sqrt(excess.numel()))
    assert float(m.wiener_mse()) > float(m.bayes_mse(s.x_noisy))


def test_result_shapes():
    m = M.random([6, 4, 3], num_classes=3, seed=0)
    x = m.sample(5, _gen(0)).x_noisy
    p = m.exact_posterior(x)
    assert [tuple(c.shape) for c in p.covs] == [(5, 6, 6), (5, 4, 4), (5, 3, 3)]
    assert [tuple(c.shape) for c in p.class_means] == [(5, 3, 6), (5, 3, 4), (5, 3, 3)]
    assert [tuple(c.shape) for c in p.class_covs] == [(3, 6, 6), (3, 4, 4), (3, 3, 3)]
    assert p.class_probs.shape == (5, 3) and p.log_evidence.shape == (5,)
    assert m.exact_posterior(x, return_covs=False).covs is None
    g = M.random([6, 4, 3], seed=0)
    pg = g.exact_posterior(x)
    assert [tuple(c.shape) for c in pg.covs] == [(6, 6), (4, 4), (3, 3)] and pg.class_probs is None
    r = m.vb(x, 3)
    assert len(r.means) == 3 and r.elbo.shape == (5, 12) and r.update_labels == ["s_0", "s_1", "s_2", "c"]
    assert r.covs[-1][2].shape == (5, 3, 3) and r.covs[-1][0].shape == (6, 6) and r.class_probs[-1].shape == (5, 3)
    rd = m.vb(x, 2, covariance="diagonal")
    assert rd.covs[-1][2].shape == (5, 3) and rd.covs[-1][0].shape == (6,)
    rg = g.vb(x, 2)
    assert rg.class_probs == [None, None] and rg.elbo.shape == (5, 6)
    # continuing from a result equals running longer
    cont = m.vb(x, 2, init=m.vb(x, 1))
    torch.testing.assert_close(cont.means[-1][1], r.means[-1][1])
    torch.testing.assert_close(cont.elbo, r.elbo[:, 4:])
    with pytest.raises(ValueError, match="covariance"):
        m.vb(x, 1, covariance="low-rank")


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_plain_vb_converges_to_the_exact_posterior_means(covariance):
    """Plain coordinate ascent (no acceleration) on well-conditioned models: the paper's
    scalar model and a random vector one. Error in posterior-std units, tolerance as in
    the property tests (8 · N · eps · κ_J(P) · (1 + ‖m̃‖_∞))."""
    from explicit_models.testing import EPS64, jacobi_condition, sem_posterior_precision

    for model in (M.paper_scalar(), M.random([6, 4, 3], seed=7, std_range=(0.5, 1.0))):
        x = model.sample(8, _gen(2)).x_noisy
        fp = model.vb_fixed_point(x, covariance=covariance, acceleration=None)
        assert fp.converged and fp.sweeps < 5000
        P = sem_posterior_precision(model)
        scale = P.diagonal().sqrt()
        exact = torch.cat(model.exact_posterior(x).means, -1) * scale
        err = (torch.cat(fp.means, -1) * scale - exact).abs().max()
        assert float(err) <= 8 * P.shape[0] * EPS64 * jacobi_condition(P) * (1 + float(exact.abs().max()))

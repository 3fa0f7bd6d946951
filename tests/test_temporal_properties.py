"""Property tests of the temporal Gaussian hierarchy (SPEC §2.2), float64, Hypothesis.

Random models: 1–3 levels of widths 1–3, ``A_l`` Gaussian with spectral scale up to 1.1
(stable and mildly unstable dynamics), ``W_l`` Gaussian, every std log-uniform in
``10^[-0.6, 0.6]`` (variance ratios up to ~250), random initial means; 1–5 frames;
random visibility masks (all visible, all occluded, or each entry with probability 1/2).

The reference is written independently of the library's algebra: the whole sequence
``z = (s_0, .., s_T)`` satisfies ``G z = c + ε``, ``ε ~ N(0, diag d)`` (``G`` holds
``I``, ``−A_l`` and ``−W_l`` blocks), so the joint prior precision is ``Gᵀ diag(d)⁻¹ G``;
adding ``σ_n⁻²`` at visible level-0 entries gives the joint posterior precision ``P``.
Errors of means are measured in units of ``1/sqrt(P_jj)``; round-off of a Cholesky-based
solve is bounded by ``c · dim · eps · κ_J(P) (1 + ‖m̃‖_∞)`` (``κ_J``: condition number of
the Jacobi-scaled ``P``, see tests/test_static_properties.py); the Kalman/RTS recursions
are a different but backward-stable elimination order, and we allow ``c = 64``.
"""
import numpy as np
import pyro.distributions as dist
import torch
from hypothesis import given, strategies as st

from explicit_models.temporal_hierarchy import TemporalGaussianHierarchy

EPS = float(np.finfo(np.float64).eps)
LOG_STD = (-0.6, 0.6)


@st.composite
def temporal_models(draw, max_levels: int = 3, max_width: int = 3):
    levels = draw(st.integers(1, max_levels), label="levels")
    widths = draw(st.lists(st.integers(1, max_width), min_size=levels, max_size=levels), label="widths")
    lo, hi = LOG_STD
    log_std = draw(st.lists(st.floats(lo, hi), min_size=levels + 2, max_size=levels + 2), label="log10 stds")
    radius = draw(st.floats(0.0, 1.1), label="transition scale")
    weight_log = draw(st.floats(-0.5, 0.5), label="log10 weight scale")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    stds = lambda c, n: 10.0 ** np.clip(c + rng.uniform(-0.2, 0.2, size=n), lo, hi)  # noqa: E731
    transitions = [radius * rng.normal(size=(n, n)) / np.sqrt(n) for n in widths]
    weights = [10.0 ** weight_log * rng.normal(size=(n, m)) / np.sqrt(m) for n, m in zip(widths, widths[1:])]
    return TemporalGaussianHierarchy(transitions, weights, [stds(log_std[l], n) for l, n in enumerate(widths)],
                                     10.0 ** log_std[-1], init_stds=[stds(log_std[-2], n) for n in widths],
                                     init_means=[rng.normal(size=n) for n in widths])


@st.composite
def problems(draw, masks=("random", "visible", "occluded")):
    """``(model, x_noisy, visibility)`` with 2 sequences of 1–5 frames."""
    model = draw(temporal_models())
    steps = draw(st.integers(1, 5), label="steps")
    kind = draw(st.sampled_from(masks), label="mask")
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1), label="data seed"))
    vis = {"random": 0.5, "visible": None, "occluded": 0.0}[kind]
    s = model.sample(2, steps, generator=g, visibility=vis)
    return model, s.x_noisy, s.visibility


# ------------------------------------------------------------------ independent reference
def joint_system(model, steps):
    """``(G, c, d)`` of ``G z = c + ε``, ``ε ~ N(0, diag d)``, ``z = (s_0..s_T)`` time-major."""
    w = model.widths
    off = np.concatenate([[0], np.cumsum(w)])
    N = int(off[-1])
    D = (steps + 1) * N
    G = torch.eye(D, dtype=torch.float64)
    c = torch.zeros(D, dtype=torch.float64)
    d = torch.zeros(D, dtype=torch.float64)
    for t in range(steps + 1):
        for l in range(len(w)):
            rows = slice(t * N + off[l], t * N + off[l + 1])
            if t == 0:
                c[rows], d[rows] = model.init_means[l], model.init_stds[l] ** 2
                continue
            d[rows] = model.stds[l] ** 2
            G[rows, (t - 1) * N + off[l]:(t - 1) * N + off[l + 1]] -= model.transitions[l]
            if l < len(w) - 1:
                G[rows, t * N + off[l + 1]:t * N + off[l + 2]] -= model.weights[l]
    return G, c, d


def joint_posterior(model, x, o):
    """Per sequence: ``(P, mean, log p(x̃_visible))`` from the dense joint."""
    steps, n0 = x.shape[1], model.widths[0]
    G, c, d = joint_system(model, steps)
    N = G.shape[0] // (steps + 1)
    prior_P, prior_eta = G.T @ (G / d[:, None]), G.T @ (c / d)
    Ginv = torch.linalg.inv(G)
    prior_mean, prior_cov = Ginv @ c, Ginv @ torch.diag(d) @ Ginv.T
    rows = torch.tensor([t * N + j for t in range(1, steps + 1) for j in range(n0)])
    out = []
    for b in range(x.shape[0]):
        vis = o[b].reshape(-1) > 0
        idx, xv = rows[vis], x[b].reshape(-1)[vis]
        P, eta = prior_P.clone(), prior_eta.clone()
        P[idx, idx] += model.noise_std ** -2
        eta[idx] += xv * model.noise_std ** -2
        if idx.numel():
            S = prior_cov[idx][:, idx] + model.noise_std ** 2 * torch.eye(idx.numel(), dtype=torch.float64)
            ll = dist.MultivariateNormal(prior_mean[idx], S).log_prob(xv)
        else:
            ll = torch.zeros((), dtype=torch.float64)
        out.append((P, torch.linalg.solve(P, eta), ll))
    return out


def jacobi_condition(P):
    s = P.diagonal().rsqrt()
    ev = torch.linalg.eigvalsh(s[:, None] * P * s[None, :])
    return float(ev[-1] / ev[0])


def mean_tol(P, m, c=64):
    scale = P.diagonal().sqrt()
    return c * P.shape[0] * EPS * jacobi_condition(P) * (1.0 + float((m * scale).abs().max()))


def scaled_err(P, a, b):
    return float(((a - b) * P.diagonal().sqrt()).abs().max())


# ------------------------------------------------------------------ exact inference
@given(problems(masks=("visible",)))
def test_kalman_filter_agrees_with_pyro_gaussian_hmm(problem):
    """Unmasked data: ``log_prob`` and ``filter`` of ``pyro.distributions.GaussianHMM``
    (row-vector convention: ``transition_matrix = Mᵀ``; ``initial_dist`` = ``s_0``)."""
    model, x, _ = problem
    ss = model.state_space()
    N, n0 = ss.M.shape[0], model.widths[0]
    f64 = dict(dtype=torch.float64)
    hmm = dist.GaussianHMM(dist.MultivariateNormal(ss.init_mean, ss.init_cov), ss.M.T,
                           dist.MultivariateNormal(torch.zeros(N, **f64), ss.Q), torch.eye(N, n0, **f64),
                           dist.MultivariateNormal(torch.zeros(n0, **f64), model.noise_std ** 2 * torch.eye(n0, **f64)))
    kf = model.kalman_filter(x)
    ll = hmm.log_prob(x)
    assert torch.allclose(kf.log_likelihood, ll, rtol=1e-9, atol=1e-9 * x.shape[1] * n0)
    post = hmm.filter(x)
    P_ref = post.covariance_matrix
    sd = P_ref.diagonal(dim1=-2, dim2=-1).sqrt()
    assert float(((post.loc - kf.filtered_means[:, -1]) / sd).abs().max()) < 1e-7
    assert float(((P_ref - kf.filtered_covs[:, -1]) / (sd[:, :, None] * sd[:, None, :])).abs().max()) < 1e-7


@given(problems())
def test_rts_smoother_and_likelihood_match_the_dense_joint(problem):
    """RTS means and marginal covariances, and the masked Kalman log-likelihood, equal the
    dense joint posterior's and the dense Gaussian evidence of the visible entries."""
    model, x, o = problem
    sm = model.rts_smoother(x, o)
    N = sm.means.shape[-1]
    for b, (P, mean, ll) in enumerate(joint_posterior(model, x, o)):
        assert scaled_err(P, sm.means[b].reshape(-1), mean) <= mean_tol(P, mean)
        cov = torch.linalg.inv(P)
        for t in range(x.shape[1] + 1):
            blk = slice(t * N, (t + 1) * N)
            sd = cov[blk, blk].diagonal().sqrt()
            err = (sm.covs[b, t] - cov[blk, blk]) / (sd[:, None] * sd[None, :])
            assert float(err.abs().max()) <= 64 * P.shape[0] * EPS * jacobi_condition(P)
        assert abs(float(sm.log_likelihood[b] - ll)) <= 1e-9 * (1.0 + abs(float(ll))) + 1e-9 * P.shape[0]


@given(problems(masks=("occluded",)))
def test_fully_occluded_filters_follow_the_prior_dynamics(problem):
    """No observation: the Kalman filter's means and covariances and the online VB
    filter's means are the prior's, ``m_t = M m_t-1`` from ``μ_init``, exactly."""
    model, x, o = problem
    ss = model.state_space()
    mean, cov, means, covs = ss.init_mean, ss.init_cov, [ss.init_mean], [ss.init_cov]
    for _ in range(x.shape[1]):
        mean, cov = ss.M @ mean, ss.M @ cov @ ss.M.T + ss.Q
        means.append(mean)
        covs.append(cov)
    means, covs = torch.stack(means), torch.stack(covs)
    kf = model.kalman_filter(x, o)
    scale = 1.0 + means.abs().max()
    assert float((kf.filtered_means - means).abs().max()) <= 1e-12 * scale
    assert float((kf.filtered_covs - covs).abs().max()) <= 1e-12 * (1.0 + covs.abs().max())
    assert float(kf.log_likelihood.abs().max()) == 0.0
    for sweeps in (1, 3):
        vb = model.vb_filter(x, o, sweeps_per_step=sweeps)
        assert float((torch.cat(vb.means, -1) - means).abs().max()) <= 1e-12 * scale


# ------------------------------------------------------------------ variational Bayes
COVS = st.sampled_from(["full", "diagonal"])


def _levels(model, stacked):
    return list(torch.split(stacked, model.widths, dim=-1))


def _blocks(model, steps):
    """``(t, l, index slice in z)`` for every factor ``q(s_l,t)``."""
    off = np.concatenate([[0], np.cumsum(model.widths)])
    N = int(off[-1])
    return [(t, l, slice(t * N + int(off[l]), t * N + int(off[l + 1])))
            for t in range(steps + 1) for l in range(len(model.widths))]


@given(problems(), COVS)
def test_vb_smoother_fixed_point_means_are_the_rts_means(problem, covariance):
    """A sweep started at the RTS means leaves them in place, and VB iterated from the
    prior to its fixed point reaches them (both against the dense joint posterior)."""
    model, x, o = problem
    sm = model.rts_smoother(x, o)
    one = model.vb_smoother(x, o, sweeps=1, covariance=covariance, init={"means": _levels(model, sm.means)})
    fp = model.vb_smoother_fixed_point(x, o, covariance=covariance, tol=0.0)  # down to round-off
    assert fp.sweeps < 5000 and fp.step < 1e-9
    for b, (P, mean, _) in enumerate(joint_posterior(model, x, o)):
        tol = mean_tol(P, mean)
        assert scaled_err(P, sm.means[b].reshape(-1), mean) <= tol
        assert scaled_err(P, one.stacked_means()[b].reshape(-1), mean) <= tol
        assert scaled_err(P, fp.stacked_means()[b].reshape(-1), mean) <= tol


@given(problems(), COVS)
def test_vb_variances_are_inverse_diagonals_of_the_joint_precision(problem, covariance):
    """Diagonal mode: ``v = 1 / diag P``; full mode: ``V_l,t = (P_(l,t),(l,t))⁻¹``."""
    model, x, o = problem
    res = model.vb_smoother(x, o, sweeps=1, covariance=covariance)
    for b, (P, _, _) in enumerate(joint_posterior(model, x, o)):
        for t, l, idx in _blocks(model, x.shape[1]):
            block = P[idx, idx]
            V = res.covs[l][b, t]
            if covariance == "diagonal":
                assert torch.allclose(V, block.diagonal().reciprocal(), rtol=1e-12, atol=0)
            else:
                d = block.diagonal().sqrt()
                ref = torch.linalg.inv(block)
                err = ((V - ref) * d[:, None] * d[None, :]).abs().max()
                assert float(err) <= 64 * block.shape[0] * EPS * jacobi_condition(block)


@given(problems(), COVS, st.booleans())
def test_vb_smoother_elbo_never_decreases_and_is_exact(problem, covariance, random_start):
    """The ELBO after every block update never decreases and stays below ``log p(x̃)``;
    it equals ``log p(x̃, m) − ½ tr(P Σ_q) + H[q]`` with ``P`` the dense joint precision
    (the log joint is quadratic, so this is exact)."""
    model, x, o = problem
    init = "prior"
    if random_start:
        g = torch.Generator().manual_seed(1)
        init = {"means": [3 * torch.randn(x.shape[0], x.shape[1] + 1, n, generator=g, dtype=torch.float64)
                          for n in model.widths]}
    res = model.vb_smoother(x, o, sweeps=15, covariance=covariance, init=init)
    trace = torch.cat([res.elbo_init[:, None], res.elbo], -1)
    slack = 1e-11 * (1.0 + trace.abs().amax(-1, keepdim=True))
    assert bool((trace.diff(dim=-1) >= -slack).all())
    ll = model.kalman_filter(x, o).log_likelihood
    assert bool((trace[:, -1] <= ll + slack[:, 0] + 1e-9 * (1.0 + ll.abs())).all())
    log_joint = model.log_joint(res.means, x, o)
    for b, (P, _, _) in enumerate(joint_posterior(model, x, o)):
        expect = log_joint[b]
        for t, l, idx in _blocks(model, x.shape[1]):
            V = res.covs[l][b, t]
            V = V if covariance == "full" else torch.diag(V)
            expect = expect - 0.5 * (P[idx, idx] * V).sum() + 0.5 * torch.logdet(2 * np.pi * np.e * V)
        got = float(res.elbo[b, -1])
        assert abs(got - float(expect)) <= 1e-9 * (1.0 + abs(got))

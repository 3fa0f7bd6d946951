"""Property tests of the static Gaussian hierarchy (SPEC §2.1, properties 1–4).

Random float64 models (``explicit_models.testing.static_models``): depth 1–4, widths 1–8,
every std log-uniform in [0.1, 10] (variance ratios 1e-4..1e4), with and without a
class-mixture top (C = 2..4). Errors of means are measured in units of the conditional
posterior std ``1/sqrt(P_jj)`` (``P`` the joint posterior precision), where
Cholesky-based solves have the error bound ``≲ c · N · eps · κ_J(P) · (1 + ‖m̃‖_∞)``:
``κ_J`` is the condition number of the Jacobi-scaled ``P`` and ``m̃`` the scaled mean
(van der Sluis / Higham, Accuracy and Stability of Numerical Algorithms, §10.1). We take
``c = 8``; over 1000 random models the observed error never exceeded
``3 · eps · κ_J(P) · (1 + ‖m̃‖_∞)``, i.e. it stayed below the bound by a factor ``> 2.6 N``.
"""
import torch
from hypothesis import given, strategies as st

from explicit_models import static_vb
from explicit_models.testing import (EPS64, jacobi_condition, sem_posterior_means,
                                     sem_posterior_precision, split_levels, static_models)

COVS = st.sampled_from(["full", "diagonal"])


def _data(model, n=4, seed=0):
    return model.sample(n, torch.Generator().manual_seed(seed)).x_noisy


def _solve_tol(P, m_scaled):
    """Round-off bound for means in posterior-std units (see module docstring)."""
    N = P.shape[0]
    return 8 * N * EPS64 * jacobi_condition(P) * (1.0 + float(m_scaled.abs().max()))


# ---------------------------------------------------------------- property 1 (linear case)
@given(static_models(mixture=False), COVS)
def test_exact_posterior_mean_is_a_vb_fixed_point(model, covariance):
    """One plain VB sweep started at the exact posterior means does not move them."""
    x = _data(model)
    post = model.exact_posterior(x)
    P = sem_posterior_precision(model)
    scale = P.diagonal().sqrt()
    res = model.vb(x, 1, covariance=covariance, init={"means": post.means})
    moved = (torch.cat(res.means[0], -1) - torch.cat(post.means, -1)) * scale
    assert float(moved.abs().max()) <= _solve_tol(P, torch.cat(post.means, -1) * scale)


@given(static_models(mixture=False), COVS)
def test_vb_fixed_point_equals_exact_posterior_means(model, covariance):
    """VB iterated from the prior to its fixed point reaches the exact posterior means
    (Anderson-accelerated; the fixed points are those of plain VB)."""
    x = _data(model)
    fp = model.vb_fixed_point(x, covariance=covariance)
    assert fp.converged or fp.stalled, f"no convergence after {fp.sweeps} sweeps (step {fp.step:.3g})"
    P = sem_posterior_precision(model)
    ref = sem_posterior_means(model, x)
    scale = P.diagonal().sqrt()
    tol = _solve_tol(P, ref * scale)
    exact = torch.cat(model.exact_posterior(x).means, -1)
    assert float(((exact - ref) * scale).abs().max()) <= tol
    assert float(((torch.cat(fp.means, -1) - ref) * scale).abs().max()) <= tol


@given(static_models(mixture=False))
def test_vb_covariances_are_inverse_diagonal_blocks_and_underestimate(model):
    """Full mode: ``V_l = (P_ll)⁻¹`` and ``Cov(s_l | x̃) − V_l ⪰ 0``; diagonal mode:
    ``v_l = 1 / diag P_ll`` and ``v_l ≤ diag Cov(s_l | x̃)``."""
    x = _data(model, n=2)
    P = sem_posterior_precision(model)
    N = P.shape[0]
    kappa = jacobi_condition(P)
    post = model.exact_posterior(x)
    full = model.vb(x, 1, covariance="full").covs[0]
    diag = model.vb(x, 1, covariance="diagonal").covs[0]
    blocks = torch.split(P, model.widths, dim=0)
    start = 0
    for l, n in enumerate(model.widths):
        P_ll = blocks[l][:, start:start + n]
        start += n
        d = P_ll.diagonal().sqrt()
        scaled = lambda A: d[:, None] * A * d[None, :]  # noqa: E731  (unit-free: P_jj-scaled)
        ref_V = torch.linalg.inv(P_ll)
        # scaled inverse: relative error ≲ c·n·eps·κ_J(P_ll), relative to its norm
        tol_block = 8 * n * EPS64 * jacobi_condition(P_ll) * float(torch.linalg.matrix_norm(scaled(ref_V), 2))
        assert torch.allclose(scaled(full[l]), scaled(ref_V), rtol=0, atol=tol_block)
        torch.testing.assert_close(diag[l], P_ll.diagonal().reciprocal(), rtol=1e-13, atol=0)
        gap = scaled(post.covs[l] - full[l])
        tol_psd = 8 * N * EPS64 * kappa * float(torch.linalg.eigvalsh(scaled(post.covs[l]))[-1])
        assert float(torch.linalg.eigvalsh(0.5 * (gap + gap.T))[0]) >= -tol_psd
        assert bool((post.covs[l].diagonal() - diag[l] >= -tol_psd / d.pow(2)).all())


# ---------------------------------------------------------------- property 2 (ELBO)
@given(static_models(), COVS, st.integers(1, 5))
def test_every_coordinate_update_does_not_decrease_the_elbo(model, covariance, sweeps):
    """The ELBO after every level / q(c) update is non-decreasing, up to 100 ulps of the
    compared values (observed: < 3 ulps over 1000 random models), and ≤ log p(x̃)."""
    x = _data(model)
    res = model.vb(x, sweeps, covariance=covariance)
    assert res.elbo.shape == (x.shape[0], sweeps * res.updates_per_sweep)
    E = torch.cat([res.elbo_init[:, None], res.elbo], dim=1)
    slack = 100 * EPS64 * (E[:, 1:].abs() + E[:, :-1].abs())
    assert bool((E[:, 1:] - E[:, :-1] >= -slack).all())
    log_p = model.exact_posterior(x, return_covs=False).log_evidence
    assert bool((E[:, -1] <= log_p + 100 * EPS64 * log_p.abs()).all())


@given(static_models(mixture=False), COVS, st.integers(0, 4))
def test_elbo_gap_is_kl_to_the_exact_posterior(model, covariance, sweeps):
    """``log p(x̃) − ELBO(q) = KL(q ‖ p(s | x̃))`` for any Gaussian ``q`` (here: after a
    few sweeps), the KL computed from the reference joint posterior. The identity is
    exact; round-off is relative to the magnitudes involved (observed < 1e-12)."""
    x = _data(model)
    res = model.vb(x, sweeps, covariance=covariance)
    means = res.means[-1] if sweeps else res.init_means
    covs = res.covs[-1] if sweeps else res.init_covs
    elbo = res.elbo[:, -1] if sweeps else res.elbo_init
    P = sem_posterior_precision(model)
    delta = torch.cat(means, -1) - sem_posterior_means(model, x)
    S_q = torch.block_diag(*[c if covariance == "full" else torch.diag(c) for c in covs])
    N = P.shape[0]
    kl = 0.5 * ((P * S_q).sum() + ((delta @ P) * delta).sum(-1) - N
                - torch.linalg.slogdet(P)[1] - torch.linalg.slogdet(S_q)[1])
    log_p = model.exact_posterior(x, return_covs=False).log_evidence
    tol = 1e-10 * (log_p.abs() + elbo.abs() + kl + N)
    assert bool(((log_p - elbo) - kl).abs().le(tol).all())


# ---------------------------------------------------------------- property 3 (gated form)
@given(static_models(elementwise=True), st.data())
def test_gated_form_equals_precision_weighted_form(model, data):
    x = _data(model)
    L = model.depth
    means = [torch.randn(x.shape[0], n, generator=torch.Generator().manual_seed(l), dtype=torch.float64)
             * 3.0 for l, n in enumerate(model.widths)]
    r = None
    if model.has_mixture_top:
        r = torch.softmax(torch.randn(x.shape[0], model.num_classes, dtype=torch.float64), -1)
    for level in range(L + 1):
        m_gated, gate = static_vb.vb_level_update_gated(model, level, means, x_noisy=x, class_probs=r)
        m_prec, _ = static_vb.vb_level_update(model, x, level, means, class_probs=r)
        assert bool(((gate >= 0) & (gate <= 1)).all())
        # strictly inside (0, 1) wherever the logit is representable away from the ends
        logit = torch.logit(gate)
        assert bool(((gate > 0) & (gate < 1) | (logit.abs() > 36)).all())
        scale = m_prec.abs() + m_gated.abs() + 1.0
        assert bool(((m_gated - m_prec).abs() <= 1e-12 * scale).all())


# ---------------------------------------------------------------- property 4 (Tweedie)
@given(static_models())
def test_tweedie_miyasawa(model):
    """``E[x | x̃] = x̃ + σ_n² ∇ log p(x̃)``, gradient by autograd of the exact evidence.
    The two sides come from different routes (posterior precision ``P_c`` vs evidence
    covariance ``C``), so their difference is bounded by
    ``c · N · eps · (κ(C) + max_c κ_J(P_c)) · M`` with ``M`` the largest magnitude involved
    (``x̃``, ``x̂``, ``σ_n² ∇``, the prior mean of ``x``); observed ratio < 0.32 with c = 1."""
    x = _data(model).requires_grad_(True)
    log_p = model.exact_posterior(x, return_covs=False).log_evidence
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    x = x.detach()
    denoised = model.optimal_denoiser(x)
    step = model.noise_std ** 2 * grad
    tweedie = x + step
    prior_means, prior_covs = model.prior_marginals()
    n0 = model.widths[0]
    ev = torch.linalg.eigvalsh(prior_covs[0] + model.noise_std ** 2 * torch.eye(n0, dtype=x.dtype))
    classes = range(model.num_classes) if model.has_mixture_top else [None]
    kappa_P = max(jacobi_condition(sem_posterior_precision(model, c)) for c in classes)
    M = max(float(t.abs().max()) for t in (x, denoised, step, prior_means[0]))
    tol = 8 * sum(model.widths) * EPS64 * (float(ev[-1] / ev[0]) + kappa_P) * M
    assert float((tweedie - denoised).abs().max()) <= tol


@given(static_models(mixture=False))
def test_exact_posterior_matches_dense_reference(model):
    """Means and (data-independent) covariances against a dense solve of the reference."""
    x = _data(model)
    post = model.exact_posterior(x)
    P = sem_posterior_precision(model)
    ref = sem_posterior_means(model, x)
    scale = P.diagonal().sqrt()
    assert float(((torch.cat(post.means, -1) - ref) * scale).abs().max()) <= _solve_tol(P, ref * scale)
    ref_cov = torch.linalg.inv(P)
    d = split_levels(scale, model.widths)
    blocks = torch.split(ref_cov, model.widths, dim=0)
    start = 0
    for l, n in enumerate(model.widths):
        got = d[l][:, None] * post.covs[l] * d[l][None, :]
        want = d[l][:, None] * blocks[l][:, start:start + n] * d[l][None, :]
        start += n
        tol = 8 * P.shape[0] * EPS64 * jacobi_condition(P) * float(want.abs().max())
        assert float((got - want).abs().max()) <= tol


@given(static_models(), COVS)
def test_updates_are_exact_coordinate_maxima_of_the_elbo(model, covariance):
    """Each update maximises the ELBO in its coordinate, checked through exact identities
    (the ELBO is quadratic in ``m_l``, a Gaussian entropy + linear term in ``V_l`` and a
    categorical entropy + linear term in ``q(c)``): with the updated ``(m*, V*, r*)``,
    ``E(m* + δ) − E(m*) = −½ δᵀ P_l δ``, ``E(V) − E(V*) = −½ [tr(P_l V) − n − log det(P_l V)]``
    and ``E(r) − E(r*) = −KL(r ‖ r*)``. Round-off: 1000 ulps of the ELBO values, plus, for
    the level checks, the error of the reference ``P_l = V_full⁻¹`` (an inverse: relative
    error ``n κ_J(P_l) ε``, as in the precision test above) on the terms it enters,
    ``|δᵀP δ|`` and ``|tr(P_l V)| + n``."""
    x = _data(model, n=3)
    gen = torch.Generator().manual_seed(1)
    res = model.vb(x, 1, covariance=covariance)
    means, covs, r = list(res.means[0]), list(res.covs[0]), res.class_probs[0]

    def E(ms, cs, rr):
        return model.elbo(x, ms, cs, rr, covariance=covariance)

    def swap(seq, l, v):
        return seq[:l] + [v] + seq[l + 1:]

    def check(E_new, E_opt, expected, reference_terms):
        tol = 1000 * EPS64 * (E_new.abs() + E_opt.abs()) + inverse_error * reference_terms
        assert bool(((E_new - E_opt) - expected).abs().le(tol).all())

    for l in range(model.depth + 1):
        m, V = static_vb.vb_level_update(model, x, l, means, r, covariance)
        means, covs = swap(means, l, m), swap(covs, l, V)
        E_opt = E(means, covs, r)
        _, V_full = static_vb.vb_level_update(model, x, l, means, r, "full")
        P = torch.linalg.inv(V_full)  # within-level precision P_l ((B,) n, n)
        n = P.shape[-1]
        inverse_error = 8 * n * EPS64 * max(jacobi_condition(p) for p in P.reshape(-1, n, n))
        std = P.diagonal(dim1=-2, dim2=-1).rsqrt()
        delta = 0.5 * std * torch.randn(m.shape, generator=gen, dtype=m.dtype)
        quad = ((delta.unsqueeze(-2) @ P) * delta.unsqueeze(-2)).sum((-2, -1))
        check(E(swap(means, l, m + delta), covs, r), E_opt, -0.5 * quad, quad.abs())
        if covariance == "full":
            A = torch.eye(V.shape[-1], dtype=V.dtype) + 0.2 * torch.randn(V.shape, generator=gen, dtype=V.dtype)
            V_new = A @ V @ A.transpose(-1, -2)
            PV = P @ V_new
            trace = PV.diagonal(dim1=-2, dim2=-1).sum(-1)
            expected = -0.5 * (trace - V.shape[-1] - torch.logdet(PV))
            terms = trace.abs() + n
        else:
            V_new = V * torch.exp(0.3 * torch.randn(V.shape, generator=gen, dtype=V.dtype))
            ratio = V_new / V
            expected = -0.5 * (ratio - 1 - ratio.log()).sum(-1)
            terms = torch.zeros(())
        check(E(means, swap(covs, l, V_new), r), E_opt, expected.expand(x.shape[0]), terms)
    if model.has_mixture_top:
        r = static_vb.class_update(model, means, covs, covariance)
        E_opt = E(means, covs, r)
        other = torch.softmax(2.0 * torch.randn(r.shape, generator=gen, dtype=r.dtype), dim=-1)
        kl = (other * (other.log() - r.clamp_min(1e-300).log())).sum(-1)
        finite = r.min(-1).values > 1e-250  # KL is only representable where r* has no underflow
        E_other = E(means, covs, other)
        tol = 1000 * EPS64 * (E_other.abs() + E_opt.abs())
        assert bool((((E_other - E_opt) + kl).abs().le(tol) | ~finite).all())
        assert bool((E_other <= E_opt + tol).all())

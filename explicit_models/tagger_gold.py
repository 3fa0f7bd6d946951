"""Gold standards for the Tagger mixture (SPEC §2.3): NUTS over ``h`` with ``z`` enumerated,
and exact enumeration over all ``K^N`` assignments on tiny models.

Given ``z``, the groups' latents are independent and ``h_k`` integrates out in closed form
(gaussian):

    p(x̃ | z) = Π_k N(x̃_{S_k}; β_{k,S_k}, B_{S_k} B_{S_k}ᵀ + λ_k I),    S_k = {i : z_i = k},

evaluated through the ``d × d`` matrix ``A_k = I + Σ_{i∈S_k} b_i b_iᵀ / λ_k`` (matrix
determinant lemma and Woodbury): with ``r = x̃ − β_k``, ``u = Σ_{i∈S_k} b_i r_i / λ_k``,
``h* = A_k⁻¹ u``,

    log N = −½ [ |S_k| log 2πλ_k + log det A_k + Σ_{i∈S_k} r_i² / λ_k − uᵀ A_k⁻¹ u ]
          = −½ [ |S_k| log 2πλ_k + log det A_k + Σ_{i∈S_k} (r_i − b_iᵀh*)² / λ_k + |h*|² ]

(the second form, used here, has no cancellation when ``λ_k`` is tiny).

The binary variant has no closed form; there ``∫ Π_{i∈S_k} p(x̃_i | h_k) N(h_k; 0, I) dh_k``
is computed by tensor-product Gauss–Hermite quadrature (small ``d`` only), which also
works for the gaussian variant (a cross-check of the closed form).
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_value
from pyro.ops.stats import effective_sample_size, split_gelman_rubin


@dataclass
class GoldStandard:
    """NUTS gold standard on ``B`` images (SPEC §2.3, §4).

    ``assign_probs`` ``(B, K, N)``: ``E_h[p(z_i = k | h, x̃_i)]`` over the NUTS draws;
    ``denoised`` ``(B, N)``: posterior mean of the clean ``x`` (gaussian
    ``E_h Σ_k p(z_i=k | h, x̃_i)(σ² μ_ik + σ_k² x̃_i)/λ_k``; bernoulli ``P(x_i = 1 | x̃)``);
    ``samples`` ``(S, B, K, d)`` the draws of ``h``; ``diagnostics``: ``r_hat_max`` and
    ``n_eff_min`` (:func:`effective_sizes`) over all coordinates of ``h`` (split-chain, one chain; large under label
    switching, which does not harm ``assign_probs`` up to the groups' permutation),
    ``r_hat_loglik_max`` / ``n_eff_loglik_min`` of the per-image ``log p(x̃ | h)`` (invariant
    to label switching), ``divergences``, ``step_size``, ``potential_evals`` (gradient
    evaluations; ``"potential"`` backend without jit), ``init``, ``backend``; ``wall_s`` the
    seconds taken (VB init + warmup + sampling + summaries); ``assign_probs_se``
    ``(B, K, N)`` and ``denoised_se`` ``(B, N)``: Monte-Carlo standard errors of those means
    (:func:`monte_carlo_se`).
    """

    assign_probs: torch.Tensor
    denoised: torch.Tensor
    samples: torch.Tensor
    diagnostics: dict = field(default_factory=dict)
    wall_s: float = 0.0
    assign_probs_se: Optional[torch.Tensor] = None
    denoised_se: Optional[torch.Tensor] = None


# ---------------------------------------------------------------------- exact enumeration
def all_assignments(K: int, N: int, start: int = 0, stop=None, device=None) -> torch.Tensor:
    """Assignments ``start..stop−1`` of the ``K^N`` in base-``K`` order, ``(A, N)`` long."""
    stop = K ** N if stop is None else stop
    idx = torch.arange(start, stop, device=device)
    digits = []
    for _ in range(N):
        digits.append(idx % K)
        idx = idx // K
    return torch.stack(digits[::-1], -1)


def group_log_marginals_closed_form(x_noisy, onehot, basis, offsets, lam):
    """``log N(x̃_{S_k}; β_{k,S_k}, B_S B_Sᵀ + λ_k I)`` ``(B, A, K)`` for one-hot assignments
    ``onehot`` ``(A, K, N)`` (module docstring; an empty group contributes 0)."""
    d = basis.shape[1]
    W = onehot / lam.unsqueeze(-1)  # (A, K, N)
    A_mat = torch.eye(d, dtype=basis.dtype, device=basis.device) + torch.einsum("nd,akn,ne->akde", basis, W, basis)
    chol = torch.linalg.cholesky(A_mat)  # (A, K, d, d)
    logdet_A = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (A, K)
    r = x_noisy.unsqueeze(-2) - offsets  # (B, K, N)
    u = torch.einsum("akn,bkn,nd->bakd", W, r, basis)
    h_star = torch.cholesky_solve(u.unsqueeze(-1), chol.expand(u.shape[:-1] + (d, d))).squeeze(-1)  # (B, A, K, d)
    # rᵀ(λI + B Bᵀ)⁻¹ r = Σ r²/λ − uᵀA⁻¹u, evaluated without cancellation as the minimum
    # min_h Σ_{i∈S} (r_i − b_iᵀh)²/λ + |h|², attained at h* = A⁻¹u
    resid = r.unsqueeze(1) - h_star @ basis.T  # (B, A, K, N)
    quad = (W * resid ** 2).sum(-1) + (h_star ** 2).sum(-1)
    n_k = onehot.sum(-1)  # (A, K)
    return -0.5 * (n_k * (math.log(2.0 * math.pi) + torch.log(lam)) + logdet_A + quad)


def gauss_hermite_nodes(d: int, points: int, dtype, device=None):
    """Tensor-product Gauss–Hermite rule for ``N(0, I_d)``: nodes ``(Q, d)``, log weights ``(Q,)``
    (weights sum to 1), ``Q = points^d``."""
    x, w = np.polynomial.hermite_e.hermegauss(int(points))
    w = w / w.sum()
    grids = np.meshgrid(*([x] * d), indexing="ij")
    wgrids = np.meshgrid(*([w] * d), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], -1)
    logw = np.sum([np.log(g.ravel()) for g in wgrids], 0)
    return (torch.as_tensor(nodes, dtype=dtype, device=device), torch.as_tensor(logw, dtype=dtype, device=device))


def group_log_marginals_quadrature(model, x_noisy, onehot, nodes, logw):
    """``log ∫ Π_{i∈S_k} p(x̃_i | z_i=k, h_k) N(h_k; 0, I) dh_k`` ``(B, A, K)`` by quadrature."""
    K = model.num_groups
    h = nodes.unsqueeze(-2).expand(nodes.shape[0], K, nodes.shape[1])  # (Q, K, d): node q for every group
    terms = model._log_lik(x_noisy.unsqueeze(0), model.group_means(h).unsqueeze(1))  # (Q, B, K, N)
    inner = torch.einsum("akn,qbkn->baqk", onehot, terms)
    return torch.logsumexp(inner + logw.reshape(1, 1, -1, 1), dim=-2)


def exact_enumeration(model, x_noisy, max_assignments: int = 2 ** 16, method: str = "auto",
                      quadrature_points: int = 24, chunk_elements: int = 2 ** 22):
    """``(p(z_i = k | x̃) (B, K, N), log p(x̃) (B,))`` by brute force over all ``K^N``
    assignments, ``log p(x̃) = logsumexp_z [Σ_i log ρ_{z_i} + log p(x̃ | z)]``.

    ``method``: ``"closed_form"`` (gaussian only), ``"quadrature"`` (Gauss–Hermite with
    ``quadrature_points`` per dimension; ``d ≤ 3``), ``"auto"`` = closed form for gaussian,
    quadrature for bernoulli. Raises ``ValueError`` when ``K^N > max_assignments``."""
    K, N, d = model.num_groups, model.num_pixels, model.basis_dim
    A = K ** N
    if A > int(max_assignments):
        raise ValueError(f"x_noisy: exact enumeration needs K^N = {K}^{N} = {A} assignments, more than "
                         f"max_assignments = {int(max_assignments)}")
    if method == "auto":
        method = "closed_form" if model.likelihood == "gaussian" else "quadrature"
    if method == "closed_form" and model.likelihood != "gaussian":
        raise ValueError("method: the closed form exists only for likelihood='gaussian'; use 'quadrature'")
    if method not in ("closed_form", "quadrature"):
        raise ValueError(f"method must be 'auto', 'closed_form' or 'quadrature', got {method!r}")
    B = x_noisy.shape[0]
    if method == "quadrature":
        if d > 3:
            raise ValueError(f"method: quadrature needs basis_dim d <= 3, got d = {d}")
        nodes, logw = gauss_hermite_nodes(d, quadrature_points, model.dtype, model.device)
        per_assignment = B * nodes.shape[0] * K * 2
    else:
        per_assignment = B * K * (d * d + 3 * d + 2 * N + 2)
    step = max(1, int(chunk_elements) // per_assignment)
    log_rho = model.log_mix_probs
    log_joint = []
    for start in range(0, A, step):
        z = all_assignments(K, N, start, min(A, start + step), model.device)
        onehot = torch.nn.functional.one_hot(z, K).transpose(-1, -2).to(model.dtype)  # (A_c, K, N)
        if method == "closed_form":
            g = group_log_marginals_closed_form(x_noisy, onehot, model.basis, model.offsets, model.lam)
        else:
            g = group_log_marginals_quadrature(model, x_noisy, onehot, nodes, logw)
        log_joint.append(log_rho[z].sum(-1) + g.sum(-1))  # (B, A_c)
    log_joint = torch.cat(log_joint, -1)
    log_evidence = torch.logsumexp(log_joint, -1)
    post = torch.exp(log_joint - log_evidence.unsqueeze(-1))  # (B, A)
    marg = torch.zeros(B, K, N, dtype=model.dtype, device=model.device)
    for start in range(0, A, step):
        z = all_assignments(K, N, start, min(A, start + step), model.device)
        onehot = torch.nn.functional.one_hot(z, K).transpose(-1, -2).to(model.dtype)
        marg += torch.einsum("ba,akn->bkn", post[:, start:start + z.shape[0]], onehot)
    return marg, log_evidence


# ---------------------------------------------------------------------- NUTS
def multistart_vb_means(model, x_noisy, restarts: int, iters: int, generator=None,
                        max_batch: int = 4096) -> torch.Tensor:
    """Per image, ``η`` ``(B, K, d)`` of the highest-ELBO run among ``restarts`` VB runs of
    ``iters`` iterations from random ``π0`` (Tagger-style softmax of ``N(0, 1)`` logits)."""
    B = x_noisy.shape[0]
    R = max(int(restarts), 1)
    per = max(1, int(max_batch) // R)
    out = []
    for b0 in range(0, B, per):
        xb = x_noisy[b0:b0 + per]
        nb = xb.shape[0]
        st = model.vb_converged(xb.repeat_interleave(R, 0), max_iters=max(int(iters), 1), tol=0.0,
                                generator=generator)
        best = st.elbo.reshape(nb, R).argmax(1)
        eta = st.eta.reshape(nb, R, *st.eta.shape[1:])
        out.append(eta[torch.arange(nb), best])
    return torch.cat(out, 0)


class _RNGState:
    """Seed Python, NumPy and torch for a run and restore their states afterwards."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def __enter__(self):
        self.states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        pyro.set_rng_seed(self.seed)

    def __exit__(self, *exc):
        random.setstate(self.states[0])
        np.random.set_state(self.states[1])
        torch.set_rng_state(self.states[2])
        return False


def nuts_gold_standard(model, x_noisy, num_samples: int, warmup: int, seed: int = 0, *, init="vb",
                       vb_restarts: int = 32, vb_iters: int = 30, jit_compile: bool = False,
                       backend: str = "potential",
                       target_accept_prob: float = 0.8, max_tree_depth: int = 8,
                       image_chunk: int = 20, num_threads: Optional[int] = 1) -> GoldStandard:
    """NUTS gold standard (SPEC §2.3): one chain over ``h`` ``(B, K, d)`` for the whole batch —
    the posterior factorises over images, so one chain on the product space is exact (the
    step size and the diagonal mass matrix are adapted jointly) — with ``z`` summed out per
    pixel; then ``assign_probs = E_h[p(z_i=k | h, x̃_i)]`` and the posterior mean of ``x``.

    ``backend``: ``"pyro"`` — ``NUTS(model.pyro_model, max_plate_nesting=2)``, ``z``
    marginalised by Pyro's enumeration (``TraceEnum`` machinery; ``jit_compile`` applies);
    ``"potential"`` (default) — the same NUTS/MCMC on the hand-written potential ``−log p(x̃, h) = −log N(h; 0, I) − Σ_i logsumexp_k(log ρ_k +
    log p(x̃_i | z_i=k, h))``, which the test-suite checks equals Pyro's enumerated log
    joint. CPU seconds for 100 images of 12 × 12, K = 3, d = 8, 200 + 200 draws, one thread:
    potential 28 (jit 24), pyro 72 (jit 44). ``max_tree_depth`` 8 (Pyro's default is 10;
    ours, the adapted trees stay far below it). ``init``: ``"vb"`` (default; :func:`multistart_vb_means`: per image the ``η`` of
    the best of ``vb_restarts`` random-start VB runs of ``vb_iters`` iterations — the
    posterior over ``h`` is strongly multimodal (which group explains which pixels), NUTS
    does not hop between those modes, and a single VB start leaves most chains in a mode
    tens to hundreds of nats below the dominant one; the chain then explores one of the
    ``K!`` label-permuted copies of the dominant mode), ``"prior"`` (a draw from
    ``N(0, I)``), ``"uniform"`` (Pyro's default, ``U(−2, 2)``) or a tensor ``(B, K, d)``.
    ``seed`` seeds Python/NumPy/torch for the run; their global states are restored after.
    ``num_threads``: torch intra-op threads during the run (restored after; None leaves
    them). NUTS evaluates many small tensors one after another, where a second thread
    gains nothing and, on a loaded 2-core machine, costs a lot: 100 images of 12 × 12,
    K = 3, d = 8, 200 + 200 draws took 41 s with 1 thread and 197 s with 2 (load ≈ 4).
    """
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _nuts_gold_standard(model, x_noisy, num_samples, warmup, seed, init, vb_restarts, vb_iters,
                                   jit_compile, backend, target_accept_prob, max_tree_depth, image_chunk)
    finally:
        torch.set_num_threads(threads)


def _nuts_gold_standard(model, x_noisy, num_samples, warmup, seed, init, vb_restarts, vb_iters, jit_compile,
                        backend, target_accept_prob, max_tree_depth, image_chunk) -> GoldStandard:
    x = x_noisy
    B, K, d = x.shape[0], model.num_groups, model.basis_dim
    t0 = time.perf_counter()
    evals = [0]
    with _RNGState(seed):
        if isinstance(init, torch.Tensor):
            h0 = model._check_h(init)
            if tuple(h0.shape) != (B, K, d):
                raise ValueError(f"init: expected shape ({B}, {K}, {d}), got {tuple(h0.shape)}")
            init_name = "tensor"
        elif init == "vb":
            h0 = multistart_vb_means(model, x, vb_restarts, vb_iters, torch.Generator().manual_seed(int(seed)))
            init_name = f"vb (best of {int(vb_restarts)} restarts x {int(vb_iters)} iterations)"
        elif init == "prior":
            h0 = torch.randn(B, K, d, dtype=model.dtype, device=model.device)
            init_name = "prior"
        elif init == "uniform":
            h0 = 4.0 * torch.rand(B, K, d, dtype=model.dtype, device=model.device) - 2.0
            init_name = "uniform"
        else:
            raise ValueError(f"init must be 'vb', 'prior', 'uniform' or a tensor, got {init!r}")
        h0 = h0.detach().clone()
        common = dict(target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth, adapt_step_size=True,
                      adapt_mass_matrix=True, full_mass=False)
        if backend == "pyro":
            kernel = NUTS(model.pyro_model, max_plate_nesting=2, jit_compile=jit_compile, ignore_jit_warnings=True,
                          init_strategy=init_to_value(values={"h": h0}), **common)
            mcmc = MCMC(kernel, num_samples=int(num_samples), warmup_steps=int(warmup), disable_progbar=True)
            mcmc.run(x)
        elif backend == "potential":
            def potential_fn(params):
                evals[0] += 1
                return -model._log_joint(x, params["h"]).sum()

            kernel = NUTS(potential_fn=potential_fn, jit_compile=jit_compile, ignore_jit_warnings=True, **common)
            mcmc = MCMC(kernel, num_samples=int(num_samples), warmup_steps=int(warmup),
                        initial_params={"h": h0}, disable_progbar=True)
            mcmc.run()
        else:
            raise ValueError(f"backend must be 'potential' or 'pyro', got {backend!r}")
    h = mcmc.get_samples()["h"].detach()  # (S, B, K, d)
    assign, assign_se, denoised, denoised_se, loglik = [], [], [], [], []
    step = max(1, int(image_chunk))
    with torch.no_grad():
        for b0 in range(0, B, step):
            xb, hb = x[b0:b0 + step], h[:, b0:b0 + step]
            for series, mean, se in ((model.assignment_probs_given_h(xb, hb), assign, assign_se),
                                     (model.clean_mean_given_h(xb, hb), denoised, denoised_se)):
                mean.append(series.mean(0))
                se.append(monte_carlo_se(series))
            loglik.append(model.marginal_log_likelihood(xb, hb))
    loglik = torch.cat(loglik, -1)  # (S, B)
    diag = _diagnostics(mcmc, h, loglik)
    diag["init"] = init_name
    diag["backend"] = backend
    if backend == "potential" and not jit_compile:
        diag["potential_evals"] = evals[0]
    return GoldStandard(assign_probs=torch.cat(assign), denoised=torch.cat(denoised), samples=h, diagnostics=diag,
                        wall_s=time.perf_counter() - t0, assign_probs_se=torch.cat(assign_se),
                        denoised_se=torch.cat(denoised_se))


def monte_carlo_se(series: torch.Tensor) -> torch.Tensor:
    """Monte-Carlo standard error of the mean of each entry of a one-chain series ``(S, ...)``:
    ``sd / sqrt(n_eff)`` with Pyro's autocorrelation-based ``effective_sample_size``
    (clamped to ``[1, S]``); zero for a constant series."""
    S = series.shape[0]
    if S < 4:
        return torch.full(series.shape[1:], float("nan"), dtype=series.dtype, device=series.device)
    sd = series.std(0)
    n_eff = effective_sizes(series.reshape(S, -1)).reshape(series.shape[1:]).clamp(1.0, float(S))
    return sd / n_eff.sqrt()


def effective_sizes(series: torch.Tensor) -> torch.Tensor:
    """Pyro's ``effective_sample_size`` of each column of a one-chain ``(S, M)`` series, with
    Stan's cap ``S log10 S``: NUTS draws are often antithetic (ESS > S), and for strongly
    antithetic columns the autocorrelation-sum estimator degenerates (negative or NaN)."""
    S = series.shape[0]
    cap = S * math.log10(max(S, 10))
    ess = effective_sample_size(series.unsqueeze(0), 0, 1)
    bad = ~torch.isfinite(ess) | (ess <= 0) | (ess > cap)
    return torch.where(bad, torch.full_like(ess, cap), ess)


def _diagnostics(mcmc, h, loglik) -> dict:
    out = {}
    flat = h.reshape(1, h.shape[0], -1)  # one chain
    if h.shape[0] >= 4:
        out["r_hat_max"] = float(split_gelman_rubin(flat, 0, 1).max())
        out["n_eff_min"] = float(effective_sizes(flat[0]).min())
        ll = loglik.unsqueeze(0)
        out["r_hat_loglik_max"] = float(split_gelman_rubin(ll, 0, 1).max())
        out["n_eff_loglik_min"] = float(effective_sizes(loglik).min())
    div = mcmc.diagnostics().get("divergences", {})
    out["divergences"] = int(sum(len(v) for v in div.values()))
    kernel = mcmc.kernel
    out["step_size"] = float(kernel.step_size)
    out["num_samples"] = int(h.shape[0])
    return out

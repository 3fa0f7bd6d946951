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

from .tagger_relabel import align_chains, groups_exchangeable, relabel_draws, relabel_groups


@dataclass
class GoldStandard:
    """NUTS gold standard on ``B`` images (SPEC §2.3, §4), from ``num_chains`` chains.

    ``assign_probs`` ``(B, K, N)``: ``E_h[p(z_i = k | h, x̃_i)]`` over the draws of all chains,
    relabelled to one labelling of the groups first (exchangeable groups: every chain by
    :func:`align_chains`, then every draw by :func:`relabel_draws`; see the ``align`` option
    of :func:`nuts_gold_standard`);
    ``denoised`` ``(B, N)``: posterior mean of the clean ``x`` (gaussian
    ``E_h Σ_k p(z_i=k | h, x̃_i)(σ² μ_ik + σ_k² x̃_i)/λ_k``; bernoulli ``P(x_i = 1 | x̃)``);
    ``samples`` ``(C·S, B, K, d)`` the draws of ``h``, chain after chain, relabelled like
    ``assign_probs`` (:attr:`chain_samples` views them as ``(C, S, B, K, d)``); ``num_chains``
    ``C``.

    ``diagnostics`` (scalars and short lists; every r̂ is Pyro's ``split_gelman_rubin`` across
    the ``C`` chains, every effective size Pyro's multi-chain ``effective_sample_size`` capped
    as in :func:`effective_sizes`): ``r_hat_max`` = ``r_hat_h_max``, the largest r̂ over all
    coordinates of the relabelled ``h`` and all images; ``r_hat_h_fraction_ok`` the fraction
    of images whose largest r̂ on ``h`` is ≤ ``r_hat_target`` (:data:`R_HAT_TARGET`);
    ``worst_images`` the indices of the (up to 5) images with the largest r̂ on ``h``, worst
    first, and ``r_hat_h_worst`` their r̂; ``n_eff_min`` the smallest effective size over
    ``h``; ``r_hat_loglik_max`` / ``n_eff_loglik_min`` of the per-image ``log p(x̃ | h)``
    (invariant to relabelling); ``loglik_chain_spread_max`` the largest spread (max − min over
    chains) of a chain's mean ``log p(x̃ | h)`` on one image, nats (large: the chains sit in
    different modes, not in copies of one mode); ``alignment`` the relabelling applied
    (``"draws"``, ``"chains"`` or ``"none"``) and ``aligned`` whether any was;
    ``relabelled_fraction`` the fraction of (chain, image) pairs whose groups the chain
    alignment permuted and ``relabelled_draw_fraction`` the fraction of draws that the
    per-draw relabelling permuted further; ``num_chains``; ``num_samples`` (draws per chain);
    ``warmup``; ``divergences`` (all chains); ``step_size`` (the smallest over chains) and
    ``step_sizes``; ``potential_evals`` (gradient evaluations, all chains; ``"potential"``
    backend without jit); ``init``; ``backend``.

    ``per_image``: tensors ``r_hat_h`` ``(B,)`` (largest over ``h``), ``r_hat_loglik`` ``(B,)``,
    ``n_eff_h`` ``(B,)`` (smallest over ``h``), ``loglik_chain_means`` ``(C, B)`` and ``perms``
    ``(C, B, K)`` (chain ``c``'s group ``perms[c, b, k]`` became group ``k``), and with per-draw
    relabelling ``draw_perms`` ``(C, S, B, K)`` (the same for each draw, composed). ``wall_s`` the
    seconds taken (VB starts + warmup + sampling + summaries); ``assign_probs_se``
    ``(B, K, N)`` and ``denoised_se`` ``(B, N)``: Monte-Carlo standard errors of those means
    (:func:`monte_carlo_se` across the chains).
    """

    assign_probs: torch.Tensor
    denoised: torch.Tensor
    samples: torch.Tensor
    diagnostics: dict = field(default_factory=dict)
    wall_s: float = 0.0
    assign_probs_se: Optional[torch.Tensor] = None
    denoised_se: Optional[torch.Tensor] = None
    num_chains: int = 1
    per_image: dict = field(default_factory=dict)

    @property
    def chain_samples(self) -> torch.Tensor:
        """``samples`` as ``(C, S, B, K, d)``."""
        return self.samples.reshape(self.num_chains, -1, *self.samples.shape[1:])


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
#: the split-r̂ below which a gold-standard image counts as converged
R_HAT_TARGET = 1.05


def multistart_vb(model, x_noisy, restarts: int, iters: int, generator=None,
                  max_batch: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, ``(η (B, K, d), S (B, K, d, d))`` of ``q(h)`` from the highest-ELBO run among
    ``restarts`` VB runs of ``iters`` iterations from random ``π0`` (Tagger-style softmax of
    ``N(0, 1)`` logits, drawn from ``generator``)."""
    B = x_noisy.shape[0]
    R = max(int(restarts), 1)
    per = max(1, int(max_batch) // R)
    etas, covs = [], []
    for b0 in range(0, B, per):
        xb = x_noisy[b0:b0 + per]
        nb = xb.shape[0]
        st = model.vb_converged(xb.repeat_interleave(R, 0), max_iters=max(int(iters), 1), tol=0.0,
                                generator=generator)
        best = st.elbo.reshape(nb, R).argmax(1)
        rows = torch.arange(nb)
        etas.append(st.eta.reshape(nb, R, *st.eta.shape[1:])[rows, best])
        covs.append(st.S.reshape(nb, R, *st.S.shape[1:])[rows, best])
    return torch.cat(etas, 0), torch.cat(covs, 0)


def multistart_vb_means(model, x_noisy, restarts: int, iters: int, generator=None,
                        max_batch: int = 4096) -> torch.Tensor:
    """``η`` ``(B, K, d)`` of :func:`multistart_vb` (the best of ``restarts`` VB runs per image)."""
    return multistart_vb(model, x_noisy, restarts, iters, generator, max_batch)[0]


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


def nuts_gold_standard(model, x_noisy, num_samples: int, warmup: int, seed: int = 0, *, num_chains: int = 4,
                       init="vb", init_jitter: float = 2.0, align="auto", vb_restarts: int = 32,
                       vb_iters: int = 30, jit_compile: bool = False, backend: str = "potential",
                       target_accept_prob: float = 0.8, max_tree_depth: int = 8,
                       image_chunk: int = 20, num_threads: Optional[int] = 1) -> GoldStandard:
    """NUTS gold standard (SPEC §2.3): ``num_chains`` chains over ``h`` ``(B, K, d)``, each over
    the whole batch — the posterior factorises over images, so one chain on the product space
    is exact (the step size and the diagonal mass matrix are adapted jointly) — with ``z``
    summed out per pixel; then the draws are relabelled to one labelling of the groups
    (``align``, below), ``assign_probs = E_h[p(z_i=k | h, x̃_i)]`` and the posterior mean
    of ``x`` are averaged over all their draws, and split-r̂ / effective sizes are computed
    across the chains on the relabelled ``h`` and on ``log p(x̃ | h)`` (fields and diagnostics:
    :class:`GoldStandard`).

    **Chains.** Run one after another in this process (one Pyro ``MCMC`` each, which is what
    Pyro's own sequential sampler does; ``MCMC(num_chains=C)`` would fork ``C`` worker
    processes whenever ``C`` is below the CPU count — on CPU, NUTS over small tensors gains
    nothing from a second core and competes with whatever else runs). Each chain adapts its
    own step size and mass matrix.

    **Starts** (``init``): ``"vb"`` (default) — chain ``c`` starts from the ``η`` of the best of
    ``vb_restarts`` random-start VB runs of ``vb_iters`` iterations (:func:`multistart_vb`),
    every chain with its own restarts (one generator seeded with ``seed``, drawn chain after
    chain: chain 0 gets the start a one-chain run always had), plus a jitter
    ``init_jitter · chol(S) ε``, ``ε ~ N(0, I)``, with ``S`` that VB run's ``q(h)`` covariance.
    Why: the posterior over ``h`` is strongly multimodal (which group explains which pixels)
    and NUTS does not hop between modes; a single VB start leaves many images in a mode tens
    of nats below the dominant one, so every chain starts in the dominant mode as far as 32
    restarts find it. Independent restarts make the chains' modes independent findings — a
    chain that lands in a different (non-permuted) mode shows up as a large r̂ and a large
    ``loglik_chain_spread_max`` instead of going unnoticed — and the jitter overdisperses
    the starts within the mode, which makes r̂ a test of mixing rather than of identical
    starts: on the check's images the best VB ``η`` lies within 0.06 posterior standard
    deviations of the posterior mean (median over images) and VB's standard deviations are
    close to the posterior's (ratio posterior/VB: median 1.09, up to 2.7 where two groups
    look alike), so without jitter every chain would start at the same point, and with
    ``init_jitter = 2`` they start about two posterior standard deviations apart.
    ``"prior"`` (draws from ``N(0, I)``), ``"uniform"`` (Pyro's default, ``U(−2, 2)``), or a
    tensor ``(B, K, d)`` (every chain) or ``(C, B, K, d)`` (no jitter for tensors).

    **Relabelling** (``align``): the posterior over ``h`` is invariant to permuting the groups
    when they are exchangeable (:func:`groups_exchangeable`), so chains settle in different
    labellings of the same mode, and when two of an image's groups have nearly the same
    appearance a chain also swaps those two back and forth within one labelling (as the
    posterior has it: the swapped point is as probable). ``"chains"``: each chain's groups
    are permuted, per image, to agree best with the other chains (:func:`align_chains`);
    ``"draws"``: then, in addition, every draw's groups (:func:`relabel_draws`), which
    removes the within-chain swaps too — r̂ then measures mixing of the posterior over
    groupings irrespective of their labels, the quantity the gold standard reports (AMI,
    the predictive cost and the denoised image do not depend on the labels; ``assign_probs``
    averages consistently labelled draws instead of blurring two swapped groups in
    proportion to the time a chain spent in each labelling). ``"auto"`` (default):
    ``"draws"`` for exchangeable groups, ``"none"`` otherwise (there a permuted mode is a
    different mode and must count against convergence). ``True`` = ``"draws"``, ``False`` =
    ``"none"``.

    ``backend``: ``"pyro"`` — ``NUTS(model.pyro_model, max_plate_nesting=2)``, ``z``
    marginalised by Pyro's enumeration (``TraceEnum`` machinery; ``jit_compile`` applies);
    ``"potential"`` (default) — the same NUTS/MCMC on the hand-written potential
    ``−log p(x̃, h) = −log N(h; 0, I) − Σ_i logsumexp_k(log ρ_k + log p(x̃_i | z_i=k, h))``,
    which the test-suite checks equals Pyro's enumerated log joint (about 2.5× faster than
    ``"pyro"`` without jit). ``max_tree_depth`` 8 (Pyro's default is 10; the adapted trees
    stay far below it). Cost, one thread, 100 images of the check's model (12 × 12, K = 3,
    d = 2), 200 + 200 draws per chain, on a shared 2-core machine: 4 chains ≈ 110 CPU
    seconds, 1 chain ≈ 40 (docs/results/check-mixture.md, "Gold standard convergence").
    ``seed`` seeds Python/NumPy/torch for the run; their global states are restored after.
    ``num_threads``: torch intra-op threads during the run (restored after; None leaves
    them). NUTS evaluates many small tensors one after another, where a second thread
    gains nothing and, on a loaded 2-core machine, costs a lot (41 s with 1 thread against
    197 s with 2 for one chain on 100 images of a d = 8 model, load ≈ 4).
    """
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _nuts_gold_standard(model, x_noisy, num_samples, warmup, seed, num_chains, init, init_jitter,
                                   align, vb_restarts, vb_iters, jit_compile, backend, target_accept_prob,
                                   max_tree_depth, image_chunk)
    finally:
        torch.set_num_threads(threads)


def _chain_starts(model, x, C, init, init_jitter, vb_restarts, vb_iters, seed):
    """Starting ``h`` ``(C, B, K, d)`` of every chain and a description (:func:`nuts_gold_standard`)."""
    B, K, d = x.shape[0], model.num_groups, model.basis_dim
    if isinstance(init, torch.Tensor):
        h0 = model._check_h(init)
        if tuple(h0.shape) == (B, K, d):
            h0 = h0.unsqueeze(0).expand(C, B, K, d)
        if tuple(h0.shape) != (C, B, K, d):
            raise ValueError(f"init: expected shape ({B}, {K}, {d}) or ({C}, {B}, {K}, {d}), got {tuple(h0.shape)}")
        return h0.detach().clone(), "tensor"
    if init == "vb":
        gen = torch.Generator().manual_seed(int(seed))
        starts = []
        for _ in range(C):
            eta, S = multistart_vb(model, x, vb_restarts, vb_iters, gen)
            if init_jitter > 0:
                eps = torch.randn(B, K, d, 1, dtype=model.dtype, device=model.device)
                eta = eta + float(init_jitter) * (torch.linalg.cholesky(S) @ eps).squeeze(-1)
            starts.append(eta)
        name = f"vb (best of {int(vb_restarts)} restarts x {int(vb_iters)} iterations per chain"
        return torch.stack(starts).detach(), name + (f", jitter {float(init_jitter):g} sd of q(h))"
                                                     if init_jitter > 0 else ")")
    if init == "prior":
        return torch.randn(C, B, K, d, dtype=model.dtype, device=model.device), "prior"
    if init == "uniform":
        return 4.0 * torch.rand(C, B, K, d, dtype=model.dtype, device=model.device) - 2.0, "uniform"
    raise ValueError(f"init must be 'vb', 'prior', 'uniform' or a tensor, got {init!r}")


def _nuts_gold_standard(model, x_noisy, num_samples, warmup, seed, num_chains, init, init_jitter, align,
                        vb_restarts, vb_iters, jit_compile, backend, target_accept_prob, max_tree_depth,
                        image_chunk) -> GoldStandard:
    x = x_noisy
    B, K, d = x.shape[0], model.num_groups, model.basis_dim
    C = int(num_chains)
    if C < 1:
        raise ValueError(f"num_chains must be at least 1, got {num_chains}")
    if backend not in ("potential", "pyro"):
        raise ValueError(f"backend must be 'potential' or 'pyro', got {backend!r}")
    modes = {True: "draws", False: "none", "draws": "draws", "chains": "chains", "none": "none"}
    if align == "auto":
        align = "draws" if groups_exchangeable(model) else "none"
    if not isinstance(align, (str, bool)) or align not in modes:
        raise ValueError(f"align must be 'auto', 'draws', 'chains', 'none', True or False, got {align!r}")
    mode = modes[align]
    t0 = time.perf_counter()
    evals = [0]
    common = dict(target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth, adapt_step_size=True,
                  adapt_mass_matrix=True, full_mass=False)

    def potential_fn(params):
        evals[0] += 1
        return -model._log_joint(x, params["h"]).sum()

    draws, step_sizes, divergences = [], [], 0
    with _RNGState(seed):
        h0, init_name = _chain_starts(model, x, C, init, init_jitter, vb_restarts, vb_iters, seed)
        for c in range(C):
            if backend == "pyro":
                kernel = NUTS(model.pyro_model, max_plate_nesting=2, jit_compile=jit_compile,
                              ignore_jit_warnings=True, init_strategy=init_to_value(values={"h": h0[c]}), **common)
                mcmc = MCMC(kernel, num_samples=int(num_samples), warmup_steps=int(warmup), disable_progbar=True)
                mcmc.run(x)
            else:
                kernel = NUTS(potential_fn=potential_fn, jit_compile=jit_compile, ignore_jit_warnings=True, **common)
                mcmc = MCMC(kernel, num_samples=int(num_samples), warmup_steps=int(warmup),
                            initial_params={"h": h0[c]}, disable_progbar=True)
                mcmc.run()
            draws.append(mcmc.get_samples()["h"].detach())
            divergences += int(sum(len(v) for v in mcmc.diagnostics().get("divergences", {}).values()))
            step_sizes.append(float(kernel.step_size))
    h = torch.stack(draws)  # (C, S, B, K, d)
    S = h.shape[1]
    step = max(1, int(image_chunk))
    identity = torch.arange(K, device=x.device)
    with torch.no_grad():
        # pass 1: each chain's mean assignment probabilities (for the alignment) and log p(x̃ | h)
        chain_probs, loglik = [], []
        for b0 in range(0, B, step):
            xb = x[b0:b0 + step]
            if mode != "none" and C > 1:
                chain_probs.append(torch.stack([model.assignment_probs_given_h(xb, h[c, :, b0:b0 + step]).mean(0)
                                                for c in range(C)]))
            loglik.append(torch.stack([model.marginal_log_likelihood(xb, h[c, :, b0:b0 + step]) for c in range(C)]))
        loglik = torch.cat(loglik, -1)  # (C, S, B)
        perms = align_chains(torch.cat(chain_probs, 1)) if chain_probs else identity.expand(C, B, K).clone()
        h = relabel_groups(h, perms, 3).reshape(C * S, B, K, d)
        draw_perms = perms.unsqueeze(1).expand(C, S, B, K).reshape(C * S, B, K).clone()
        # pass 2: per-draw relabelling ("draws"), then means and Monte-Carlo errors over all draws
        assign, assign_se, denoised, denoised_se = [], [], [], []
        for b0 in range(0, B, step):
            xb, hb = x[b0:b0 + step], h[:, b0:b0 + step]
            probs = model.assignment_probs_given_h(xb, hb)  # (C·S, b, K, N)
            if mode == "draws":
                dp = relabel_draws(probs)
                probs, hb = relabel_groups(probs, dp, 2), relabel_groups(hb, dp, 2)
                h[:, b0:b0 + step] = hb
                draw_perms[:, b0:b0 + step] = draw_perms[:, b0:b0 + step].gather(-1, dp)
            for series, mean, se in ((probs, assign, assign_se),
                                     (model.clean_mean_given_h(xb, hb), denoised, denoised_se)):
                mean.append(series.mean(0))
                se.append(monte_carlo_se(series, C))
    h = h.reshape(C, S, B, K, d)
    diag, per_image = _diagnostics(h, loglik, perms)
    moved = (draw_perms.reshape(C, S, B, K) != perms.unsqueeze(1)).any(-1)
    diag.update(alignment=mode, aligned=mode != "none", relabelled_draw_fraction=float(moved.double().mean()),
                divergences=divergences, step_size=min(step_sizes), step_sizes=step_sizes, warmup=int(warmup),
                init=init_name, backend=backend)
    if mode == "draws":
        per_image["draw_perms"] = draw_perms.reshape(C, S, B, K)
    if backend == "potential" and not jit_compile:
        diag["potential_evals"] = evals[0]
    return GoldStandard(assign_probs=torch.cat(assign), denoised=torch.cat(denoised),
                        samples=h.reshape(C * S, B, K, d), diagnostics=diag, wall_s=time.perf_counter() - t0,
                        assign_probs_se=torch.cat(assign_se), denoised_se=torch.cat(denoised_se), num_chains=C,
                        per_image=per_image)


def monte_carlo_se(series: torch.Tensor, num_chains: int = 1) -> torch.Tensor:
    """Monte-Carlo standard error of the mean of each entry of ``series`` ``(C·S, ...)``
    (``num_chains`` chains of ``S`` draws, chain after chain): ``sd / sqrt(n_eff)`` with the
    pooled ``sd`` and Pyro's multi-chain ``effective_sample_size`` (:func:`effective_sizes`,
    clamped to ``[1, C·S]``); zero for a constant series; NaN with fewer than 4 draws per
    chain."""
    total = series.shape[0]
    if total // max(int(num_chains), 1) < 4:
        return torch.full(series.shape[1:], float("nan"), dtype=series.dtype, device=series.device)
    sd = series.std(0)
    n_eff = effective_sizes(series.reshape(total, -1), num_chains).reshape(series.shape[1:]).clamp(1.0, float(total))
    return sd / n_eff.sqrt()


def effective_sizes(series: torch.Tensor, num_chains: int = 1, block: int = 1024) -> torch.Tensor:
    """Pyro's ``effective_sample_size`` of each column of a ``(C·S, M)`` series of
    ``num_chains`` chains (chain after chain), with Stan's cap ``C·S log10(C·S)``: NUTS draws
    are often antithetic (ESS > draws), and for strongly antithetic columns the
    autocorrelation-sum estimator degenerates (negative or NaN)."""
    C = max(int(num_chains), 1)
    total = series.shape[0]
    cap = total * math.log10(max(total, 10))
    chains = series.reshape(C, total // C, -1)
    # columns in blocks: the FFT autocorrelation pads each column to twice the next power of 2
    ess = torch.cat([effective_sample_size(chains[..., j:j + block], 0, 1)
                     for j in range(0, chains.shape[-1], block)]) if chains.shape[-1] else chains.new_zeros(0)
    bad = ~torch.isfinite(ess) | (ess <= 0) | (ess > cap)
    return torch.where(bad, torch.full_like(ess, cap), ess)


def _diagnostics(h, loglik, perms, worst: int = 5) -> tuple[dict, dict]:
    """Convergence summaries of relabelled draws ``h`` ``(C, S, B, K, d)`` and ``log p(x̃ | h)``
    ``(C, S, B)`` (:class:`GoldStandard` lists the keys)."""
    C, S, B = h.shape[:3]
    means = loglik.mean(1)  # (C, B)
    out = {"num_chains": C, "num_samples": S, "r_hat_target": R_HAT_TARGET,
           "relabelled_fraction": float((perms != torch.arange(perms.shape[-1], device=perms.device))
                                        .any(-1).double().mean()),
           "loglik_chain_spread_max": float((means.max(0).values - means.min(0).values).max())}
    per_image = {"loglik_chain_means": means, "perms": perms}
    if S >= 4:
        flat = h.reshape(C, S, B, -1)
        r_h = split_gelman_rubin(flat, 0, 1)  # (B, K·d)
        r_h = torch.where(torch.isnan(r_h), torch.full_like(r_h, math.inf), r_h).max(-1).values  # (B,)
        r_ll = split_gelman_rubin(loglik, 0, 1)  # (B,)
        r_ll = torch.where(torch.isnan(r_ll), torch.full_like(r_ll, math.inf), r_ll)
        ess_h = effective_sizes(flat.reshape(C * S, -1), C).reshape(B, -1).min(-1).values
        ess_ll = effective_sizes(loglik.reshape(C * S, B), C)
        order = torch.argsort(r_h, descending=True)[:worst]
        out.update(r_hat_max=float(r_h.max()), r_hat_h_max=float(r_h.max()),
                   r_hat_h_fraction_ok=float((r_h <= R_HAT_TARGET).double().mean()),
                   worst_images=[int(i) for i in order], r_hat_h_worst=[float(r_h[i]) for i in order],
                   n_eff_min=float(ess_h.min()), r_hat_loglik_max=float(r_ll.max()),
                   n_eff_loglik_min=float(ess_ll.min()))
        per_image.update(r_hat_h=r_h, r_hat_loglik=r_ll, n_eff_h=ess_h)
    return out, per_image

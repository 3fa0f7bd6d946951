"""The comparison harness for the static hierarchy: score engines, VB and the Wiener filter
against the exact posterior of a static explicit model, iteration by iteration (SPEC §4).

Everything here is evaluation only (no training): it takes a trained engine implementing
``learned_inference.base.InferenceEngine`` and an explicit model offering
``exact_posterior``, ``bayes_mse``, ``vb`` and ``wiener_denoiser``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from pgm_ladder import metrics
from pgm_ladder.harness.batches import map_batches


@dataclass
class PosteriorEvalSet:
    """Fresh samples of the explicit model with their exact posterior (float64).

    ``levels[l]`` are the true latents; ``posterior_means[l]`` the exact ``E[s_l | x̃]``;
    ``class_probs`` the exact ``p(c | x̃)`` (or None without a class-mixture top).
    """

    x_clean: torch.Tensor
    x_noisy: torch.Tensor
    posterior_means: list[torch.Tensor]
    class_probs: Optional[torch.Tensor]
    bayes_mse: float
    bayes_error: Optional[float]

    @property
    def size(self) -> int:
        return int(self.x_noisy.shape[0])


def posterior_eval_set(model, num_samples: int, seed: int) -> PosteriorEvalSet:
    """Draw ``num_samples`` fresh samples with a seeded generator and solve their posteriors."""
    generator = torch.Generator().manual_seed(seed)
    sample = model.sample(num_samples, generator=generator)
    post = model.exact_posterior(sample.x_noisy, return_covs=False)
    probs = post.class_probs
    return PosteriorEvalSet(
        x_clean=sample.x,
        x_noisy=sample.x_noisy,
        posterior_means=list(post.means),
        class_probs=probs,
        bayes_mse=float(model.bayes_mse(sample.x_noisy)),
        bayes_error=None if probs is None else metrics.bayes_error(probs),
    )


@dataclass
class Curves:
    """Per-iteration metric lists for one method (index ``t`` = after iteration ``t+1``)."""

    mse_ratio: list[float] = field(default_factory=list)
    empirical_mse_ratio: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    error_gap: list[float] = field(default_factory=list)
    #: ``probe_r2[t][l]``: R² of a linear probe from engine level ``l`` to ``E[s_l | x̃]``
    probe_r2: list[list[float]] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = {"mse_ratio": self.mse_ratio, "empirical_mse_ratio": self.empirical_mse_ratio,
               "kl": self.kl, "error_gap": self.error_gap}
        if self.probe_r2:
            out["probe_r2"] = self.probe_r2
        return out


def _score_denoiser(curves: Curves, estimate: torch.Tensor, data: PosteriorEvalSet) -> None:
    curves.mse_ratio.append(metrics.mse_ratio(estimate, data.posterior_means[0], data.bayes_mse))
    curves.empirical_mse_ratio.append(metrics.empirical_mse(estimate, data.x_clean) / data.bayes_mse)


def _score_classifier(curves: Curves, log_q: Optional[torch.Tensor], data: PosteriorEvalSet) -> None:
    if data.class_probs is None or log_q is None:
        return
    curves.kl.append(metrics.categorical_kl(data.class_probs, log_q))
    curves.error_gap.append(metrics.error_gap(data.class_probs, log_q))


def engine_iterations(engine, x_noisy: torch.Tensor, iterations: int, device: torch.device,
                      batch_size: int = 2048):
    """Run ``engine`` in eval mode over ``x_noisy`` in batches; returns per-iteration
    ``(denoised, log_q or None, levels)`` concatenated over batches, on the CPU."""
    def run(sl: slice, dtype: torch.dtype):
        return engine(x_noisy[sl].to(device=device, dtype=dtype), iterations=iterations).iterations

    chunks = map_batches(engine, x_noisy.shape[0], batch_size, run)
    per_iter = []
    for t in range(len(chunks[0])):
        outs = [c[t] for c in chunks]
        denoised = torch.cat([o.denoised for o in outs]).cpu()
        log_q = None
        if outs[0].class_logits is not None:
            log_q = F.log_softmax(torch.cat([o.class_logits for o in outs]).double(), -1).cpu()
        levels = [torch.cat([o.levels[l] for o in outs]).cpu() for l in range(len(outs[0].levels))]
        per_iter.append((denoised, log_q, levels))
    return per_iter


def score_engine(engine, data: PosteriorEvalSet, iterations: int, device: torch.device | str = "cpu",
                 probes: bool = True) -> Curves:
    """Score a learned engine after each of its iterations (a one-pass engine gives one)."""
    curves = Curves()
    for denoised, log_q, levels in engine_iterations(engine, data.x_noisy, iterations, torch.device(device)):
        _score_denoiser(curves, denoised, data)
        _score_classifier(curves, log_q, data)
        if probes:
            n = min(len(levels), len(data.posterior_means))
            curves.probe_r2.append([metrics.probe_r2(levels[l], data.posterior_means[l])
                                    for l in range(n)])
    return curves


def linear_gaussian_init(model, x_noisy: torch.Tensor) -> dict:
    """VB initial means: the best *linear* (Wiener) estimate of every level,
    ``E_lin[s_l | x̃] = E s_l + Cov(s_l) P_lᵀ (Cov(s_0) + σ_n² I)⁻¹ (x̃ − E s_0)`` with
    ``P_l = W_0 ⋯ W_l-1`` (so ``Cov(s_0, s_l) = P_l Cov(s_l)``), from the exact prior moments
    of the (mixture) model. Level 0 is the Wiener filter; without a mixture top every level
    is the exact posterior mean.
    """
    means, covs = model.prior_marginals()
    noise_var = model.noise_std ** 2
    marginal = covs[0] + noise_var * torch.eye(model.widths[0], dtype=covs[0].dtype)
    residual = torch.linalg.solve(marginal, (x_noisy - means[0]).T)  # (n_0, B)
    out, link = [], torch.eye(model.widths[0], dtype=covs[0].dtype)
    for l in range(model.depth + 1):
        out.append(means[l] + (covs[l] @ link.T @ residual).T)
        if l < model.depth:
            link = link @ model.weights[l]
    return {"means": out}


def score_vb(model, data: PosteriorEvalSet, sweeps: int, covariance: str = "full",
             init: str = "prior") -> Curves:
    """Score variational Bayes after each of ``1..sweeps`` coordinate sweeps (SPEC §2.1).

    ``init="prior"`` starts from the prior (the SPEC's schedule); ``init="linear"`` from
    :func:`linear_gaussian_init`.
    """
    if init not in ("prior", "linear"):
        raise ValueError(f"init: expected 'prior' or 'linear', got {init!r}")
    start = "prior" if init == "prior" else linear_gaussian_init(model, data.x_noisy)
    result = model.vb(data.x_noisy, sweeps=sweeps, covariance=covariance, init=start)
    curves = Curves()
    for t in range(sweeps):
        _score_denoiser(curves, result.means[t][0], data)
        q = result.class_probs[t]
        if q is not None:
            _score_classifier(curves, torch.log(q.clamp_min(torch.finfo(q.dtype).tiny)), data)
    return curves


def score_wiener(model, data: PosteriorEvalSet) -> Curves:
    """Score the best linear (Wiener) denoiser, ``x̂ = A x̃ + a`` (SPEC §4)."""
    A, a = model.wiener_denoiser()
    curves = Curves()
    _score_denoiser(curves, data.x_noisy @ A.T + a, data)
    return curves

"""Scoring posterior approximations of the static hierarchy against its exact posterior, per
example (SPEC §3.5, §4): ``KL(q ‖ p(·|x̃))`` in closed form, the ELBO gap
``log p(x̃) − ELBO`` (equal to that KL), and importance-sampled log evidence with a guide as
proposal (its bias against the exact ``log p(x̃)`` and the effective sample size).

The importance sampler is Pyro's trace machinery: the guide is traced on ``K`` copies of the
batch, the model replayed on its draws, and ``log w = log p(x̃, s, c) − log q(s, c | x̃)`` read
per example from the traces' site log-probabilities.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample


@dataclass
class ImportanceEstimate:
    """Per example ``(B,)``: ``log_evidence`` = ``log (1/K) Σ_k w_k`` and ``ess`` =
    ``(Σ w)² / Σ w²`` (between 1 and ``K``), from ``num_particles`` = ``K`` draws."""

    log_evidence: torch.Tensor
    ess: torch.Tensor
    num_particles: int


def _per_example_log_prob(trace, batch: int) -> torch.Tensor:
    trace.compute_log_prob()
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample" and not site_is_subsample(site):
            total = total + site["log_prob"].reshape(batch)
    return total


def importance_log_evidence(model, guide, x_noisy, num_particles: int = 1000, chunk: int = 100,
                            ) -> ImportanceEstimate:
    """Importance-sampled ``log p(x̃)`` per example with ``guide`` as the proposal (module
    docstring); ``chunk`` particles are drawn at a time (memory ``chunk · B`` draws)."""
    if int(num_particles) < 1 or int(chunk) < 1:
        raise ValueError(f"num_particles and chunk must be >= 1, got {num_particles} and {chunk}")
    x = model.check_x_noisy(x_noisy)
    B = x.shape[0]
    log_w = []
    with torch.no_grad():
        done = 0
        while done < num_particles:
            k = min(int(chunk), int(num_particles) - done)
            xs = x.repeat(k, 1)
            guide_tr = poutine.trace(guide).get_trace(xs)
            model_tr = poutine.trace(poutine.replay(model.pyro_model, trace=guide_tr)).get_trace(xs)
            w = _per_example_log_prob(model_tr, k * B) - _per_example_log_prob(guide_tr, k * B)
            log_w.append(w.reshape(k, B))
            done += k
    log_w = torch.cat(log_w)
    lse = torch.logsumexp(log_w, 0)
    ess = torch.exp(2 * lse - torch.logsumexp(2 * log_w, 0))
    return ImportanceEstimate(lse - math.log(log_w.shape[0]), ess, int(num_particles))


def score_approximation(model, x_noisy, approximation) -> dict:
    """Mean over examples of ``KL(q ‖ p)`` and of the ELBO gap ``log p(x̃) − ELBO`` (nats),
    for a :class:`~explicit_models.static_divergence.GaussianApproximation` of ``x_noisy``."""
    with torch.no_grad():
        kl = approximation.kl(model, x_noisy)
        gap = model.exact_posterior(x_noisy, return_covs=False).log_evidence - approximation.elbo(model, x_noisy)
    return {"kl": float(kl.mean()), "kl_max": float(kl.max()), "elbo_gap": float(gap.mean()),
            "examples": int(kl.shape[0])}


def score_importance(model, guide, x_noisy, num_particles: int = 1000) -> dict:
    """Bias of the importance-sampled log evidence against the exact one (mean and max of
    ``|log p̂ − log p|``, and the mean signed bias) and the mean and minimum ESS."""
    est = importance_log_evidence(model, guide, x_noisy, num_particles)
    exact = model.exact_posterior(x_noisy, return_covs=False).log_evidence
    err = est.log_evidence - exact
    return {"bias": float(err.mean()), "abs_error_mean": float(err.abs().mean()),
            "abs_error_max": float(err.abs().max()), "ess_mean": float(est.ess.mean()),
            "ess_min": float(est.ess.min()), "num_particles": est.num_particles, "examples": int(err.shape[0])}

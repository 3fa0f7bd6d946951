"""Scores of a learned (or approximate) inference output against the exact posterior.

Each metric is a tiny pure function of tensors (SPEC §4). All return Python floats
averaged over the batch. Where the exact posterior is known we use Rao-Blackwellised
estimators — they compare an estimate with the exact posterior quantity rather than with
one noisy sample of the truth — which have far lower variance than the naive ones and the
same expectation.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, r2_score


def excess_mse(estimate: torch.Tensor, posterior_mean: torch.Tensor) -> float:
    """``E ||x̂(x̃) − E[x | x̃]||²`` summed over units, averaged over the batch.

    For any estimator, ``E||x̂ − x||² = E tr Cov(x | x̃) + E||x̂ − E[x|x̃]||²`` (the
    posterior mean is the orthogonal projection), so this is the MSE in excess of Bayes.
    """
    diff = estimate.to(posterior_mean.dtype) - posterior_mean
    return float(diff.pow(2).sum(-1).mean())


def mse_ratio(estimate: torch.Tensor, posterior_mean: torch.Tensor, bayes_mse: float) -> float:
    """Denoising MSE ratio ``MSE(x̂) / Bayes MSE`` (SPEC §4), Rao-Blackwellised:
    ``1 + excess_mse / bayes_mse``; ``bayes_mse = E tr Cov(s_0 | x̃)`` on the same samples."""
    if not bayes_mse > 0:
        raise ValueError(f"bayes_mse must be positive, got {bayes_mse}")
    return 1.0 + excess_mse(estimate, posterior_mean) / bayes_mse


def empirical_mse(estimate: torch.Tensor, clean: torch.Tensor) -> float:
    """Plain ``mean ||x̂ − x||²`` against the clean samples (a noisy check of the above)."""
    return float((estimate.to(clean.dtype) - clean).pow(2).sum(-1).mean())


def categorical_kl(p: torch.Tensor, log_q: torch.Tensor) -> float:
    """``KL(p(c|x̃) ‖ q(c|x̃))`` in nats, averaged over the batch (SPEC §4).

    ``p`` are exact posterior probabilities ``(batch, C)``; ``log_q`` are the engine's
    log-probabilities (e.g. ``log_softmax`` of its logits). Terms with ``p = 0`` vanish.
    """
    log_q = log_q.to(p.dtype)
    log_p = torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return float(terms.sum(-1).mean())


def error_gap(p: torch.Tensor, q_scores: torch.Tensor) -> float:
    """Classification error minus Bayes error, Rao-Blackwellised (SPEC §4).

    The probability that decision ``ĉ = argmax q`` is wrong given ``x̃`` is
    ``1 − p(ĉ | x̃)``; the Bayes decision's is ``1 − max_c p(c | x̃)``. Their difference,
    ``max_c p(c|x̃) − p(ĉ|x̃) ≥ 0``, averaged over the batch, is the excess error.
    """
    decision = q_scores.argmax(-1, keepdim=True)
    return float((p.max(-1).values - p.gather(-1, decision).squeeze(-1)).mean())


def bayes_error(p: torch.Tensor) -> float:
    """``E[1 − max_c p(c|x̃)]``: the Bayes classifier's error rate (SPEC §2.1)."""
    return float((1.0 - p.max(-1).values).mean())


def probe_r2(features: torch.Tensor, targets: torch.Tensor, train_fraction: float = 0.5,
             ridge: float = 1e-3) -> float:
    """Linear probe (SPEC §4 "latent probes"): fit a ridge read-out from engine activations
    to exact posterior means on the first ``train_fraction`` of the rows, and return the
    variance-weighted R² on the held-out rest (scikit-learn)."""
    x = features.detach().to(torch.float64).cpu().numpy()
    y = targets.detach().to(torch.float64).cpu().numpy()
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"features have {x.shape[0]} rows but targets have {y.shape[0]}")
    split = int(round(train_fraction * x.shape[0]))
    if split < 2 or x.shape[0] - split < 2:
        raise ValueError(f"need at least 2 rows on each side of the probe split, got {x.shape[0]}")
    probe = Ridge(alpha=ridge).fit(x[:split], y[:split])
    return float(r2_score(y[split:], probe.predict(x[split:]), multioutput="variance_weighted"))


def finite_or_nan(value: float) -> float:
    """JSON-safe float: non-finite values become NaN (json writes them as NaN)."""
    return float(value) if np.isfinite(value) else float("nan")


def grouping_scores(true_groups: torch.Tensor, group_probs: torch.Tensor,
                    true_mask_max: torch.Tensor | None = None, threshold: float = 0.9) -> dict:
    """Per-sample AMI and ARI of a soft grouping against the true one (SPEC §4 "grouping").

    ``true_groups`` ``(batch, pixels)`` integer labels; ``group_probs`` ``(batch, groups,
    pixels)`` (a soft assignment: the estimated label of pixel ``i`` is ``argmax_k``).
    Only pixels whose true mask maximum exceeds ``threshold`` are scored (Tagger's rule);
    ``true_mask_max`` ``(batch, pixels)`` defaults to ones (one-hot true assignments, so all
    pixels count). scikit-learn computes the scores; groups are exchangeable, so label
    permutations do not matter. Returns ``{"ami": mean, "ari": mean, "ami_per_sample": [...]}``.
    """
    if true_groups.dim() != 2 or group_probs.dim() != 3 or group_probs.shape[0] != true_groups.shape[0] \
            or group_probs.shape[2] != true_groups.shape[1]:
        raise ValueError(f"grouping_scores: expected true_groups (batch, pixels) and group_probs "
                         f"(batch, groups, pixels), got {tuple(true_groups.shape)} and "
                         f"{tuple(group_probs.shape)}")
    labels = true_groups.detach().cpu().numpy()
    estimate = group_probs.detach().argmax(1).cpu().numpy()
    keep = (np.ones_like(labels, dtype=bool) if true_mask_max is None
            else (true_mask_max.detach().cpu().numpy() > threshold))
    amis, aris = [], []
    for truth, est, sel in zip(labels, estimate, keep):
        amis.append(adjusted_mutual_info_score(truth[sel], est[sel]))
        aris.append(adjusted_rand_score(truth[sel], est[sel]))
    return {"ami": float(np.mean(amis)), "ari": float(np.mean(aris)),
            "ami_per_sample": [float(a) for a in amis]}


def masked_bernoulli_nll(logits: torch.Tensor, targets: torch.Tensor,
                         mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bernoulli NLL of 0/1 ``targets`` under independent per-unit ``logits`` (nats), summed
    over the units and over the steps where ``mask`` is true; returns ``(total, steps)`` as
    tensors (differentiable in ``logits``), so that ``total / steps`` is the NLL per step
    (SPEC §6, polyphonic music: sum over the 88 notes, averaged over real time steps) and
    several batches pool by adding both.

    ``logits``, ``targets``: ``(..., units)``; ``mask``: ``(...)`` bool (padding false).
    """
    if logits.shape != targets.shape or mask.shape != logits.shape[:-1]:
        raise ValueError(f"masked_bernoulli_nll: logits {tuple(logits.shape)}, targets "
                         f"{tuple(targets.shape)} and mask {tuple(mask.shape)} do not fit "
                         "(expected (..., units), (..., units), (...))")
    if mask.dtype != torch.bool:
        raise ValueError(f"masked_bernoulli_nll: mask must be bool, got {mask.dtype}")
    per_unit = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets.to(logits.dtype), reduction="none")
    per_step = per_unit.sum(-1)
    return torch.where(mask, per_step, torch.zeros_like(per_step)).sum(), mask.sum()

"""Costs and read-outs of the TAG framework (SPEC §3.3): grouping cost, class probabilities.

* :func:`group_class_log_probs`: per-group softmax over ``C + 1`` units whose *last* unit is
  "no class"; drop it, normalise over groups × classes, sum over groups (the authors' code).
  Computed in log space, so a batch whose groups all put their mass on "no class" still
  gives finite, normalised class probabilities.
* :func:`tag_cost`: against the *clean* ``x`` ``(B, N)``, averaged over iterations:
  gaussian ``−Σ_i log Σ_k m_ik N(x_i; z_ik, v)`` (learned scalar ``v``, logsumexp over
  groups, ``log m`` from ``log_softmax`` of the mask logits); bernoulli: the binary cross
  entropy of ``Σ_k m_k z_k`` against ``x`` summed over pixels. Per sample: summed over
  pixels; then mean over the batch (``per_pixel`` divides by ``N``).
* :func:`tag_class_nll`: negative log likelihood of the labels under the class
  probabilities (last iteration, or the mean over iterations).

The costs read a TAG engine's output (:class:`~learned_inference.tag.TagOutput`) through
the protocol :class:`~learned_inference.base.GroupingOutput`, so this module does not
depend on the engine module.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from explicit_models.tagger_vb import gaussian_log_density

from .base import GroupingOutput, check_shape


def group_class_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``(B, K, C + 1)`` per-group logits (last unit = "no class") -> ``(B, C)`` log class
    probabilities: ``p_c = Σ_k q_kc / Σ_{k,c'} q_kc'`` with ``q_k = softmax(logits_k)[:C]``."""
    if logits.dim() != 3 or logits.shape[-1] < 2:
        raise ValueError(f"logits: expected (batch, groups, classes + 1) with classes >= 1, "
                         f"got {tuple(logits.shape)}")
    log_q = torch.log_softmax(logits, dim=-1)[..., :-1]          # drop "no class"
    log_norm = torch.logsumexp(log_q.flatten(1), dim=-1)          # over groups × classes
    return torch.logsumexp(log_q, dim=1) - log_norm.unsqueeze(-1)  # sum over groups


@dataclass
class TagCost:
    """``total``: scalar training cost (mean over iterations and batch, summed over pixels);
    ``per_iteration``: ``(T,)``; ``per_pixel``: ``total / N`` (scalar)."""

    total: torch.Tensor
    per_iteration: torch.Tensor
    per_pixel: torch.Tensor


def gaussian_mixture_nll(x: torch.Tensor, z: torch.Tensor, mask_logits: torch.Tensor,
                         variance: torch.Tensor) -> torch.Tensor:
    """``−Σ_i log Σ_k m_ik N(x_i; z_ik, v)`` per sample, ``(B,)``; ``m = softmax_k(logits)``."""
    log_m = torch.log_softmax(mask_logits, dim=1)
    log_n = gaussian_log_density(x.unsqueeze(1), z, variance)
    return -torch.logsumexp(log_m + log_n, dim=1).sum(-1)


def mixture_bce(x: torch.Tensor, z: torch.Tensor, mask: torch.Tensor,
                eps: float = 1e-6) -> torch.Tensor:
    """Binary cross entropy of ``Σ_k m_k z_k`` (clamped to ``[eps, 1 − eps]``) against
    ``x`` per sample, summed over pixels, ``(B,)``."""
    p = (mask * z).sum(1).clamp(eps, 1.0 - eps)
    return -(x * torch.log(p) + (1.0 - x) * torch.log1p(-p)).sum(-1)


def tag_cost(output: GroupingOutput, x_clean: torch.Tensor) -> TagCost:
    """The TAG cost of SPEC §3.3 against the clean input ``x_clean`` ``(B, N)``."""
    first = output.iterations[0]
    B, _, N = first.z.shape
    check_shape(x_clean, (B, N), "x_clean")
    per_iter = []
    for it in output.iterations:
        if output.likelihood == "gaussian":
            c = gaussian_mixture_nll(x_clean, it.z, it.mask_logits, output.variance)
        else:
            c = mixture_bce(x_clean, it.z, it.mask)
        per_iter.append(c.mean())
    per_iteration = torch.stack(per_iter)
    total = per_iteration.mean()
    return TagCost(total=total, per_iteration=per_iteration, per_pixel=total / N)


def tag_class_nll(output: GroupingOutput, labels: torch.Tensor,
                  all_iterations: bool = False) -> torch.Tensor:
    """Mean NLL of integer ``labels`` ``(B,)`` under the class probabilities of the last
    iteration (the authors' choice) or, with ``all_iterations``, averaged over iterations."""
    if output.last.class_log_probs is None:
        raise ValueError("num_classes: the TAG engine has no classification head")
    check_shape(labels, (output.last.class_log_probs.shape[0],), "labels")
    its = output.iterations if all_iterations else [output.last]
    nll = [-it.class_log_probs.gather(1, labels.long().unsqueeze(1)).mean() for it in its]
    return torch.stack(nll).mean()

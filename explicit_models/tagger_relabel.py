"""Label switching in the Tagger mixture's posterior (SPEC §2.3): the groups of an
exchangeable model can be permuted without changing the posterior, so MCMC draws of the
appearances ``h`` (and the assignment probabilities they imply) are compared only after
relabelling. Per chain and image, :func:`align_chains` finds the group permutation that
best matches a reference chain's mean assignment probabilities; :func:`relabel_draws` then
relabels every draw against the mean (Stephens' method). Used by the NUTS gold standard
(:mod:`.tagger_gold`) before its convergence diagnostics and averages.
"""
from __future__ import annotations

import itertools
from typing import Optional

import numpy as np
import torch

def groups_exchangeable(model) -> bool:
    """Whether relabelling the groups leaves the model unchanged (equal offsets ``β_k``, mixing
    probabilities ``ρ_k`` and, gaussian, group stds ``σ_k``): then the posterior over ``h`` is
    invariant to permuting its group axis and chains may settle in different labellings."""
    def same(t):
        return t is None or bool(torch.allclose(t, t[:1].expand_as(t), rtol=1e-12, atol=0.0))

    return same(model.offsets) and same(model.mix_probs) and (model.likelihood != "gaussian"
                                                              or same(model.group_stds))


def _best_permutations(sim: torch.Tensor) -> torch.Tensor:
    """``σ`` ``(..., K)`` maximising ``Σ_k sim[..., k, σ(k)]`` for similarities ``(..., K, K)``:
    all ``K!`` permutations scored for ``K ≤ 6`` (ties go to the identity, scored first),
    the Hungarian method (scipy) beyond."""
    K = sim.shape[-1]
    if K <= 6:
        perms = torch.tensor(list(itertools.permutations(range(K))), dtype=torch.long, device=sim.device)
        onehot = torch.nn.functional.one_hot(perms, K).to(sim.dtype)  # (A, K, K): [a, k, σ_a(k)] = 1
        best = torch.einsum("...kj,akj->...a", sim, onehot).argmax(-1)
        return perms[best]
    from scipy.optimize import linear_sum_assignment

    flat = sim.reshape(-1, K, K).detach().cpu().numpy()
    out = [linear_sum_assignment(m, maximize=True)[1] for m in flat]
    return torch.as_tensor(np.stack(out), dtype=torch.long, device=sim.device).reshape(sim.shape[:-1])


def relabel_groups(t: torch.Tensor, perms: torch.Tensor, group_dim: int) -> torch.Tensor:
    """``t`` with its group axis ``group_dim`` relabelled per chain and image: ``perms``
    ``(C, B, K)`` (:func:`align_chains`), ``t`` of shape ``(C, ..., B, K, ...)`` with the chains in
    dim 0, images in ``group_dim − 1`` and groups in ``group_dim``; out
    ``[c, ..., b, k, ...] = t[c, ..., b, perms[c, b, k], ...]``."""
    group_dim = group_dim % t.dim()
    C, B, K = perms.shape
    shape = [1] * t.dim()
    shape[0], shape[group_dim - 1], shape[group_dim] = C, B, K
    return torch.gather(t, group_dim, perms.reshape(shape).expand(t.shape))


def align_chains(chain_probs: torch.Tensor, max_rounds: int = 5) -> torch.Tensor:
    """Group permutations relabelling every chain to one common labelling, per image.

    ``chain_probs`` ``(C, B, K, N)``: each chain's mean assignment probabilities
    ``E[p(z | h, x̃)]`` on each image. Returns ``perms`` ``(C, B, K)`` long — chain ``c``'s group
    ``perms[c, b, k]`` becomes group ``k`` (:func:`relabel_groups`) — maximising the agreement
    ``Σ_{k,i} ref[b, k, i] · chain_probs[c, b, perms[c, b, k], i]`` with a reference: chain 0
    first, then the mean of the relabelled chains, until the permutations stop changing
    (at most ``max_rounds`` rounds; the second round only matters when chain 0 is the odd
    one out)."""
    if chain_probs.dim() != 4:
        raise ValueError(f"chain_probs: expected (C, B, K, N), got shape {tuple(chain_probs.shape)}")
    perms = None
    ref = chain_probs[0]
    for _ in range(max(1, int(max_rounds))):
        sim = torch.einsum("bkn,cbjn->cbkj", ref, chain_probs)  # reference group k vs chain group j
        new = _best_permutations(sim)
        if perms is not None and torch.equal(new, perms):
            break
        perms = new
        ref = relabel_groups(chain_probs, perms, 2).mean(0)
    return perms


def relabel_draws(draw_probs: torch.Tensor, reference: Optional[torch.Tensor] = None,
                  max_rounds: int = 20) -> torch.Tensor:
    """Per-draw relabelling (Stephens 2000, "Dealing with label switching in mixture models",
    with the mean assignment probabilities as the reference). ``draw_probs`` ``(M, B, K, N)``:
    ``p(z | h^(m), x̃)`` of every draw ``m`` on every image. Returns ``perms`` ``(M, B, K)``:
    each draw's group permutation (:func:`relabel_groups`, draws in place of chains)
    maximising its agreement with the reference (default: the mean of ``draw_probs``); the
    reference then becomes the mean of the relabelled draws, until the permutations stop
    changing (at most ``max_rounds`` rounds; every round raises the total agreement)."""
    if draw_probs.dim() != 4:
        raise ValueError(f"draw_probs: expected (M, B, K, N), got shape {tuple(draw_probs.shape)}")
    ref = draw_probs.mean(0) if reference is None else reference
    perms = None
    for _ in range(max(1, int(max_rounds))):
        new = _best_permutations(torch.einsum("bkn,mbjn->mbkj", ref, draw_probs))
        if perms is not None and torch.equal(new, perms):
            break
        perms = new
        ref = relabel_groups(draw_probs, perms, 2).mean(0)
    return perms

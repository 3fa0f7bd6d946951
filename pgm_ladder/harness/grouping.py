"""The comparison harness for perceptual grouping: TAG engines on samples of the explicit
Tagger mixture, scored per iteration by AMI/ARI against the true assignments, by TAG's
denoising cost and by the MSE of ``Σ_k m_k z_k`` against the clean image (SPEC §2.3, §3.3, §4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from explicit_models.tagger_mixture import TaggerMixture
from learned_inference.tag_costs import tag_cost
from pgm_ladder import metrics
from pgm_ladder.harness.batches import concat_per_iteration, map_batches


@dataclass
class GroupingEvalSet:
    """Evaluation images (``x`` clean, ``x_noisy``, ``z`` the true group of every pixel,
    all ``(n, pixels)``) and the generator seed of the engines' random mask initialisation.
    ``true_mask_max`` ``(n, pixels)``: the largest true mask value of each pixel — only pixels
    where it exceeds 0.9 are scored (Tagger's rule, SPEC §3.3; ``None``: every pixel)."""

    x: torch.Tensor
    x_noisy: torch.Tensor
    z: torch.Tensor
    init_seed: int
    true_mask_max: Optional[torch.Tensor] = None

    @property
    def size(self) -> int:
        return self.x.shape[0]


def grouping_eval_set(model: TaggerMixture, num_samples: int, seed: int) -> GroupingEvalSet:
    """``num_samples`` fresh images drawn with ``seed``; the masks start from ``seed + 1``."""
    s = model.sample(num_samples, generator=torch.Generator().manual_seed(seed))
    return GroupingEvalSet(s.x, s.x_noisy, s.z, seed + 1)


def engine_groupings(net, data: GroupingEvalSet, iterations: int, device, batch: int = 500):
    """Per-iteration masks ``[(n, K, N)] * T`` and denoised images ``Σ_k m_k z_k``
    ``[(n, N)] * T`` on ``data`` (eval mode, float64, on the CPU) and the per-iteration
    TAG cost in nats per pixel."""
    gen = torch.Generator(device=device).manual_seed(data.init_seed)

    def run(sl: slice, dtype: torch.dtype):
        xn = data.x_noisy[sl].to(device, dtype)
        out = net(xn, iterations=iterations, generator=gen)
        cost = tag_cost(out, data.x[sl].to(device, dtype)).per_iteration.double().cpu() * xn.shape[0]
        return (cost, [it.mask.double().cpu() for it in out.iterations],
                [it.denoised.double().cpu() for it in out.iterations])

    chunks = map_batches(net, data.size, batch, run)
    costs = torch.zeros(iterations, dtype=torch.float64)
    for cost, _, _ in chunks:
        costs += cost
    return (concat_per_iteration([c[1] for c in chunks]), concat_per_iteration([c[2] for c in chunks]),
            (costs / (data.size * data.x.shape[1])).tolist())


def mse_per_pixel(estimate: torch.Tensor, clean: torch.Tensor) -> float:
    return float((estimate - clean).pow(2).mean())


def score_groupings(net, data: GroupingEvalSet, iterations: int, device) -> tuple[dict, torch.Tensor]:
    """``{"ami", "ari", "cost", "mse"}`` per iteration (cost: nats per pixel; mse per pixel)
    and the last iteration's masks."""
    masks, denoised, costs = engine_groupings(net, data, iterations, device)
    scores = [metrics.grouping_scores(data.z, m, data.true_mask_max) for m in masks]
    return ({"ami": [s["ami"] for s in scores], "ari": [s["ari"] for s in scores], "cost": costs,
             "mse": [mse_per_pixel(d, data.x) for d in denoised]}, masks[-1])

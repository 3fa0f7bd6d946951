"""What every grouping experiment shares (SPEC §3.3): the TAG section of its config, the
TAG config it makes for an inner engine, and the training cost over iterations."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import torch

from learned_inference import LadderConfig, RLadderConfig, TagConfig
from learned_inference.tag_costs import tag_cost
from pgm_ladder.training.iteration_costs import COST_WEIGHTINGS, iteration_weights  # noqa: F401 (re-exported)



@dataclass
class TagSettings:
    """The TAG wrapper's settings (SPEC §3.3; ``learned_inference.tag`` documents the
    levers that are ours). The inner engine is the experiment's ``ladder`` or ``rladder``
    section (its ``input_dim`` is set to ``projection_dim``). ``cost_weighting``: how the
    per-iteration costs are averaged in training — ``uniform`` (the papers'), ``increasing``
    (weights ``t / Σ t``) or ``last`` (the last iteration only). ``projection_norm_steps``:
    iterations with their own BatchNorm running statistics in the projection (ours; 1 =
    shared, the papers')."""

    projection_dim: int = 256
    projection_norm: Literal["batch", "layer", "none"] = "batch"
    init_logit_std: float = 1.0
    mask_skip: Literal["none", "input", "output"] = "none"
    z_skip: bool = False
    x_input: bool = False
    z_rank: int = 0
    cost_weighting: Literal["uniform", "increasing", "last"] = "uniform"
    projection_norm_steps: int = 1


def tag_config(settings: TagSettings, inner: Union[LadderConfig, RLadderConfig], *, pixels: int,
               noise_var: float, groups: int, likelihood: str = "gaussian", num_classes: int = 0,
               init_mean: float = 0.0) -> TagConfig:
    """The :class:`TagConfig` of a Tagger (``inner`` a LadderConfig) or an RTagger (an
    RLadderConfig) for images of ``pixels`` pixels."""
    return TagConfig(input_dim=pixels, engine=inner, noise_var=noise_var, groups=groups,
                     projection_dim=settings.projection_dim, projection_norm=settings.projection_norm,
                     likelihood=likelihood, num_classes=num_classes, init_mean=init_mean,
                     init_logit_std=settings.init_logit_std, mask_skip=settings.mask_skip,
                     z_skip=settings.z_skip, x_input=settings.x_input, z_rank=settings.z_rank,
                     projection_norm_steps=settings.projection_norm_steps)


def grouping_losses(output, x_clean: torch.Tensor, weighting: str = "uniform") -> dict:
    """TAG's cost (nats per pixel) weighted over iterations, with the first and last
    iterations' costs for the log."""
    cost = tag_cost(output, x_clean)
    N = x_clean.shape[1]
    per_iteration = cost.per_iteration
    if weighting == "uniform":
        loss = cost.per_pixel  # the papers' mean over iterations (kept bit-identical)
    else:
        w = iteration_weights(len(per_iteration), weighting).to(per_iteration)
        loss = (w * per_iteration).sum() / N
    per_pixel = per_iteration.detach() / N
    return {"loss": loss, "cost_first": per_pixel[0], "cost_last": per_pixel[-1]}

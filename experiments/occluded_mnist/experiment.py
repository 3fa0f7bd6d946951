"""The ``occluded_mnist`` experiment (RLadder §3.1, Tables 1–2, Figure 4; SPEC §5–7) with
the shared trainer::

    pgm-ladder train occluded_mnist --preset smoke|cpu|paper --set row=ROW [--set regime=R]
    pgm-ladder sweep occluded_mnist --preset cpu --seeds 0 1 --set row=ROW --out runs/omm/ROW
    python -m experiments.occluded_mnist.tables runs/omm/*  [--markdown FILE]

``model`` is a row of :data:`.config.ROWS`; ``regime`` one of :data:`.config.REGIMES`.
Batches are drawn with replacement from the regime's training pool (a resumable
:class:`SampledStream`); rows with a decoder also write ``figures/figure4.png``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from pgm_ladder.training.batches import SampledStream
from pgm_ladder.training.optim import make_optimizer
from pgm_ladder.training.spec import Parts

from . import data as omm_data
from . import figures as omm_figures
from . import task
from .config import OccludedMNISTConfig
from .mean_teacher import MeanTeacher
from .rows import build_model, row_spec

PROBE_SEQUENCES = 256  # training sequences the Figure-4 probe is fitted on


def build(config: OccludedMNISTConfig, device: torch.device, seed: int) -> Parts:
    spec = row_spec(config.row)
    if config.threads:
        torch.set_num_threads(config.threads)
    model = build_model(config).to(device)
    pool = omm_data.training_pool(config, seed)
    bs = config.train.batch_size
    sampler = omm_data.batch_sampler(pool, bs, config.data.labelled_per_batch)
    batches = SampledStream(sampler, bs, seed, batches_per_epoch=max(1, math.ceil(len(pool) / bs)))
    optimizer = None
    if isinstance(model, MeanTeacher):
        optimizer = make_optimizer(model.student.parameters(), config.optim)
        optimizer.register_step_post_hook(lambda opt, args, kwargs: model.update_teacher())
    cache: dict = {}

    def eval_set() -> omm_data.Sequences:
        if "eval" not in cache:
            d = config.data
            cache["eval"] = omm_data.load(d.eval_split, d.eval_size, d.seed, keep_source=True)
        return cache["eval"]

    def evaluate(net) -> dict:
        return task.evaluate(net, eval_set(), config, device)

    def figures(net, out: Path) -> None:
        d = config.data
        probe = omm_data.load(d.train_split, min(PROBE_SEQUENCES, d.train_size or PROBE_SEQUENCES),
                              d.seed, keep_source=True)
        ladder = net.teacher if isinstance(net, MeanTeacher) else net
        omm_figures.figure4(ladder.engine, eval_set(), probe, out / "figure4.png", device,
                            config.figure_sequences, title=f"{spec.label} ({config.regime})")

    return Parts(model=model, train_batches=batches, optimizer=optimizer,
                 loss=lambda net, batch: task.losses(net, batch, config),
                 evaluate=evaluate,
                 figures=figures if spec.has_decoder and config.figure_sequences > 0 else None)

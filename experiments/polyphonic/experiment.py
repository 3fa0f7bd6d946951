"""The ``polyphonic`` experiment (RLadder §3.2, Table 3; SPEC §5–7) with the shared trainer::

    pgm-ladder train polyphonic --preset smoke|cpu|paper --set row=ROW --set data.corpus=C
    pgm-ladder sweep polyphonic --preset cpu --seeds 0 1 2 --set row=ROW --set data.corpus=C \\
        --out runs/poly/C/ROW
    python -m experiments.polyphonic.tables runs/poly  [--markdown FILE]

Training batches are random windows of the training split (:func:`.data.window_sampler`,
a resumable :class:`SampledStream`; an "epoch" covers the training steps about once), the
loss is the NLL per real step, training stops early on the validation NLL
(:mod:`.stopping`) and the final metrics are those of the best validated parameters:
``nll/<corpus>`` on ``data.eval_split`` (the test split by default), ``valid_nll``,
``best_epoch``, ``epochs_trained`` and ``parameters``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from pgm_ladder.training.batches import SampledStream
from pgm_ladder.training.spec import Parts

from . import data as poly_data
from . import figures as poly_figures
from .config import PolyphonicConfig
from .models import build_model
from .stopping import EarlyStopping


def build(config: PolyphonicConfig, device: torch.device, seed: int) -> Parts:
    if config.threads:
        torch.set_num_threads(config.threads)
    d = config.data
    rolls = poly_data.load(d.corpus, d.max_sequences)
    net = build_model(config, poly_data.note_frequencies(rolls.train))
    per_epoch = poly_data.batches_per_epoch(rolls.train, d.train_window, config.train.batch_size)
    batches = SampledStream(poly_data.window_sampler(rolls.train, d.train_window),
                            config.train.batch_size, seed, batches_per_epoch=per_epoch)

    def validate(model) -> float:
        return poly_data.nll_per_step(model, rolls.valid, d.eval_batch, device)

    model = EarlyStopping(net, validate, every=config.stopping.valid_every or per_epoch,
                          patience=config.stopping.patience)

    def loss(module, batch) -> dict:
        stopper = getattr(module, "module", module)  # the bare model under DDP
        if not stopper.tick():
            return {"loss": torch.zeros((), device=batch[0].device, requires_grad=True),
                    "valid_nll": float(stopper.best_nll)}
        total, steps = poly_data.batch_nll(module, batch)
        return {"loss": total / steps, "valid_nll": float(stopper.last_nll)}

    def evaluate(stopper: EarlyStopping) -> dict:
        stopper.finish()
        split = rolls.split(d.eval_split)
        return {f"nll/{d.corpus}": poly_data.nll_per_step(stopper.best, split, d.eval_batch, device),
                "valid_nll": float(stopper.best_nll),
                "best_epoch": int(stopper.best_step) / per_epoch,
                "epochs_trained": int(stopper.steps) / per_epoch,
                "parameters": sum(p.numel() for p in stopper.net.parameters())}

    def figures(stopper: EarlyStopping, out: Path) -> None:
        poly_figures.pianoroll(stopper.best, rolls.test[0], out / "pianoroll.png", device,
                               config.figure_steps, title=f"{config.row} on {d.corpus} (test sequence 0)")

    return Parts(model=model, train_batches=batches, loss=loss, evaluate=evaluate,
                 figures=figures if config.figure_steps > 0 else None)

"""Costs and scores of the Occluded Moving MNIST rows (RLadder §3.1; SPEC §3.2, §3.4).

Training cost = ``class_weight`` · cross-entropy of the class after the last frame, over
the *labelled* sequences of the batch only (label -1 = unlabelled contributes nothing)
+ ``prediction_weight`` · next-frame squared error (summed over a frame's pixels, averaged
over the predicted frames 2..T and all sequences: the network is trained to predict the
next *occluded* frame, never the unoccluded digit)
+ (Mean Teacher) ``consistency_weight · ramp`` · mean over batch and classes of
``(softmax(student) - softmax(teacher))²``, on every sequence.

Scores (on ``data.eval_split``): ``class_error`` (%) after the last frame (the teacher's
under Mean Teacher unless ``mean_teacher.evaluate=student``; ``student_class_error`` too),
``prediction_mse`` — the mean per-pixel squared error of the predictions of frames 2..T
(the paper's "prediction error", reported ·10⁻³ in its Table 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import OccludedMNISTConfig
from .data import UNLABELLED, Sequences
from .mean_teacher import MeanTeacher, sigmoid_rampup
from .outputs import RowOutput
from .rows import row_spec


def class_cost(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled sequences; exactly 0 (with a graph) if none."""
    labelled = labels != UNLABELLED
    if not bool(labelled.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[labelled], labels[labelled])


def prediction_cost(predictions: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``predictions`` ``(B, T, C, H, W)`` (index t-1 predicts frame t+1) against ``frames``."""
    return (predictions[:, :-1] - frames[:, 1:]).pow(2).sum(dim=(2, 3, 4)).mean()


def consistency_cost(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    return (F.softmax(student_logits, 1) - F.softmax(teacher_logits.detach(), 1)).pow(2).mean()


def losses(model: nn.Module, batch: dict, config: OccludedMNISTConfig) -> dict:
    """The training cost (``"loss"``) and its logged terms for one batch."""
    spec, task = row_spec(config.row), config.task
    frames, recon, labels = batch["frames"], batch["reconstruction"], batch["label"]
    bare = getattr(model, "module", model)  # the DDP wrapper holds the model as .module
    if task.input_noise > 0 and not isinstance(bare, MeanTeacher):
        frames = frames + task.input_noise * torch.randn_like(frames)
        recon = recon + task.input_noise * torch.randn_like(recon)
    out: RowOutput = model(frames, recon)
    loss = frames.new_zeros(())
    terms: dict = {"labelled": (labels != UNLABELLED).float().mean()}
    if spec.classify:
        ce = class_cost(out.class_logits, labels)
        loss = loss + task.class_weight * ce
        terms["class_cost"] = ce.detach()
    if spec.predict:
        pc = prediction_cost(out.predictions, batch["frames"])
        loss = loss + task.prediction_weight * pc
        terms["prediction_cost"] = pc.detach()
    if out.teacher_logits is not None:
        mt = config.mean_teacher
        weight = mt.consistency_weight * sigmoid_rampup(int(bare.ema_updates), mt.rampup_steps)
        cons = consistency_cost(out.class_logits, out.teacher_logits)
        loss = loss + weight * cons
        terms.update(consistency_cost=cons.detach(), consistency_weight=torch.tensor(weight))
    return {"loss": loss, **terms}


@torch.no_grad()
def evaluate(model: nn.Module, data: Sequences, config: OccludedMNISTConfig, device,
             chunk: int = 100) -> dict:
    """The scores of the module docstring (``model`` in eval mode)."""
    spec = row_spec(config.row)
    wrong = wrong_student = sq_err = 0.0
    for start in range(0, len(data), chunk):
        batch = data.batch(torch.arange(start, min(start + chunk, len(data))))
        frames, labels = batch["frames"].to(device), batch["label"].to(device)
        out: RowOutput = model(frames, batch["reconstruction"].to(device))
        if spec.classify:
            logits = out.class_logits
            if out.teacher_logits is not None:
                wrong_student += float((out.class_logits.argmax(1) != labels).sum())
                if config.mean_teacher.evaluate == "teacher":
                    logits = out.teacher_logits
            wrong += float((logits.argmax(1) != labels).sum())
        if spec.predict:
            sq_err += float((out.predictions[:, :-1] - frames[:, 1:]).pow(2).mean(dim=(1, 2, 3, 4)).sum())
    n = len(data)
    scores = {}
    if spec.classify:
        scores["class_error"] = 100.0 * wrong / n
        if isinstance(model, MeanTeacher):
            scores["student_class_error"] = 100.0 * wrong_student / n
    if spec.predict:
        scores["prediction_mse"] = sq_err / n
    return scores

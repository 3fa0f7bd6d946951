"""Mean Teacher (SPEC §3.4; Tarvainen & Valpola 2017) around any row model.

The teacher is a copy of the student whose parameters follow the exponential moving average
``θ' <- α θ' + (1 - α) θ`` after every optimisation step, ``α = min(1 - 1/(k + 1), ema_decay)``
for the ``k``-th update (their code: the teacher tracks the student closely at first). Its
BatchNorm statistics are its own (updated by its forward passes, as in their code). In
training, student and teacher see independent Gaussian input noise (ours: the paper does
not say which perturbation it used). The consistency cost is in :mod:`.task`.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import nn

from .outputs import RowOutput


def sigmoid_rampup(step: int, length: int) -> float:
    """``exp(-5 (1 - step/length)^2)`` for ``step < length``, then 1 (Laine & Aila; Tarvainen)."""
    if length == 0 or step >= length:
        return 1.0
    phase = 1.0 - max(0, step) / length
    return float(math.exp(-5.0 * phase * phase))


class MeanTeacher(nn.Module):
    """``forward(frames, reconstruction)`` -> the student's :class:`RowOutput` with the
    teacher's ``teacher_logits``; :meth:`update_teacher` after each optimiser step."""

    def __init__(self, student: nn.Module, ema_decay: float, input_noise: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay: must lie in [0, 1), got {ema_decay}")
        self.student = student
        self.teacher = copy.deepcopy(student)
        self.teacher.requires_grad_(False)
        self.ema_decay = ema_decay
        self.input_noise = input_noise
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def decay(self, update: int) -> float:
        """``α`` of the ``update``-th update (1-based)."""
        return min(1.0 - 1.0 / (update + 1), self.ema_decay)

    @torch.no_grad()
    def update_teacher(self) -> None:
        self.ema_updates += 1
        alpha = self.decay(int(self.ema_updates))
        for t, s in zip(self.teacher.parameters(), self.student.parameters()):
            t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)

    def _noisy(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.input_noise > 0:
            return x + self.input_noise * torch.randn_like(x)
        return x

    def forward(self, frames: torch.Tensor, reconstruction: torch.Tensor) -> RowOutput:
        out = self.student(self._noisy(frames), self._noisy(reconstruction))
        with torch.no_grad():
            teacher = self.teacher(self._noisy(frames), self._noisy(reconstruction))
        return dataclasses.replace(out, teacher_logits=teacher.class_logits)

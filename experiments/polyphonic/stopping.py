"""Early stopping on the validation NLL, inside the trained module (ours).

The shared trainer (:mod:`pgm_ladder.training`) has no early stopping, so the experiment
wraps its network: :class:`EarlyStopping` holds the network, a frozen copy of its best
parameters and buffers, and the stopping state as buffers — all in the checkpoint, so a
resumed run continues exactly. The experiment's ``loss`` calls :meth:`EarlyStopping.tick`
before each training step; every ``every`` steps it validates, and once ``patience``
validations pass without a new best, ``stopped`` is set and the remaining steps of the
budget train nothing (their loss has no parameter gradients, which the optimiser skips).
The final scores use :attr:`best`.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn


class EarlyStopping(nn.Module):
    """``net`` trained with early stopping; ``validate(net) -> NLL`` (eval mode, no grad
    given by :meth:`tick`), validated every ``every`` steps, ``patience`` validations."""

    def __init__(self, net: nn.Module, validate: Callable[[nn.Module], float], every: int,
                 patience: int) -> None:
        super().__init__()
        if every < 1 or patience < 1:
            raise ValueError(f"EarlyStopping: every and patience must be >= 1, got {every}, {patience}")
        self.net = net
        self.best = copy.deepcopy(net).requires_grad_(False)
        self.validate, self.every, self.patience = validate, every, patience
        self.register_buffer("steps", torch.tensor(0))
        self.register_buffer("best_nll", torch.tensor(math.inf, dtype=torch.float64))
        self.register_buffer("best_step", torch.tensor(0))
        self.register_buffer("bad", torch.tensor(0))
        self.register_buffer("stopped", torch.tensor(False))
        self.register_buffer("last_nll", torch.tensor(math.nan, dtype=torch.float64))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def check(self) -> None:
        """Validate ``net`` now and keep it if it is the best so far."""
        was_training = self.net.training
        self.net.eval()
        with torch.no_grad():
            nll = float(self.validate(self.net))
        self.net.train(was_training)
        self.last_nll.fill_(nll)
        if nll < float(self.best_nll):
            self.best_nll.fill_(nll)
            self.best_step.copy_(self.steps)
            self.bad.zero_()
            self.best.load_state_dict(self.net.state_dict())
        else:
            self.bad += 1
            if int(self.bad) >= self.patience:
                self.stopped.fill_(True)

    def tick(self) -> bool:
        """Before a training step: validate if due; whether training goes on."""
        if not bool(self.stopped) and int(self.steps) > 0 and int(self.steps) % self.every == 0:
            self.check()
        if bool(self.stopped):
            return False
        self.steps += 1
        return True

    def finish(self) -> None:
        """After the last step: validate the final parameters too (unless stopped)."""
        if not bool(self.stopped) and int(self.steps) > int(self.best_step):
            self.check()

"""The Ladder network's per-unit combinator (SPEC §3.1, Rasmus et al. 2015, authors' code).

    μ(u) = a1 sig(a2 u + a3) + a4 u + a5
    v(u) = a6 sig(a7 u + a8) + a9 u + a10
    ẑ    = (z̃ − μ(u)) ⊙ v(u) + μ(u)          init a2 = a7 = 1, all others 0

``z̃`` is the lateral (bottom-up, corrupted) estimate, ``u`` the normalised top-down
signal. The ten parameters are per unit, shape ``(width,)``, and act along dim 1, so the
same module serves ``(batch, width)`` and ``(batch, channels, H, W)`` tensors.

With ``sigmoid_v=True`` the gain is squashed, ``v ← sig(v)`` (Tagger's stable variant for
continuous inputs, SPEC §3.1).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import ShapeError

#: parameters initialised to one (all others start at zero)
_ONES = (2, 7)


class LadderCombinator(nn.Module):
    """Per-unit combinator ``ẑ = g(z̃, u)`` with parameters ``a1 .. a10`` (each ``(width,)``)."""

    def __init__(self, width: int, sigmoid_v: bool = False) -> None:
        super().__init__()
        self.width = width
        self.sigmoid_v = sigmoid_v
        for i in range(1, 11):
            init = 1.0 if i in _ONES else 0.0
            self.register_parameter(f"a{i}", nn.Parameter(torch.full((width,), init)))

    def _p(self, i: int, like: torch.Tensor) -> torch.Tensor:
        """Parameter ``a{i}`` shaped to broadcast along dim 1 of ``like``."""
        a = getattr(self, f"a{i}")
        return a.view(1, self.width, *([1] * (like.dim() - 2)))

    def mean_and_gain(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ(u), v(u))``."""
        p = lambda i: self._p(i, u)  # noqa: E731
        mu = p(1) * torch.sigmoid(p(2) * u + p(3)) + p(4) * u + p(5)
        v = p(6) * torch.sigmoid(p(7) * u + p(8)) + p(9) * u + p(10)
        if self.sigmoid_v:
            v = torch.sigmoid(v)
        return mu, v

    def forward(self, z_tilde: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``z_tilde``, ``u``: same shape ``(batch, width, ...)`` -> ``ẑ`` of that shape."""
        if z_tilde.shape != u.shape or z_tilde.dim() < 2 or z_tilde.shape[1] != self.width:
            raise ShapeError(f"z_tilde, u: expected equal shapes (batch, {self.width}, ...), "
                             f"got {tuple(z_tilde.shape)} and {tuple(u.shape)}")
        mu, v = self.mean_and_gain(u)
        return (z_tilde - mu) * v + mu

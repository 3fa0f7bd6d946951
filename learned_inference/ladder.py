"""Fully connected Ladder network (SPEC §3.1; Rasmus et al. 2015, authors' code).

Encoder, level ``l = 1..L`` (shared by a corrupted and a clean path)::

    z_l = BN(W_l h_{l-1})          BN without affine (batch stats in training)
    z̃_l = z_l + N(0, layer_noise_std²)   corrupted path, training only
    h_l = ReLU(γ_l ⊙ (z_l + β_l))   learned per-unit shift β (init 0) and scale γ (init 1)

with ``h_0 = x_noisy`` on the corrupted path (no extra noise: the explicit model already
corrupted it) and ``h_0 = x_clean`` on the clean path.

Decoder: ``u_L = BN(h̃_L)``; ``ẑ_L = g_L(z̃_L, u_L)``; for ``l = L-1..0``:
``u_l = BN(V_l ẑ_{l+1})`` and ``ẑ_l = g_l(z̃_l, u_l)`` with ``g`` the combinator
(:class:`~learned_inference.combinator.LadderCombinator`) and ``z̃_0 = x_noisy``.
The decoder BNs have no learned scale/shift. ``ẑ_0`` estimates the clean input directly.

Costs: ``aux_cost = Σ_{l≥1} λ_l · mean_batch ‖(ẑ_l − μ_l^clean)/σ_l^clean − z_l^clean‖² / n_l``
where ``z^clean`` and its batch statistics ``(μ^clean, σ^clean)`` come from the clean path.
Level 0 is NOT in ``aux_cost``: the trainer's bottom task cost ``‖denoised − x‖²`` covers
it (``LadderConfig.bottom_cost_weight`` = ``λ_0`` is offered for the trainer to use).

Independence of ``x_clean`` (our implementation choice, documented): the clean path
normalises with its own batch statistics computed functionally, in training *and* eval,
and never touches the running statistics, which only the corrupted path updates. So the
outputs and the BN buffers are the same whether or not ``x_clean`` is passed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from . import config_utils as cu
from .base import EngineOutput, InferenceEngine, IterationOutput, check_shape
from .combinator import LadderCombinator


@dataclass
class LadderConfig:
    """Configuration of :class:`Ladder` (SPEC §3.1).

    Attributes:
        input_dim: input width ``n_0``.
        hidden_dims: widths ``(n_1, ..., n_L)`` of levels 1..L.
        num_classes: size of the linear class head on the corrupted top (0: no head).
        layer_noise_std: std of Gaussian noise added to the normalised pre-activations of
            the corrupted path at levels >= 1, in training only.
        denoising_cost_weights: ``(λ_0, λ_1, ..., λ_L)``; ``None`` -> ``(1.0, 0.1, ..., 0.1)``.
            ``λ_0`` is NOT used in ``aux_cost`` (see module doc); ``λ_1..λ_L`` are.
        combinator_sigmoid_v: use Tagger's stable gain ``v ← sig(v)``.
        detach_clean_targets: stop gradients through the clean-path targets
            (``False`` = gradients flow through both, as in the authors' code).
        bn_eps: epsilon of every batch normalisation (clean-path statistics included).
    """

    input_dim: int
    hidden_dims: tuple[int, ...]
    num_classes: int = 0
    layer_noise_std: float = 0.0
    denoising_cost_weights: Optional[tuple[float, ...]] = None
    combinator_sigmoid_v: bool = False
    detach_clean_targets: bool = False
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        cu.check_positive_int(self.input_dim, "input_dim")
        self.hidden_dims = cu.check_widths(self.hidden_dims, "hidden_dims")
        cu.check_nonnegative_int(self.num_classes, "num_classes")
        self.layer_noise_std = cu.check_nonnegative_float(self.layer_noise_std,
                                                          "layer_noise_std")
        default = (1.0,) + (0.1,) * len(self.hidden_dims)
        self.denoising_cost_weights = cu.optional_weights(
            self.denoising_cost_weights, default, "denoising_cost_weights")
        cu.check_bool(self.combinator_sigmoid_v, "combinator_sigmoid_v")
        cu.check_bool(self.detach_clean_targets, "detach_clean_targets")
        if cu.check_nonnegative_float(self.bn_eps, "bn_eps") <= 0:
            raise ValueError(f"bn_eps: expected a float > 0, got {self.bn_eps!r}")

    @property
    def widths(self) -> tuple[int, ...]:
        """``(n_0, n_1, ..., n_L)``."""
        return (self.input_dim,) + self.hidden_dims

    @property
    def bottom_cost_weight(self) -> float:
        """``λ_0``: the weight a trainer may give its bottom cost ``‖denoised − x‖²``."""
        return self.denoising_cost_weights[0]


class Ladder(InferenceEngine):
    """One-pass Ladder network (``max_iterations = 1``), SPEC §3.1.

    ``forward(x_noisy, iterations, x_clean)`` returns exactly one
    :class:`IterationOutput` whatever ``iterations`` is:
    ``denoised`` = ``ẑ_0`` ``(batch, input_dim)``; ``class_logits`` = linear head on the
    corrupted top ``h̃_L`` (``None`` if ``num_classes == 0``);
    ``levels`` = ``[ẑ_0, ẑ_1, ..., ẑ_L]`` (``ẑ_l``: ``(batch, hidden_dims[l-1])``).
    ``aux_cost``: per-layer denoising costs of levels >= 1 (0 when ``x_clean`` is None).
    """

    max_iterations = 1

    def __init__(self, config: LadderConfig) -> None:
        super().__init__()
        self.config = config
        self.input_dim = config.input_dim
        self.num_classes = config.num_classes
        n = config.widths
        L = len(config.hidden_dims)
        eps = config.bn_eps
        self.enc_linear = nn.ModuleList(nn.Linear(n[l - 1], n[l], bias=False)
                                        for l in range(1, L + 1))
        self.enc_bn = nn.ModuleList(nn.BatchNorm1d(n[l], eps=eps, affine=False)
                                    for l in range(1, L + 1))
        self.beta = nn.ParameterList(nn.Parameter(torch.zeros(n[l])) for l in range(1, L + 1))
        self.gamma = nn.ParameterList(nn.Parameter(torch.ones(n[l])) for l in range(1, L + 1))
        # dec_linear[l] = V_l : level l+1 -> level l (l = 0..L-1); dec_bn[l] for l = 0..L
        self.dec_linear = nn.ModuleList(nn.Linear(n[l + 1], n[l], bias=False) for l in range(L))
        self.dec_bn = nn.ModuleList(nn.BatchNorm1d(n[l], eps=eps, affine=False)
                                    for l in range(L + 1))
        self.combinators = nn.ModuleList(LadderCombinator(n[l], config.combinator_sigmoid_v)
                                         for l in range(L + 1))
        self.head = nn.Linear(n[L], config.num_classes) if config.num_classes > 0 else None

    def _activate(self, l: int, z: torch.Tensor) -> torch.Tensor:
        """``h_l = ReLU(γ_l ⊙ (z_l + β_l))`` (``l`` is 1-based)."""
        return torch.relu(self.gamma[l - 1] * (z + self.beta[l - 1]))

    def _corrupted_encoder(self, x_noisy: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``([z̃_0 = x_noisy, z̃_1, ..., z̃_L], h̃_L)``."""
        z_tilde = [x_noisy]
        h = x_noisy
        std = self.config.layer_noise_std
        for l in range(1, len(self.enc_linear) + 1):
            z = self.enc_bn[l - 1](self.enc_linear[l - 1](h))
            if self.training and std > 0:
                z = z + std * torch.randn_like(z)
            z_tilde.append(z)
            h = self._activate(l, z)
        return z_tilde, h

    def _decoder(self, z_tilde: list[torch.Tensor], h_top: torch.Tensor) -> list[torch.Tensor]:
        """``[ẑ_0, ..., ẑ_L]``."""
        L = len(z_tilde) - 1
        z_hat: list[Optional[torch.Tensor]] = [None] * (L + 1)
        u = self.dec_bn[L](h_top)
        z_hat[L] = self.combinators[L](z_tilde[L], u)
        for l in range(L - 1, -1, -1):
            u = self.dec_bn[l](self.dec_linear[l](z_hat[l + 1]))
            z_hat[l] = self.combinators[l](z_tilde[l], u)
        return z_hat  # type: ignore[return-value]

    def _denoising_cost(self, x_clean: torch.Tensor, z_hat: list[torch.Tensor]) -> torch.Tensor:
        """Clean path (batch statistics, running buffers untouched) and the level >= 1 costs."""
        eps = self.config.bn_eps
        weights = self.config.denoising_cost_weights
        cost = x_clean.new_zeros(())
        h = x_clean
        for l in range(1, len(self.enc_linear) + 1):
            pre = self.enc_linear[l - 1](h)
            mean = pre.mean(dim=0)
            std = torch.sqrt(pre.var(dim=0, unbiased=False) + eps)
            z_clean = (pre - mean) / std
            h = self._activate(l, z_clean)
            target, mean_t, std_t = z_clean, mean, std
            if self.config.detach_clean_targets:
                target, mean_t, std_t = target.detach(), mean.detach(), std.detach()
            err = (z_hat[l] - mean_t) / std_t - target
            cost = cost + weights[l] * err.pow(2).sum(dim=1).mean() / err.shape[1]
        return cost

    def forward(self, x_noisy: torch.Tensor, iterations: int = 1,
                x_clean: Optional[torch.Tensor] = None) -> EngineOutput:
        self._check_inputs(x_noisy, iterations, x_clean)
        z_tilde, h_top = self._corrupted_encoder(x_noisy)
        logits = self.head(h_top) if self.head is not None else None
        z_hat = self._decoder(z_tilde, h_top)
        for l, z in enumerate(z_hat):
            check_shape(z, (x_noisy.shape[0], self.config.widths[l]), f"levels[{l}]")
        if x_clean is None:
            aux = x_noisy.new_zeros(())
        else:
            aux = self._denoising_cost(x_clean, z_hat)
        out = IterationOutput(denoised=z_hat[0], class_logits=logits, levels=list(z_hat))
        return EngineOutput(iterations=[out], aux_cost=aux)

"""TAG framework (SPEC §3.3): Tagger (TAG + Ladder) and RTagger (TAG + RLadder).

``K`` groups share one inner engine. Shapes: batch ``B``, groups ``K``, pixels ``N``,
projection width ``P``. Per iteration, from the current group means ``z`` and masks ``m``
(both ``(B, K, N)``) and the *corrupted* input ``x̃`` ``(B, N)``:

    δz, L(m)  from explicit_models.tagger_vb (SPEC §2.3):
              gaussian:  mean_gradient(x̃, z, m, λ), mask_likelihood(x̃, z, λ),
                         λ = noise_var + v (v: learned scalar, v = softplus(ρ) + min_variance)
              bernoulli: binary_mean_gradient / binary_mask_likelihood with flip_prob = noise_var
    h       = ReLU(norm(W [z_k, m_k, δz_k, L(m_k)]))   (B·K, 4N) -> (B·K, P)  groups in the batch
    e       = engine(h): Ladder: one pass (no memory); RLadder: one ``step(h, carry)`` of the
              :class:`~learned_inference.base.SequenceEngine` interface (carry persists)
    z_k     = Linear(e.denoised)  (sigmoid for bernoulli);  logits_k = Linear(e.denoised)
    m       = softmax over groups of the logits;  class probs from e.class_logits (tag_costs)

Init: ``m = softmax_k(N(0, s²))``, ``s = init_logit_std`` (drawn with the ``generator``
passed to ``forward`` when given, on its device), ``z = init_mean``.

Levers that are OURS (the papers are silent; each a config field, off by default, measured
in docs/results/grouping-levers.md):

* ``mask_skip`` — a per-pixel skip into the mask logits: ``"input"`` adds ``log L(m)``
  (the likelihood of the *input* means), ``"output"`` adds ``log p(x̃_i | z_new,ik)`` (the
  likelihood of the means this iteration outputs), so that the learned logits correct VB's
  mask update ``π_ik ∝ ρ_k p(x̃_i | μ_ik)`` (SPEC §2.3) instead of having to compute the
  per-pixel comparison across groups through the engine's bottleneck.
* ``z_skip`` — a residual update of the means, ``z_new = z + head(e)``.
* ``z_rank`` — the means' read-out through a linear bottleneck of ``z_rank`` units (0: a
  full ``P → N`` read-out): a group's mean then lies in a learned ``z_rank``-dimensional
  appearance subspace, as a group's appearance does in the explicit model (``μ_k = B h_k``),
  so that one group cannot explain every pixel alike.
* ``x_input`` — ``x̃`` as a fifth per-group input (at iteration 1 every group has the same
  ``z``, so the engine otherwise sees ``x̃`` only through ``δz = m·(x̃ − z)/λ``).

Design choices that are OURS (documented):

* The inner engine's ``input_dim`` is set to ``projection_dim`` and its ``num_classes`` to
  ``num_classes + 1`` (the "no class" unit; 0 without a head) in ``TagConfig.__post_init__``
  via ``dataclasses.replace`` (which re-validates); ``projection_dim=None`` takes the engine
  config's ``input_dim``. Whatever the engine config said for these two fields is replaced.
* The inner engine never sees ``x_clean``: the Ladder's clean path would need clean TAG
  inputs, which are not defined, so its auxiliary cost is not used and ``aux_cost`` is 0.
* ``forward(x_noisy, iterations=1, x_clean=None, *, groups=None, generator=None)`` keeps the
  :class:`InferenceEngine` positional order; ``x_clean`` is validated and ignored.
* The TAG inputs use the bernoulli ``z`` as probabilities (after the sigmoid); gradients flow
  through the TAG inputs across iterations (nothing is detached).
* :class:`TagIteration` is an :class:`IterationOutput`: ``denoised = Σ_k m_k z_k`` (B, N),
  ``class_logits`` = the log class probabilities (B, C) or ``None``, ``levels = []``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Optional, Union

import torch
from torch import nn

from explicit_models.tagger_vb import (binary_mask_likelihood, binary_mean_gradient,
                                       flipped_probs, gaussian_log_density, mask_likelihood,
                                       mean_gradient)

from . import config_utils as cu
from .base import EngineOutput, InferenceEngine, IterationOutput
from .cells import NORM_KINDS, apply_norm, make_norm
from .ladder import Ladder, LadderConfig
from .rladder import RLadder, RLadderConfig
from .tag_costs import TagCost, group_class_log_probs, tag_cost

LIKELIHOODS = ("gaussian", "bernoulli")
MASK_SKIPS = ("none", "input", "output")


def build_inner_engine(config: Union[LadderConfig, RLadderConfig]) -> Union[Ladder, RLadder]:
    """The inner engine of a TAG engine: a :class:`Ladder` (Tagger) or an :class:`RLadder`
    (RTagger, used through its :class:`~learned_inference.base.SequenceEngine` ``step``)."""
    if isinstance(config, RLadderConfig):
        return RLadder(config)
    if isinstance(config, LadderConfig):
        return Ladder(config)
    raise TypeError(f"engine: expected a LadderConfig or RLadderConfig, got {type(config).__name__}")


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite float, got {value!r}")
    return float(value)


@dataclass
class TagConfig:
    """Configuration of :class:`Tag` (SPEC §3.3).

    Attributes:
        input_dim: ``N`` pixels (flattened).
        engine: inner engine config (:class:`LadderConfig` -> Tagger, :class:`RLadderConfig`
            -> RTagger); its ``input_dim``/``num_classes`` are replaced (module doc).
        noise_var: gaussian: the known corruption variance ``σ²`` (>= 0) used in the TAG
            inputs; bernoulli: the flip probability ``β`` in (0, 0.5).
        groups: ``K`` used when ``forward`` gets no ``groups``.
        projection_dim: ``P``; ``None`` -> ``engine.input_dim``.
        likelihood: ``"gaussian"`` | ``"bernoulli"``.
        num_classes: per-group class head with an extra "no class" unit (0: none).
        init_mean: initial ``z`` (``E[x]``); in [0, 1] for bernoulli.
        projection_norm: ``"batch"`` | ``"layer"`` | ``"none"``.
        projection_norm_steps: with ``projection_norm="batch"``, how many iterations keep
            their own running statistics of the projection's BatchNorm (1: shared by all,
            the papers'; ours: :class:`~learned_inference.cells.StepBatchNorm`, the last one
            for every later iteration). Training mode is unchanged (batch statistics).
        init_variance: initial learned ``v`` (gaussian, > min_variance).
        min_variance: floor of ``v`` (> 0).
        init_logit_std: std ``s`` of the random initial mask logits (> 0).
        mask_skip: ``"none"`` | ``"input"`` | ``"output"`` (module doc).
        z_skip: residual means ``z_new = z + head(e)`` (module doc).
        x_input: ``x̃`` as a fifth input to every group (module doc).
        z_rank: width of the means' linear bottleneck (0: none; module doc).
    """

    input_dim: int
    engine: Union[LadderConfig, RLadderConfig]
    noise_var: float
    groups: int = 3
    projection_dim: Optional[int] = None
    likelihood: str = "gaussian"
    num_classes: int = 0
    init_mean: float = 0.0
    projection_norm: str = "batch"
    init_variance: float = 1.0
    min_variance: float = 1e-6
    init_logit_std: float = 1.0
    mask_skip: str = "none"
    z_skip: bool = False
    x_input: bool = False
    z_rank: int = 0
    projection_norm_steps: int = 1

    def __post_init__(self) -> None:
        cu.check_positive_int(self.input_dim, "input_dim")
        cu.check_positive_int(self.projection_norm_steps, "projection_norm_steps")
        cu.check_positive_int(self.groups, "groups")
        if not isinstance(self.engine, (LadderConfig, RLadderConfig)):
            raise ValueError(f"engine: expected a LadderConfig or RLadderConfig, "
                             f"got {type(self.engine).__name__}")
        if self.projection_dim is None:
            self.projection_dim = self.engine.input_dim
        cu.check_positive_int(self.projection_dim, "projection_dim")
        cu.check_choice(self.likelihood, LIKELIHOODS, "likelihood")
        cu.check_nonnegative_int(self.num_classes, "num_classes")
        cu.check_choice(self.projection_norm, NORM_KINDS, "projection_norm")
        cu.check_choice(self.mask_skip, MASK_SKIPS, "mask_skip")
        cu.check_nonnegative_int(self.z_rank, "z_rank")
        self.init_logit_std = _finite(self.init_logit_std, "init_logit_std")
        if self.init_logit_std <= 0:
            raise ValueError(f"init_logit_std: expected a float > 0, got {self.init_logit_std!r}")
        self.noise_var = cu.check_nonnegative_float(self.noise_var, "noise_var")
        self.init_mean = _finite(self.init_mean, "init_mean")
        self.min_variance = cu.check_nonnegative_float(self.min_variance, "min_variance")
        if self.min_variance <= 0:
            raise ValueError(f"min_variance: expected a float > 0, got {self.min_variance!r}")
        self.init_variance = _finite(self.init_variance, "init_variance")
        if self.init_variance <= self.min_variance:
            raise ValueError(f"init_variance: expected a float > min_variance "
                             f"({self.min_variance}), got {self.init_variance!r}")
        if self.likelihood == "bernoulli":
            if not 0.0 < self.noise_var < 0.5:
                raise ValueError(f"noise_var: bernoulli flip probability must be in (0, 0.5), "
                                 f"got {self.noise_var!r}")
            if not 0.0 <= self.init_mean <= 1.0:
                raise ValueError(f"init_mean: bernoulli mean must be in [0, 1], "
                                 f"got {self.init_mean!r}")
        self.engine = replace(self.engine, input_dim=self.projection_dim,
                              num_classes=self.num_classes + 1 if self.num_classes else 0)

    @property
    def recurrent(self) -> bool:
        """``True`` for an RTagger (RLadder inside)."""
        return isinstance(self.engine, RLadderConfig)


@dataclass(kw_only=True)
class TagIteration(IterationOutput):
    """One TAG iteration. ``z``, ``mask``, ``mask_logits``: ``(B, K, N)`` (``z``: sigmoid
    probabilities for bernoulli; ``mask`` sums to 1 over groups). ``class_probs`` /
    ``class_log_probs``: ``(B, C)`` or ``None``. ``delta_z``, ``mask_likelihood``: ``(B, K, N)``
    the TAG inputs that produced this iteration. ``engine``: the inner engine's raw output
    (groups folded into the batch, ``(B·K, ...)``)."""

    z: torch.Tensor
    mask: torch.Tensor
    mask_logits: torch.Tensor
    delta_z: torch.Tensor
    mask_likelihood: torch.Tensor
    class_probs: Optional[torch.Tensor] = None
    class_log_probs: Optional[torch.Tensor] = None
    engine: Optional[IterationOutput] = None


@dataclass(kw_only=True)
class TagOutput(EngineOutput):
    """All iterations (:class:`TagIteration`), ``aux_cost`` (0), the ``likelihood`` and the
    learned variance ``v`` used by the gaussian cost (``None`` for bernoulli)."""

    likelihood: str = "gaussian"
    variance: Optional[torch.Tensor] = None


class Tag(InferenceEngine):
    """TAG around a Ladder (Tagger) or an RLadder (RTagger), SPEC §3.3.

    ``forward(x_noisy (B, N), iterations=T, x_clean=None, *, groups=None, generator=None)``
    returns a :class:`TagOutput` with ``T`` iterations. :meth:`init_estimates`,
    :meth:`init_carry` and :meth:`step` expose one iteration at a time.
    """

    max_iterations = None

    def __init__(self, config: TagConfig) -> None:
        super().__init__()
        self.config = config
        self.input_dim = config.input_dim
        self.num_classes = config.num_classes
        N, P = config.input_dim, config.projection_dim
        self.engine = build_inner_engine(config.engine)
        self.projection = nn.Linear((5 if config.x_input else 4) * N, P)
        self.projection_norm = make_norm(config.projection_norm, P, steps=config.projection_norm_steps)
        self.z_head = (nn.Linear(P, N) if not config.z_rank else
                       nn.Sequential(nn.Linear(P, config.z_rank, bias=False), nn.Linear(config.z_rank, N)))
        self.mask_head = nn.Linear(P, N)
        if config.likelihood == "gaussian":
            y = config.init_variance - config.min_variance
            self.variance_raw = nn.Parameter(torch.tensor(y + math.log(-math.expm1(-y))))
        else:
            self.register_parameter("variance_raw", None)

    @property
    def recurrent(self) -> bool:
        return self.config.recurrent

    @property
    def variance(self) -> Optional[torch.Tensor]:
        """The learned ``v = softplus(ρ) + min_variance`` (gaussian) or ``None``."""
        if self.variance_raw is None:
            return None
        return nn.functional.softplus(self.variance_raw) + self.config.min_variance

    def init_estimates(self, batch: int, groups: int, device: torch.device, dtype: torch.dtype,
                       generator: Optional[torch.Generator] = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, mask_logits)``, ``(B, K, N)``: ``z = init_mean``, logits ``~ N(0, 1)``."""
        gdev = generator.device if generator is not None else device
        logits = torch.randn(batch, groups, self.input_dim, generator=generator,
                             device=gdev, dtype=dtype).to(device)
        if self.config.init_logit_std != 1.0:
            logits = logits * self.config.init_logit_std
        z = torch.full((batch, groups, self.input_dim), self.config.init_mean,
                       device=device, dtype=dtype)
        return z, logits

    def init_carry(self, batch: int, groups: int, device: torch.device,
                   dtype: torch.dtype) -> Any:
        """RTagger: the RLadder's zero carry for ``B·K`` rows; Tagger: ``None``."""
        if not self.recurrent:
            return None
        return self.engine.init_carry(batch * groups, device, dtype)

    def tag_inputs(self, x_noisy: torch.Tensor, z: torch.Tensor,
                   mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(δz, L(m))``, ``(B, K, N)``, from the corrupted input only (SPEC §2.3)."""
        if self.config.likelihood == "gaussian":
            lam = self.config.noise_var + self.variance
            m = mask.clamp_min(torch.finfo(mask.dtype).tiny)  # log m finite
            return mean_gradient(x_noisy, z, m, lam), mask_likelihood(x_noisy, z, lam)
        beta = self.config.noise_var
        return (binary_mean_gradient(x_noisy, z, mask, beta),
                binary_mask_likelihood(x_noisy, z, beta))

    def pixel_log_likelihood(self, x_noisy: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x̃_i | z_ik)`` ``(B, K, N)`` under the corruption model: gaussian
        ``N(x̃_i; z_ik, λ)``, bernoulli ``ξ_ik^x̃_i (1 − ξ_ik)^(1 − x̃_i)`` with
        ``ξ = z(1 − 2β) + β`` (SPEC §2.3)."""
        x = x_noisy.unsqueeze(1)
        if self.config.likelihood == "gaussian":
            return gaussian_log_density(x, z, self.config.noise_var + self.variance)
        xi = flipped_probs(z, self.config.noise_var)
        return x * torch.log(xi) + (1.0 - x) * torch.log1p(-xi)

    def step(self, x_noisy: torch.Tensor, z: torch.Tensor, mask: torch.Tensor,
             carry: Any = None, iteration: int = 0) -> tuple[TagIteration, Any]:
        """One iteration from estimates ``z``, ``mask`` ``(B, K, N)``. RTagger: ``carry``
        from the previous step (``None``: a fresh zero carry); Tagger: ignored (``None``).
        ``iteration`` (0-based) picks the projection's per-iteration BatchNorm statistics
        (``projection_norm_steps``); nothing else depends on it."""
        B, K, N = z.shape
        delta_z, lik = self.tag_inputs(x_noisy, z, mask)
        parts = [z, mask, delta_z, lik]
        if self.config.x_input:
            parts.append(x_noisy.unsqueeze(1).expand(B, K, N))
        inputs = torch.cat(parts, dim=-1).reshape(B * K, len(parts) * N)
        h = torch.relu(apply_norm(self.projection_norm, self.projection(inputs), iteration))
        if self.recurrent:
            if carry is None:
                carry = self.init_carry(B, K, h.device, h.dtype)
            eng, carry = self.engine.step(h, carry)
        else:
            eng, carry = self.engine(h, iterations=1).last, None
        z_new = self.z_head(eng.denoised).reshape(B, K, N)
        if self.config.likelihood == "bernoulli":
            z_new = torch.sigmoid(z_new + torch.logit(z, eps=1e-6) if self.config.z_skip else z_new)
        elif self.config.z_skip:
            z_new = z + z_new
        logits = self.mask_head(eng.denoised).reshape(B, K, N)
        if self.config.mask_skip == "input":
            logits = logits + torch.log(lik.clamp_min(torch.finfo(lik.dtype).tiny))
        elif self.config.mask_skip == "output":
            logits = logits + self.pixel_log_likelihood(x_noisy, z_new)
        mask_new = torch.softmax(logits, dim=1)
        log_p = probs = None
        if self.num_classes > 0:
            log_p = group_class_log_probs(eng.class_logits.reshape(B, K, -1))
            probs = log_p.exp()
        out = TagIteration(denoised=(mask_new * z_new).sum(1), class_logits=log_p, levels=[],
                           z=z_new, mask=mask_new, mask_logits=logits, delta_z=delta_z,
                           mask_likelihood=lik, class_probs=probs, class_log_probs=log_p,
                           engine=eng)
        return out, carry

    def forward(self, x_noisy: torch.Tensor, iterations: int = 1,
                x_clean: Optional[torch.Tensor] = None, *, groups: Optional[int] = None,
                generator: Optional[torch.Generator] = None) -> TagOutput:
        """``T = iterations`` TAG iterations with ``K = groups`` (default ``config.groups``)."""
        self._check_inputs(x_noisy, iterations, x_clean)
        K = self.config.groups if groups is None else cu.check_positive_int(groups, "groups")
        if self.config.likelihood == "bernoulli" and not ((x_noisy == 0) | (x_noisy == 1)).all():
            raise ValueError("x_noisy: bernoulli TAG expects binary (0/1) inputs")
        B = x_noisy.shape[0]
        z, logits = self.init_estimates(B, K, x_noisy.device, x_noisy.dtype, generator)
        mask = torch.softmax(logits, dim=1)
        carry = self.init_carry(B, K, x_noisy.device, x_noisy.dtype)
        outs = []
        for t in range(iterations):
            it, carry = self.step(x_noisy, z, mask, carry, iteration=t)
            outs.append(it)
            z, mask = it.z, it.mask
        return TagOutput(iterations=outs, aux_cost=x_noisy.new_zeros(()),
                         likelihood=self.config.likelihood, variance=self.variance)

    def cost(self, output: TagOutput, x_clean: torch.Tensor) -> TagCost:
        """:func:`~learned_inference.tag_costs.tag_cost` (SPEC §3.3)."""
        return tag_cost(output, x_clean)


class Tagger(Tag):
    """TAG + Ladder: one Ladder pass per iteration, no memory between iterations."""

    def __init__(self, config: TagConfig) -> None:
        if not isinstance(config.engine, LadderConfig):
            raise ValueError("engine: Tagger needs a LadderConfig")
        super().__init__(config)


class RTagger(Tag):
    """TAG + RLadder: one ``RLadder.step`` (:class:`~learned_inference.base.SequenceEngine`)
    per iteration, the carry persists."""

    def __init__(self, config: TagConfig) -> None:
        if not isinstance(config.engine, RLadderConfig):
            raise ValueError("engine: RTagger needs an RLadderConfig")
        super().__init__(config)

"""The engine interfaces every learned inference engine implements.

Two interfaces, one per way of running an engine:

* :class:`InferenceEngine` (static input): ``forward(x_noisy, iterations, x_clean=None)``
  maps a corrupted observation ``x_noisy`` ``(batch, input_dim)`` to ``iterations``
  per-iteration outputs (:class:`EngineOutput` of :class:`IterationOutput` s). A one-pass
  engine (the Ladder) returns a single iteration whatever is asked
  (:attr:`InferenceEngine.max_iterations`).
* :class:`SequenceEngine` (one step at a time): ``init_carry(batch, device, dtype)`` and
  ``step(x_t, carry) -> (StepOutput, carry)``; SPEC §3.2's iteration ``t`` is "an inference
  iteration on a static input, or a time step", and both are a ``step``. The recurrent
  engines implement it: the RLadder (also inside the RTagger, one step per TAG iteration),
  the temporal RLadder and the convolutional RLadder (one step per frame). Their
  ``forward`` over a sequence is the loop of ``step`` over its frames.

Every per-step output is a :class:`StepOutput` (low-level read-out, top read-out,
per-level activations): :class:`IterationOutput` for the static engines' iterations,
:class:`FrameOutput` for a frame of a video engine.

The comparison harness (``pgm_ladder.harness``) depends only on this module. The TAG
costs read TAG outputs through the protocols :class:`GroupingIteration` and
:class:`GroupingOutput`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

import torch
from torch import nn


class ShapeError(ValueError):
    """A tensor at a module boundary does not have the documented shape."""


def check_shape(tensor: torch.Tensor, shape: tuple, name: str) -> None:
    """Raise :class:`ShapeError` unless ``tensor`` has ``shape``.

    ``shape`` entries may be ``None`` (any size) or an int; the message names the
    tensor and the expected layout, e.g. ``x_noisy: expected (batch, 64), got (8, 32)``.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    ok = tensor.dim() == len(shape) and all(
        s is None or s == t for s, t in zip(shape, tensor.shape)
    )
    if not ok:
        want = ", ".join("batch" if (i == 0 and s is None) else ("*" if s is None else str(s))
                         for i, s in enumerate(shape))
        raise ShapeError(f"{name}: expected shape ({want}), got {tuple(tensor.shape)}")


def check_dtype(tensor: torch.Tensor, module: nn.Module, name: str) -> None:
    """Raise :class:`TypeError` unless ``tensor`` has the dtype of ``module``'s parameters,
    naming both and the cast that fixes it (the explicit models sample float64; the
    engines are float32 unless converted with ``.double()``)."""
    param = next(module.parameters(), None)
    if param is not None and tensor.dtype != param.dtype:
        cast = {torch.float32: ".float()", torch.float64: ".double()"}.get(param.dtype, f".to({param.dtype})")
        raise TypeError(f"{name}: dtype {tensor.dtype} but the engine's parameters are {param.dtype}; "
                        f"pass {name}{cast} (or convert the engine, e.g. engine.double())")


# --------------------------------------------------------------------------- outputs
class StepOutput(abc.ABC):
    """What an engine emits after one step (one iteration or one frame), SPEC §3.2's two
    task read-outs and the per-level activations. Each engine's per-step dataclass
    subclasses it; these three attributes are common to all:

    Attributes:
        readout: the low-level task read-out from the bottom of the decoder: the denoised
            estimate of the (static) input for :class:`IterationOutput`, the prediction of
            the next frame for :class:`FrameOutput`; ``None`` for an engine without one.
        class_logits: the high-level task read-out from the top ``(batch, classes)`` (a
            class head, or a regression head used the same way), or ``None``.
        levels: per-level activations, bottom to top (decoder outputs ``d_0..d_L``; the
            encoder outputs for an engine without a decoder).
    """

    class_logits: Optional[torch.Tensor]
    levels: list

    @property
    @abc.abstractmethod
    def readout(self) -> Optional[torch.Tensor]:
        """The low-level task read-out (see the class docstring)."""


@dataclass
class IterationOutput(StepOutput):
    """What an engine emits after one inference iteration on a static input.

    Attributes:
        denoised: ``(batch, input_dim)`` the low-level task read-out (bottom decoder):
            the engine's estimate of the clean input ``E[s_0 | x_noisy]`` (= ``readout``).
        class_logits: ``(batch, num_classes)`` the high-level task read-out (top), or
            ``None`` for an engine without a classification head.
        levels: per-level activations ``[(batch, h_0), ..., (batch, h_L)]`` used by the
            latent probes; ``levels[l]`` is matched to model level ``l``.
    """

    denoised: torch.Tensor
    class_logits: Optional[torch.Tensor]
    levels: list[torch.Tensor] = field(default_factory=list)

    @property
    def readout(self) -> torch.Tensor:
        return self.denoised


@dataclass
class FrameOutput(StepOutput):
    """What a video engine emits after frame ``t``.

    Attributes:
        prediction: the prediction ``x̂_t+1`` of the next frame, shaped like a frame
            (= ``readout``), or ``None`` for an engine without a prediction.
        class_logits: the top read-out ``(batch, classes)`` after frame ``t``, or ``None``.
        levels: per-level activations after frame ``t``, bottom to top.
        bottom: the bottom decoder output ``d_0,t`` the prediction is read from, or
            ``None`` without a decoder.
    """

    prediction: Optional[torch.Tensor]
    class_logits: Optional[torch.Tensor]
    levels: list = field(default_factory=list)
    bottom: Optional[torch.Tensor] = None

    @property
    def readout(self) -> Optional[torch.Tensor]:
        return self.prediction


@dataclass
class EngineOutput:
    """All iterations of one forward pass, plus any auxiliary training cost.

    ``aux_cost`` is a scalar added to the task costs by the trainer (e.g. the Ladder's
    per-layer denoising costs, SPEC §3.1); zero for engines without one.
    """

    iterations: list[IterationOutput]
    aux_cost: torch.Tensor

    @property
    def last(self) -> IterationOutput:
        return self.iterations[-1]


class GroupingIteration(Protocol):
    """What the TAG costs (:mod:`learned_inference.tag_costs`) read from one TAG iteration:
    ``z``, ``mask``, ``mask_logits`` ``(B, K, N)`` and ``class_log_probs`` ``(B, C)`` or
    ``None``."""

    z: torch.Tensor
    mask: torch.Tensor
    mask_logits: torch.Tensor
    class_log_probs: Optional[torch.Tensor]


class GroupingOutput(Protocol):
    """What the TAG costs read from a TAG forward pass: its iterations, the likelihood
    (``"gaussian"`` | ``"bernoulli"``) and the learned variance ``v`` (gaussian) or ``None``."""

    @property
    def iterations(self) -> Sequence[GroupingIteration]: ...

    @property
    def last(self) -> GroupingIteration: ...

    likelihood: str
    variance: Optional[torch.Tensor]


# --------------------------------------------------------------------------- engines
class InferenceEngine(nn.Module, abc.ABC):
    """Static input: ``forward(x_noisy, iterations, x_clean=None) -> EngineOutput``.

    ``x_clean`` is given only in training and only to engines that need it for an
    auxiliary cost (the Ladder's clean encoder path); engines must never use it to
    form their outputs.
    """

    #: input width ``n_0``
    input_dim: int
    #: number of classes of the top head (0: no head)
    num_classes: int
    #: ``None`` for an iterative engine; ``1`` for a one-pass engine
    max_iterations: Optional[int] = None

    @abc.abstractmethod
    def forward(self, x_noisy: torch.Tensor, iterations: int = 1,
                x_clean: Optional[torch.Tensor] = None) -> EngineOutput:
        raise NotImplementedError

    def _check_inputs(self, x_noisy: torch.Tensor, iterations: int,
                      x_clean: Optional[torch.Tensor]) -> None:
        check_shape(x_noisy, (None, self.input_dim), "x_noisy")
        check_dtype(x_noisy, self, "x_noisy")
        if x_clean is not None:
            check_shape(x_clean, tuple(x_noisy.shape), "x_clean")
            check_dtype(x_clean, self, "x_clean")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive int, got {iterations!r}")
        if not torch.isfinite(x_noisy).all():
            raise ValueError("x_noisy contains NaN or infinite values")


class SequenceEngine(abc.ABC):
    """One step at a time, the carry passed from step to step::

        carry = engine.init_carry(batch, device, dtype)     # before step 1: zeros
        for t in steps:
            out, carry = engine.step(x_t, carry)            # out: a StepOutput

    ``x_t`` is step ``t``'s input, batch first; ``carry`` is whatever persists between
    steps (encoder states, the last decoder outputs, the step count), opaque to callers
    (the RLadders': :class:`~learned_inference.rladder.RLadderCarry`). An engine's
    ``forward`` over a sequence equals ``step`` run over its frames in order (it is that
    loop). Engine-specific per-step side inputs are keyword arguments of ``step`` with
    defaults (the temporal RLadder's ``visibility``), so ``step(x_t, carry)`` always works.

    Implementations (a mixin beside ``nn.Module`` / :class:`InferenceEngine`):

    * :class:`~learned_inference.rladder.RLadder`: ``x_t`` ``(B, input_dim)`` (a static
      input re-presented every iteration, or the RTagger's projected TAG inputs of
      iteration ``t`` with the groups in the batch) -> :class:`IterationOutput`.
    * :class:`~learned_inference.temporal.TemporalRLadder`: ``x_t`` a frame ``(B, n_0)``
      (keyword ``visibility``) -> :class:`FrameOutput`.
    * :class:`~learned_inference.conv_rladder.ConvRLadder`: ``x_t`` a frame
      ``(B, C, S, S)`` -> :class:`FrameOutput`.
    """

    @abc.abstractmethod
    def init_carry(self, batch: int, device: torch.device, dtype: torch.dtype) -> Any:
        """The carry before the first step (zero states, zero decoder outputs)."""

    @abc.abstractmethod
    def step(self, x_t: torch.Tensor, carry: Any) -> tuple[StepOutput, Any]:
        """One step on ``x_t``: ``(output, new carry)``."""

"""The ``static`` experiment: a Ladder or RLadder trained on fresh samples of the embedded
static Gaussian hierarchy (SPEC §2.1, §3.1–3.2), with the shared trainer.

The two embedded models (``task.explicit_model``):

* ``classes`` — widths 64-32-16, a 10-class mixture top, corruption strong enough that
  classes overlap (Bayes error ≈ 10 %), so the optimal denoiser
  ``E[s_0|x̃] = Σ_c p(c|x̃) E[s_0|x̃,c]`` is clearly non-linear;
* ``linear`` — the same widths with a Gaussian top: the posterior mean is affine in x̃
  and the Wiener filter is Bayes-optimal.

Their parameters are drawn once by :meth:`StaticGaussianHierarchy.random` with the fixed
seeds below (ours), independent of the run seed: every run and every engine is scored on
the same explicit model.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from explicit_models.static_hierarchy import StaticGaussianHierarchy
from learned_inference import LadderConfig, RLadderConfig, build_engine
from pgm_ladder import harness
from pgm_ladder.training.batches import SampledStream
from pgm_ladder.embedded import EmbeddedModels, check_model_file_fields
from pgm_ladder.training.iteration_costs import COST_WEIGHTINGS, iteration_weights
from pgm_ladder.training.config import ExperimentConfig, OptimConfig, cosine_schedule
from pgm_ladder.training.spec import Parts

#: the embedded default models: ``StaticGaussianHierarchy.random`` arguments (ours)
#: (every argument pinned, so a change of ``random``'s defaults cannot change them)
_SHARED = dict(widths=[64, 32, 16], seed=2017, noise_std=1.5, weight_scale=1.0, bias_scale=0.1,
               std_range=(0.1, 0.3), top_std=1.0, random_class_probs=False, diagonal_links=False)
EMBEDDED_MODELS = EmbeddedModels(StaticGaussianHierarchy.random, {
    "classes": dict(_SHARED, num_classes=10, class_separation=0.85, class_std=0.5),
    "linear": dict(_SHARED, num_classes=None),
}, kind="static_gaussian_hierarchy")
#: the embedded explicit model by name (``"classes"`` or ``"linear"``), float64
embedded_model = EMBEDDED_MODELS.build
#: deprecated config keys and values (the class-mixture model was called "mixture", like
#: the Tagger mixture of ``check mixture``)
RENAMED = {"task.model=mixture": "task.explicit_model=classes", "task.model": "task.explicit_model"}


@dataclass
class StaticTask:
    """What is trained and how it is scored.

    ``iterations`` inference iterations are run (the Ladder is one-pass and runs one);
    the training cost is, summed over iterations, ``denoise_weight ·`` per-unit MSE of the
    bottom read-out against the clean ``x`` plus ``class_weight ·`` cross-entropy of the
    top read-out against the sampled class (SPEC §3.2), plus the engine's auxiliary cost.
    ``cost_weighting`` weights the iterations in that sum (ours,
    :mod:`pgm_ladder.training.iteration_costs`; the weights are scaled to sum to
    ``iterations``, so ``uniform`` is the papers' plain sum). ``class_cost_weighting``
    (ours) weights the cross-entropy's iterations on their own (``same``: as
    ``cost_weighting``), e.g. ``last`` trains the class read-out on the final iteration only.
    ``iterations_jitter`` (ours): each training batch runs ``iterations + j`` iterations,
    ``j`` uniform in ``0..iterations_jitter`` (drawn from torch's global generator, which
    checkpoints save), so the engine is trained past the horizon it is scored at.
    ``input_dim`` and ``num_classes`` of the engine configs are set from the model.
    ``model_file`` (with its ``model_file_sha256``) replaces the embedded ``explicit_model``
    by a parameter file (:mod:`explicit_models.model_files`, ``--model-file``).
    """

    explicit_model: Literal["classes", "linear"] = "classes"
    model_file: str = ""
    model_file_sha256: str = ""
    engine: Literal["ladder", "rladder"] = "rladder"
    iterations: int = 4
    denoise_weight: float = 1.0
    class_weight: float = 1.0
    cost_weighting: Literal["uniform", "increasing", "last"] = "uniform"
    class_cost_weighting: Literal["same", "uniform", "increasing", "last"] = "same"
    iterations_jitter: int = 0
    eval_samples: int = 10000
    eval_seed: int = 20171204

    def __post_init__(self) -> None:
        check_model_file_fields(self)
        for name in ("iterations", "eval_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"task.{name}: must be >= 1, got {getattr(self, name)}")
        if not isinstance(self.iterations_jitter, int) or self.iterations_jitter < 0:
            raise ValueError(f"task.iterations_jitter: must be an int >= 0, got {self.iterations_jitter!r}")
        for name in ("denoise_weight", "class_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"task.{name}: must be >= 0, got {getattr(self, name)}")
        if self.cost_weighting not in COST_WEIGHTINGS:
            raise ValueError(f"task.cost_weighting: expected one of {COST_WEIGHTINGS}, "
                             f"got {self.cost_weighting!r}")
        if self.class_cost_weighting != "same" and self.class_cost_weighting not in COST_WEIGHTINGS:
            raise ValueError(f"task.class_cost_weighting: expected 'same' or one of {COST_WEIGHTINGS}, "
                             f"got {self.class_cost_weighting!r}")


def _ladder_default() -> LadderConfig:
    return LadderConfig(input_dim=64, hidden_dims=(128, 64), num_classes=10)


def _rladder_default() -> RLadderConfig:
    return RLadderConfig(input_dim=64, hidden_dims=(128, 64), num_classes=10, decoder_norm="layer")


@dataclass
class StaticConfig(ExperimentConfig):
    task: StaticTask = field(default_factory=StaticTask)
    ladder: LadderConfig = field(default_factory=_ladder_default)
    rladder: RLadderConfig = field(default_factory=_rladder_default)


def engine_config(config: StaticConfig, model: StaticGaussianHierarchy):
    """The chosen engine's config with ``input_dim``/``num_classes`` taken from ``model``."""
    chosen = config.ladder if config.task.engine == "ladder" else config.rladder
    return dataclasses.replace(chosen, input_dim=model.widths[0], num_classes=model.num_classes)


def _weighted_sum(weighting: str):
    """``costs -> Σ_t T·w_t·costs_t`` (``uniform``: the plain sum, kept bit-identical)."""
    if weighting == "uniform":
        return lambda costs: costs.sum()
    return lambda costs: (iteration_weights(len(costs), weighting).to(costs) * costs).sum() * len(costs)


def task_losses(engine, batch, task: StaticTask) -> dict:
    """The summed-over-iterations task costs of one batch (see :class:`StaticTask`)."""
    x_noisy, x_clean, classes = batch
    iterations = task.iterations
    if task.iterations_jitter:
        iterations += int(torch.randint(task.iterations_jitter + 1, ()))
    out = engine(x_noisy, iterations=iterations, x_clean=x_clean)
    mse = torch.stack([F.mse_loss(it.denoised, x_clean) for it in out.iterations])
    weighted = _weighted_sum(task.cost_weighting)
    loss = task.denoise_weight * weighted(mse) + out.aux_cost
    values = {"mse_last": mse[-1].detach()}
    if classes is not None and out.last.class_logits is not None:
        ce = torch.stack([F.cross_entropy(it.class_logits, classes) for it in out.iterations])
        class_weighting = task.cost_weighting if task.class_cost_weighting == "same" else task.class_cost_weighting
        loss = loss + task.class_weight * _weighted_sum(class_weighting)(ce)
        values["ce_last"] = ce[-1].detach()
    if torch.is_tensor(out.aux_cost) and out.aux_cost.requires_grad:
        values["aux_cost"] = out.aux_cost.detach()
    return {"loss": loss, **values}


def final_metrics(curves: harness.Curves) -> dict:
    """Flatten per-iteration curves into ``{metric/iterT: value}`` scalars."""
    flat = {}
    for name, values in curves.as_dict().items():
        if name == "probe_r2":
            for level, r2 in enumerate(values[-1]):
                flat[f"probe_r2/level{level}"] = r2
            continue
        for t, value in enumerate(values, start=1):
            flat[f"{name}/iter{t}"] = value
    return flat


def build(config: StaticConfig, device: torch.device, seed: int) -> Parts:
    model = EMBEDDED_MODELS.for_task(config.task)
    engine = build_engine(engine_config(config, model)).to(device)
    has_classes = model.has_mixture_top

    def sample_batch(generator: torch.Generator, n: int):
        s = model.sample(n, generator=generator)
        classes = s.classes if has_classes else None
        return s.x_noisy.float(), s.x.float(), classes

    eval_cache = {}

    def evaluate(net) -> dict:
        if "data" not in eval_cache:
            eval_cache["data"] = harness.posterior_eval_set(model, config.task.eval_samples,
                                                       config.task.eval_seed)
        curves = harness.score_engine(net, eval_cache["data"], config.task.iterations, device)
        return final_metrics(curves)

    return Parts(
        model=engine,
        train_batches=SampledStream(sample_batch, config.train.batch_size, seed),
        loss=lambda net, batch: task_losses(net, batch, config.task),
        evaluate=evaluate,
    )


def _preset(steps: int, batch_size: int, eval_samples: int, hidden=(128, 64), lr=1e-3,
            iterations: int = 4, decoder_norm: str = "layer") -> StaticConfig:
    """The RLadder's decoder cells use LayerNorm (ours; docs/results/check-static.md, issue 15:
    BatchNorm running statistics shared by all iterations made the MSE ratio rise after the
    second iteration and past the trained horizon). The smoke preset keeps BatchNorm so that
    its golden numbers (tests/golden/check-static-smoke.json) still pin the code."""
    return StaticConfig(
        train=cosine_schedule(steps, batch_size),
        optim=OptimConfig(lr=lr),
        task=StaticTask(iterations=iterations, eval_samples=eval_samples),
        ladder=LadderConfig(input_dim=64, hidden_dims=hidden, num_classes=10),
        rladder=RLadderConfig(input_dim=64, hidden_dims=hidden, num_classes=10, decoder_norm=decoder_norm),
    )


PRESETS = {
    "smoke": lambda: _preset(steps=20, batch_size=64, eval_samples=512, hidden=(32, 16),
                             iterations=2, decoder_norm="batch"),
    "cpu": lambda: _preset(steps=4000, batch_size=256, eval_samples=10000, lr=1e-2),
    # the cpu preset trained twice as long (issue 15's targets; docs/results/check-static.md)
    "long": lambda: _preset(steps=8000, batch_size=256, eval_samples=10000, lr=1e-2),
    "paper": lambda: _preset(steps=50000, batch_size=512, eval_samples=50000, hidden=(256, 128)),
}

"""The ``mixture`` experiment: Tagger and RTagger trained on fresh samples of the embedded
Tagger mixture (SPEC §2.3, §3.3) with the shared trainer, scored by grouping AMI (SPEC §4).

The embedded model (``task.explicit_model = "default"``, ours): 12×12 images, ``K = 3`` groups
whose appearances ``μ_k = B h_k`` are random stripe textures (the lowest 2-D sinusoid,
``d = 2``: a random amplitude and phase per group, per-pixel prior std 3,
:meth:`TaggerMixture.textures`), every pixel assigned to a group at random (``ρ``
uniform), group std ``σ_k = 0.1`` and Gaussian corruption ``σ = 0.3``. The three textures overlap in intensity, so a
pixel's value alone does not tell its group: grouping needs the appearances, which are
themselves inferred from the grouping — the chicken-and-egg problem that iterative
inference (VB, TAG) solves. The model is the same for every run and engine
(docs/results/check-mixture.md records why one frequency, ``d = 2``, and not two).

Task (SPEC §3.3): TAG's denoising cost ``−log Σ_k m_k N(x; z_k, v)`` against the *clean*
``x``, averaged over iterations; engines see only ``x̃``.

Engines (every preset): TAG with the grouping levers that made it group
(docs/results/grouping-levers.md; ours, the papers are silent on them): the likelihood skip
into the masks (``tag.mask_skip = "output"``), ``x̃`` as a fifth input (``tag.x_input``),
per-iteration BatchNorm statistics in the projection (``tag.projection_norm_steps``) and, in
the RTagger, the Ladder's combinator as the RLadder's decoder cell with per-iteration
statistics (``rladder.decoder_cell = "ladder"``, ``rladder.norm_steps``). :data:`PAPERS_TAG`
is the list of overrides that gives the papers' TAG instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from explicit_models.tagger_mixture import TaggerMixture
from learned_inference import LadderConfig, RLadderConfig
from learned_inference.tag import Tag, TagConfig
from pgm_ladder import grouping
from pgm_ladder.embedded import EmbeddedModels, check_model_file_fields
from pgm_ladder.grouping import TagSettings
from pgm_ladder.harness import grouping as harness
from pgm_ladder.training.batches import SampledStream
from pgm_ladder.training.config import ExperimentConfig, OptimConfig, cosine_schedule
from pgm_ladder.training.spec import Parts

#: the embedded default model: ``TaggerMixture.textures`` arguments (ours, every one pinned)
EMBEDDED_MODELS = EmbeddedModels(TaggerMixture.textures, {
    "default": dict(height=12, width=12, groups=3, num_freqs=1, amplitude=3.0, group_std=0.1,
                    noise_std=0.3, offset_spread=0.0)}, kind="tagger_mixture")
#: the embedded explicit model by name, float64
embedded_model = EMBEDDED_MODELS.build
#: deprecated config keys
RENAMED = {"task.model": "task.explicit_model"}
#: iterations in training (every preset); the per-iteration statistics cover them
TRAINED_ITERATIONS = 4
ENGINES = ("tagger", "rtagger")


@dataclass
class MixtureTask:
    """What is trained and how it is scored. ``iterations`` TAG iterations in training
    (and evaluation); ``eval_iterations`` runs the trained engine longer in evaluation
    (0: ``iterations``); ``eval_samples`` fresh images drawn with ``eval_seed`` (the masks' random
    initialisation too). For ``check mixture``: VB runs ``vb_max_iters`` iterations at most
    to convergence; the NUTS gold standard runs on the first ``gold_images`` of the eval
    images with ``gold_warmup`` + ``gold_samples`` draws. ``model_file`` (with its
    ``model_file_sha256``) replaces the embedded ``explicit_model`` by a parameter file
    (:mod:`explicit_models.model_files`, ``--model-file``)."""

    explicit_model: Literal["default"] = "default"
    model_file: str = ""
    model_file_sha256: str = ""
    engine: Literal["tagger", "rtagger"] = "rtagger"
    iterations: int = TRAINED_ITERATIONS
    eval_iterations: int = 0
    eval_samples: int = 500
    eval_seed: int = 20161205
    vb_max_iters: int = 500
    gold_images: int = 100
    gold_warmup: int = 200
    gold_samples: int = 200

    def __post_init__(self) -> None:
        check_model_file_fields(self)

    @property
    def scored_iterations(self) -> int:
        """The iterations run in evaluation (``eval_iterations`` or ``iterations``)."""
        return max(self.iterations, self.eval_iterations)


#: the RLadder of the RTagger: the Ladder's combinator (SPEC §3.1) as its decoder cell, and
#: per-iteration BatchNorm statistics for the trained iterations (ours, module doc)
RTAGGER_RLADDER = dict(decoder_cell="ladder", combinator_sigmoid_v=True, norm_steps=TRAINED_ITERATIONS)

#: the ``--set`` overrides that switch the levers of the module doc off: the papers' TAG
PAPERS_TAG: tuple[str, ...] = ("tag.mask_skip=none", "tag.x_input=false", "tag.projection_norm_steps=1",
                               "rladder.decoder_cell=g1", "rladder.combinator_sigmoid_v=false",
                               "rladder.norm_steps=1")


def _tag_default(projection: int = 256) -> TagSettings:
    return TagSettings(projection_dim=projection, mask_skip="output", x_input=True,
                       projection_norm_steps=TRAINED_ITERATIONS)


def _ladder_default() -> LadderConfig:
    return LadderConfig(input_dim=256, hidden_dims=(128, 64), combinator_sigmoid_v=True)


def _rladder_default() -> RLadderConfig:
    return RLadderConfig(input_dim=256, hidden_dims=(128, 64), **RTAGGER_RLADDER)


@dataclass
class MixtureConfig(ExperimentConfig):
    task: MixtureTask = field(default_factory=MixtureTask)
    tag: TagSettings = field(default_factory=_tag_default)
    ladder: LadderConfig = field(default_factory=_ladder_default)
    rladder: RLadderConfig = field(default_factory=_rladder_default)


def tag_config(config: MixtureConfig, model: TaggerMixture) -> TagConfig:
    """The TAG config of the chosen engine, sized from ``model``."""
    inner = config.ladder if config.task.engine == "tagger" else config.rladder
    return grouping.tag_config(config.tag, inner, pixels=model.num_pixels,
                               noise_var=float(model.noise_std) ** 2, groups=model.num_groups)


def eval_set(model: TaggerMixture, task: MixtureTask) -> harness.GroupingEvalSet:
    """The task's evaluation images (``eval_samples`` drawn with ``eval_seed``)."""
    return harness.grouping_eval_set(model, task.eval_samples, task.eval_seed)


def task_losses(net, batch, config: MixtureConfig) -> dict:
    """TAG's cost over iterations (nats per pixel), SPEC §3.3, weighted as ``tag.cost_weighting``."""
    x_noisy, x_clean = batch
    return grouping.grouping_losses(net(x_noisy, iterations=config.task.iterations), x_clean,
                                    config.tag.cost_weighting)


def build(config: MixtureConfig, device: torch.device, seed: int) -> Parts:
    model = EMBEDDED_MODELS.for_task(config.task)
    net = Tag(tag_config(config, model)).to(device)

    def sample_batch(generator: torch.Generator, n: int):
        s = model.sample(n, generator=generator)
        return s.x_noisy.float(), s.x.float()

    cache = {}

    def evaluate(engine) -> dict:
        if "data" not in cache:
            cache["data"] = eval_set(model, config.task)
        scores, _ = harness.score_groupings(engine, cache["data"], config.task.scored_iterations, device)
        return {f"{name}/iter{t}": v for name, values in scores.items() for t, v in enumerate(values, 1)}

    return Parts(model=net, train_batches=SampledStream(sample_batch, config.train.batch_size, seed),
                 loss=lambda engine, batch: task_losses(engine, batch, config), evaluate=evaluate)


def _preset(steps: int, batch_size: int, eval_samples: int, projection: int, hidden, lr=1e-3,
            vb_max_iters: int = 500, gold=(100, 200, 200), eval_iterations: int = 8) -> MixtureConfig:
    return MixtureConfig(
        train=cosine_schedule(steps, batch_size),
        optim=OptimConfig(lr=lr),
        task=MixtureTask(iterations=TRAINED_ITERATIONS, eval_iterations=eval_iterations,
                         eval_samples=eval_samples,
                         vb_max_iters=vb_max_iters,
                         gold_images=gold[0], gold_warmup=gold[1], gold_samples=gold[2]),
        tag=_tag_default(projection),
        ladder=LadderConfig(input_dim=projection, hidden_dims=hidden, combinator_sigmoid_v=True),
        rladder=RLadderConfig(input_dim=projection, hidden_dims=hidden, **RTAGGER_RLADDER),
    )


PRESETS = {
    "smoke": lambda: _preset(steps=10, batch_size=16, eval_samples=32, projection=32, hidden=(32, 16),
                             vb_max_iters=20, gold=(4, 10, 10), eval_iterations=6),
    # lr 1e-3 (was 2e-3 until session 15: docs/results/grouping-levers.md, +0.01 AMI after 4 iterations)
    "cpu": lambda: _preset(steps=2500, batch_size=64, eval_samples=500, projection=256, hidden=(128, 64),
                           lr=1e-3),
    "paper": lambda: _preset(steps=50000, batch_size=128, eval_samples=2000, projection=256, hidden=(256, 128),
                             gold=(500, 500, 500)),
}

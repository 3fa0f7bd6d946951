"""The ``shapes`` experiment: Tagger (and RTagger) on the Shapes data set, the Tagger paper's
Table 1 (SPEC §3.3, §5, §6; Tagger §3, supplementary).

Data (``data`` section): 20×20 binary images with three shapes (``experiments.datasets.shapes``).
Training images are drawn with replacement from the ``train_split`` pool and corrupted by
bit flips with probability ``flip_prob`` (0.2, Tagger §3.1), drawn afresh for every batch
by the run's resumable :class:`SampledStream`. Evaluation uses the first ``eval_size``
images of ``eval_split``; their corruption and the masks' random initialisation are fixed by
``eval_seed`` (masks: ``eval_seed + 1``).

Model: TAG with the binary likelihood (``noise_var`` = the flip probability, ``z`` through a
sigmoid, init ``z = 0.26``, the Shapes data mean — Tagger supplementary) around a Ladder
(Tagger) or an RLadder (RTagger), ``task.engine``; the TAG levers are the ``tag`` section
(:class:`~pgm_ladder.grouping.TagSettings`), ``tag.projection_norm`` ``layer`` | ``batch``
selecting the paper's two variants (Table 1: LayerNorm starred). The inner Ladder keeps its
own BatchNorm in both variants (``learned_inference.ladder`` has no LayerNorm option): the
paper's LayerNorm variant may have changed it too — the paper does not say.

From the paper (Tagger §3.1, supplementary), cited: ``K = 4`` groups ("we used 4 groups for
training even though there are only 3 objects"), 3 iterations in training, 5 at test,
the cost averaged over iterations, Adam, batch size 100, 100 epochs. The AMI is computed
with the *uncorrupted* input ("Evaluations of the AMI score ... were performed using
uncorrupted input"), on the pixels covered by exactly one shape (largest true mask value
> 0.9: background and overlaps are not scored); the denoising cost (BCE of ``Σ_k m_k z_k``
against the clean image, nats per pixel) with the corrupted input.

Metrics per scored iteration ``t``: ``ami/iter{t}``, ``ari/iter{t}`` (clean input, the paper's
protocol), ``ami_corrupted/iter{t}``, ``ari_corrupted/iter{t}`` (the same masks' scores with
the corrupted input), ``cost/iter{t}`` and ``mse/iter{t}`` (corrupted input).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from experiments.datasets.shapes import SPLIT_SIZES, load_shapes, soft_masks
from learned_inference import LadderConfig, RLadderConfig
from learned_inference.tag import Tag, TagConfig
from pgm_ladder import grouping
from pgm_ladder.grouping import TagSettings
from pgm_ladder.harness import grouping as harness
from pgm_ladder.training.batches import SampledStream
from pgm_ladder.training.config import ExperimentConfig, OptimConfig, TrainConfig, cosine_schedule
from pgm_ladder.training.errors import ConfigError
from pgm_ladder.training.spec import Parts

ENGINES = ("tagger", "rtagger")
TRAIN_SPLITS = ("train", "train_full")
EVAL_SPLITS = ("valid", "test")

#: Tagger Table 1a (median over 20 seeds; Table 1b gives the AMI std after 5 iterations):
#: ``{projection_norm: {iteration: {"ami": (mean, std), "cost": (mean, std)}}}``
PAPER_TABLE1 = {
    "batch": {3: {"ami": (0.77, None), "cost": (0.063, None)},
              5: {"ami": (0.79, 0.034), "cost": (0.063, None)}},
    "layer": {3: {"ami": (0.95, None), "cost": (0.057, None)},
              5: {"ami": (0.97, 0.009), "cost": (0.054, None)}},
}


@dataclass
class ShapesData:
    """Where the images come from and how they are corrupted. ``train_size``/``eval_size``:
    the first images of the split (``train_size`` 0: the whole split); ``seed``: the data
    set's generation seed; ``flip_prob``: the bit-flip probability ``β`` (also TAG's
    ``noise_var``); ``eval_seed``: the eval images' corruption (masks: ``eval_seed + 1``)."""

    train_split: Literal["train", "train_full"] = "train"
    train_size: int = 0
    eval_split: Literal["valid", "test"] = "test"
    eval_size: int = 1000
    flip_prob: float = 0.2
    seed: int = 0
    eval_seed: int = 20160609

    def __post_init__(self) -> None:
        if self.train_split not in TRAIN_SPLITS:
            raise ConfigError(f"data.train_split: expected one of {TRAIN_SPLITS}, got {self.train_split!r}")
        if self.eval_split not in EVAL_SPLITS:
            raise ConfigError(f"data.eval_split: expected one of {EVAL_SPLITS}, got {self.eval_split!r}")
        if not 0 <= self.train_size <= SPLIT_SIZES[self.train_split]:
            raise ConfigError(f"data.train_size: must lie in 0..{SPLIT_SIZES[self.train_split]} "
                              f"(0: the whole {self.train_split} split), got {self.train_size}")
        if not 1 <= self.eval_size <= SPLIT_SIZES[self.eval_split]:
            raise ConfigError(f"data.eval_size: must lie in 1..{SPLIT_SIZES[self.eval_split]}, "
                              f"got {self.eval_size}")
        if not (isinstance(self.flip_prob, (int, float)) and 0.0 < self.flip_prob < 0.5):
            raise ConfigError(f"data.flip_prob: the bit-flip probability must lie in (0, 0.5), "
                              f"got {self.flip_prob!r}")


@dataclass
class ShapesTask:
    """The engine and its iterations. ``groups``: ``K`` (4, Tagger §3.2); ``iterations``:
    TAG iterations in training (3, Tagger §3.1); ``eval_iterations``: in evaluation
    (5, Tagger §3.1; 0: ``iterations``); ``init_mean``: the initial ``z`` (0.26, the data
    mean, Tagger supplementary); ``figure_images``: eval images in ``groupings.png`` (0: no
    figure)."""

    engine: Literal["tagger", "rtagger"] = "tagger"
    groups: int = 4
    iterations: int = 3
    eval_iterations: int = 5
    init_mean: float = 0.26
    figure_images: int = 6

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"task.engine: expected one of {ENGINES}, got {self.engine!r}")
        for name in ("groups", "iterations"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"task.{name}: must be an integer >= 1, got {getattr(self, name)!r}")
        if self.eval_iterations < 0 or self.figure_images < 0:
            raise ConfigError(f"task.eval_iterations and task.figure_images must be >= 0, got "
                              f"{self.eval_iterations}, {self.figure_images}")
        if not (isinstance(self.init_mean, (int, float)) and 0.0 <= self.init_mean <= 1.0):
            raise ConfigError(f"task.init_mean: a Bernoulli mean in [0, 1], got {self.init_mean!r}")

    @property
    def scored_iterations(self) -> int:
        """The iterations run in evaluation (``eval_iterations`` or ``iterations``)."""
        return max(self.iterations, self.eval_iterations)


def _tag_default() -> TagSettings:
    return TagSettings(projection_dim=1000, projection_norm="layer")


def _ladder_default() -> LadderConfig:
    return LadderConfig(input_dim=1000, hidden_dims=(500, 250), combinator_sigmoid_v=True)


def _rladder_default() -> RLadderConfig:
    return RLadderConfig(input_dim=1000, hidden_dims=(500, 250))


@dataclass
class ShapesConfig(ExperimentConfig):
    """``threads``: torch intra-op threads set when the run is built (0: leave torch's setting)."""

    data: ShapesData = field(default_factory=ShapesData)
    task: ShapesTask = field(default_factory=ShapesTask)
    tag: TagSettings = field(default_factory=_tag_default)
    ladder: LadderConfig = field(default_factory=_ladder_default)
    rladder: RLadderConfig = field(default_factory=_rladder_default)
    threads: int = 0

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ConfigError(f"threads: must be >= 0, got {self.threads}")
        if self.tag.projection_norm not in ("batch", "layer", "none"):
            raise ConfigError(f"tag.projection_norm: expected batch, layer or none, got "
                              f"{self.tag.projection_norm!r}")
        if self.tag.cost_weighting not in grouping.COST_WEIGHTINGS:
            raise ConfigError(f"tag.cost_weighting: expected one of {grouping.COST_WEIGHTINGS}, got "
                              f"{self.tag.cost_weighting!r}")


def tag_config(config: ShapesConfig, pixels: int) -> TagConfig:
    """The bernoulli TAG config of the chosen engine for images of ``pixels`` pixels."""
    inner = config.ladder if config.task.engine == "tagger" else config.rladder
    try:
        return grouping.tag_config(config.tag, inner, pixels=pixels, noise_var=config.data.flip_prob,
                                   groups=config.task.groups, likelihood="bernoulli",
                                   init_mean=config.task.init_mean)
    except ValueError as err:
        raise ConfigError(f"tag: {err}") from err


# --------------------------------------------------------------------------- data

def flip_bits(x: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    """``x ⊕ Bernoulli(prob)`` for a 0/1 tensor ``x`` (the flips drawn with ``generator``)."""
    flips = torch.rand(x.shape, generator=generator) < prob
    return torch.where(flips, 1.0 - x, x)


def training_pool(data: ShapesData) -> torch.Tensor:
    """``(n, 400)`` float32 0/1: the clean training images."""
    shapes = load_shapes(data.train_split, n=data.train_size or None, seed=data.seed)
    return torch.from_numpy(shapes.images.reshape(len(shapes.images), -1).astype(np.float32))


def batch_sampler(pool: torch.Tensor, flip_prob: float):
    """``sample(generator, n) -> (x_noisy, x_clean)``: ``n`` images drawn with replacement
    from ``pool``, their bits flipped afresh."""

    def sample(generator: torch.Generator, n: int):
        x = pool[torch.randint(len(pool), (n,), generator=generator)]
        return flip_bits(x, flip_prob, generator), x

    return sample


@dataclass
class ShapesEvalSets:
    """The eval images twice: ``corrupted`` (``x_noisy`` the flipped images: cost, MSE) and
    ``clean`` (``x_noisy`` = ``x``: the paper's AMI); the same true groups and scoring mask."""

    corrupted: harness.GroupingEvalSet
    clean: harness.GroupingEvalSet


def eval_sets(data: ShapesData) -> ShapesEvalSets:
    """The eval images (first ``eval_size`` of ``eval_split``), their true groups (flattened;
    background 0 and overlap -1 are never scored) and ``true_mask_max`` = the largest
    :func:`soft_masks` value (1 on pixels covered by exactly one shape, ``1/3`` elsewhere)."""
    shapes = load_shapes(data.eval_split, n=data.eval_size, seed=data.seed)
    n = len(shapes.images)
    x = torch.from_numpy(shapes.images.reshape(n, -1).astype(np.float32))
    z = torch.from_numpy(shapes.groups.reshape(n, -1).astype(np.int64))
    mask_max = soft_masks(shapes.groups, shapes.shape_ids.shape[-1]).max(axis=1).reshape(n, -1)
    true_mask_max = torch.from_numpy(mask_max)
    x_noisy = flip_bits(x, data.flip_prob, torch.Generator().manual_seed(data.eval_seed))
    init = data.eval_seed + 1
    return ShapesEvalSets(corrupted=harness.GroupingEvalSet(x, x_noisy, z, init, true_mask_max),
                          clean=harness.GroupingEvalSet(x, x.clone(), z, init, true_mask_max))


def scores(net, sets: ShapesEvalSets, iterations: int, device) -> dict:
    """The metrics of the module doc, ``{name/iter{t}: value}``."""
    noisy, _ = harness.score_groupings(net, sets.corrupted, iterations, device)
    clean, _ = harness.score_groupings(net, sets.clean, iterations, device)
    per_iteration = {"ami": clean["ami"], "ari": clean["ari"], "ami_corrupted": noisy["ami"],
                     "ari_corrupted": noisy["ari"], "cost": noisy["cost"], "mse": noisy["mse"]}
    return {f"{name}/iter{t}": float(v) for name, values in per_iteration.items()
            for t, v in enumerate(values, 1)}


# --------------------------------------------------------------------------- build

def task_losses(net, batch, config: ShapesConfig) -> dict:
    """TAG's binary cost (BCE of ``Σ_k m_k z_k`` against the clean image, nats per pixel)
    over the training iterations, weighted as ``tag.cost_weighting`` (SPEC §3.3)."""
    x_noisy, x_clean = batch
    return grouping.grouping_losses(net(x_noisy, iterations=config.task.iterations), x_clean,
                                    config.tag.cost_weighting)


def build(config: ShapesConfig, device: torch.device, seed: int) -> Parts:
    if config.threads:
        torch.set_num_threads(config.threads)
    pool = training_pool(config.data)
    net = Tag(tag_config(config, pool.shape[1])).to(device)
    bs = config.train.batch_size
    batches = SampledStream(batch_sampler(pool, config.data.flip_prob), bs, seed,
                            batches_per_epoch=max(1, math.ceil(len(pool) / bs)))
    cache: dict = {}

    def eval_data() -> ShapesEvalSets:
        if "eval" not in cache:
            cache["eval"] = eval_sets(config.data)
        return cache["eval"]

    def evaluate(engine) -> dict:
        return scores(engine, eval_data(), config.task.scored_iterations, device)

    def figures(engine, out: Path) -> None:
        from .figures import plot_groupings

        sets = eval_data()
        n = min(config.task.figure_images, sets.corrupted.size)
        plot_groupings(engine, sets.corrupted, n, config.task.scored_iterations, device,
                       out / "groupings.png",
                       title=f"shapes — {config.task.engine}, projection_norm={config.tag.projection_norm}")

    return Parts(model=net, train_batches=batches,
                 loss=lambda engine, batch: task_losses(engine, batch, config), evaluate=evaluate,
                 figures=figures if config.task.figure_images > 0 else None)


# --------------------------------------------------------------------------- presets

def _config(train: TrainConfig, lr: float, data: ShapesData, projection: int, hidden: tuple,
            threads: int = 0, figure_images: int = 6) -> ShapesConfig:
    return ShapesConfig(
        train=train, optim=OptimConfig(lr=lr), data=data,
        task=ShapesTask(figure_images=figure_images),
        tag=TagSettings(projection_dim=projection, projection_norm="layer"),
        ladder=LadderConfig(input_dim=projection, hidden_dims=hidden, combinator_sigmoid_v=True),
        rladder=RLadderConfig(input_dim=projection, hidden_dims=hidden),
        threads=threads)


def smoke() -> ShapesConfig:
    """Seconds (the test-suite): tiny widths, 4 steps of 8 images from a 64-image pool,
    16 eval images, 2 figure images."""
    return _config(TrainConfig(steps=4, batch_size=8, log_every=1, device="cpu"), 1e-3,
                   ShapesData(train_size=64, eval_size=16), projection=16, hidden=(16, 8),
                   figure_images=2)


def cpu() -> ShapesConfig:
    """A reduced Tagger run for one CPU thread within 40 minutes: projection 1000, Ladder
    (500, 250) (half the paper's widths), batch 100, 2800 steps (5.6 epochs of the 50k
    training images), Adam lr 1e-3 with a cosine schedule (100 warm-up steps), 1000 test images.

    Sized with 20-step timing runs (one torch thread, this repository's shared 2-core
    machine, load 2–4.6; docs/results/shapes.md): 0.47–0.79 s/step (LayerNorm; BatchNorm
    0.54 s), so 2800 steps take 22–37 min, plus ≈ 1 min of evaluation (1000 images × 5
    iterations, clean and corrupted input). RTagger (GRU cells) takes 1.25 s/step at these
    widths on a quiet core: run it with ``--set train.steps=1200`` to stay within 40 minutes."""
    return _config(cosine_schedule(2800, 100, device="cpu"), 1e-3, ShapesData(eval_size=1000),
                   projection=1000, hidden=(500, 250), threads=1)


def paper() -> ShapesConfig:
    """The paper's scale (Tagger §3.1, supplementary, SPEC §3.3): widths (2000, 1000, 500),
    Adam lr 4e-4, 100 epochs of the 50k training images, batch 100 (supplementary: "ADAM with
    a batch-size of 100"), 4 groups, 3 training / 5 test iterations; the whole 10k test split.
    Ours: a constant learning rate (the paper names no schedule), 5 checkpoints."""
    train = TrainConfig(epochs=100, batch_size=100, checkpoint_every=10000, log_every=100)
    return _config(train, 4e-4, ShapesData(eval_size=10000), projection=2000, hidden=(1000, 500))


PRESETS = {"smoke": smoke, "cpu": cpu, "paper": paper}

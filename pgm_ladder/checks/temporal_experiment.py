"""The ``temporal`` experiment: the temporal RLadder (and its ablations) trained online on
sequences of the embedded temporal Gaussian hierarchy (SPEC §2.2, §3.2), with the shared
trainer, and scored against the Kalman filter's optimal next-frame prediction (SPEC §4).

The embedded model (``task.model = "default"``, ours): widths 8-4-2,
:meth:`TemporalGaussianHierarchy.random` with seed 2017 — rotations shrunk by decays
0.5 / 0.735 / 0.97 with speeds 1.0 / 0.55 / 0.1 from the bottom (slow dynamics at the
top), stationary initial state, observation noise 0.5 — and about 30 % of the
observation entries occluded at random (``task.occlusion``). It is the same for every
run and engine.

Task (ours, documented): after frame ``t`` the engine predicts the next *clean*
observation ``x_t+1`` (``target="clean"``; ``"noisy"`` trains on the visible entries of
the next noisy frame, as the paper does with its occluded frames — same optimum in
expectation, noisier gradients). The score is the Rao-Blackwellised ratio
``1 + E‖x̂_t+1 − E[x_t+1 | x̃_1:t]‖² / E tr Cov(x_t+1 | x̃_1:t)`` per frame, and its pooled
mean over frames ``1 + Σ_t excess_t / Σ_t optimal_t`` (= mean MSE / mean optimal MSE).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch

from explicit_models.temporal_hierarchy import TemporalGaussianHierarchy
from learned_inference.temporal import TemporalRLadder, TemporalRLadderConfig
from pgm_ladder.training.batches import SampledStream
from pgm_ladder.training.config import ExperimentConfig, OptimConfig, TrainConfig
from pgm_ladder.training.registry import ExperimentSpec, Parts, register_experiment

#: the embedded default model: ``TemporalGaussianHierarchy.random`` arguments (ours; every
#: argument pinned, so a change of ``random``'s defaults cannot change it)
EMBEDDED_MODELS = {"default": dict(widths=[8, 4, 2], seed=2017, noise_std=0.5, decays=[0.5, 0.735, 0.97],
                                   rotation_speeds=[1.0, 0.55, 0.1], scales=[1.0, 1.0, 1.0], weight_scale=1.0,
                                   init="stationary")}
#: engine name -> the ablation switches it sets on the RLadder config (paper Table 1)
ENGINES = {"rladder": {}, "no_decoder": {"use_decoder": False},
           "no_decoder_to_encoder": {"decoder_to_encoder": False}}


def embedded_model(name: str) -> TemporalGaussianHierarchy:
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"task.model: expected one of {sorted(EMBEDDED_MODELS)}, got {name!r}")
    return TemporalGaussianHierarchy.random(**EMBEDDED_MODELS[name])


@dataclass
class TemporalTask:
    """What is trained and how it is scored (module docstring). ``frames`` per sequence;
    ``occlusion`` the probability that an observation entry is hidden; ``top_weight`` the
    weight of the optional top-level task (estimate the current top latent ``s_L,t`` from
    ``e_L,t``; 0 = off); ``vb_sweeps`` the online VB filter's sweeps per frame in the
    scores; ``eval_sequences`` fresh sequences drawn with ``eval_seed``."""

    model: Literal["default"] = "default"
    engine: Literal["rladder", "no_decoder", "no_decoder_to_encoder"] = "rladder"
    frames: int = 20
    occlusion: float = 0.3
    target: Literal["clean", "noisy"] = "clean"
    top_weight: float = 0.0
    vb_sweeps: int = 50
    eval_sequences: int = 4000
    eval_seed: int = 20171204

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"task.frames: need at least 2 frames, got {self.frames}")
        if not 0.0 <= self.occlusion < 1.0:
            raise ValueError(f"task.occlusion: must lie in [0, 1), got {self.occlusion}")


def _rladder_default() -> TemporalRLadderConfig:
    return TemporalRLadderConfig(obs_dim=8, hidden_dims=(64, 32))


@dataclass
class TemporalConfig(ExperimentConfig):
    task: TemporalTask = field(default_factory=TemporalTask)
    rladder: TemporalRLadderConfig = field(default_factory=_rladder_default)


def engine_config(config: TemporalConfig, model: TemporalGaussianHierarchy) -> TemporalRLadderConfig:
    """The RLadder config with the engine's ablation switches and the model's widths."""
    top = model.widths[-1] if config.task.top_weight > 0 else 0
    return dataclasses.replace(config.rladder, obs_dim=model.widths[0], top_dim=top,
                               **ENGINES[config.task.engine])


# --------------------------------------------------------------------------- scoring
@dataclass
class EvalSet:
    """Fresh sequences with the Kalman filter's answers (float64, CPU). Index ``t-1`` of
    the frame axis: after frame ``t``. ``optimal`` ``(n, T, n_0)`` = ``E[x_t+1 | x̃_1:t]``,
    ``optimal_trace`` ``(n, T)`` = ``tr Cov(x_t+1 | x̃_1:t)``, ``x_next`` the clean
    ``x_t+1``; ``top_means``/``top_trace`` the same for the current top latent."""

    x_noisy: torch.Tensor
    visibility: torch.Tensor
    x_next: torch.Tensor
    optimal: torch.Tensor
    optimal_trace: torch.Tensor
    top_means: torch.Tensor
    top_trace: torch.Tensor
    top_latent: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.x_noisy.shape[0])

    @property
    def optimal_mse(self) -> list:
        return self.optimal_trace.mean(0).tolist()


def make_eval_set(model: TemporalGaussianHierarchy, task: TemporalTask, chunk: int = 1000) -> EvalSet:
    g = torch.Generator().manual_seed(task.eval_seed)
    T, nL = task.frames, model.widths[-1]
    parts = []
    for start in range(0, task.eval_sequences, chunk):
        s = model.sample(min(chunk, task.eval_sequences - start), T + 1, g, visibility=1.0 - task.occlusion)
        x, o = s.x_noisy[:, :T], s.visibility[:, :T]
        kf = model.kalman_filter(x, o)
        top_cov = kf.filtered_covs[:, 1:, -nL:, -nL:]
        parts.append((x, o, s.x[:, 1:], kf.obs_means[:, 1:T + 1], kf.clean_prediction_trace()[:, 1:T + 1],
                      kf.filtered_means[:, 1:, -nL:], top_cov.diagonal(dim1=-2, dim2=-1).sum(-1),
                      s.levels[-1][:, 1:T + 1]))
    return EvalSet(*[torch.cat(p) for p in zip(*parts)])


def prediction_ratios(pred: torch.Tensor, data: EvalSet) -> dict:
    """Per-frame and pooled-mean MSE ratios of next-frame predictions ``(n, T, n_0)``, the
    plain (empirical) ones against the clean ``x_t+1``, and the Monte Carlo standard error
    of the pooled mean (ratio estimator over sequences)."""
    per_seq = (pred.double() - data.optimal).pow(2).sum(-1)  # (n, T)
    excess, opt = per_seq.mean(0), data.optimal_trace.mean(0)
    emp = (pred.double() - data.x_next).pow(2).sum(-1).mean(0)
    ratio = excess.sum() / opt.sum()
    sem = (per_seq.sum(1) - ratio * data.optimal_trace.sum(1)).std() / data.size ** 0.5 / opt.sum()
    return {"mse_ratio": (1 + excess / opt).tolist(), "mean_mse_ratio": float(1 + ratio),
            "mean_mse_ratio_sem": float(sem), "empirical_mse_ratio": (emp / opt).tolist(),
            "mean_empirical_mse_ratio": float(emp.sum() / opt.sum())}


def top_ratios(top: torch.Tensor, data: EvalSet) -> dict:
    """The top-level task's ratio ``1 + E‖ŝ_L,t − E[s_L,t | x̃_1:t]‖² / E tr Cov(s_L,t | x̃_1:t)``."""
    excess = (top.double() - data.top_means).pow(2).sum(-1).mean(0)
    opt = data.top_trace.mean(0)
    return {"top_mse_ratio": (1 + excess / opt).tolist(), "mean_top_mse_ratio": float(1 + excess.sum() / opt.sum())}


@torch.no_grad()
def run_engine(engine: TemporalRLadder, data: EvalSet, device, batch_size: int = 1000):
    """``(predictions (n, T, n_0), top (n, T, n_L) or None)`` in eval mode, on the CPU."""
    engine.eval()
    dtype = next(engine.parameters()).dtype
    preds, tops = [], []
    for start in range(0, data.size, batch_size):
        sl = slice(start, start + batch_size)
        out = engine(data.x_noisy[sl].to(device=device, dtype=dtype), data.visibility[sl].to(device))
        preds.append(out.predictions.cpu())
        if out.top is not None:
            tops.append(out.top.cpu())
    return torch.cat(preds), (torch.cat(tops) if tops else None)


def score_engine(engine: TemporalRLadder, data: EvalSet, device) -> dict:
    pred, top = run_engine(engine, data, device)
    scores = prediction_ratios(pred, data)
    if top is not None:
        scores.update(top_ratios(top, data))
    return scores


def vb_filter_predictions(model: TemporalGaussianHierarchy, data: EvalSet, sweeps: int,
                          chunk: int = 1000) -> torch.Tensor:
    """The online VB filter's next-frame predictions ``E_q[x_t+1]`` after each frame."""
    return torch.cat([model.vb_filter(data.x_noisy[s:s + chunk], data.visibility[s:s + chunk],
                                      sweeps_per_step=sweeps).predictions[:, 1:]
                      for s in range(0, data.size, chunk)])


def prior_predictions(model: TemporalGaussianHierarchy, data: EvalSet) -> torch.Tensor:
    """The prior mean of ``x_t+1`` (no data): the Kalman filter with every entry occluded."""
    blind = model.kalman_filter(data.x_noisy[:1], torch.zeros_like(data.visibility[:1]))
    return blind.obs_means[:, 1:].expand_as(data.optimal)


def flat_metrics(scores: dict) -> dict:
    out = {"mse_ratio/mean": scores["mean_mse_ratio"]}
    out.update({f"mse_ratio/frame{t}": v for t, v in enumerate(scores["mse_ratio"], 1)})
    if "mean_top_mse_ratio" in scores:
        out["top_mse_ratio/mean"] = scores["mean_top_mse_ratio"]
    return out


# --------------------------------------------------------------------------- training
def task_losses(engine, batch, task: TemporalTask) -> dict:
    x_in, vis, x_next, noisy_next, vis_next, top_latent = batch
    out = engine(x_in, vis)
    if task.target == "clean":
        mse = (out.predictions - x_next).pow(2).mean()
    else:
        mse = (vis_next * (out.predictions - noisy_next).pow(2)).sum() / vis_next.sum().clamp_min(1.0)
    loss, values = mse, {"mse": mse.detach()}
    if out.top is not None and task.top_weight > 0:
        top = (out.top - top_latent).pow(2).mean()
        loss = loss + task.top_weight * top
        values["top_mse"] = top.detach()
    return {"loss": loss, **values}


def build(config: TemporalConfig, device: torch.device, seed: int) -> Parts:
    model = embedded_model(config.task.model)
    engine = TemporalRLadder(engine_config(config, model)).to(device)
    task = config.task

    def sample_batch(generator: torch.Generator, n: int):
        s = model.sample(n, task.frames + 1, generator=generator, visibility=1.0 - task.occlusion)
        T, f = task.frames, torch.float32
        vis = s.visibility.to(f)
        return (s.x_noisy[:, :T].to(f), vis[:, :T], s.x[:, 1:].to(f), s.x_noisy[:, 1:].to(f), vis[:, 1:],
                s.levels[-1][:, 1:T + 1].to(f))

    cache: dict = {}

    def evaluate(net) -> dict:
        if "data" not in cache:
            cache["data"] = make_eval_set(model, task)
        return flat_metrics(score_engine(net, cache["data"], device))

    return Parts(model=engine, train_batches=SampledStream(sample_batch, config.train.batch_size, seed),
                 loss=lambda net, batch: task_losses(net, batch, task), evaluate=evaluate)


def _preset(steps: int, batch_size: int, eval_sequences: int, hidden=(64, 32), lr: float = 5e-3,
            frames: int = 20) -> TemporalConfig:
    return TemporalConfig(
        train=TrainConfig(steps=steps, batch_size=batch_size, schedule="cosine", grad_clip=1.0,
                          warmup_steps=min(100, steps // 10), checkpoint_every=max(1, steps // 4),
                          log_every=max(1, steps // 50)),
        optim=OptimConfig(lr=lr),
        task=TemporalTask(frames=frames, eval_sequences=eval_sequences),
        rladder=TemporalRLadderConfig(obs_dim=8, hidden_dims=hidden),
    )


PRESETS = {
    "smoke": lambda: _preset(steps=10, batch_size=32, eval_sequences=256, hidden=(16, 8), frames=6),
    "cpu": lambda: _preset(steps=1500, batch_size=128, eval_sequences=4000),
    "paper": lambda: _preset(steps=20000, batch_size=256, eval_sequences=20000, hidden=(128, 64), lr=2e-3),
}

SPEC = register_experiment(ExperimentSpec(
    name="temporal",
    config_type=TemporalConfig,
    presets=PRESETS,
    build=build,
    description="temporal RLadder and ablations on the embedded temporal Gaussian hierarchy (SPEC §2.2)",
))

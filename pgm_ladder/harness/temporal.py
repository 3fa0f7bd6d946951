"""The comparison harness for the temporal hierarchy: next-frame predictions scored
against the Kalman filter's optimal ones ``E[x_t+1 | x̃_1:t]`` (SPEC §2.2, §4), beside the
online VB filter and the prior.

The score is the Rao-Blackwellised ratio
``1 + E‖x̂_t+1 − E[x_t+1 | x̃_1:t]‖² / E tr Cov(x_t+1 | x̃_1:t)`` per frame, and its pooled
mean over frames ``1 + Σ_t excess_t / Σ_t optimal_t`` (= mean MSE / mean optimal MSE).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from explicit_models.temporal_hierarchy import TemporalGaussianHierarchy
from pgm_ladder.harness.batches import map_batches


@dataclass
class PredictionEvalSet:
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


def prediction_eval_set(model: TemporalGaussianHierarchy, num_sequences: int, frames: int,
                        occlusion: float, seed: int, chunk: int = 1000) -> PredictionEvalSet:
    """``num_sequences`` fresh sequences of ``frames`` frames (each observation entry hidden
    with probability ``occlusion``), drawn with ``seed``, and the Kalman filter's answers."""
    g = torch.Generator().manual_seed(seed)
    T, nL = frames, model.widths[-1]
    parts = []
    for start in range(0, num_sequences, chunk):
        s = model.sample(min(chunk, num_sequences - start), T + 1, g, visibility=1.0 - occlusion)
        x, o = s.x_noisy[:, :T], s.visibility[:, :T]
        kf = model.kalman_filter(x, o)
        top_cov = kf.filtered_covs[:, 1:, -nL:, -nL:]
        parts.append((x, o, s.x[:, 1:], kf.obs_means[:, 1:T + 1], kf.clean_prediction_trace()[:, 1:T + 1],
                      kf.filtered_means[:, 1:, -nL:], top_cov.diagonal(dim1=-2, dim2=-1).sum(-1),
                      s.levels[-1][:, 1:T + 1]))
    return PredictionEvalSet(*[torch.cat(p) for p in zip(*parts)])


def excess_ratio(excess: torch.Tensor, optimal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ratio estimator ``r = Σ_i excess_i / Σ_i optimal_i`` over sequences ``i`` (axis 0)
    and its Monte Carlo standard error ``sd_i(excess_i − r optimal_i) / (√n mean_i optimal_i)``
    (delta method), per remaining index. ``excess`` ``‖x̂ − E[x | x̃]‖²`` and ``optimal``
    ``tr Cov(x | x̃)`` per sequence (SPEC §4): the MSE ratio is ``1 + r``."""
    r = excess.sum(0) / optimal.sum(0)
    sem = (excess - r * optimal).std(0) / excess.shape[0] ** 0.5 / optimal.mean(0)
    return r, sem


def prediction_ratios(pred: torch.Tensor, data: PredictionEvalSet) -> dict:
    """Per-frame and pooled-mean MSE ratios of next-frame predictions ``(n, T, n_0)`` with
    their Monte Carlo standard errors over sequences (:func:`excess_ratio`; the pooled one
    is ``1 + Σ_t excess_t / Σ_t optimal_t``), and the plain (empirical) ones against the
    clean ``x_t+1``."""
    per_seq = (pred.double() - data.optimal).pow(2).sum(-1)  # (n, T)
    frame, frame_sem = excess_ratio(per_seq, data.optimal_trace)
    pooled, pooled_sem = excess_ratio(per_seq.sum(1), data.optimal_trace.sum(1))
    opt = data.optimal_trace.mean(0)
    emp = (pred.double() - data.x_next).pow(2).sum(-1).mean(0)
    return {"mse_ratio": (1 + frame).tolist(), "mse_ratio_sem": frame_sem.tolist(),
            "mean_mse_ratio": float(1 + pooled), "mean_mse_ratio_sem": float(pooled_sem),
            "empirical_mse_ratio": (emp / opt).tolist(), "mean_empirical_mse_ratio": float(emp.sum() / opt.sum())}


def top_ratios(top: torch.Tensor, data: PredictionEvalSet) -> dict:
    """The top-level task's ratio ``1 + E‖ŝ_L,t − E[s_L,t | x̃_1:t]‖² / E tr Cov(s_L,t | x̃_1:t)``."""
    excess = (top.double() - data.top_means).pow(2).sum(-1).mean(0)
    opt = data.top_trace.mean(0)
    return {"top_mse_ratio": (1 + excess / opt).tolist(), "mean_top_mse_ratio": float(1 + excess.sum() / opt.sum())}


def engine_predictions(engine, data: PredictionEvalSet, device, batch_size: int = 1000):
    """``(predictions (n, T, n_0), top (n, T, n_L) or None)`` of a temporal engine in eval
    mode, on the CPU."""
    def run(sl: slice, dtype: torch.dtype):
        out = engine(data.x_noisy[sl].to(device=device, dtype=dtype), data.visibility[sl].to(device))
        return out.predictions.cpu(), (None if out.top is None else out.top.cpu())

    chunks = map_batches(engine, data.size, batch_size, run)
    tops = [top for _, top in chunks if top is not None]
    return torch.cat([pred for pred, _ in chunks]), (torch.cat(tops) if tops else None)


def score_predictions(engine, data: PredictionEvalSet, device) -> dict:
    """:func:`prediction_ratios` (and :func:`top_ratios` if the engine has a top read-out)
    of a temporal engine's next-frame predictions."""
    pred, top = engine_predictions(engine, data, device)
    scores = prediction_ratios(pred, data)
    if top is not None:
        scores.update(top_ratios(top, data))
    return scores


def vb_filter_predictions(model: TemporalGaussianHierarchy, data: PredictionEvalSet, sweeps: int,
                          chunk: int = 1000) -> torch.Tensor:
    """The online VB filter's next-frame predictions ``E_q[x_t+1]`` after each frame."""
    return torch.cat([model.vb_filter(data.x_noisy[s:s + chunk], data.visibility[s:s + chunk],
                                      sweeps_per_step=sweeps).predictions[:, 1:]
                      for s in range(0, data.size, chunk)])


def prior_predictions(model: TemporalGaussianHierarchy, data: PredictionEvalSet) -> torch.Tensor:
    """The prior mean of ``x_t+1`` (no data): the Kalman filter with every entry occluded."""
    blind = model.kalman_filter(data.x_noisy[:1], torch.zeros_like(data.visibility[:1]))
    return blind.obs_means[:, 1:].expand_as(data.optimal)

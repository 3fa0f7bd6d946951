"""The per-frame scores of ``check temporal`` and the training levers of the ``temporal``
experiment (issue 15): per-frame ratios and standard errors against hand computations,
the pooled-mean identity, the frame-cost weighting and the training-sequence length."""
import dataclasses

import pytest
import torch

from experiments.temporal import experiment as exp
from experiments.temporal.check import shown_frames
from pgm_ladder.harness import temporal as harness
from pgm_ladder.training.config import apply_overrides
from pgm_ladder.training.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fake_eval_set(n: int, T: int, d: int, seed: int) -> harness.PredictionEvalSet:
    """Random tensors with the shapes of an evaluation set (only ``optimal``,
    ``optimal_trace`` and ``x_next`` are read by :func:`harness.prediction_ratios`)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)
    trace = 0.5 + torch.rand(n, T, generator=g, dtype=torch.float64)
    return harness.PredictionEvalSet(x_noisy=r(n, T, d), visibility=torch.ones(n, T, d), x_next=r(n, T, d),
                                     optimal=r(n, T, d), optimal_trace=trace, top_means=r(n, T, 2),
                                     top_trace=trace, top_latent=r(n, T, 2))


def test_per_frame_ratios_and_errors_match_a_hand_computation():
    n, T, d = 7, 4, 3
    data = fake_eval_set(n, T, d, seed=1)
    pred = data.optimal + 0.3 * torch.randn(n, T, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = harness.prediction_ratios(pred, data)
    assert len(s["mse_ratio"]) == len(s["mse_ratio_sem"]) == len(s["empirical_mse_ratio"]) == T
    for t in range(T):
        e = [sum((pred[i, t, j] - data.optimal[i, t, j]).item() ** 2 for j in range(d)) for i in range(n)]
        o = [data.optimal_trace[i, t].item() for i in range(n)]
        r = sum(e) / sum(o)
        resid = [e[i] - r * o[i] for i in range(n)]
        mean_resid = sum(resid) / n
        sd = (sum((x - mean_resid) ** 2 for x in resid) / (n - 1)) ** 0.5
        assert s["mse_ratio"][t] == pytest.approx(1 + r, rel=1e-12)
        assert s["mse_ratio_sem"][t] == pytest.approx(sd / n ** 0.5 / (sum(o) / n), rel=1e-10)


def test_pooled_mean_is_one_plus_total_excess_over_total_optimal():
    """``pooled = 1 + Σ_t excess_t / Σ_t optimal_t``: the optimal-MSE-weighted mean of the
    per-frame ratios, between their minimum and maximum."""
    data = fake_eval_set(50, 6, 4, seed=3)
    pred = data.optimal + torch.randn(50, 6, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    s = harness.prediction_ratios(pred, data)
    opt = data.optimal_trace.mean(0).tolist()
    excess = [(r - 1) * o for r, o in zip(s["mse_ratio"], opt)]
    assert s["mean_mse_ratio"] == pytest.approx(1 + sum(excess) / sum(opt), rel=1e-12)
    weighted = sum(r * o for r, o in zip(s["mse_ratio"], opt)) / sum(opt)
    assert s["mean_mse_ratio"] == pytest.approx(weighted, rel=1e-12)
    assert min(s["mse_ratio"]) <= s["mean_mse_ratio"] <= max(s["mse_ratio"])


def test_standard_error_matches_the_spread_over_independent_evaluation_sets():
    """The delta-method error of the ratio estimator is the standard deviation of the
    ratio over many independent evaluation sets (within 10 %: 2000 replications)."""
    g = torch.Generator().manual_seed(5)
    reps, n = 2000, 400
    optimal = 0.5 + torch.rand(reps, n, generator=g, dtype=torch.float64)
    excess = optimal * torch.distributions.Gamma(0.5, 10.0).sample((reps, n)).double()  # skewed, like ‖·‖²
    ratios = torch.stack([harness.excess_ratio(excess[k], optimal[k])[0] for k in range(reps)])
    sems = torch.stack([harness.excess_ratio(excess[k], optimal[k])[1] for k in range(reps)])
    assert float(sems.mean()) == pytest.approx(float(ratios.std()), rel=0.1)


def test_optimal_predictions_have_ratio_one_and_zero_error_at_every_frame():
    data = fake_eval_set(20, 5, 3, seed=6)
    s = harness.prediction_ratios(data.optimal, data)
    assert s["mse_ratio"] == [1.0] * 5 and s["mse_ratio_sem"] == [0.0] * 5 and s["mean_mse_ratio_sem"] == 0.0


@pytest.mark.parametrize("frames", [2, 6, 20, 21, 40, 100, 1000])
def test_shown_frames_condense_long_sequences(frames):
    shown = shown_frames(frames)
    assert shown == sorted(set(shown)) and shown[-1] == frames - 1 and len(shown) <= 20
    assert shown[:min(frames, 6)] == list(range(min(frames, 6)))
    if frames <= 20:
        assert shown == list(range(frames))


# --------------------------------------------------------------------------- training levers
def smoke_batch(config):
    parts = exp.build(config, torch.device("cpu"), seed=0)
    return parts, parts.train_batches.next_batch()


def test_uniform_frame_weighting_is_the_plain_mse_and_last_is_the_last_frame():
    config = exp.PRESETS["smoke"]()
    parts, batch = smoke_batch(config)
    x_in, vis, x_next, noisy_next, vis_next, _ = batch
    with torch.no_grad():
        pred = parts.model(x_in, vis).predictions
        for target in ("clean", "noisy"):
            costs = {w: float(exp.task_losses(parts.model, batch, dataclasses.replace(
                config.task, target=target, frame_weighting=w))["loss"]) for w in ("uniform", "increasing", "last")}
            sq = (pred - x_next).pow(2) if target == "clean" else vis_next * (pred - noisy_next).pow(2)
            per_frame = sq.sum((0, 2))
            norm = sq[:, :, :].numel() if target == "clean" else vis_next.sum()
            T = pred.shape[1]
            assert costs["uniform"] == pytest.approx(float(per_frame.sum() / norm), rel=1e-5)
            assert costs["last"] == pytest.approx(float(T * per_frame[-1] / norm), rel=1e-5)
            ramp = torch.arange(1, T + 1, dtype=per_frame.dtype)
            assert costs["increasing"] == pytest.approx(float(T * (ramp * per_frame).sum() / ramp.sum() / norm),
                                                        rel=1e-5)


def test_train_frames_sets_the_training_length_only():
    config = apply_overrides(exp.PRESETS["smoke"](), ["task.train_frames=9"])
    assert config.task.training_frames == 9 and config.task.frames == 6
    _, batch = smoke_batch(config)
    assert all(x.shape[1] == 9 for x in batch)
    assert exp.eval_set(exp.embedded_model("default"), dataclasses.replace(config.task, eval_sequences=3)
                        ).x_noisy.shape[1] == 6
    assert exp.PRESETS["smoke"]().task.training_frames == 6


@pytest.mark.parametrize("key, value", [("task.train_frames", "1"), ("task.train_frames", "-3"),
                                        ("task.frame_weighting", "decreasing")])
def test_bad_lever_values_name_the_field(key, value):
    with pytest.raises((ConfigError, ValueError), match=key.split(".")[1]):
        apply_overrides(exp.PRESETS["smoke"](), [f"{key}={value}"])

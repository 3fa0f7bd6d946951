"""The temporal RLadder (learned_inference/temporal.py): shapes, masks, online stepping,
the ablation switches, and the temporal experiment's loss and scores."""
import dataclasses

import pytest
import torch

from learned_inference import FrameOutput, RLadder, RLadderConfig
from learned_inference.base import ShapeError
from learned_inference.temporal import TemporalRLadder, TemporalRLadderConfig
from experiments.temporal import experiment as exp
from pgm_ladder.harness import temporal as harness
from pgm_ladder.training.config import apply_overrides


def _engine(**kw):
    torch.manual_seed(0)
    return TemporalRLadder(TemporalRLadderConfig.make(obs_dim=5, hidden_dims=(12, 6), **kw)).eval()


def _data(B=4, T=7, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, n, generator=g), torch.rand(B, T, n, generator=g) < 0.7


@pytest.mark.parametrize("kw", [{}, {"use_decoder": False}, {"decoder_to_encoder": False},
                                {"mask_input": False}, {"top_dim": 3}, {"encoder_cell": "lstm"}])
def test_shapes_and_one_prediction_per_frame(kw):
    net = _engine(**kw)
    x, o = _data()
    out = net(x, o, return_levels=True)
    assert out.predictions.shape == (4, 7, 5)
    assert (out.top is None) == (kw.get("top_dim", 0) == 0)
    if out.top is not None:
        assert out.top.shape == (4, 7, 3)
    assert len(out.levels) == 7 and len(out.levels[0]) == 3
    assert isinstance(net.rladder, RLadder)
    assert net.rladder.config.input_dim == (5 if kw.get("mask_input", True) is False else 10)


def test_occluded_values_are_never_read():
    net = _engine()
    x, o = _data()
    poisoned = torch.where(o, x, torch.full_like(x, float("nan")))
    a = net(x, o).predictions
    b = net(poisoned, o).predictions
    assert torch.equal(a, b) and bool(torch.isfinite(b).all())


def test_the_mask_is_an_input():
    """``[x̃ ⊙ o, o]``: an occluded entry differs from one observed as 0."""
    net = _engine()
    x, o = _data()
    zeros = torch.where(o, x, torch.zeros_like(x))
    assert not torch.allclose(net(zeros, o).predictions, net(zeros, torch.ones_like(o)).predictions)


def test_predictions_are_causal():
    """The prediction after frame t does not depend on later frames."""
    net = _engine()
    x, o = _data()
    y = x.clone()
    y[:, 4:] += 10.0
    a, b = net(x, o).predictions, net(y, o).predictions
    assert torch.equal(a[:, :4], b[:, :4]) and not torch.allclose(a[:, 4:], b[:, 4:])


@pytest.mark.parametrize("kw", [{}, {"use_decoder": False}, {"top_dim": 3}])
def test_step_by_step_equals_forward(kw):
    net = _engine(**kw).double()
    x, o = _data()
    x = x.double()
    carry = net.init_carry(4, x.device, x.dtype)
    steps = []
    for t in range(x.shape[1]):
        out, carry = net.step(x[:, t], carry, visibility=o[:, t])
        assert isinstance(out, FrameOutput) and out.readout is out.prediction
        assert (out.bottom is None) == (kw.get("use_decoder", True) is False)
        steps.append(out)
    full = net(x, o, return_levels=True)
    assert torch.equal(torch.stack([s.prediction for s in steps], 1), full.predictions)
    if full.top is not None:
        assert torch.equal(torch.stack([s.class_logits for s in steps], 1), full.top)
    for s, levels in zip(steps, full.levels, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(s.levels, levels, strict=True))


def test_ablation_switches_change_the_wiring():
    x, o = _data()
    full, no_d2e = _engine(), _engine(decoder_to_encoder=False)
    no_d2e.load_state_dict(full.state_dict())  # same weights, one connection cut
    a, b = full(x, o).predictions, no_d2e(x, o).predictions
    assert torch.equal(a[:, 0], b[:, 0])  # d_l,0 = 0: identical on the first frame
    assert not torch.allclose(a[:, 1:], b[:, 1:])
    assert _engine(use_decoder=False).rladder.decoder_cells is None


def test_bad_inputs_are_refused():
    net = _engine()
    x, o = _data()
    with pytest.raises(ShapeError, match="x_noisy"):
        net(x[..., :4], o[..., :4])
    with pytest.raises(ShapeError, match="visibility"):
        net(x, o[:, :3])
    with pytest.raises(ValueError, match="obs_dim"):
        TemporalRLadderConfig.make(obs_dim=0, hidden_dims=(4,))
    with pytest.raises(ValueError, match="obs_dim"):
        TemporalRLadderConfig(obs_dim=0, ladder=RLadderConfig(1, (4,)))
    with pytest.raises(ValueError, match="decoder_norm"):
        TemporalRLadderConfig.make(obs_dim=3, hidden_dims=(4,), decoder_norm="group")
    with pytest.raises(ValueError, match="top_dim"):
        TemporalRLadderConfig.make(obs_dim=3, hidden_dims=(4,), top_dim=-1)
    with pytest.raises(ValueError, match="ladder"):
        TemporalRLadderConfig(obs_dim=3, ladder={"hidden_dims": (4,)})


def test_config_holds_the_rladder_config():
    """The RLadder's fields live (and are validated) in ``ladder``; its input width and
    top read-out follow the temporal fields; ``make`` applies the temporal defaults."""
    cfg = TemporalRLadderConfig.make(obs_dim=3, hidden_dims=[4, 2], top_dim=2, encoder_cell="lstm")
    assert cfg.ladder == RLadderConfig(input_dim=6, hidden_dims=(4, 2), num_classes=2, encoder_cell="lstm",
                                       decoder_norm="layer")
    same = TemporalRLadderConfig(obs_dim=3, ladder=RLadderConfig(99, (4, 2), num_classes=7, encoder_cell="lstm",
                                                                 decoder_norm="layer"), top_dim=2)
    assert same == cfg
    no_mask = dataclasses.replace(cfg, mask_input=False, top_dim=0)
    assert no_mask.ladder.input_dim == 3 and no_mask.ladder.num_classes == 0
    with pytest.raises(ValueError, match="top_dim"):
        TemporalRLadderConfig.make(obs_dim=3, hidden_dims=(4,), num_classes=2)


def test_experiment_overrides_reach_the_nested_rladder_config():
    config = apply_overrides(exp.PRESETS["smoke"](), ["rladder.ladder.hidden_dims=[7, 5]",
                                                      "rladder.ladder.encoder_cell=lstm"])
    assert config.rladder.ladder.hidden_dims == (7, 5) and config.rladder.ladder.encoder_cell == "lstm"
    assert config.rladder.ladder.decoder_norm == "layer"  # the temporal default survives the round trip
    net = TemporalRLadder(exp.engine_config(config, exp.embedded_model("default")))
    assert net.rladder.config.hidden_dims == (7, 5) and net.rladder.config.input_dim == 16


def test_experiment_engine_configs_apply_the_ablations():
    config = exp.PRESETS["smoke"]()
    model = exp.embedded_model("default")
    for engine, switches in exp.ENGINES.items():
        cfg = exp.engine_config(dataclasses.replace(config, task=dataclasses.replace(config.task, engine=engine)),
                                model)
        assert cfg.obs_dim == model.widths[0] and cfg.top_dim == 0
        assert cfg.ladder.input_dim == 2 * model.widths[0] and cfg.ladder.num_classes == 0
        assert cfg.ladder.use_decoder == switches.get("use_decoder", True)
        assert cfg.ladder.decoder_to_encoder == switches.get("decoder_to_encoder", True)


def test_optimal_and_prior_predictions_score_as_expected():
    """The Kalman prediction scores exactly 1; the VB filter and the prior mean score more;
    the empirical ratio of the optimal predictor is 1 up to Monte Carlo error."""
    model = exp.embedded_model("default")
    task = exp.TemporalTask(frames=6, eval_sequences=300)
    data = exp.eval_set(model, task)
    best = harness.prediction_ratios(data.optimal, data)
    assert best["mse_ratio"] == [1.0] * 6 and best["mean_mse_ratio"] == 1.0
    assert abs(best["mean_empirical_mse_ratio"] - 1.0) < 0.1
    vb = harness.prediction_ratios(harness.vb_filter_predictions(model, data, 20), data)
    prior = harness.prediction_ratios(harness.prior_predictions(model, data), data)
    assert 1.0 < vb["mean_mse_ratio"] < prior["mean_mse_ratio"]
    assert harness.top_ratios(data.top_means, data)["mean_top_mse_ratio"] == 1.0


def test_training_loss_targets():
    config = exp.PRESETS["smoke"]()
    parts = exp.build(config, torch.device("cpu"), seed=0)
    batch = parts.train_batches.next_batch()
    x_in, vis, x_next, noisy_next, vis_next, top = batch
    assert x_in.shape == (32, 6, 8) and x_next.shape == (32, 6, 8) and top.shape == (32, 6, 2)
    assert bool((x_in[vis == 0] == 0).all())
    clean = exp.task_losses(parts.model, batch, config.task)
    noisy = exp.task_losses(parts.model, batch, dataclasses.replace(config.task, target="noisy"))
    assert clean["loss"].requires_grad and noisy["loss"].requires_grad
    with torch.no_grad():
        pred = parts.model(x_in, vis).predictions
    assert torch.allclose(clean["mse"], (pred - x_next).pow(2).mean())
    visible = vis_next > 0  # the noisy target: visible entries of the next noisy frame only
    assert torch.allclose(noisy["mse"], (pred - noisy_next)[visible].pow(2).mean())


def test_embedded_model_is_the_one_the_issue_asks_for():
    """3 levels, slow dynamics at the top, ~30 % occlusion, and a task where inference
    matters: ignoring the data (prior mean) and the paper's online VB are clearly worse
    than the Kalman filter."""
    model = exp.embedded_model("default")
    assert model.widths == [8, 4, 2] and exp.TemporalTask().occlusion == 0.3
    radius = [float(torch.linalg.eigvals(A).abs().max()) for A in model.transitions]
    assert radius[0] < radius[1] < radius[2] and radius[2] > 0.95
    data = exp.eval_set(model, exp.TemporalTask(frames=10, eval_sequences=1000))
    assert abs(float(data.visibility.double().mean()) - 0.7) < 0.01
    assert harness.prediction_ratios(harness.prior_predictions(model, data), data)["mean_mse_ratio"] > 3.0
    assert harness.prediction_ratios(harness.vb_filter_predictions(model, data, 50), data)["mean_mse_ratio"] > 1.1

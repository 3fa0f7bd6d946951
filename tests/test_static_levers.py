"""The training levers of the ``static`` experiment (issue 15): the per-iteration cost
weighting (``task.cost_weighting``, shared :func:`iteration_weights`) against a hand
computation from the engine's own per-iteration outputs, and the iteration jitter
(``task.iterations_jitter``) — which iteration counts it trains, and that it is off by
default."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from experiments.static import experiment as exp
from pgm_ladder.training.config import apply_overrides
from pgm_ladder.training.errors import ConfigError
from pgm_ladder.training.iteration_costs import iteration_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def smoke_parts(*overrides: str):
    config = apply_overrides(exp.PRESETS["smoke"](), list(overrides))
    parts = exp.build(config, torch.device("cpu"), seed=0)
    parts.model.eval()  # running BatchNorm statistics: the same batch gives the same outputs
    return config, parts, parts.train_batches.next_batch()


@pytest.mark.parametrize("T", [1, 2, 5])
def test_iteration_weights_are_the_documented_distributions(T):
    assert torch.allclose(iteration_weights(T, "uniform"), torch.full((T,), 1.0 / T))
    ramp = torch.arange(1, T + 1, dtype=torch.float32)
    assert torch.allclose(iteration_weights(T, "increasing"), ramp / ramp.sum())
    last = iteration_weights(T, "last")
    assert last[-1] == 1.0 and float(last[:-1].abs().sum()) == 0.0
    for w in ("uniform", "increasing", "last"):
        assert float(iteration_weights(T, w).sum()) == pytest.approx(1.0, abs=1e-6)


def test_cost_weighting_matches_the_per_iteration_costs():
    """loss = Σ_t T·w_t·(MSE_t + CE_t): uniform is the papers' plain sum, last is T times the
    last iteration's cost, increasing the t-weighted sum."""
    config, parts, batch = smoke_parts()
    x_noisy, x_clean, classes = batch
    T = config.task.iterations
    assert T >= 2
    with torch.no_grad():
        out = parts.model(x_noisy, iterations=T, x_clean=x_clean)
        cost = torch.stack([F.mse_loss(it.denoised, x_clean) + F.cross_entropy(it.class_logits, classes)
                            for it in out.iterations]).double()
        losses = {w: float(exp.task_losses(parts.model, batch, dataclasses.replace(
            config.task, cost_weighting=w))["loss"]) for w in ("uniform", "increasing", "last")}
    ramp = torch.arange(1, T + 1, dtype=torch.float64)
    assert losses["uniform"] == pytest.approx(float(cost.sum()), rel=1e-5)
    assert losses["last"] == pytest.approx(float(T * cost[-1]), rel=1e-5)
    assert losses["increasing"] == pytest.approx(float(T * (ramp * cost).sum() / ramp.sum()), rel=1e-5)
    assert len({round(v, 6) for v in losses.values()}) == 3  # the weightings do differ here


def test_class_cost_weighting_weights_the_cross_entropy_on_its_own():
    """class_cost_weighting=last: loss = Σ_t MSE_t + T·CE_T (denoising uniform, class read-out
    on the final iteration only); 'same' follows cost_weighting."""
    config, parts, batch = smoke_parts()
    x_noisy, x_clean, classes = batch
    T = config.task.iterations
    with torch.no_grad():
        out = parts.model(x_noisy, iterations=T, x_clean=x_clean)
        mse = torch.stack([F.mse_loss(it.denoised, x_clean) for it in out.iterations]).double()
        ce = torch.stack([F.cross_entropy(it.class_logits, classes) for it in out.iterations]).double()

        def loss(**kw):
            return float(exp.task_losses(parts.model, batch, dataclasses.replace(config.task, **kw))["loss"])
        assert loss(class_cost_weighting="last") == pytest.approx(float(mse.sum() + T * ce[-1]), rel=1e-5)
        assert loss(cost_weighting="last", class_cost_weighting="uniform") == pytest.approx(
            float(T * mse[-1] + ce.sum()), rel=1e-5)
        assert loss(cost_weighting="last", class_cost_weighting="same") == pytest.approx(
            float(T * (mse[-1] + ce[-1])), rel=1e-5)


class CountingEngine(torch.nn.Module):
    """Wraps an engine and records the iteration count of every call."""

    def __init__(self, engine):
        super().__init__()
        self.engine, self.calls = engine, []

    def forward(self, x, iterations, **kw):
        self.calls.append(iterations)
        return self.engine(x, iterations=iterations, **kw)


def test_iteration_jitter_trains_every_count_from_T_to_T_plus_jitter():
    config, parts, batch = smoke_parts("task.iterations_jitter=2")
    engine = CountingEngine(parts.model)
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(40):
            exp.task_losses(engine, batch, config.task)
    T = config.task.iterations
    assert set(engine.calls) == {T, T + 1, T + 2}


def test_no_jitter_by_default_and_the_global_generator_is_left_alone():
    config, parts, batch = smoke_parts()
    assert config.task.iterations_jitter == 0
    engine = CountingEngine(parts.model)
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(5):
            exp.task_losses(engine, batch, config.task)
    assert engine.calls == [config.task.iterations] * 5
    after = torch.rand(())
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(()))


def test_jitter_gradients_flow_through_the_extra_iterations():
    """With jitter the loss of a longer run still has finite gradients for every parameter
    that the plain run trains."""
    config, parts, batch = smoke_parts("task.iterations_jitter=3", "task.cost_weighting=increasing")
    parts.model.train()
    torch.manual_seed(1)
    loss = exp.task_losses(parts.model, batch, config.task)["loss"]
    loss.backward()
    grads = [p.grad for p in parts.model.parameters() if p.requires_grad]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)


def test_class_head_hidden_is_an_mlp_on_the_top_encoder_state():
    """``rladder.class_head_hidden=H``: the logits of every iteration are
    ``Linear(ReLU(Linear(e_L,t)))`` of that iteration's top encoder state; 0 (default) is the
    papers' linear head."""
    config, parts, batch = smoke_parts("rladder.class_head_hidden=7")
    net = parts.model
    assert config.rladder.class_head_hidden == 7 and isinstance(net.class_head, torch.nn.Sequential)
    assert net.class_head[0].out_features == 7
    x_noisy = batch[0]
    carry = net.init_carry(x_noisy.shape[0], x_noisy.device, x_noisy.dtype)
    for _ in range(3):
        enc, _ = net._encoder(x_noisy, carry)
        out, carry = net.step(x_noisy, carry)
        lin1, lin2 = net.class_head[0], net.class_head[2]
        expected = F.linear(torch.relu(F.linear(enc[-1], lin1.weight, lin1.bias)), lin2.weight, lin2.bias)
        assert torch.allclose(out.class_logits, expected, atol=1e-6)
    _, default, _ = smoke_parts()
    assert isinstance(default.model.class_head, torch.nn.Linear)


@pytest.mark.parametrize("key, value", [("task.iterations_jitter", "-1"),
                                        ("task.cost_weighting", "decreasing"),
                                        ("task.class_cost_weighting", "first"),
                                        ("rladder.class_head_hidden", "-3")])
def test_bad_lever_values_name_the_field(key, value):
    with pytest.raises((ConfigError, ValueError), match=key.split(".")[1]):
        apply_overrides(exp.PRESETS["smoke"](), [f"{key}={value}"])


def test_cpu_and_long_presets_carry_the_measured_levers_and_smoke_trains_them():
    """cpu: lr 1e-2 and LayerNorm decoder cells (issue 15's measured levers); long: the
    same trained twice as long; the smoke preset with the same decoder trains (finite
    loss that falls over 20 Adam steps)."""
    cpu, long = exp.PRESETS["cpu"](), exp.PRESETS["long"]()
    assert (cpu.optim.lr, cpu.rladder.decoder_norm) == (1e-2, "layer")
    assert long.train.steps == 2 * cpu.train.steps
    assert dataclasses.replace(long, train=cpu.train) == cpu
    config, parts, _ = smoke_parts("rladder.decoder_norm=layer", "optim.lr=1e-2")
    parts.model.train()
    opt = torch.optim.Adam(parts.model.parameters(), lr=config.optim.lr)
    losses = []
    for _ in range(20):
        loss = parts.loss(parts.model, parts.train_batches.next_batch())["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(map(math.isfinite, losses)) and sum(losses[-5:]) < sum(losses[:5])

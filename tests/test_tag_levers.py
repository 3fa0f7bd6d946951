"""The TAG levers of ``learned_inference.tag`` and ``pgm_ladder.grouping`` (ours, module
docs): each against the mathematics it stands for (float64), each trained at a smoke size,
and the lever sweep command at its smoke preset."""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from explicit_models.tagger_vb import flipped_probs, gaussian_log_density, mask_likelihood
from learned_inference import LadderConfig, RLadderConfig, Tag, TagConfig, tag_cost
from pgm_ladder.grouping import TagSettings, grouping_losses, iteration_weights, tag_config

N, P, B, K = 12, 10, 5, 3
KINDS = ["tagger", "rtagger"]


def make(kind="tagger", seed=0, **kw) -> Tag:
    torch.manual_seed(seed)
    inner = LadderConfig(P, (8, 6), combinator_sigmoid_v=True) if kind == "tagger" else RLadderConfig(P, (8, 6))
    kw.setdefault("noise_var", 0.05)
    return Tag(TagConfig(N, inner, projection_dim=P, groups=K, **kw)).double()


def x_noisy(seed=1, binary=False) -> torch.Tensor:
    x = torch.randn(B, N, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (x > 0).double() if binary else x


def zero_(linear) -> None:
    with torch.no_grad():
        for p in linear.parameters():
            p.zero_()


@pytest.mark.parametrize("kind", KINDS)
def test_output_mask_skip_with_a_silent_head_is_the_exact_responsibility(kind):
    """With the learned logits at 0, ``mask_skip="output"`` gives
    ``m_ik = N(x̃_i; z_ik, λ) / Σ_h N(x̃_i; z_ih, λ)`` for the means it outputs (SPEC §2.3)."""
    net = make(kind, mask_skip="output")
    zero_(net.mask_head)
    out = net(x_noisy(), iterations=3, generator=torch.Generator().manual_seed(2))
    lam = net.config.noise_var + net.variance
    for it in out.iterations:
        torch.testing.assert_close(it.mask, mask_likelihood(x_noisy(), it.z, lam), rtol=1e-12, atol=1e-12)


def test_input_mask_skip_with_a_silent_head_passes_the_likelihood_input_through():
    net = make(mask_skip="input")
    zero_(net.mask_head)
    out = net(x_noisy(), iterations=2, generator=torch.Generator().manual_seed(2))
    for it in out.iterations:
        torch.testing.assert_close(it.mask, it.mask_likelihood, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_z_skip_with_a_silent_head_keeps_the_means(likelihood):
    kw = dict(likelihood=likelihood, z_skip=True)
    if likelihood == "bernoulli":
        kw.update(noise_var=0.2, init_mean=0.3)
    net = make(**kw)
    zero_(net.z_head)
    out = net(x_noisy(binary=likelihood == "bernoulli"), iterations=3)
    for it in out.iterations:
        torch.testing.assert_close(it.z, torch.full_like(it.z, net.config.init_mean), rtol=1e-9, atol=1e-9)


@given(rank=st.integers(1, 6))
def test_z_rank_bounds_the_rank_of_the_means_read_out(rank):
    net = make(z_rank=rank)
    eye = torch.eye(P, dtype=torch.float64)
    linear_part = net.z_head(eye) - net.z_head(torch.zeros(1, P, dtype=torch.float64))  # (P, N)
    assert torch.linalg.matrix_rank(linear_part).item() == rank


def test_pixel_log_likelihood_is_the_corruption_model():
    g = make()
    x, z = x_noisy(), torch.randn(B, K, N, dtype=torch.float64)
    torch.testing.assert_close(g.pixel_log_likelihood(x, z),
                               gaussian_log_density(x.unsqueeze(1), z, 0.05 + g.variance))
    b = make(likelihood="bernoulli", noise_var=0.2, init_mean=0.3)
    xb, zb = x_noisy(binary=True), torch.rand(B, K, N, dtype=torch.float64)
    xi = flipped_probs(zb, 0.2)
    by_hand = torch.where(xb.unsqueeze(1) == 1, xi.log(), (1 - xi).log())
    torch.testing.assert_close(b.pixel_log_likelihood(xb, zb), by_hand)


def test_x_input_and_init_logit_std():
    net = make(x_input=True, init_logit_std=3.0)
    assert net.projection.in_features == 5 * N
    z, logits = net.init_estimates(4000, K, torch.device("cpu"), torch.float64, torch.Generator().manual_seed(0))
    assert abs(float(logits.std()) - 3.0) < 0.02
    out = net(x_noisy(), iterations=2)
    assert torch.isfinite(out.last.mask).all()


@pytest.mark.parametrize("kind", KINDS)
def test_projection_statistics_per_iteration_change_eval_mode_only(kind):
    """``projection_norm_steps=3``: the same parameters give the same iterations as shared
    statistics in training mode (batch statistics); in eval mode iteration ``t`` reads the
    running statistics of step ``min(t, 2)`` and no other."""
    one, per = make(kind), make(kind, projection_norm_steps=3)
    shared = {k: v for k, v in one.state_dict().items() if "running" not in k and "num_batches" not in k}
    missing, unexpected = per.load_state_dict(shared, strict=False)
    assert not unexpected and all("running" in k or "num_batches" in k for k in missing)
    assert any(k.startswith("projection_norm.stats.2.") for k in missing)
    a = one(x_noisy(), iterations=4, generator=torch.Generator().manual_seed(3))
    b = per(x_noisy(), iterations=4, generator=torch.Generator().manual_seed(3))
    for ia, ib in zip(a.iterations, b.iterations):
        torch.testing.assert_close(ia.z, ib.z, rtol=1e-12, atol=1e-12)
    stats = per.projection_norm.stats
    assert len(stats) == 3 and not torch.equal(stats[0].running_mean, stats[2].running_mean)
    per.eval()
    before = per(x_noisy(), iterations=4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        stats[1].running_mean.add_(1.0)  # iteration 2's statistics only
    after = per(x_noisy(), iterations=4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(after.iterations[0].z, before.iterations[0].z, rtol=0, atol=0)
    assert not torch.allclose(after.iterations[1].z, before.iterations[1].z)


@pytest.mark.parametrize("field, value", [("mask_skip", "both"), ("z_rank", -1), ("init_logit_std", 0.0),
                                          ("projection_norm_steps", 0)])
def test_bad_lever_values_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        make(**{field: value})


@pytest.mark.parametrize("kind", KINDS)
def test_every_lever_on_trains_at_a_smoke_size(kind):
    """All levers on: 30 Adam steps on a two-group toy lower the TAG cost, every parameter
    gets a gradient."""
    net = make(kind, mask_skip="output", z_skip=True, x_input=True, z_rank=3, init_logit_std=2.0,
               projection_norm_steps=3).float()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def batch():
        left = torch.rand(32, 1, generator=g) * 2 - 1
        x = torch.cat([left.expand(32, N // 2), -left.expand(32, N - N // 2)], 1)
        return x + 0.2 * torch.randn(32, N, generator=g), x

    costs = []
    for _ in range(30):
        xn, x = batch()
        loss = grouping_losses(net(xn, iterations=3), x, "increasing")["loss"]
        opt.zero_grad()
        loss.backward()
        costs.append(float(loss.detach()))
        opt.step()
    assert all(p.grad is not None for p in net.parameters())
    assert sum(costs[-5:]) < sum(costs[:5])


@given(t=st.integers(1, 9), weighting=st.sampled_from(["uniform", "increasing", "last"]))
def test_iteration_weights_sum_to_one_and_favour_late_iterations(t, weighting):
    w = iteration_weights(t, weighting)
    assert w.shape == (t,) and torch.isclose(w.sum(), torch.tensor(1.0)) and (w >= 0).all()
    assert bool((w[1:] >= w[:-1]).all())


def test_uniform_weighting_is_the_papers_cost_bit_for_bit():
    net = make()
    out = net(x_noisy(), iterations=3)
    x = x_noisy(seed=5)
    assert torch.equal(grouping_losses(out, x)["loss"], tag_cost(out, x).per_pixel)
    last = grouping_losses(out, x, "last")["loss"]
    torch.testing.assert_close(last, tag_cost(out, x).per_iteration[-1] / N)


def test_settings_reach_the_tag_config():
    s = TagSettings(projection_dim=7, mask_skip="input", z_skip=True, x_input=True, z_rank=2, init_logit_std=2.0,
                    projection_norm_steps=4)
    c = tag_config(s, LadderConfig(7, (4,)), pixels=N, noise_var=0.1, groups=2)
    assert (c.projection_dim, c.mask_skip, c.z_skip, c.x_input, c.z_rank, c.init_logit_std,
            c.projection_norm_steps) == (7, "input", True, True, 2, 2.0, 4)


@pytest.mark.slow
def test_lever_sweep_runs_and_writes_its_table(tmp_path):
    from experiments.mixture import levers

    out = tmp_path / "levers"
    assert levers.main(["--preset", "smoke", "--engines", "tagger", "--variants", "paper", "all",
                        "--out", str(out), "--steps", "3"]) == 0
    rows = json.loads((out / "levers.json").read_text())["rows"]
    assert [r["run"] for r in rows] == ["tagger-paper-seed0", "tagger-all-seed0"]
    assert len(rows[0]["ami"]) == levers.EVAL_ITERATIONS
    assert "tagger-all-seed0" in (out / "levers.md").read_text()
    config = json.loads((out / "tagger-all-seed0" / "config.json").read_text())["config"]
    assert config["tag"]["mask_skip"] == "output" and config["tag"]["z_rank"] == 4


@pytest.mark.slow
def test_ladder_decoder_lever_trains_an_rtagger_with_the_ladder_combinator(tmp_path):
    from experiments.mixture import levers

    out = tmp_path / "levers"
    assert levers.main(["--preset", "smoke", "--engines", "rtagger", "--variants", "+ladder_decoder",
                        "--out", str(out), "--steps", "3"]) == 0
    config = json.loads((out / "rtagger-+ladder_decoder-seed0" / "config.json").read_text())["config"]
    assert config["rladder"]["decoder_cell"] == "ladder" and config["rladder"]["combinator_sigmoid_v"] is True
    rows = json.loads((out / "levers.json").read_text())["rows"]
    assert len(rows) == 1 and all(-1.0 <= a <= 1.0 for a in rows[0]["ami"])  # AMI is adjusted for chance: may be < 0


def test_mixture_presets_carry_the_grouping_levers_and_papers_tag_switches_them_off():
    """Every ``mixture`` preset has the levers that made TAG group on; the sweep's
    ``PAPERS_TAG`` overrides give back exactly the papers' TAG (TagSettings' and
    RLadderConfig's own defaults)."""
    from dataclasses import replace

    from experiments.mixture.experiment import PAPERS_TAG, PRESETS
    from experiments.mixture.levers import variant_overrides
    from pgm_ladder.training.config import apply_overrides

    for make_preset in PRESETS.values():
        c = make_preset()
        assert (c.tag.mask_skip, c.tag.x_input, c.tag.projection_norm_steps) == ("output", True, 4)
        assert (c.rladder.decoder_cell, c.rladder.combinator_sigmoid_v, c.rladder.norm_steps) == ("ladder", True, 4)
        papers = apply_overrides(c, PAPERS_TAG)
        assert papers.tag == replace(TagSettings(), projection_dim=c.tag.projection_dim)
        assert papers.rladder == RLadderConfig(c.rladder.input_dim, c.rladder.hidden_dims)
    assert variant_overrides("paper") == list(PAPERS_TAG)
    assert variant_overrides("+x_input")[-1] == "tag.x_input=true"

"""Ladder (SPEC §3.1) and RLadder (SPEC §3.2) engines: shapes, validation, gradients,
ablation switches, the x_clean independence of the Ladder, and a learning sanity check."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F

from learned_inference import (EngineOutput, FrameOutput, IterationOutput, Ladder, LadderConfig,
                               RLadder, RLadderConfig, SequenceEngine, ShapeError, StepOutput, Tag,
                               TagConfig, build_engine)
from learned_inference.conv_rladder import ConvRLadder, ConvRLadderConfig
from learned_inference.temporal import TemporalRLadder, TemporalRLadderConfig

D, H, C, B = 8, (6, 5, 4), 3, 16
DTYPES = [torch.float32, torch.float64]
# (use_decoder, decoder_to_encoder)
ABLATIONS = [(True, True), (True, False), (False, True)]
RL_GRID = [(e, d, a) for e, d, a in itertools.product(("gru", "lstm"), ("g1", "ladder"), ABLATIONS)
           if not (d == "ladder" and not a[0])]  # no decoder: the decoder cell is irrelevant


def rladder(enc="gru", dec="g1", use_decoder=True, d2e=True, num_classes=C, **kw) -> RLadder:
    return RLadder(RLadderConfig(D, H, num_classes, encoder_cell=enc, decoder_cell=dec,
                                 use_decoder=use_decoder, decoder_to_encoder=d2e, **kw))


def ladder(num_classes=C, **kw) -> Ladder:
    return Ladder(LadderConfig(D, H, num_classes, **kw))


def randomise_combinators(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Move the combinators off the authors' init (a2 = a7 = 1, others 0), where
    ``dẑ/dz̃ = v = 0`` and ``dẑ/du = 0`` make several parameters' gradients exactly zero."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[-1] in {f"a{i}" for i in range(1, 11)}:
                p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def check_levels(out, widths, batch, dtype):
    assert [tuple(t.shape) for t in out.levels] == [(batch, w) for w in widths]
    assert all(t.dtype == dtype for t in out.levels)


# ---------------------------------------------------------------- shapes and counts

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_classes", [0, C])
def test_ladder_shapes_one_iteration(dtype, num_classes):
    model = ladder(num_classes).to(dtype)
    x = torch.randn(B, D, dtype=dtype)
    for k in (1, 4):
        out = model(x, iterations=k)
        assert isinstance(out, EngineOutput) and len(out.iterations) == 1
        it = out.last
        assert it.denoised.shape == (B, D) and it.denoised.dtype == dtype
        if num_classes:
            assert it.class_logits.shape == (B, C)
        else:
            assert it.class_logits is None
        check_levels(it, (D,) + H, B, dtype)
        assert it.levels[0] is it.denoised
        assert out.aux_cost.shape == () and out.aux_cost.dtype == dtype
    assert model.max_iterations == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("enc,dec,abl", RL_GRID)
def test_rladder_shapes_counts(enc, dec, abl, dtype):
    model = rladder(enc, dec, *abl).to(dtype)
    x = torch.randn(B, D, dtype=dtype)
    out = model(x, iterations=3)
    assert len(out.iterations) == 3 and model.max_iterations is None
    assert float(out.aux_cost) == 0.0 and out.aux_cost.dtype == dtype
    for it in out.iterations:
        assert it.denoised.shape == (B, D) and it.denoised.dtype == dtype
        assert it.class_logits.shape == (B, C)
        check_levels(it, (D,) + H, B, dtype)
    assert rladder(enc, dec, *abl, num_classes=0)(x.float()).last.class_logits is None


def test_rladder_step_api_matches_forward():
    torch.manual_seed(1)
    model = rladder("lstm", "g1").eval()
    x = torch.randn(B, D)
    out = model(x, iterations=3)
    carry = model.init_carry(B, x.device, x.dtype)
    for t in range(3):
        it, carry = model.step(x, carry)
        torch.testing.assert_close(it.denoised, out.iterations[t].denoised)


# ---------------------------------------------------------------- one sequence interface

def _sequence_case(kind: str, train: bool):
    """``(engine, frames [x_1..x_T], reference)``: ``reference[t]`` = ``(readout,
    class_logits, levels or None)`` at step ``t`` from the engine's ``forward``, float64, in
    training (batch statistics) or eval mode."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    T = 4
    if kind in ("rladder", "rtagger"):
        if kind == "rladder":
            engine = rladder("lstm", "g1")
        else:  # the RLadder inside an RTagger, fed (B·K, P) TAG inputs
            engine = Tag(TagConfig(7, RLadderConfig(D, H), noise_var=0.1, groups=3, num_classes=2)).engine
        engine = engine.double().train(train)
        x = torch.randn(B, D, generator=g, dtype=torch.float64)
        out = engine(x, iterations=T)  # the static input re-presented at every step
        return engine, [x] * T, [(it.denoised, it.class_logits, it.levels) for it in out.iterations]
    if kind == "temporal":
        engine = TemporalRLadder(TemporalRLadderConfig.make(5, (6, 4), top_dim=2)).double().train(train)
        x = torch.randn(B, T, 5, generator=g, dtype=torch.float64)
        out = engine(x, return_levels=True)
        return engine, list(x.unbind(1)), [(out.predictions[:, t], out.top[:, t], out.levels[t])
                                           for t in range(T)]
    engine = ConvRLadder(ConvRLadderConfig(image_size=8, channels=(2, 3), top_width=4, bottom_channels=2,
                                           num_classes=5, norm_steps=2)).double().train(train)
    x = torch.rand(3, T, 1, 8, 8, generator=g, dtype=torch.float64)
    out = engine(x, return_bottom=True)
    return engine, list(x.unbind(1)), [(out.predictions[:, t], out.class_logits[:, t], None)
                                       for t in range(T)]


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("kind", ["rladder", "rtagger", "temporal", "conv"])
def test_sequence_engines_step_frame_by_frame_equals_forward(kind, train):
    """RLadder (alone and inside an RTagger), TemporalRLadder and ConvRLadder implement
    :class:`SequenceEngine`; ``init_carry`` + ``step`` over the frames gives exactly the
    outputs of ``forward`` over the sequence, as :class:`StepOutput` s."""
    engine, frames, reference = _sequence_case(kind, train)
    assert isinstance(engine, SequenceEngine)
    x0 = frames[0]
    carry = engine.init_carry(x0.shape[0], x0.device, x0.dtype)
    for x_t, (readout, logits, levels) in zip(frames, reference, strict=True):
        out, carry = engine.step(x_t, carry)
        assert isinstance(out, StepOutput)
        assert isinstance(out, IterationOutput if kind in ("rladder", "rtagger") else FrameOutput)
        assert out.readout.dtype == torch.float64
        torch.testing.assert_close(out.readout, readout, rtol=0, atol=0)
        torch.testing.assert_close(out.class_logits, logits, rtol=0, atol=0)
        if levels is not None:
            for a, b in zip(out.levels, levels, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert carry.step == len(frames)


def test_step_output_is_abstract():
    with pytest.raises(TypeError):
        StepOutput()


# ---------------------------------------------------------------- input validation

@pytest.mark.parametrize("make", [ladder, rladder])
def test_wrong_width_raises_shape_error_naming_input(make):
    model = make()
    with pytest.raises(ShapeError, match=r"x_noisy.*\(batch, 8\)"):
        model(torch.randn(B, D + 1))
    with pytest.raises(ShapeError, match="x_noisy"):
        model(torch.randn(B, D, 1))
    with pytest.raises(ShapeError, match="x_clean"):
        model(torch.randn(B, D), x_clean=torch.randn(B, D - 1))


@pytest.mark.parametrize("make", [ladder, rladder])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_raises(make, bad):
    x = torch.randn(B, D)
    x[3, 2] = bad
    with pytest.raises(ValueError):
        make()(x)
    with pytest.raises(ValueError, match="iterations"):
        make()(torch.randn(B, D), iterations=0)


@pytest.mark.parametrize("kw,field", [
    (dict(input_dim=0), "input_dim"), (dict(hidden_dims=()), "hidden_dims"),
    (dict(hidden_dims=(4, 0)), "hidden_dims"), (dict(num_classes=-1), "num_classes"),
    (dict(encoder_cell="rnn"), "encoder_cell"), (dict(decoder_cell="g2"), "decoder_cell"),
    (dict(encoder_input_norm="group"), "encoder_input_norm"),
    (dict(decoder_norm="x"), "decoder_norm"), (dict(denoise_readout="mlp"), "denoise_readout"),
    (dict(use_decoder=1), "use_decoder"),
])
def test_rladder_config_validation(kw, field):
    args = dict(input_dim=D, hidden_dims=H) | kw
    with pytest.raises(ValueError, match=field):
        RLadderConfig(**args)


@pytest.mark.parametrize("kw,field", [
    (dict(input_dim=-2), "input_dim"), (dict(hidden_dims=[3, -1]), "hidden_dims"),
    (dict(layer_noise_std=-0.1), "layer_noise_std"),
    (dict(layer_noise_std=float("nan")), "layer_noise_std"),
    (dict(denoising_cost_weights=(1.0, 0.1)), "denoising_cost_weights"),
    (dict(denoising_cost_weights=(1.0, 0.1, -1.0, 0.1)), "denoising_cost_weights"),
    (dict(bn_eps=0.0), "bn_eps"),
])
def test_ladder_config_validation(kw, field):
    args = dict(input_dim=D, hidden_dims=H) | kw
    with pytest.raises(ValueError, match=field):
        LadderConfig(**args)


def test_ladder_config_defaults_and_build_engine():
    cfg = LadderConfig(D, [6, 5, 4])
    assert cfg.hidden_dims == H and cfg.denoising_cost_weights == (1.0, 0.1, 0.1, 0.1)
    assert cfg.bottom_cost_weight == 1.0
    assert isinstance(build_engine(cfg), Ladder)
    assert isinstance(build_engine(RLadderConfig(D, H)), RLadder)
    with pytest.raises(TypeError, match="config"):
        build_engine(object())


# ---------------------------------------------------------------- gradients

def assert_all_params_get_gradient(model, loss):
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert p.grad.abs().sum() > 0, f"{name}: gradient is zero everywhere"


def task_loss(out, targets, labels):
    loss = out.aux_cost
    for it in out.iterations:
        loss = loss + F.mse_loss(it.denoised, targets)
        if it.class_logits is not None:
            loss = loss + F.cross_entropy(it.class_logits, labels)
    return loss


@pytest.mark.parametrize("enc,dec,abl", RL_GRID)
def test_rladder_gradients_reach_every_parameter(enc, dec, abl):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = rladder(enc, dec, *abl).double()
    randomise_combinators(model, g)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B,), generator=g)
    out = model(x + 0.3 * torch.randn(B, D, generator=g, dtype=torch.float64), iterations=3)
    assert_all_params_get_gradient(model, task_loss(out, x, y))


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_ladder_gradients_reach_every_parameter(noise):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = ladder(layer_noise_std=noise).double()
    randomise_combinators(model, g)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B,), generator=g)
    out = model(x + 0.3 * torch.randn(B, D, generator=g, dtype=torch.float64), x_clean=x)
    assert_all_params_get_gradient(model, task_loss(out, x, y))


def test_no_decoder_means_no_decoder_parameters():
    model = rladder(use_decoder=False)
    assert model.decoder_cells is None
    names = [n for n, _ in model.named_parameters()]
    assert names and not any(n.startswith("decoder_cells") for n in names)
    # the encoder's level-1 cell sees x_noisy alone (no d inputs at all)
    assert model.encoder_cells[0].input_width == D
    assert rladder().encoder_cells[0].input_width == D + D + H[0]


# ---------------------------------------------------------------- decoder-to-encoder link

@pytest.mark.parametrize("dec", ["g1", "ladder"])
@pytest.mark.parametrize("enc", ["gru", "lstm"])
def test_decoder_to_encoder_switch_cuts_the_link(enc, dec):
    x = torch.randn(B, D)

    def encoder_outputs(model):
        seen = []
        hooks = [c.register_forward_hook(lambda m, i, o: seen.append(o[0].detach().clone()))
                 for c in model.encoder_cells]
        with torch.no_grad():
            model(x, iterations=3)
        for h in hooks:
            h.remove()
        L = len(model.encoder_cells)
        return [seen[t * L:(t + 1) * L] for t in range(3)]  # [iteration][level]

    for d2e in (False, True):
        torch.manual_seed(0)
        model = rladder(enc, dec, use_decoder=True, d2e=d2e).eval()
        before = encoder_outputs(model)
        with torch.no_grad():  # perturb every decoder parameter
            for p in model.decoder_cells.parameters():
                p.add_(torch.randn_like(p))
        after = encoder_outputs(model)
        for lvl in range(len(H)):  # iteration 1 never sees the decoder
            assert torch.equal(before[0][lvl], after[0][lvl])
        for t in (1, 2):
            same = all(torch.equal(before[t][lvl], after[t][lvl]) for lvl in range(len(H)))
            assert same == (not d2e), f"d2e={d2e}, iteration {t + 1}"


def test_bottom_decoder_output_reaches_encoder_cell_1():
    """Our bottom link: d_0,t-1 is concatenated to x_noisy as encoder cell 1's input, so
    changing only the level-0 decoder cell changes e_1 from iteration 2 on."""
    torch.manual_seed(0)
    model = rladder("gru", "g1").eval()
    x = torch.randn(B, D)
    seen = []
    model.encoder_cells[0].register_forward_hook(lambda m, i, o: seen.append(o[0].clone()))
    with torch.no_grad():
        model(x, iterations=2)
        for p in model.decoder_cells[0].parameters():
            p.add_(torch.randn_like(p))
        model(x, iterations=2)
    assert torch.equal(seen[0], seen[2]) and not torch.equal(seen[1], seen[3])


# ---------------------------------------------------------------- Ladder specifics

def test_ladder_aux_cost_zero_without_clean_positive_with():
    torch.manual_seed(0)
    model = ladder()
    x = torch.randn(B, D)
    xn = x + 0.5 * torch.randn(B, D)
    assert model(xn).aux_cost.item() == 0.0
    assert model(xn, x_clean=x).aux_cost.item() > 0.0
    model.eval()
    assert model(xn, x_clean=x).aux_cost.item() > 0.0


@pytest.mark.parametrize("train", [True, False])
def test_ladder_outputs_do_not_depend_on_x_clean(train):
    torch.manual_seed(0)
    base = ladder(layer_noise_std=0.3)
    randomise_combinators(base, torch.Generator().manual_seed(1))
    x = torch.randn(B, D)
    xn = x + 0.5 * torch.randn(B, D)
    models = [copy.deepcopy(base).train(train) for _ in range(2)]
    outs = []
    for model, clean in zip(models, (None, x)):
        torch.manual_seed(5)  # same layer-noise draws
        outs.append(model(xn, x_clean=clean).last)
    a, b = outs
    torch.testing.assert_close(a.denoised, b.denoised, rtol=0, atol=0)
    torch.testing.assert_close(a.class_logits, b.class_logits, rtol=0, atol=0)
    for la, lb in zip(a.levels, b.levels):
        torch.testing.assert_close(la, lb, rtol=0, atol=0)
    for (n, ba), (_, bb) in zip(models[0].named_buffers(), models[1].named_buffers()):
        assert torch.equal(ba, bb), f"{n}: the clean path changed the BN statistics"


def test_ladder_matches_hand_computation_train_mode():
    """One hidden level, float64, training mode: Algorithm 1 of Rasmus et al. written out."""
    g = torch.Generator().manual_seed(0)
    model = Ladder(LadderConfig(4, (3,), num_classes=2, denoising_cost_weights=(1.0, 0.7)))
    model = model.double()
    randomise_combinators(model, g)
    with torch.no_grad():
        model.beta[0].copy_(torch.randn(3, generator=g))
        model.gamma[0].copy_(torch.rand(3, generator=g) + 0.5)
    x = torch.randn(10, 4, generator=g, dtype=torch.float64)
    xn = x + 0.4 * torch.randn(10, 4, generator=g, dtype=torch.float64)
    eps = model.config.bn_eps

    def bn(t):
        return (t - t.mean(0)) / torch.sqrt(t.var(0, unbiased=False) + eps)

    def comb(c, z, u):
        a = [None] + [getattr(c, f"a{i}") for i in range(1, 11)]
        mu = a[1] * torch.sigmoid(a[2] * u + a[3]) + a[4] * u + a[5]
        v = a[6] * torch.sigmoid(a[7] * u + a[8]) + a[9] * u + a[10]
        return (z - mu) * v + mu

    W, V = model.enc_linear[0].weight, model.dec_linear[0].weight
    act = lambda z: torch.relu(model.gamma[0] * (z + model.beta[0]))  # noqa: E731
    z1 = bn(xn @ W.T)
    h1 = act(z1)
    zh1 = comb(model.combinators[1], z1, bn(h1))
    zh0 = comb(model.combinators[0], xn, bn(zh1 @ V.T))
    pre = x @ W.T
    mu, sd = pre.mean(0), torch.sqrt(pre.var(0, unbiased=False) + eps)
    cost = 0.7 * (((zh1 - mu) / sd - (pre - mu) / sd) ** 2).sum(1).mean() / 3
    with torch.no_grad():
        out = model(xn, x_clean=x)
        torch.testing.assert_close(out.last.denoised, zh0)
        torch.testing.assert_close(out.last.levels[1], zh1)
        torch.testing.assert_close(out.last.class_logits, model.head(h1))
        torch.testing.assert_close(out.aux_cost, cost)


# ---------------------------------------------------------------- learning sanity

def test_rladder_learns_to_denoise_better_than_identity():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    dim, rank, sigma_n = 8, 2, 0.5
    A = torch.randn(dim, rank, generator=g) / rank ** 0.5

    def batch(n):
        x = torch.randn(n, rank, generator=g) @ A.T
        return x, x + sigma_n * torch.randn(n, dim, generator=g)

    model = RLadder(RLadderConfig(dim, (16, 8), encoder_cell="gru", decoder_cell="g1"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        x, xn = batch(128)
        loss = sum(F.mse_loss(it.denoised, x) for it in model(xn, iterations=2).iterations)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, xn = batch(2048)
    with torch.no_grad():
        mse = F.mse_loss(model(xn, iterations=2).last.denoised, x).item()
    identity = F.mse_loss(xn, x).item()  # about sigma_n^2 = 0.25
    assert mse < 0.6 * identity, (mse, identity)


@pytest.mark.parametrize("make", [ladder, rladder])
def test_float64_input_to_a_float32_engine_names_the_cast(make):
    model = make()
    with pytest.raises(TypeError, match=r"x_noisy: dtype torch.float64 but the engine's parameters are "
                                        r"torch.float32; pass x_noisy.float\(\)"):
        model(torch.randn(B, D, dtype=torch.float64))
    with pytest.raises(TypeError, match="x_clean: dtype torch.float64"):
        model(torch.randn(B, D), x_clean=torch.randn(B, D, dtype=torch.float64))


def test_float64_frames_to_a_float32_temporal_engine_name_the_cast():
    engine = TemporalRLadder(TemporalRLadderConfig.make(obs_dim=D, hidden_dims=(6, 5)))
    with pytest.raises(TypeError, match=r"x_noisy: dtype torch.float64 .* pass x_noisy.float\(\)"):
        engine(torch.randn(B, 3, D, dtype=torch.float64))

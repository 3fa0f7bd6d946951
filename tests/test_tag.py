"""TAG framework (SPEC §3.3): Tagger (TAG + Ladder) and RTagger (TAG + RLadder)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from explicit_models.tagger_vb import mask_likelihood, mean_gradient
from learned_inference import (Ladder, LadderConfig, RLadder, RLadderConfig, RTagger,
                               SequenceEngine, ShapeError, Tag, TagConfig, TagIteration, TagOutput,
                               Tagger, build_engine, build_inner_engine, group_class_log_probs,
                               tag_class_nll, tag_cost)

N, P, B, C = 12, 10, 5, 4
KINDS = ["tagger", "rtagger"]


def engine_config(kind: str):
    if kind == "tagger":
        return LadderConfig(P, (8, 6), combinator_sigmoid_v=True)
    return RLadderConfig(P, (8, 6))


def make(kind="tagger", dtype=torch.float64, seed=0, **kw) -> Tag:
    torch.manual_seed(seed)
    kw.setdefault("noise_var", 0.05)
    kw.setdefault("num_classes", C)
    model = Tag(TagConfig(N, engine_config(kind), projection_dim=P, **kw)).to(dtype)
    return model


def gen(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def x_noisy(dtype=torch.float64, b=B, seed=1) -> torch.Tensor:
    return torch.randn(b, N, generator=gen(seed), dtype=dtype)


def assert_same(a: TagOutput, b: TagOutput) -> None:
    for ia, ib in zip(a.iterations, b.iterations, strict=True):
        for name in ("z", "mask", "mask_logits", "delta_z", "mask_likelihood", "class_probs"):
            torch.testing.assert_close(getattr(ia, name), getattr(ib, name), rtol=0, atol=0)


# ------------------------------------------------------------------------- shapes, config
@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_mask_normalisation(kind):
    model = make(kind)
    out = model(x_noisy(), iterations=3, generator=gen())
    assert isinstance(out, TagOutput) and len(out.iterations) == 3
    assert out.last is out.iterations[-1]
    assert float(out.aux_cost) == 0.0
    for it in out.iterations:
        assert isinstance(it, TagIteration)
        for name in ("z", "mask", "mask_logits", "delta_z", "mask_likelihood"):
            assert getattr(it, name).shape == (B, 3, N), name
        assert it.denoised.shape == (B, N) and it.class_probs.shape == (B, C)
        torch.testing.assert_close(it.mask.sum(1), torch.ones(B, N, dtype=torch.float64))
        torch.testing.assert_close(it.mask_likelihood.sum(1), torch.ones(B, N, dtype=torch.float64))
        torch.testing.assert_close(it.denoised, (it.mask * it.z).sum(1))
        assert it.levels == [] and it.engine.denoised.shape == (B * 3, P)


@pytest.mark.parametrize("kind", KINDS)
def test_other_groups_and_iterations_at_evaluation(kind):
    model = make(kind, groups=2)
    model.train()
    model(x_noisy(), iterations=2, generator=gen())
    model.eval()
    out = model(x_noisy(), iterations=5, groups=4, generator=gen())
    assert len(out.iterations) == 5 and out.last.z.shape == (B, 4, N)
    torch.testing.assert_close(out.last.mask.sum(1), torch.ones(B, N, dtype=torch.float64))
    out1 = model(x_noisy(), groups=1)
    torch.testing.assert_close(out1.last.mask, torch.ones(B, 1, N, dtype=torch.float64))


def test_engine_config_is_adapted_and_factory_builds():
    cfg = TagConfig(N, LadderConfig(3, (8,), num_classes=7), noise_var=0.1, projection_dim=P,
                    num_classes=C)
    assert cfg.engine.input_dim == P and cfg.engine.num_classes == C + 1
    cfg2 = TagConfig(N, RLadderConfig(P, (8,), num_classes=3), noise_var=0.1)
    assert cfg2.projection_dim == P and cfg2.engine.num_classes == 0 and cfg2.recurrent
    assert type(build_engine(cfg)) is Tag and not build_engine(cfg).recurrent
    assert build_engine(cfg2).recurrent
    assert isinstance(Tagger(cfg), Tag) and isinstance(RTagger(cfg2), Tag)
    with pytest.raises(ValueError, match="engine"):
        Tagger(cfg2)
    with pytest.raises(ValueError, match="engine"):
        RTagger(cfg)


def test_inner_engine_is_built_by_the_tag_module():
    """The inner engine comes from :func:`build_inner_engine` (no factory import: the
    package's import graph is acyclic); an RTagger's RLadder is a SequenceEngine."""
    assert type(build_inner_engine(LadderConfig(P, (4,)))) is Ladder
    assert type(build_inner_engine(RLadderConfig(P, (4,)))) is RLadder
    with pytest.raises(TypeError, match="engine"):
        build_inner_engine(TagConfig(N, LadderConfig(P, (4,)), noise_var=0.1))
    assert isinstance(make("rtagger").engine, SequenceEngine)
    assert not isinstance(make("tagger").engine, SequenceEngine)


@pytest.mark.parametrize("field,value", [
    ("input_dim", 0), ("groups", 0), ("groups", 1.5), ("projection_dim", -1),
    ("likelihood", "poisson"), ("noise_var", -0.1), ("noise_var", math.nan),
    ("num_classes", -1), ("init_mean", math.inf), ("projection_norm", "group"),
    ("init_variance", 0.0), ("min_variance", 0.0), ("engine", "ladder"),
])
def test_invalid_config_fields(field, value):
    kw = dict(input_dim=N, engine=LadderConfig(P, (4,)), noise_var=0.1)
    kw[field] = value
    with pytest.raises(ValueError, match=field):
        TagConfig(**kw)


@pytest.mark.parametrize("kw,field", [
    (dict(noise_var=0.0), "noise_var"), (dict(noise_var=0.5), "noise_var"),
    (dict(noise_var=0.1, init_mean=1.5), "init_mean")])
def test_invalid_bernoulli_fields(kw, field):
    with pytest.raises(ValueError, match=field):
        TagConfig(N, LadderConfig(P, (4,)), likelihood="bernoulli", **kw)


def test_input_validation():
    model = make()
    with pytest.raises(ShapeError, match="x_noisy"):
        model(torch.zeros(B, N + 1, dtype=torch.float64))
    with pytest.raises(ShapeError, match="x_noisy"):
        model(torch.zeros(B, 2, N, dtype=torch.float64))
    bad = x_noisy()
    bad[0, 3] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        model(bad)
    with pytest.raises(ValueError, match="iterations"):
        model(x_noisy(), iterations=0)
    with pytest.raises(ValueError, match="groups"):
        model(x_noisy(), groups=0)
    with pytest.raises(ShapeError, match="x_clean"):
        model(x_noisy(), x_clean=torch.zeros(B, 3, dtype=torch.float64))
    bern = make(likelihood="bernoulli")
    with pytest.raises(ValueError, match="binary"):
        bern(x_noisy())


# ------------------------------------------------------------------ independence, memory
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("training", [True, False])
def test_x_clean_does_not_change_outputs(kind, training):
    model = make(kind).train(training)
    x = x_noisy()
    a = model(x, iterations=3, generator=gen(3))
    b = model(x, iterations=3, generator=gen(3), x_clean=torch.randn(B, N, dtype=torch.float64))
    assert_same(a, b)
    assert float(b.aux_cost) == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_generator_makes_init_reproducible(kind):
    model = make(kind).eval()
    a = model(x_noisy(), iterations=2, generator=gen(7))
    b = model(x_noisy(), iterations=2, generator=gen(7))
    c = model(x_noisy(), iterations=2, generator=gen(8))
    assert_same(a, b)
    assert not torch.equal(a.last.z, c.last.z)
    z, logits = model.init_estimates(B, 3, torch.device("cpu"), torch.float64, gen(7))
    assert torch.all(z == model.config.init_mean)
    torch.testing.assert_close(logits, torch.randn(B, 3, N, generator=gen(7), dtype=torch.float64))


def test_rtagger_carry_persists():
    model = make("rtagger").eval()
    x = x_noisy()
    out = model(x, iterations=2, generator=gen())
    first = out.iterations[0]
    fresh, _ = model.step(x, first.z, first.mask, carry=None)
    assert not torch.allclose(fresh.z, out.iterations[1].z)
    # replaying with the carried state reproduces iteration 2 exactly
    z0, logits0 = model.init_estimates(B, 3, x.device, x.dtype, gen())
    carry0 = model.init_carry(B, 3, x.device, x.dtype)
    it1, carry = model.step(x, z0, torch.softmax(logits0, 1), carry0)
    it2, _ = model.step(x, it1.z, it1.mask, carry)
    torch.testing.assert_close(it2.z, out.iterations[1].z, rtol=0, atol=0)


def test_tagger_has_no_memory():
    model = make("tagger").eval()
    x = x_noisy()
    out = model(x, iterations=3, generator=gen())
    for t in (1, 2):
        prev = out.iterations[t - 1]
        again, carry = model.step(x, prev.z, prev.mask)
        assert carry is None
        for name in ("z", "mask", "class_probs"):
            torch.testing.assert_close(getattr(again, name), getattr(out.iterations[t], name),
                                       rtol=0, atol=0)


def test_tag_inputs_come_from_tagger_vb():
    model = make().eval()
    x = x_noisy()
    out = model(x, iterations=2, generator=gen())
    prev, it = out.iterations[0], out.iterations[1]
    lam = model.config.noise_var + model.variance
    torch.testing.assert_close(it.delta_z, mean_gradient(x, prev.z, prev.mask, lam))
    torch.testing.assert_close(it.mask_likelihood, mask_likelihood(x, prev.z, lam))
    # iteration 1: uniform z ⇒ L(m) uniform, δz = m (x̃ − z)/λ
    first = out.iterations[0]
    torch.testing.assert_close(first.mask_likelihood, torch.full_like(first.z, 1 / 3))
    m0 = torch.softmax(model.init_estimates(B, 3, x.device, x.dtype, gen())[1], 1)
    torch.testing.assert_close(first.delta_z, m0 * (x.unsqueeze(1) - model.config.init_mean) / lam)


# ------------------------------------------------------------------------------- costs
def test_gaussian_cost_equals_hand_computed_mixture_nll():
    z = [[[0.0, 1.0], [2.0, -1.0]]]  # (B=1, K=2, N=2)
    logits = [[[0.3, -0.2], [-0.1, 0.5]]]
    v = 0.7
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    it = TagIteration(denoised=t([[0.0, 0.0]]), class_logits=None, z=t(z),
                      mask=torch.softmax(t(logits), 1), mask_logits=t(logits), delta_z=t(z),
                      mask_likelihood=t(z))
    it2 = TagIteration(denoised=t([[0.0, 0.0]]), class_logits=None, z=t(z) + 0.5,
                       mask=torch.softmax(t(logits), 1), mask_logits=t(logits), delta_z=t(z),
                       mask_likelihood=t(z))
    out = TagOutput(iterations=[it, it2], aux_cost=t(0.0), variance=t(v))
    x = [0.4, -0.3]

    def nll(shift):
        total = 0.0
        for i in range(2):
            ms = [math.exp(logits[0][k][i]) for k in range(2)]
            p = sum(ms[k] / sum(ms) * math.exp(-(x[i] - z[0][k][i] - shift) ** 2 / (2 * v))
                    / math.sqrt(2 * math.pi * v) for k in range(2))
            total -= math.log(p)
        return total

    cost = tag_cost(out, t([x]))
    torch.testing.assert_close(cost.per_iteration, t([nll(0.0), nll(0.5)]))
    torch.testing.assert_close(cost.total, t((nll(0.0) + nll(0.5)) / 2))
    torch.testing.assert_close(cost.per_pixel, cost.total / 2)


@pytest.mark.parametrize("kind", KINDS)
def test_bernoulli_variant_and_bce_cost(kind):
    model = make(kind, likelihood="bernoulli", noise_var=0.1, init_mean=0.5, num_classes=0)
    assert model.variance is None
    xc = (torch.rand(B, N, generator=gen(2)) < 0.4).double()
    xn = torch.where(torch.rand(B, N, generator=gen(3)) < 0.1, 1 - xc, xc)
    out = model(xn, iterations=2, generator=gen())
    assert out.variance is None and out.last.class_probs is None
    for it in out.iterations:
        assert torch.all((it.z > 0) & (it.z < 1))
        assert torch.isfinite(it.delta_z).all()
    expect = torch.stack([F.binary_cross_entropy((it.mask * it.z).sum(1), xc, reduction="none")
                          .sum(-1).mean() for it in out.iterations]).mean()
    torch.testing.assert_close(tag_cost(out, xc).total, expect)


def test_class_probs_and_no_class_unit():
    model = make()
    out = model(x_noisy(), iterations=2, generator=gen())
    for it in out.iterations:
        s = it.class_probs.sum(-1)
        assert torch.all(s <= 1 + 1e-12) and torch.all(it.class_probs >= 0)
        torch.testing.assert_close(it.class_log_probs.exp(), it.class_probs)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    # group 0 all "no class", group 1 says class 2: the no-class group contributes nothing
    logits = t([[[0.0, 0.0, 0.0, 50.0], [0.0, 0.0, 50.0, 0.0]]])
    torch.testing.assert_close(group_class_log_probs(logits).exp(), t([[0.0, 0.0, 1.0]]),
                               atol=1e-12, rtol=0)
    # two groups, two classes: the result is the normalised sum of the dropped-no-class softmaxes
    logits = t([[[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]])
    q = torch.softmax(logits, -1)[..., :-1]
    torch.testing.assert_close(group_class_log_probs(logits).exp(), q.sum(1) / q.sum())
    # all mass on "no class" everywhere: still finite and normalised
    p = group_class_log_probs(t([[[0.0, 0.0, 900.0], [0.0, 5.0, 900.0]]])).exp()
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p.sum(-1), t([1.0]))
    labels = torch.tensor([0, 1, 2, 3, 0])
    nll = tag_class_nll(out, labels)
    torch.testing.assert_close(nll, -out.last.class_log_probs[torch.arange(B), labels].mean())
    with pytest.raises(ValueError, match="num_classes"):
        tag_class_nll(make(num_classes=0)(x_noisy()), labels)


# ---------------------------------------------------------------------------- training
@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter(kind):
    model = make(kind)
    with torch.no_grad():  # move Ladder combinators off their init (exact-zero gradients there)
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[-1] in {f"a{i}" for i in range(1, 11)}:
                p.add_(0.5 * torch.randn(p.shape, generator=gen(4), dtype=p.dtype))
    x = x_noisy()
    out = model(x + 0.1 * torch.randn(B, N, dtype=x.dtype), iterations=2, generator=gen())
    loss = tag_cost(out, x).total + tag_class_nll(out, torch.tensor([0, 1, 2, 3, 0]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def toy_batch(b: int, g: torch.Generator, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Two constant-intensity groups (random segmentation, dark/bright levels) + noise 0.1."""
    seg = (torch.rand(b, n, generator=g) < 0.5).float()
    dark, bright = 0.4 * torch.rand(b, 1, generator=g), 0.6 + 0.4 * torch.rand(b, 1, generator=g)
    x = seg * bright + (1 - seg) * dark
    return x, x + 0.1 * torch.randn(b, n, generator=g)


@pytest.mark.parametrize("kind", KINDS)
def test_short_training_reduces_cost(kind):
    torch.manual_seed(0)
    eng = (LadderConfig(16, (16, 8), combinator_sigmoid_v=True) if kind == "tagger"
           else RLadderConfig(16, (16, 8)))
    model = Tag(TagConfig(16, eng, noise_var=0.01, groups=2, init_mean=0.5, init_variance=0.1))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x_eval, xn_eval = toy_batch(256, gen(99))

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            c = model.cost(model(xn_eval, 3, generator=gen(5)), x_eval).per_pixel.item()
        model.train()
        return c

    before = evaluate()
    g = gen(1)
    for _ in range(150):
        x, xn = toy_batch(32, g)
        loss = model.cost(model(xn, 3, generator=g), x).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate()
    assert after < before - 1.0, (before, after)

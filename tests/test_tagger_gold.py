"""The multi-chain NUTS gold standard of the Tagger mixture (SPEC §2.3): chains relabelled to
one labelling of the groups before split-r̂ on ``h``, and the chains' average against exact
enumeration."""
import itertools

import pytest
import torch
from hypothesis import given, settings, strategies as st

from explicit_models import TaggerMixture
from explicit_models import tagger_gold as tg
from explicit_models import tagger_relabel as rl
from explicit_models.testing import F64, tiny_model

DIAGNOSTIC_KEYS = {"r_hat_max", "r_hat_h_max", "r_hat_h_fraction_ok", "worst_images", "r_hat_h_worst", "num_chains",
                   "r_hat_loglik_max", "n_eff_min", "n_eff_loglik_min", "divergences", "step_size",
                   "loglik_chain_spread_max", "relabelled_fraction", "relabelled_draw_fraction", "aligned",
                   "alignment"}


# ---------------------------------------------------------------- alignment
@settings(max_examples=30)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 7), st.integers(0, 2 ** 31 - 1))
def test_align_chains_recovers_known_permutations(C, B, K, seed):
    """Chains that are copies of chain 0 with their groups permuted (a random permutation
    per chain and image) are relabelled back to chain 0 exactly (K ≤ 6: all K! permutations
    scored; K = 7: the Hungarian method)."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.softmax(3.0 * torch.randn(B, K, 10, generator=g, dtype=F64), dim=1)
    sigma = torch.stack([torch.stack([torch.randperm(K, generator=g) for _ in range(B)]) for _ in range(C)])
    sigma[0] = torch.arange(K)
    chains = torch.stack([torch.stack([ref[b, sigma[c, b]] for b in range(B)]) for c in range(C)])  # (C, B, K, N)
    perms = rl.align_chains(chains)
    assert perms.shape == (C, B, K)
    torch.testing.assert_close(rl.relabel_groups(chains, perms, 2), ref.expand(C, B, K, 10))
    # chain c's group σ⁻¹(k) carries the reference's group k
    torch.testing.assert_close(sigma.gather(-1, perms), torch.arange(K).expand(C, B, K))


def test_align_chains_hand_case_with_noise_and_an_odd_chain_0():
    """K = 3, two images; chain 1 swaps groups 0 and 2 on image 0 and rotates them on image 1;
    the match survives noise of a third of the signal."""
    ref = torch.tensor([[[0.9, 0.8, 0.1, 0.1, 0.0, 0.0],
                         [0.1, 0.1, 0.8, 0.9, 0.1, 0.0],
                         [0.0, 0.1, 0.1, 0.0, 0.9, 1.0]]], dtype=F64).expand(2, 3, 6)
    noise = 0.3 * torch.rand(2, 2, 3, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
    chain1 = torch.stack([ref[0, [2, 1, 0]], ref[1, [1, 2, 0]]])
    chains = torch.stack([ref, chain1]) + noise
    perms = rl.align_chains(chains)
    assert perms[0].tolist() == [[0, 1, 2], [0, 1, 2]]
    # chain 1's group 2 carries reference group 0 on image 0; on image 1 its group 2 carries group 0
    assert perms[1].tolist() == [[2, 1, 0], [2, 0, 1]]


def test_relabel_draws_undoes_within_chain_swaps():
    """Draws that swap two groups back and forth (as a chain does when two groups look alike)
    all come out in one labelling, whichever labelling the majority had."""
    g = torch.Generator().manual_seed(2)
    ref = torch.softmax(3.0 * torch.randn(2, 3, 12, generator=g, dtype=F64), dim=1)  # (B, K, N)
    swaps = torch.rand(40, 2, generator=g) < 0.3
    draws = torch.stack([torch.stack([ref[b, [1, 0, 2]] if swaps[m, b] else ref[b] for b in range(2)])
                         for m in range(40)])
    draws = draws + 0.02 * torch.rand(draws.shape, generator=g, dtype=F64)
    perms = rl.relabel_draws(draws)
    out = rl.relabel_groups(draws, perms, 2)
    torch.testing.assert_close(out, ref.expand_as(out), atol=0.02, rtol=0.0)
    assert bool((perms[swaps] == torch.tensor([1, 0, 2])).all() and (perms[~swaps] == torch.arange(3)).all())


def test_best_permutations_is_the_brute_force_maximum():
    sim = torch.randn(50, 4, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    got = rl._best_permutations(sim)
    for m, p in zip(sim, got):
        best = max(itertools.permutations(range(4)), key=lambda s: float(sum(m[k, s[k]] for k in range(4))))
        assert tuple(p.tolist()) == best


def test_relabel_groups_moves_the_group_axis_of_h():
    h = torch.arange(2 * 3 * 2 * 3 * 1, dtype=F64).reshape(2, 3, 2, 3, 1)  # (C, S, B, K, d)
    perms = torch.tensor([[[0, 1, 2], [0, 1, 2]], [[2, 0, 1], [1, 0, 2]]])
    out = rl.relabel_groups(h, perms, 3)
    assert torch.equal(out[0], h[0])
    assert torch.equal(out[1, :, 0], h[1, :, 0][:, [2, 0, 1]])
    assert torch.equal(out[1, :, 1], h[1, :, 1][:, [1, 0, 2]])


def test_groups_exchangeable():
    assert rl.groups_exchangeable(TaggerMixture.textures(3, 3, 3, num_freqs=1))
    assert not rl.groups_exchangeable(TaggerMixture.textures(3, 3, 3, num_freqs=1, offset_spread=1.0))
    assert not rl.groups_exchangeable(tiny_model("gaussian", K=2))


# ---------------------------------------------------------------- multi-chain NUTS
def _two_amplitudes():
    """Exchangeable K = 2, d = 1 model whose groups are two constant intensities ``3 h_k``: two
    images, half their pixels near +3 and half near −3, so the posterior over ``h`` has two
    well-separated label-swapped modes near ``(±1, ∓1)`` and NUTS never switches between them."""
    N = 8
    model = TaggerMixture(3.0 * torch.ones(N, 1, dtype=F64), torch.zeros(N, dtype=F64),
                          torch.tensor([0.1, 0.1], dtype=F64), 0.3)
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[3.0] * 4 + [-3.0] * 4, [-3.0, 3.0] * 4], dtype=F64) + 0.3 * torch.randn(2, N, generator=g,
                                                                                                  dtype=F64)
    start = torch.tensor([[[1.0], [-1.0]], [[-1.0], [1.0]]], dtype=F64)  # (B, K, d): image 0 (+, −), image 1 (−, +)
    return model, x, start


def test_a_deliberately_permuted_chain_is_realigned():
    """Chain 1 starts in the label-swapped mode of image 0: relabelled, the four chains agree
    (r̂ ≤ 1.05 on h, the diagnostics keys present, exactly one (chain, image) relabelled);
    without relabelling the same draws give a huge r̂."""
    model, x, start = _two_amplitudes()
    starts = start.expand(4, 2, 2, 1).clone()
    starts[1, 0] = starts[1, 0].flip(0)
    kw = dict(num_chains=4, init=starts, seed=3)
    gold = model.gold_standard(x, 60, 60, **kw)
    d = gold.diagnostics
    assert DIAGNOSTIC_KEYS <= set(d) and d["aligned"] and d["num_chains"] == 4
    assert d["alignment"] == "draws" and d["relabelled_draw_fraction"] == 0.0  # no swaps within a chain
    assert gold.per_image["perms"][:, 0].tolist() == [[0, 1], [1, 0], [0, 1], [0, 1]]
    assert gold.per_image["perms"][:, 1].tolist() == [[0, 1]] * 4
    assert d["relabelled_fraction"] == pytest.approx(1 / 8)
    assert d["r_hat_h_max"] <= 1.05 and d["r_hat_h_fraction_ok"] == 1.0 and d["r_hat_max"] == d["r_hat_h_max"]
    assert d["r_hat_loglik_max"] <= 1.05 and d["divergences"] == 0
    assert gold.samples.shape == (240, 2, 2, 1) and gold.chain_samples.shape == (4, 60, 2, 2, 1)
    # every relabelled chain sits in chain 0's mode: h_0 > 0 > h_1 on image 0, h_0 < 0 < h_1 on image 1
    hs = gold.chain_samples
    assert bool((hs[:, :, 0, 0, 0] > 0).all() and (hs[:, :, 0, 1, 0] < 0).all())
    assert bool((hs[:, :, 1, 0, 0] < 0).all() and (hs[:, :, 1, 1, 0] > 0).all())
    # the averaged assignments are as sharp as one chain's (a mixed labelling would give 1/2)
    assert bool(((gold.assign_probs - 0.5).abs() > 0.45).all())
    chains_only = model.gold_standard(x, 60, 60, align="chains", **kw)
    assert chains_only.diagnostics["alignment"] == "chains"
    torch.testing.assert_close(chains_only.samples, gold.samples)  # same seed, nothing to relabel per draw
    raw = model.gold_standard(x, 60, 60, align=False, **kw).diagnostics
    assert not raw["aligned"] and raw["r_hat_h_max"] > 2.0 and raw["worst_images"][0] == 0
    assert raw["r_hat_h_fraction_ok"] == 0.5 and raw["r_hat_loglik_max"] <= 1.05


@pytest.mark.slow
def test_four_chains_agree_with_exact_enumeration_three_groups():
    """Four chains (default VB starts with jitter) on a tiny non-exchangeable model (K = 3,
    N = 6, d = 2, 3 images; K = 2 and the binary model: test_tagger_exact): every assign_prob
    within 5 Monte-Carlo standard errors + 0.005 of the exact p(z_i=k | x̃) by enumeration;
    split-r̂ across chains ≤ 1.05 on h and on the log likelihood."""
    K = 3
    model = tiny_model("gaussian", K=K, N=6, d=2)
    x = model.sample(3, torch.Generator().manual_seed(4)).x_noisy
    exact = model.exact_assignment_posterior(x)
    gold = model.gold_standard(x, 150, 150, seed=0, vb_restarts=8, vb_iters=20)
    d = gold.diagnostics
    assert d["num_chains"] == 4 and not d["aligned"] and gold.samples.shape == (600, 3, K, 2)
    assert d["r_hat_h_max"] <= 1.05 and d["r_hat_loglik_max"] <= 1.05 and d["divergences"] == 0, d
    assert float(gold.assign_probs_se.max()) < 0.05
    err = (gold.assign_probs - exact).abs()
    assert bool((err <= 5 * gold.assign_probs_se + 0.005).all()), (float(err.max()), d)


def test_chain_starts_are_distinct_and_invalid_options_are_refused():
    model = tiny_model("gaussian", K=2, N=4, d=1)
    x = model.sample(2, torch.Generator().manual_seed(0)).x_noisy
    h0, name = tg._chain_starts(model, x, 3, "vb", 2.0, 4, 5, seed=0)
    assert h0.shape == (3, 2, 2, 1) and "jitter" in name
    assert not torch.allclose(h0[0], h0[1]) and not torch.allclose(h0[1], h0[2])
    with pytest.raises(ValueError, match="num_chains"):
        model.gold_standard(x, 10, 10, num_chains=0)
    with pytest.raises(ValueError, match="align"):
        model.gold_standard(x, 10, 10, align="yes")
    with pytest.raises(ValueError, match="init"):
        model.gold_standard(x, 10, 10, init=torch.zeros(5, 2, 2, 1, dtype=F64))

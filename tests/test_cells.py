"""Cells of the learned engines (SPEC §3.1 combinator, §3.2 encoder/decoder cells)."""
from __future__ import annotations

import pytest
import torch

from learned_inference import (G1DecoderCell, GRUEncoderCell, LadderCombinator,
                               LadderCombinatorDecoderCell, LSTMEncoderCell, ShapeError,
                               build_decoder_cell, build_encoder_cell, make_norm)


def _a(comb: LadderCombinator, i: int) -> torch.nn.Parameter:
    return getattr(comb, f"a{i}")


def test_combinator_init_is_authors_and_outputs_zero():
    comb = LadderCombinator(5)
    for i in range(1, 11):
        want = 1.0 if i in (2, 7) else 0.0
        assert torch.equal(_a(comb, i).data, torch.full((5,), want)), f"a{i}"
    z, u = torch.randn(4, 5), torch.randn(4, 5)
    # mu(u) = 0 * sig(u) + 0, v(u) = 0 * sig(u) + 0  ->  z_hat = z * 0 + 0
    assert torch.equal(comb(z, u), torch.zeros(4, 5))


def test_combinator_special_settings():
    comb = LadderCombinator(3)
    z, u = torch.randn(6, 3), torch.randn(6, 3)
    with torch.no_grad():
        _a(comb, 4).fill_(1.0)  # mu(u) = u, v(u) = 0  ->  z_hat = u
    torch.testing.assert_close(comb(z, u), u)
    with torch.no_grad():
        _a(comb, 10).fill_(1.0)  # v = 1  ->  z_hat = z
    torch.testing.assert_close(comb(z, u), z)


def test_combinator_matches_hand_computation_float64():
    g = torch.Generator().manual_seed(3)
    comb = LadderCombinator(4).double()
    a = torch.randn(10, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for i in range(1, 11):
            _a(comb, i).copy_(a[i - 1])
    z = torch.randn(7, 4, generator=g, dtype=torch.float64)
    u = torch.randn(7, 4, generator=g, dtype=torch.float64)
    sig = lambda t: 1 / (1 + torch.exp(-t))  # noqa: E731
    mu = a[0] * sig(a[1] * u + a[2]) + a[3] * u + a[4]
    v = a[5] * sig(a[6] * u + a[7]) + a[8] * u + a[9]
    torch.testing.assert_close(comb(z, u), (z - mu) * v + mu)
    comb.sigmoid_v = True
    torch.testing.assert_close(comb(z, u), (z - mu) * sig(v) + mu)


def test_combinator_broadcasts_per_channel_for_conv_layout():
    comb = LadderCombinator(3)
    with torch.no_grad():
        _a(comb, 5).copy_(torch.tensor([1.0, 2.0, 3.0]))  # mu = a5 per channel, v = 0
    out = comb(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4))
    assert torch.equal(out[:, 1], torch.full((2, 4, 4), 2.0))
    with pytest.raises(ShapeError):
        comb(torch.randn(2, 4), torch.randn(2, 4))


@pytest.mark.parametrize("cls", [GRUEncoderCell, LSTMEncoderCell])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encoder_cells_shapes_and_state(cls, norm, dtype):
    cell = cls(7, 5, input_norm=norm).to(dtype)
    state = cell.init_state(4, torch.device("cpu"), dtype)
    inp = torch.randn(4, 7, dtype=dtype)
    out, state2 = cell(inp, state)
    assert out.shape == (4, 5) and out.dtype == dtype
    out2, _ = cell(inp, state2)
    assert not torch.equal(out, out2)  # the state carries over
    with pytest.raises(ShapeError, match="inp"):
        cell(torch.randn(4, 6, dtype=dtype), state)


def test_build_cells_reject_unknown_names():
    with pytest.raises(ValueError, match="encoder_cell"):
        build_encoder_cell("rnn", 3, 3)
    with pytest.raises(ValueError, match="decoder_cell"):
        build_decoder_cell("g9", 3, 3, 3)
    with pytest.raises(ValueError, match="norm"):
        make_norm("group", 3)


def test_g1_cell_formula_and_gate_range():
    torch.manual_seed(0)
    cell = G1DecoderCell(top_width=6, lateral_width=5, output_width=4, norm="batch")
    cell.eval()  # running statistics: a deterministic, per-sample map
    with torch.no_grad():
        cell.norm_mu.running_mean.uniform_(-1, 1)
        cell.norm_s.running_var.uniform_(0.5, 2)
    top, lat = torch.randn(8, 6), torch.randn(8, 5)
    s, mu = cell.gate_and_prediction(top, lat)
    assert ((s > 0) & (s < 1)).all()
    torch.testing.assert_close(cell(top, lat), s * cell.U(lat) + (1 - s) * mu)
    bn = cell.norm_mu
    mu_hand = ((cell.V(top) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
               * bn.weight + bn.bias)
    torch.testing.assert_close(mu, mu_hand)
    with pytest.raises(ShapeError, match="lateral"):
        cell(top, torch.randn(8, 4))


def test_ladder_combinator_cell_is_zero_at_init_and_uses_projection():
    cell = LadderCombinatorDecoderCell(top_width=6, lateral_width=5, output_width=4)
    top, lat = torch.randn(8, 6), torch.randn(8, 5)
    assert torch.equal(cell(top, lat), torch.zeros(8, 4))
    with torch.no_grad():
        cell.combinator.a10.fill_(1.0)  # v = 1, mu = 0  ->  output = P e
    torch.testing.assert_close(cell(top, lat), cell.P(lat))

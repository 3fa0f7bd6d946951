"""The decoder-to-encoder connection of the convolutional RLadder (learned_inference/
conv_rladder.py, SPEC §3.2): the paper's ``input`` mode and our ``gain`` mode, the
ablation ``decoder_to_encoder=False``, and the first frame's skipped convolutions of zeros
(the same arithmetic as convolving them), in float64."""
import pytest
import torch

from learned_inference.conv_cells import ConvLSTMEncoderCell
from learned_inference.conv_rladder import ConvRLadder, ConvRLadderConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(image_size=8, channels=(2, 3), top_width=4, bottom_channels=2, num_classes=5)


def _engine(**kw):
    torch.manual_seed(0)
    return ConvRLadder(ConvRLadderConfig(**{**SMALL, **kw})).double()


def _frames(B=3, T=4, seed=0):
    return torch.rand(B, T, 1, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _decoder_gains(net):
    cells = list(net.encoder_cells) + [net.top_cell]  # parts: (x, d_0, d_1), (e_1, d_2), (e_2, d_top)
    return [norm.weight for cell in cells for norm in cell.norm_x[1:]]


@pytest.mark.parametrize("mode, gain", [("input", 1.0), ("gain", 0.0), ("gain", 0.25)])
def test_decoder_inputs_start_at_the_modes_gain(mode, gain):
    kw = {"feedback_gain_init": gain} if mode == "gain" else {}
    net = _engine(decoder_to_encoder_mode=mode, **kw)
    gains = _decoder_gains(net)
    assert len(gains) == 4 and all(torch.equal(g, torch.full_like(g, gain)) for g in gains)
    bottom_up = [cell.norm_x[0].weight for cell in list(net.encoder_cells) + [net.top_cell]]
    assert all(torch.equal(g, torch.ones_like(g)) for g in bottom_up)


def _encoder_after_step_2(net, x, d_scale):
    """``[e_1, e_2, e_top]`` at frame 2 when ``d_l,1`` (the carry after frame 1) is scaled."""
    carry = net.init_carry(x.shape[0], x.device, x.dtype)
    _, carry = net.step(x[:, 0], carry)
    carry.decoder_outputs = [d * d_scale for d in carry.decoder_outputs]
    return net.step(x[:, 1], carry)[1].encoder_states


@pytest.mark.parametrize("mode, d2e, changes", [("input", True, True), ("gain", True, False),
                                                ("input", False, False)])
def test_input_mode_feeds_d_into_the_encoder_from_the_start(mode, d2e, changes):
    """Untrained: in the input mode the encoder at frame 2 depends on ``d_l,1`` at every
    level (perturbation and autograd); the gain mode (gains 0) and the ablation do not."""
    net = _engine(decoder_to_encoder_mode=mode, decoder_to_encoder=d2e).eval()
    x = _frames()
    base = _encoder_after_step_2(net, x, 1.0)
    moved = _encoder_after_step_2(net, x, 1.5)
    for (h0, _), (h1, _) in zip(base, moved):
        assert (not torch.allclose(h0, h1, rtol=0, atol=1e-12)) == changes
    carry = net.init_carry(3, x.device, x.dtype)
    _, carry = net.step(x[:, 0], carry)
    d = [v.detach().requires_grad_() for v in carry.decoder_outputs]
    carry.decoder_outputs = d
    out, _ = net.step(x[:, 1], carry)
    grads = torch.autograd.grad(out.class_logits.sum(), d, allow_unused=True)
    assert all((g is not None and g.abs().sum() > 0) == changes for g in grads)


def test_the_ablation_removes_only_the_connection():
    """Same parameters as the RLadder; its encoder equals the RLadder's run with every
    ``d_l,t-1`` set to zero; its decoder still predicts."""
    full, ablated = _engine(), _engine(decoder_to_encoder=False)
    assert [(n, p.shape) for n, p in full.named_parameters()] == \
        [(n, p.shape) for n, p in ablated.named_parameters()]
    ablated.load_state_dict(full.state_dict())
    full.eval(), ablated.eval()
    x = _frames()
    carry_f = full.init_carry(3, x.device, x.dtype)
    carry_a = ablated.init_carry(3, x.device, x.dtype)
    for t in range(x.shape[1]):
        carry_f.decoder_outputs = [torch.zeros_like(d) for d in carry_f.decoder_outputs]
        out_f, carry_f = full.step(x[:, t], carry_f)
        out_a, carry_a = ablated.step(x[:, t], carry_a)
        torch.testing.assert_close(out_a.class_logits, out_f.class_logits, rtol=0, atol=1e-12)
        torch.testing.assert_close(out_a.prediction, out_f.prediction, rtol=0, atol=1e-12)
        assert not torch.equal(carry_a.decoder_outputs[0], torch.zeros_like(carry_a.decoder_outputs[0]))


@pytest.mark.parametrize("kw", [{}, {"decoder_to_encoder_mode": "gain"}, {"decoder_to_encoder": False},
                                {"use_decoder": False}, {"encoder_norm": "none"}, {"encoder_norm": "batch"}])
def test_forward_skipping_the_first_frames_zeros_equals_stepping(kw):
    """``forward`` (skips the convolutions of frame 1's zero carry) against :meth:`step`
    from :meth:`init_carry` (convolves the zeros): outputs and every gradient, float64."""
    x = _frames()
    nets = [_engine(**kw).train() for _ in range(2)]
    out = nets[0](x)
    carry, steps = nets[1].init_carry(3, x.device, x.dtype), []
    for t in range(x.shape[1]):
        step, carry = nets[1].step(x[:, t], carry)
        steps.append(step)
    logits = torch.stack([s.class_logits for s in steps], 1)
    torch.testing.assert_close(out.class_logits, logits, rtol=0, atol=1e-12)
    loss = lambda logits, preds: logits.pow(2).sum() + (preds.sum() if preds is not None else 0)  # noqa: E731
    loss(out.class_logits, out.predictions).backward()
    preds = torch.stack([s.prediction for s in steps], 1) if steps[0].prediction is not None else None
    loss(logits, preds).backward()
    for (name, a), b in zip(nets[0].named_parameters(), nets[1].parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12, msg=name)
    for a, b in zip(nets[0].buffers(), nets[1].buffers()):  # BatchNorm statistics alike
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm", ["layer", "batch", "none"])
def test_convlstm_parts_with_none_equal_zeros(norm):
    torch.manual_seed(1)
    cell = ConvLSTMEncoderCell((1, 3, 2), 4, (5, 6), input_norm=norm).double()
    x = torch.randn(2, 1, 5, 6, dtype=torch.float64)
    zeros = [torch.zeros(2, c, 5, 6, dtype=torch.float64) for c in (3, 2)]
    state = cell.init_state(2, x.device, x.dtype)
    h_full, (_, c_full) = cell(torch.cat([x, *zeros], 1), state)
    h_skip, (_, c_skip) = cell.forward_parts([x, None, None], None)
    torch.testing.assert_close(h_skip, h_full, rtol=0, atol=0)
    torch.testing.assert_close(c_skip, c_full, rtol=0, atol=0)
    with pytest.raises(ValueError, match="parts"):
        cell.forward_parts([x, None], None)
    with pytest.raises(ValueError, match="parts"):
        cell.forward_parts([None, None, None], None)

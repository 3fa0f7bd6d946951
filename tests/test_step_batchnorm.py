"""Per-step BatchNorm statistics (``learned_inference.cells.StepBatchNorm``) and the
RLadder's ``norm_steps``: training mode is plain BatchNorm, eval mode uses the statistics
of the step it is at."""
import pytest
import torch
import torch.nn.functional as F

from learned_inference import RLadder, RLadderConfig
from learned_inference.cells import StepBatchNorm, make_norm


def test_training_mode_is_plain_batchnorm_with_the_shared_affine():
    torch.manual_seed(0)
    norm = StepBatchNorm(5, steps=3).double()
    with torch.no_grad():
        norm.weight.copy_(torch.rand(5) + 0.5)
        norm.bias.copy_(torch.randn(5))
    x = torch.randn(64, 5, dtype=torch.float64) * 3 + 1
    for step in range(4):
        expected = F.batch_norm(x, None, None, norm.weight, norm.bias, training=True)
        torch.testing.assert_close(norm(x, step), expected)


def test_eval_mode_uses_the_statistics_of_its_step_and_the_last_beyond():
    torch.manual_seed(0)
    norm = StepBatchNorm(3, steps=2, affine=False).double()
    for stat in norm.stats:
        stat.momentum = None  # cumulative average: the running stats are the data's
    data = [torch.randn(4096, 3, dtype=torch.float64) * s + m for s, m in ((1.0, -2.0), (3.0, 5.0))]
    for step, x in enumerate(data):
        norm(x, step)
    norm.eval()
    probe = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    for step in (0, 1, 5):
        x = data[min(step, 1)]
        mean, var = x.mean(0), x.var(0)  # BatchNorm's running variance is unbiased
        torch.testing.assert_close(norm(probe, step), (probe - mean) / torch.sqrt(var + 1e-5))


def test_bad_arguments_name_the_culprit():
    with pytest.raises(ValueError, match="steps"):
        StepBatchNorm(3, steps=0)
    with pytest.raises(ValueError, match="dims"):
        StepBatchNorm(3, dims=3)
    with pytest.raises(ValueError, match="step"):
        StepBatchNorm(3, steps=2)(torch.zeros(2, 3), -1)
    with pytest.raises(ValueError, match="norm_steps"):
        RLadderConfig(input_dim=4, hidden_dims=(3,), norm_steps=0)


def test_one_step_keeps_the_old_modules_and_state_dict():
    assert isinstance(make_norm("batch", 4), torch.nn.BatchNorm1d)
    keys = RLadder(RLadderConfig(input_dim=6, hidden_dims=(5, 4), num_classes=3)).state_dict()
    assert not any(".stats." in k for k in keys)


@pytest.mark.parametrize("cell", ["g1", "ladder"])
def test_rladder_per_step_statistics_change_eval_mode_only(cell):
    """Same parameters: ``norm_steps=4`` and ``1`` agree in training mode to float64
    rounding; after training-mode passes they differ in eval mode from the second
    iteration on (their running statistics differ), and agree on the first."""
    torch.manual_seed(0)
    base = dict(input_dim=6, hidden_dims=(5, 4), num_classes=3, decoder_cell=cell)
    one = RLadder(RLadderConfig(**base)).double()
    per_step = RLadder(RLadderConfig(**base, norm_steps=4)).double()
    with torch.no_grad():  # away from the init, where the Ladder combinator ignores u
        for p in one.parameters():
            p.add_(0.3 * torch.randn_like(p))
    shared = {k: v for k, v in one.state_dict().items() if "running" not in k and "num_batches" not in k}
    missing, _ = per_step.load_state_dict(
        shared, strict=False)
    assert all(".stats." in k for k in missing)
    x = torch.randn(32, 6, dtype=torch.float64)
    a, b = one(x, iterations=4), per_step(x, iterations=4)
    for ia, ib in zip(a.iterations, b.iterations):
        torch.testing.assert_close(ia.denoised, ib.denoised)
    one.eval(), per_step.eval()
    a, b = one(x, iterations=4), per_step(x, iterations=4)
    differs = [not torch.allclose(ia.denoised, ib.denoised) for ia, ib in zip(a.iterations, b.iterations)]
    assert any(differs[1:])

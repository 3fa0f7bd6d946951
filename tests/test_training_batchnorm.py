"""pgm_ladder.training.batchnorm: scoring with batch statistics leaves the running ones alone."""
import copy

import pytest
import torch
from torch import nn

from pgm_ladder.training.batchnorm import batch_statistics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3 * 16, 5), nn.BatchNorm1d(5)).double()
    for _ in range(3):  # running statistics from other batches than the one scored
        net(torch.randn(8, 1, 4, 4, dtype=torch.float64) * 2 + 1)
    return net


def test_eval_mode_inside_the_block_normalises_like_training():
    net = _net()
    x = torch.randn(16, 1, 4, 4, dtype=torch.float64)
    trained = copy.deepcopy(net).train()(x)
    buffers = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    plain = net(x)
    with batch_statistics(net) as switched:
        assert switched == 2
        net.eval()  # an evaluate() that calls eval() itself keeps batch statistics
        inside = net(x)
    torch.testing.assert_close(inside, trained)
    assert not torch.allclose(plain, trained)
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in buffers.items())
    torch.testing.assert_close(net(x), plain)


def test_running_statistics_come_back_after_an_error():
    net = _net().eval()
    with pytest.raises(RuntimeError, match="boom"):
        with batch_statistics(net):
            raise RuntimeError("boom")
    assert net[1].running_mean is not None and net[5].running_var is not None


def test_a_network_without_batchnorm_switches_nothing():
    with batch_statistics(nn.Linear(2, 2)) as switched:
        assert switched == 0

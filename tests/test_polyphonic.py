"""The ``polyphonic`` experiment (RLadder Table 3; SPEC §5–7): the masked NLL per time step
against hand computations on ragged toy sequences, causality of every row (changing future
steps leaves earlier predictions unchanged), padding that changes nothing, the corpora's own
split sizes, the training windows, early stopping, the ConvRLadder's row layout, smoke
training of every row with its figure, and the Table-3 renderer."""
import json
import math

import numpy as np
import pytest
import torch

from experiments.datasets.polyphonic import SPLIT_SIZES
from experiments.polyphonic import SPEC
from experiments.polyphonic import data as D
from experiments.polyphonic import tables
from experiments.polyphonic.config import CORPORA, ROWS
from experiments.polyphonic.models import FrequencyPredictor, build_model
from experiments.polyphonic.stopping import EarlyStopping
from learned_inference.conv_rladder import ConvRLadder, ConvRLadderConfig
from pgm_ladder.metrics import masked_bernoulli_nll
from pgm_ladder.training import apply_overrides, train
from pgm_ladder.training.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def bernoulli_nll(p: float, x: int) -> float:
    return -math.log(p) if x else -math.log(1 - p)


def test_masked_nll_by_hand_on_ragged_sequences():
    # two sequences of 2 units: lengths 3 and 1 (two padded steps whose values must not count)
    logits = torch.tensor([[[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]],
                           [[-2.0, 3.0], [9.0, 9.0], [-9.0, 9.0]]])
    targets = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]],
                            [[0.0, 1.0], [0.0, 0.0], [1.0, 1.0]]])
    mask = D.step_mask(torch.tensor([3, 1]), 3)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    hand = sum(bernoulli_nll(sig(z), int(x)) for b, t in ((0, 0), (0, 1), (0, 2), (1, 0))
               for z, x in zip(logits[b, t].tolist(), targets[b, t].tolist()))
    total, steps = masked_bernoulli_nll(logits, targets, mask)
    assert int(steps) == 4
    assert float(total) == pytest.approx(hand, rel=1e-6)


def test_masked_nll_refuses_bad_input():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="do not fit"):
        masked_bernoulli_nll(x, torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="must be bool"):
        masked_bernoulli_nll(x, x, torch.ones(2, 3))


def test_nll_per_step_of_constant_predictor_by_hand():
    # ragged rolls of 88 notes; a constant probability p: NLL per step = the average over all
    # real steps (sequences pooled) of sum_j -log p^x (1-p)^(1-x)
    rng = np.random.default_rng(0)
    rolls = [(rng.random((n, 88)) < 0.1).astype(np.uint8) for n in (5, 2, 7)]
    p = 0.2
    model = FrequencyPredictor(torch.full((88,), p))
    steps = sum(len(r) for r in rolls)
    on = sum(int(r.sum()) for r in rolls)
    hand = (-on * math.log(p) - (steps * 88 - on) * math.log(1 - p)) / steps
    for batch in (1, 2, 3):
        assert D.nll_per_step(model, rolls, batch, torch.device("cpu")) == pytest.approx(hand, rel=1e-6)


@pytest.mark.parametrize("row", ROWS)
def test_prediction_of_a_step_cannot_see_it_or_later_steps(row):
    config = apply_overrides(SPEC.preset("smoke"), [f"row={row}"])
    torch.manual_seed(0)
    model = build_model(config, torch.full((88,), 0.05)).eval()
    rolls = (torch.rand(2, 9, 88) < 0.1).float()
    with torch.no_grad():
        before = model(D.shift_right(rolls))
        for t in (0, 4, 8):
            changed = rolls.clone()
            changed[:, t:] = 1 - changed[:, t:]  # steps t.. changed
            after = model(D.shift_right(changed))
            # position s predicts step s from steps < s: positions <= t see none of the change
            assert torch.equal(after[:, :t + 1], before[:, :t + 1]), (row, t)
            if row != "frequency" and t < 8:
                assert not torch.allclose(after[:, t + 1:], before[:, t + 1:])


@pytest.mark.parametrize("row", ["rladder", "lstm"])
def test_padding_leaves_the_nll_unchanged(row):
    config = apply_overrides(SPEC.preset("smoke"), [f"row={row}"])
    torch.manual_seed(1)
    model = build_model(config, torch.full((88,), 0.05)).eval()
    short, long = ((np.random.default_rng(s).random((n, 88)) < 0.1).astype(np.uint8) for s, n in ((0, 4), (1, 11)))
    alone = D.nll_per_step(model, [short], 1, torch.device("cpu"))
    with torch.no_grad():
        total, steps = D.batch_nll(model, D.pad_rolls([torch.from_numpy(short).float(),
                                                       torch.from_numpy(long).float()]))
        total_long, steps_long = D.batch_nll(model, D.pad_rolls([torch.from_numpy(long).float()]))
    assert int(steps) == 15
    assert float(total - total_long) / 4 == pytest.approx(alone, rel=1e-5)


@pytest.mark.parametrize("corpus", CORPORA)
def test_split_sizes_are_the_corpora_own(corpus):
    rolls = D.load(corpus)
    assert tuple(len(rolls.split(s)) for s in ("train", "valid", "test")) == SPLIT_SIZES[corpus]
    assert [len(s) for s in (D.load(corpus, 3).train, D.load(corpus, 3).test)] == [3, 3]


def test_training_windows():
    rolls = [np.ones((n, 88), dtype=np.uint8) for n in (3, 50)]
    sample = D.window_sampler(rolls, 8)
    batch, lengths = sample(torch.Generator().manual_seed(0), 64)
    assert batch.shape == (64, 8, 88)
    assert set(lengths.tolist()) <= {3, 8}
    assert (lengths == 8).sum() > 48  # drawn with probability ∝ length: 50/53 of the draws
    assert D.batches_per_epoch(rolls, 8, 4) == math.ceil(53 / 32)
    assert D.batches_per_epoch(rolls, 0, 4) == 1
    with pytest.raises(ValueError, match="no training sequences"):
        D.window_sampler([], 8)


def test_early_stopping_keeps_the_best_and_stops_after_patience():
    net = torch.nn.Linear(1, 1)
    scores = iter([3.0, 2.0, 2.5, 2.1])
    stopper = EarlyStopping(net, lambda model: next(scores), every=2, patience=2)
    ticks = []
    for step in range(12):
        ticks.append(stopper.tick())
        if ticks[-1]:
            with torch.no_grad():
                net.weight.fill_(step)
    # validations before steps 2, 4, 6, 8: 3.0 (best), 2.0 (best, weight 3), 2.5, 2.1 -> stop
    assert ticks == [True] * 8 + [False] * 4
    assert float(stopper.best_nll) == 2.0 and int(stopper.best_step) == 4
    assert float(stopper.best.weight) == 3.0 and bool(stopper.stopped)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(net, lambda model: 0.0, every=1, patience=0)


def test_conv_rladder_row_layout_shapes():
    cfg = ConvRLadderConfig(image_size=96, channels=(2, 3, 2, 2, 2), top_width=4, bottom_channels=2,
                            num_classes=0, kernel_size=5, layout="row")
    out = ConvRLadder(cfg)(torch.rand(3, 4, 1, 1, 96), return_bottom=True)
    assert out.predictions.shape == (3, 4, 1, 1, 96) and out.bottom.shape == (3, 4, 2, 1, 96)
    with pytest.raises(ValueError, match="layout"):
        ConvRLadderConfig(layout="diagonal")
    with pytest.raises(ConfigError, match="pitch_width"):
        apply_overrides(SPEC.preset("smoke"), ["net.pitch_width=80"])
    with pytest.raises(ConfigError, match="divisible"):
        build_model(apply_overrides(SPEC.preset("smoke"), ["net.pitch_width=90"]), torch.full((88,), 0.1))


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("polyphonic")
    return {row: train(SPEC, apply_overrides(SPEC.preset("smoke"), [f"row={row}"]), out / row,
                       preset="smoke", seed=0, overrides=[f"row={row}"], quiet=True) for row in ROWS}


def test_smoke_training_of_every_row(smoke_runs):
    for row, result in smoke_runs.items():
        m = result.metrics
        assert math.isfinite(m["nll/jsb_chorales"]) and 0 < m["nll/jsb_chorales"] < 88 * math.log(2) * 2, row
        assert m["best_epoch"] <= m["epochs_trained"] == 2.0
        assert (result.run_dir / "figures" / "pianoroll.png").stat().st_size > 0
    # the frequency row starts at the training frequencies: far below probability 1/2 per note
    assert smoke_runs["frequency"].metrics["nll/jsb_chorales"] < 88 * math.log(2) / 2


def test_table3_renderer_pools_seeds(smoke_runs):
    results = [json.loads((r.run_dir / "results.json").read_text()) for r in smoke_runs.values()]
    twin = json.loads(json.dumps(results[0]))
    twin["seed"], twin["seeds"] = 1, [1]
    twin["metrics"]["nll/jsb_chorales"] = results[0]["metrics"]["nll/jsb_chorales"] + 1.0
    text = tables.render(results + [twin])
    mean = results[0]["metrics"]["nll/jsb_chorales"] + 0.5
    assert f"{mean:.2f} ± {math.sqrt(0.5):.2f} (n=2)" in text
    assert "RLadder (paper, mean of 10 seeds)" in text and "5.64 |" in text and "not run" in text

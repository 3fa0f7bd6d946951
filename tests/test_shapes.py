"""The ``shapes`` experiment (Tagger Table 1; SPEC §3.3, §5, §6): the smoke preset trains and
evaluates (Tagger with LayerNorm, RTagger with BatchNorm), the figure and the Table-1
renderer run on it, the AMI is scored on the pixels of exactly one shape only (checked
against scikit-learn by hand), the corruption is a fresh resumable bit-flip stream, and bad
config values are refused."""
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_mutual_info_score

from experiments.datasets.shapes import BACKGROUND, OVERLAP
from experiments.shapes import SPEC
from experiments.shapes import experiment as exp
from experiments.shapes import tables
from pgm_ladder import metrics
from pgm_ladder.harness.grouping import GroupingEvalSet
from pgm_ladder.training import apply_overrides, evaluate_run, figures_run, train
from pgm_ladder.training.batches import SampledStream
from pgm_ladder.training.errors import ConfigError, TableError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ("ami", "ari", "ami_corrupted", "ari_corrupted", "cost", "mse")


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    runs = {}
    for name, overrides in (("tagger-layer", []),
                            ("rtagger-batch", ["task.engine=rtagger", "tag.projection_norm=batch",
                                               "task.figure_images=0"])):
        config = apply_overrides(SPEC.preset("smoke"), overrides)
        runs[name] = train(SPEC, config, out / name, preset="smoke", seed=0, overrides=overrides, quiet=True)
    return out, runs


@pytest.mark.parametrize("name", ["tagger-layer", "rtagger-batch"])
def test_smoke_preset_trains_and_evaluates(smoke_runs, name):
    res = smoke_runs[1][name]
    config = SPEC.preset("smoke")
    T = config.task.scored_iterations
    assert res.step == config.train.steps and T == 5 and config.task.iterations == 3
    assert set(res.metrics) == {f"{n}/iter{t}" for n in NAMES for t in range(1, T + 1)}
    assert all(math.isfinite(v) for v in res.metrics.values())
    for key, value in res.metrics.items():
        if key.startswith(("ami", "ari")):
            assert -1.0 <= value <= 1.0, key
        if key.startswith("cost"):
            assert 0.0 < value < 2.0, key  # BCE nats per pixel of a barely trained net
    saved = json.loads((res.run_dir / "results.json").read_text())
    assert saved["paper_numbers"]["ami/iter5"]["value"] == 0.97
    assert saved["paper_numbers"]["cost/iter5"]["value"] == 0.054
    assert (res.run_dir / "figures" / "groupings.png").exists() == (name == "tagger-layer")


def test_the_engines_are_the_configured_ones(smoke_runs):
    from learned_inference.ladder import Ladder
    from learned_inference.rladder import RLadder

    runs = smoke_runs[1]
    tagger, rtagger = runs["tagger-layer"].model, runs["rtagger-batch"].model
    assert isinstance(tagger.engine, Ladder) and isinstance(rtagger.engine, RLadder)
    assert tagger.config.likelihood == "bernoulli" and tagger.config.noise_var == pytest.approx(0.2)
    assert tagger.config.groups == 4 and tagger.config.init_mean == pytest.approx(0.26)
    assert isinstance(tagger.projection_norm, torch.nn.LayerNorm)
    assert isinstance(rtagger.projection_norm, torch.nn.BatchNorm1d)


def test_evaluation_is_reproducible_from_the_checkpoint(smoke_runs):
    res = smoke_runs[1]["tagger-layer"]
    again = evaluate_run(res.run_dir)
    for key, value in res.metrics.items():
        assert again[key] == pytest.approx(value, abs=1e-9), key


def test_figures_are_drawn_again(smoke_runs, tmp_path):
    run_dir = smoke_runs[1]["tagger-layer"].run_dir
    assert figures_run(run_dir, out=tmp_path) == tmp_path
    assert (tmp_path / "groupings.png").stat().st_size > 1000


def test_table_renderer_on_the_smoke_runs(smoke_runs, tmp_path, capsys):
    out, _ = smoke_runs
    md = tmp_path / "table.md"
    assert tables.main([str(out), "--markdown", str(md)]) == 0
    text = md.read_text()
    assert text == capsys.readouterr().out
    assert "preset `smoke`" in text
    assert "Tagger* (LayerNorm)" in text and "Tagger (BatchNorm)" in text
    assert "0.970 ± 0.009" in text and "0.054" in text  # LayerNorm, iteration 5
    assert "0.790 ± 0.034" in text and "0.063" in text  # BatchNorm


def test_table_pools_seeds_and_refuses_differing_configs(smoke_runs):
    res = json.loads((smoke_runs[1]["tagger-layer"].run_dir / "results.json").read_text())
    other = json.loads(json.dumps(res))
    other["seeds"], other["seed"] = [1], 1
    other["metrics"]["ami/iter5"] = res["metrics"]["ami/iter5"] + 0.2
    grouped = tables.group([res, other])
    row, last = grouped["smoke", "layer", "tagger"]
    assert last == 5 and row.seeds == [0, 1]
    mean, std = row.stats["ami/iter5"]
    assert mean == pytest.approx(res["metrics"]["ami/iter5"] + 0.1)
    assert std == pytest.approx(0.2 / math.sqrt(2))
    assert "±" in tables.render([res, other]).split("Tagger* (LayerNorm)")[1].splitlines()[0]
    longer = json.loads(json.dumps(other))
    longer["config"]["train"]["steps"] = 8
    with pytest.raises(TableError, match="train.steps: 4, 8"):
        tables.group([res, longer])


# --------------------------------------------------------------------------- the AMI mask

def test_ami_is_scored_only_on_pixels_of_exactly_one_shape():
    """Two 10-pixel images; the estimate deliberately mislabels the background (0) and
    overlap (-1) pixels. Only the pixels whose largest true mask value exceeds 0.9 count."""
    B, O = BACKGROUND, OVERLAP
    truth = torch.tensor([[1, 1, 1, 2, 2, 2, B, B, O, O],
                          [1, 1, 2, 2, 3, 3, B, B, B, O]])
    est = torch.tensor([[3, 3, 3, 1, 1, 1, 1, 3, 0, 2],    # right on the shapes (renamed)
                        [0, 0, 1, 1, 1, 2, 3, 0, 2, 2]])   # one shape pixel wrong
    probs = torch.nn.functional.one_hot(est, 4).permute(0, 2, 1).double() * 0.7 + 0.075
    mask_max = torch.where(truth > 0, 1.0, 1.0 / 3.0)
    scored = mask_max > 0.9

    by_hand = [adjusted_mutual_info_score(t[s].numpy(), e[s].numpy()) for t, e, s in zip(truth, est, scored)]
    assert by_hand[0] == pytest.approx(1.0)
    got = metrics.grouping_scores(truth, probs, mask_max)
    assert got["ami_per_sample"] == pytest.approx(by_hand)
    assert got["ami"] == pytest.approx(float(np.mean(by_hand)))

    unmasked = [adjusted_mutual_info_score(t.numpy(), e.numpy()) for t, e in zip(truth, est)]
    assert metrics.grouping_scores(truth, probs)["ami"] == pytest.approx(float(np.mean(unmasked)))
    assert abs(float(np.mean(unmasked)) - got["ami"]) > 0.1


def test_eval_sets_score_exactly_the_single_shape_pixels():
    data = exp.ShapesData(eval_size=50)
    sets = exp.eval_sets(data)
    for s in (sets.corrupted, sets.clean):
        assert isinstance(s, GroupingEvalSet) and s.size == 50 and s.x.shape == (50, 400)
        assert torch.equal((s.true_mask_max > 0.9), s.z > 0)
    assert torch.equal(sets.clean.x_noisy, sets.clean.x)
    flipped = (sets.corrupted.x_noisy != sets.corrupted.x).double().mean().item()
    assert 0.17 < flipped < 0.23
    assert torch.equal(exp.eval_sets(data).corrupted.x_noisy, sets.corrupted.x_noisy)  # fixed by eval_seed
    assert sets.corrupted.init_seed == sets.clean.init_seed == data.eval_seed + 1


# --------------------------------------------------------------------------- training batches

def test_training_batches_flip_bits_afresh_and_resume():
    pool = exp.training_pool(exp.ShapesData(train_size=64))
    assert pool.shape == (64, 400) and set(pool.unique().tolist()) <= {0.0, 1.0}
    stream = SampledStream(exp.batch_sampler(pool, 0.2), 500, seed=3)
    noisy, clean = stream.next_batch()
    assert set(noisy.unique().tolist()) <= {0.0, 1.0}
    assert 0.18 < (noisy != clean).double().mean().item() < 0.22
    # every clean image is one of the pool's
    assert ((clean[:, None, :] == pool[None]).all(-1).any(-1)).all()
    state = stream.state_dict()
    a = stream.next_batch()
    stream.load_state_dict(state)
    b = stream.next_batch()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], noisy)  # a new draw, not the same flips again


# --------------------------------------------------------------------------- config

@pytest.mark.parametrize("override, message", [
    ("data.flip_prob=0.6", "data.flip_prob"),
    ("data.flip_prob=0", "data.flip_prob"),
    ("data.eval_size=0", "data.eval_size"),
    ("data.train_size=60000", "data.train_size"),
    ("data.eval_split=train", "eval_split"),
    ("task.engine=lstm", "engine"),
    ("task.groups=0", "task.groups"),
    ("task.iterations=0", "task.iterations"),
    ("task.init_mean=1.5", "task.init_mean"),
    ("tag.projection_norm=group", "projection_norm"),
    ("tag.cost_weighting=random", "cost_weighting"),
    ("threads=-1", "threads"),
])
def test_bad_config_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(SPEC.preset("smoke"), [override])


def test_presets_follow_the_paper_where_it_speaks():
    paper = SPEC.preset("paper")
    assert paper.tag.projection_dim == 2000 and paper.ladder.hidden_dims == (1000, 500)
    assert paper.optim.lr == pytest.approx(4e-4) and paper.train.epochs == 100
    assert paper.train.batch_size == 100 and paper.data.flip_prob == pytest.approx(0.2)
    for name in ("smoke", "cpu", "paper"):
        config = SPEC.preset(name)
        assert config.tag.projection_norm == "layer" and config.task.engine == "tagger"
        assert (config.task.groups, config.task.iterations, config.task.scored_iterations) == (4, 3, 5)
        assert config.ladder.combinator_sigmoid_v
    cpu = SPEC.preset("cpu")
    assert cpu.threads == 1 and cpu.train.device == "cpu"

"""The ``occluded_mnist`` experiment (RLadder §3.1; SPEC §3.4, §5–7): every row trains and
evaluates under the smoke preset, no label leakage, the Mean Teacher update, the tables."""
import json
import os

import pytest
import torch

from experiments.datasets import paths
from experiments.occluded_mnist import SPEC as OMM
from pgm_ladder.training import apply_overrides, evaluate_run, figures_run, train
from pgm_ladder.training.errors import ConfigError, TableError

requires_data = pytest.mark.skipif(
    not (paths.SIBLING_DATA_DIR.is_dir() or os.environ.get(paths.DATA_ENV)),
    reason="real data files (../shared/data or PGM_LADDER_DATA) absent")

from experiments.occluded_mnist import data as omm_data  # noqa: E402
from experiments.occluded_mnist import tables, task  # noqa: E402
from experiments.occluded_mnist.config import ROWS, OccludedMNISTConfig  # noqa: E402
from experiments.occluded_mnist.mean_teacher import MeanTeacher, sigmoid_rampup  # noqa: E402
from experiments.occluded_mnist.rows import ROW_SPECS, build_model  # noqa: E402

#: (row, regime) runs of the smoke preset: every Table-1 row, every Table-2 regime
RUNS = [(row, "supervised") for row in ROWS] + [
    ("rladder", "labelled_only"), ("rladder", "unlabelled"), ("rladder", "mean_teacher"),
    ("temporal_baseline", "labelled_only"), ("temporal_baseline", "mean_teacher"),
    ("optimal_static", "mean_teacher")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    spec = OMM
    out = tmp_path_factory.mktemp("omm")
    results = {}
    for row, regime in RUNS:
        figures = row == "rladder" and regime == "supervised"
        config = apply_overrides(spec.preset("smoke"), [f"row={row}", f"regime={regime}",
                                                         f"figure_sequences={int(figures)}"])
        results[row, regime] = train(spec, config, out / f"{row}-{regime}", preset="smoke", seed=0, quiet=True)
    return out, results


@requires_data
@pytest.mark.parametrize("row, regime", RUNS)
def test_every_row_trains_and_evaluates(smoke_runs, row, regime):
    _, results = smoke_runs
    res = results[row, regime]
    spec = ROW_SPECS[row]
    metrics = res.metrics
    assert res.step == 3
    assert ("class_error" in metrics) == spec.classify and ("prediction_mse" in metrics) == spec.predict
    if spec.classify:
        assert 0.0 <= metrics["class_error"] <= 100.0
    if spec.predict:
        assert 0.0 < metrics["prediction_mse"] < 1.0
    assert ("student_class_error" in metrics) == (regime == "mean_teacher")
    saved = json.loads((res.run_dir / "results.json").read_text())
    assert saved["config"]["row"] == row and saved["config"]["regime"] == regime
    assert (res.run_dir / "figures" / "figure4.png").exists() == (row == "rladder" and regime == "supervised")


@requires_data
def test_eval_with_batch_statistics_writes_its_own_file(smoke_runs):
    run_dir = smoke_runs[1]["rladder", "supervised"].run_dir
    plain = evaluate_run(run_dir)
    batch = evaluate_run(run_dir, batch_statistics=True)
    assert set(batch) == set(plain) == {"class_error", "prediction_mse"}
    assert json.loads((run_dir / "eval-batch-statistics.json").read_text())["batch_statistics"] is True
    assert json.loads((run_dir / "eval.json").read_text())["metrics"] == plain
    assert evaluate_run(run_dir) == plain  # the running statistics were left as they were


@requires_data
def test_figures_are_drawn_again_from_a_checkpoint(smoke_runs, tmp_path):
    run_dir = smoke_runs[1]["rladder", "supervised"].run_dir
    assert figures_run(run_dir, out=tmp_path / "figs") == tmp_path / "figs"
    assert (tmp_path / "figs" / "figure4.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="draws no figures"):
        figures_run(smoke_runs[1]["optimal_static", "supervised"].run_dir, out=tmp_path / "none")


@requires_data
def test_tables_refuse_to_pool_two_training_budgets(smoke_runs):
    res = json.loads((smoke_runs[1]["rladder", "supervised"].run_dir / "results.json").read_text())
    longer = json.loads(json.dumps(res))
    longer["config"]["train"]["steps"], longer["seeds"] = 6, [1]
    with pytest.raises(TableError, match=r"rladder / supervised .*train.steps: 3, 6"):
        tables.group([res, longer])


@requires_data
def test_tables_in_the_papers_layout(smoke_runs, tmp_path):
    out, _ = smoke_runs
    md = tmp_path / "tables.md"
    assert tables.main([str(out), "--markdown", str(md)]) == 0
    text = md.read_text()
    assert "Table 1" in text and "Table 2" in text and "preset `smoke`" in text
    for label in ("Optimal reconstruction and static classifier", "RLadder w/o decoder-to-encoder conn."):
        assert label in text
    assert "0.74 ± 0.09" in text and "1.501 ± 0.001" in text and "10.49 ± 0.81" in text
    assert "= 1k" in text  # temporal baseline w/o MT reuses its 1k-labelled result, as the paper does


@requires_data
def test_cli_train_command(tmp_path):
    from pgm_ladder.cli import main
    run = tmp_path / "cli"
    assert main(["train", "occluded_mnist", "--preset", "smoke", "--set", "model=hierarchical_rnn",
                 "--set", "train.steps=1", "--out", str(run), "--quiet"]) == 0
    assert "class_error" in json.loads((run / "results.json").read_text())["metrics"]
    # "model" is the deprecated name of the "row" field: it still selects the row
    assert json.loads((run / "config.json").read_text())["config"]["row"] == "hierarchical_rnn"


def test_bad_rows_and_regimes_are_refused():
    spec = OMM
    with pytest.raises(ConfigError, match="row"):
        apply_overrides(spec.preset("smoke"), ["row=rladder_v2"])
    config = apply_overrides(spec.preset("smoke"), ["row=rladder_no_classification", "regime=mean_teacher"])
    with pytest.raises(ConfigError, match="classification"):
        build_model(config)
    assert set(spec.presets) >= {"smoke", "cpu", "paper"}


@requires_data
def test_unlabelled_sequences_carry_no_label():
    config = apply_overrides(OccludedMNISTConfig(), ["regime=unlabelled", "data.train_size=64",
                                                     "data.labelled=10"])
    pool = omm_data.training_pool(config, seed=3)
    assert len(pool) == 64 and pool.n_labelled == 10
    again = omm_data.training_pool(config, seed=3)
    assert torch.equal(pool.labels, again.labels)
    only = omm_data.training_pool(apply_overrides(config, ["regime=labelled_only"]), seed=3)
    assert len(only) == 10 and torch.equal(only.labels, pool.labels[pool.labels >= 0])
    sample = omm_data.batch_sampler(pool, 8, labelled_per_batch=3)
    batch = sample(torch.Generator().manual_seed(0), 8)
    assert (batch["label"] >= 0).sum() == 3 and batch["frames"].shape == (8, 5, 1, 32, 32)


def test_unlabelled_examples_contribute_no_supervised_cost():
    torch.manual_seed(0)
    logits = torch.randn(6, 10, requires_grad=True)
    labels = torch.tensor([3, -1, 7, -1, -1, 0])
    cost = task.class_cost(logits, labels)
    torch.testing.assert_close(cost, torch.nn.functional.cross_entropy(logits[[0, 2, 5]], labels[[0, 2, 5]]))
    cost.backward()
    assert logits.grad[[1, 3, 4]].abs().max() == 0 and logits.grad[[0, 2, 5]].abs().max() > 0
    none = task.class_cost(logits, torch.full((6,), -1))
    assert float(none.detach()) == 0.0 and none.requires_grad


def test_mean_teacher_ema_update():
    student = torch.nn.Linear(3, 2)
    mt = MeanTeacher(student, ema_decay=0.9)
    assert all(not p.requires_grad for p in mt.teacher.parameters())
    t0 = [p.detach().clone() for p in mt.teacher.parameters()]
    expected = t0
    for k in range(1, 6):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn_like(p))
        alpha = min(1 - 1 / (k + 1), 0.9)  # 0.5, 0.667, 0.75, 0.8, 0.833 then capped at 0.9
        expected = [alpha * t + (1 - alpha) * s.detach() for t, s in zip(expected, student.parameters())]
        mt.update_teacher()
        for t, e in zip(mt.teacher.parameters(), expected):
            torch.testing.assert_close(t, e)
    assert int(mt.ema_updates) == 5 and mt.decay(100) == 0.9
    assert sigmoid_rampup(0, 10) == pytest.approx(torch.exp(torch.tensor(-5.0)).item())
    assert sigmoid_rampup(10, 10) == 1.0 and sigmoid_rampup(3, 0) == 1.0


@requires_data
def test_mean_teacher_optimiser_steps_the_student_and_then_the_teacher():
    spec = OMM
    config = apply_overrides(spec.preset("smoke"), ["regime=mean_teacher", "row=optimal_static"])
    parts = spec.build(config, torch.device("cpu"), 0)
    model, opt = parts.model, parts.optimizer
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.student.parameters()}
    before = [p.detach().clone() for p in model.teacher.parameters()]
    out = parts.loss(model, parts.train_batches.next_batch())
    assert {"class_cost", "consistency_cost", "consistency_weight"} <= set(out)
    opt.zero_grad()
    out["loss"].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    opt.step()
    assert int(model.ema_updates) == 1
    for t, b, s in zip(model.teacher.parameters(), before, model.student.parameters()):
        torch.testing.assert_close(t, 0.5 * b + 0.5 * s.detach())

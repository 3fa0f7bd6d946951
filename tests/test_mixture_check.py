"""``pgm-ladder check mixture`` end to end on the smoke preset, and its scoring pieces."""
import json

import numpy as np
import pytest
import torch

from pgm_ladder import metrics
from experiments.mixture import check as mixture_command, experiment as exp
from experiments.mixture.figures import matched_labels
from pgm_ladder.cli import main

METHODS = ("tagger", "rtagger", "vb")


CHECK = "mixture"  # the ``smoke_run`` fixture (conftest.py) runs ``pgm-ladder check mixture --preset smoke``


def test_results_json_has_the_documented_fields(smoke_run):
    res = json.loads((smoke_run / "results.json").read_text())
    T = res["settings"]["scored_iterations"]
    assert T == 6 and res["settings"]["iterations"] == 4  # the engines run longer than trained
    for name in METHODS:
        assert len(res[name]["ami"]) == T and len(res[name]["cost"]) == T, name
        assert all(-1.0 <= a <= 1.0 for a in res[name]["ami"]), name
        assert all(np.isfinite(c) for c in res[name]["cost"]), name
    for name in ("vb_converged", "gold"):
        assert -1.0 <= res[name]["ami"] <= 1.0 and np.isfinite(res[name]["cost"]), name
    assert res["gold"]["images"] == 4 and res["gold"]["samples"] == 10
    assert set(res["acceptance"]) == {"rtagger_ge_vb_same_iters", "tagger_ge_0.5",
                                      "rtagger_6_iters_ge_vb_converged", "rtagger_within_0.05_of_gold",
                                      "rtagger_ami_increasing"}
    assert res["settings"]["preset"] == "smoke" and set(res["settings"]["engines"]) == {"tagger", "rtagger"}
    assert res["hardware"]["cpu_count"] >= 1 and "git_revision" in res and res["wall_time_s"] > 0
    assert (smoke_run / "groupings.png").stat().st_size > 1000


def test_rerun_reuses_the_finished_engine_runs(smoke_run, capsys):
    before = json.loads((smoke_run / "results.json").read_text())
    assert main(["check", "mixture", "--preset", "smoke", "--out", str(smoke_run), "--quiet", "--device", "cpu"]) == 0
    after = json.loads((smoke_run / "results.json").read_text())
    for name in METHODS:
        assert after[name]["ami"] == before[name]["ami"]
    assert "continuing the run" in capsys.readouterr().out


def test_engine_and_inner_engine_configs_come_from_the_sections():
    config = exp.PRESETS["smoke"]()
    model = exp.embedded_model("default")
    for engine, recurrent in (("tagger", False), ("rtagger", True)):
        config.task.engine = engine
        tag = exp.tag_config(config, model)
        assert tag.recurrent is recurrent and tag.input_dim == model.num_pixels == 144
        assert tag.groups == 3 and tag.engine.input_dim == config.tag.projection_dim
        assert tag.noise_var == pytest.approx(float(model.noise_std) ** 2)


def test_grouping_scores_are_permutation_invariant_and_match_sklearn():
    gen = torch.Generator().manual_seed(0)
    truth = torch.randint(0, 3, (5, 40), generator=gen)
    probs = torch.rand(5, 3, 40, generator=gen)
    perm = probs[:, [2, 0, 1]]
    a, b = metrics.grouping_scores(truth, probs), metrics.grouping_scores(truth, perm)
    assert a["ami"] == pytest.approx(b["ami"]) and a["ari"] == pytest.approx(b["ari"])
    onehot = torch.nn.functional.one_hot(truth, 3).permute(0, 2, 1).double()
    assert metrics.grouping_scores(truth, onehot[:, [1, 2, 0]])["ami"] == pytest.approx(1.0)
    from sklearn.metrics import adjusted_mutual_info_score
    want = np.mean([adjusted_mutual_info_score(t, p) for t, p in zip(truth.numpy(), probs.argmax(1).numpy())])
    assert a["ami"] == pytest.approx(want)


def test_grouping_scores_only_count_confident_true_pixels():
    truth = torch.tensor([[0, 0, 1, 1, 2, 2]])
    est = torch.nn.functional.one_hot(torch.tensor([[0, 0, 1, 1, 1, 0]]), 3).permute(0, 2, 1).double()
    mask_max = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.5, 0.5]])
    assert metrics.grouping_scores(truth, est, mask_max)["ami"] == pytest.approx(1.0)
    assert metrics.grouping_scores(truth, est)["ami"] < 1.0
    with pytest.raises(ValueError, match="group_probs"):
        metrics.grouping_scores(truth, est[:, :, :3])


def test_matched_labels_undo_a_permutation():
    truth = np.array([0, 1, 2, 2, 1, 0])
    probs = np.eye(3)[[1, 2, 0, 0, 2, 1]].T  # labels permuted 0->1, 1->2, 2->0
    assert (matched_labels(truth, probs) == truth).all()


def test_acceptance_reads_the_measured_numbers():
    scores = {"rtagger": {"ami": [0.3, 0.5, 0.6, 0.58, 0.7]}, "vb": {"ami": [0.2, 0.4, 0.61, 0.62, 0.63]},
              "tagger": {"ami": [0.1, 0.3, 0.5, 0.5, 0.4]}, "vb_converged": {"ami": 0.69},
              "gold": {"ami": 0.64, "rtagger_ami_same_images": 0.6}}
    acc = mixture_command.acceptance(scores, iterations=3)
    assert acc == {"rtagger_ge_vb_same_iters": False, "tagger_ge_0.5": True,
                   "rtagger_5_iters_ge_vb_converged": True, "rtagger_within_0.05_of_gold": True,
                   "rtagger_ami_increasing": True}

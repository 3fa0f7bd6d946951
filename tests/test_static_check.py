"""``pgm-ladder check static`` end to end on the smoke preset (seconds)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pgm_ladder.cli import main

ROOT = Path(__file__).resolve().parents[1]


CHECK = "static"  # the ``smoke_run`` fixture (conftest.py) runs ``pgm-ladder check static --preset smoke``


GOLDEN = ROOT / "tests" / "golden" / "check-static-smoke.json"


def test_smoke_metrics_are_those_recorded_before_the_restructuring(smoke_run):
    """Every number of the smoke run equals, to float equality, the one recorded before the
    code moved (same seed; same torch, as pinned by scripts/bootstrap.sh)."""
    import torch

    golden = json.loads(GOLDEN.read_text())
    if torch.__version__ != golden["torch"]:
        pytest.skip(f"the golden numbers were recorded with torch {golden['torch']}, this is "
                    f"torch {torch.__version__}")
    res = json.loads((smoke_run / "results.json").read_text())
    for section in ("ladder", "rladder", "vb", "vb_prior", "wiener", "bayes"):
        assert res[section] == golden[section], section


def test_results_json_has_the_documented_fields(smoke_run):
    res = json.loads((smoke_run / "results.json").read_text())
    iterations = res["settings"]["iterations"]
    for name, length in (("ladder", 1), ("rladder", iterations), ("vb", iterations),
                         ("vb_prior", iterations)):
        for metric in ("mse_ratio", "kl", "error_gap"):
            values = res[name][metric]
            assert len(values) == length, (name, metric)
            assert all(isinstance(v, float) for v in values)
        assert all(v >= 1.0 - 1e-12 for v in res[name]["mse_ratio"])
        assert all(v >= 0.0 for v in res[name]["error_gap"])
    assert res["wiener"]["mse_ratio"] > 1.0
    assert len(res["rladder"]["probe_r2"][-1]) == 3
    assert res["settings"]["explicit_model"] == "classes" and res["settings"]["preset"] == "smoke"
    assert res["hardware"]["cpu_count"] >= 1 and "git_revision" in res
    assert res["wall_time_s"] > 0
    assert (smoke_run / "curves.png").stat().st_size > 1000
    for engine in ("ladder", "rladder"):
        assert (smoke_run / engine / "config.json").exists()
        assert (smoke_run / engine / "results.json").exists()


def test_horizon_curve_extends_the_trained_curve(smoke_run):
    """``--horizon 4`` (the default) runs the trained RLadder for 4× its iterations; in eval
    mode its first iterations are the scored ones, number for number."""
    res = json.loads((smoke_run / "results.json").read_text())
    trained = res["settings"]["iterations"]
    horizon = res["rladder_horizon"]
    assert len(horizon["mse_ratio"]) == 4 * trained and len(horizon["kl"]) == 4 * trained
    assert horizon["mse_ratio"][:trained] == pytest.approx(res["rladder"]["mse_ratio"], rel=1e-12)
    assert horizon["kl"][:trained] == pytest.approx(res["rladder"]["kl"], rel=1e-12)


def test_bad_horizon_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["check", "static", "--preset", "smoke", "--out", str(out), "--quiet",
                 "--horizon", "0"]) == 2
    assert "--horizon" in capsys.readouterr().err and not out.exists()


def test_rerun_reuses_the_finished_engine_runs(smoke_run, capsys):
    before = json.loads((smoke_run / "results.json").read_text())
    assert main(["check", "static", "--preset", "smoke", "--out", str(smoke_run), "--quiet",
                 "--device", "cpu"]) == 0
    after = json.loads((smoke_run / "results.json").read_text())
    assert after["rladder"]["mse_ratio"] == before["rladder"]["mse_ratio"]
    assert after["ladder"]["kl"] == before["ladder"]["kl"]
    assert "continuing the run" in capsys.readouterr().out


def test_linear_model_has_no_classification_scores(tmp_path, capsys):
    out = tmp_path / "linear"
    assert main(["check", "static", "--explicit-model", "linear", "--preset", "smoke", "--out", str(out),
                 "--quiet", "--device", "cpu", "--steps", "5"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["explicit_model"] == "linear"
    # the deprecated spelling still selects the same model (and reuses the finished runs)
    assert main(["check", "static", "--model", "linear", "--preset", "smoke", "--out", str(out),
                 "--quiet", "--device", "cpu", "--steps", "5"]) == 0
    assert "--model is deprecated, use --explicit-model linear" in capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["rladder"] == res["rladder"]
    assert res["rladder"]["kl"] == [] and res["ladder"]["error_gap"] == []
    assert res["bayes"]["error"] is None
    assert abs(res["wiener"]["mse_ratio"] - 1.0) < 1e-9  # Wiener is Bayes-optimal here


def test_bad_override_names_the_key(tmp_path, capsys):
    assert main(["check", "static", "--preset", "smoke", "--out", str(tmp_path / "x"), "--quiet",
                 "--set", "rladder.encoder_cel=lstm"]) == 2
    assert "rladder.encoder_cel" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_cli_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "pgm_ladder.cli", "check", "static", "--help"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "--explicit-model" in out.stdout and "--steps" in out.stdout


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    test_command = [c for c in commands if "pytest" in c]
    assert len(test_command) == 1
    ci_lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()
                if l.strip() and not l.lstrip().startswith("#")]
    assert test_command[0].strip() in ci_lines


def test_embedded_mixture_model_is_the_one_the_issue_asks_for():
    # 10 classes, widths 64-32-16, classes overlapping (Bayes error around 10 %), and an
    # optimal denoiser clearly better than the best linear one.
    from experiments.static.experiment import embedded_model
    from pgm_ladder import harness

    model = embedded_model("classes")
    assert model.widths == [64, 32, 16] and model.num_classes == 10
    data = harness.posterior_eval_set(model, 4000, seed=5)
    assert 0.05 < data.bayes_error < 0.15
    assert harness.score_wiener(model, data).mse_ratio[0] > 1.15

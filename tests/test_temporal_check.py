"""``pgm-ladder check temporal`` end to end on the smoke preset."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pgm_ladder.cli import main
from experiments.temporal import SPEC as TEMPORAL

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("rladder", "no_decoder", "no_decoder_to_encoder")


CHECK = "temporal"  # the ``smoke_run`` fixture (conftest.py) runs ``pgm-ladder check temporal --preset smoke``


def test_results_json_has_the_documented_fields(smoke_run):
    res = json.loads((smoke_run / "results.json").read_text())
    frames = res["settings"]["frames"]
    for name in ENGINES + ("vb_filter", "vb_filter_1sweep", "prior"):
        ratios = res[name]["mse_ratio"]
        assert len(ratios) == frames and all(isinstance(v, float) for v in ratios), name
        assert all(v >= 1.0 - 1e-12 for v in ratios), name
        assert res[name]["mean_mse_ratio"] >= 1.0 - 1e-12
        assert min(ratios) - 1e-12 <= res[name]["mean_mse_ratio"] <= max(ratios) + 1e-12
    assert res["vb_filter"]["sweeps_per_frame"] == 50 and res["vb_filter_1sweep"]["sweeps_per_frame"] == 1
    assert len(res["kalman"]["optimal_mse"]) == frames and min(res["kalman"]["optimal_mse"]) > 0
    settings = res["settings"]
    assert settings["preset"] == "smoke" and settings["explicit_model"] == "default" and settings["occlusion"] == 0.3
    assert set(settings["engines"]) == set(ENGINES)
    effective = {name: settings["engines"][name]["engine_config"]["ladder"] for name in ENGINES}
    assert effective["rladder"]["use_decoder"] and effective["rladder"]["decoder_to_encoder"]
    assert effective["no_decoder"]["use_decoder"] is False
    assert effective["no_decoder_to_encoder"]["decoder_to_encoder"] is False
    assert res["hardware"]["cpu_count"] >= 1 and "git_revision" in res and res["wall_time_s"] > 0
    assert (smoke_run / "prediction.png").stat().st_size > 1000
    for engine in ENGINES:
        assert (smoke_run / engine / "config.json").exists() and (smoke_run / engine / "results.json").exists()


def test_rerun_reuses_the_finished_engine_runs(smoke_run, capsys):
    before = json.loads((smoke_run / "results.json").read_text())
    assert main(["check", "temporal", "--preset", "smoke", "--out", str(smoke_run), "--quiet",
                 "--device", "cpu"]) == 0
    after = json.loads((smoke_run / "results.json").read_text())
    for name in ENGINES + ("vb_filter",):
        assert after[name]["mse_ratio"] == before[name]["mse_ratio"]
    assert "continuing the run" in capsys.readouterr().out


def test_overrides_reach_the_engines(tmp_path):
    out = tmp_path / "top"
    assert main(["check", "temporal", "--preset", "smoke", "--out", str(out), "--quiet", "--device", "cpu",
                 "--steps", "2", "--set", "task.top_weight=0.5", "--set", "task.frames=3"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["frames"] == 3 and len(res["rladder"]["mse_ratio"]) == 3
    assert len(res["rladder"]["top_mse_ratio"]) == 3 and res["rladder"]["mean_top_mse_ratio"] >= 1.0
    assert res["settings"]["engines"]["rladder"]["steps"] == 2


def test_bad_override_names_the_key(tmp_path, capsys):
    assert main(["check", "temporal", "--preset", "smoke", "--out", str(tmp_path / "x"), "--quiet",
                 "--set", "rladder.encoder_cel=lstm"]) == 2
    assert "rladder.encoder_cel" in capsys.readouterr().err
    assert main(["check", "temporal", "--preset", "smoke", "--out", str(tmp_path / "y"), "--quiet",
                 "--set", "task.occlusion=1.5"]) == 2
    assert "occlusion" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_experiment_is_registered_with_its_presets():
    spec = TEMPORAL
    for preset in ("smoke", "cpu", "long", "paper"):
        config = spec.preset(preset)
        assert config.task.occlusion == 0.3 and config.train.steps > 0
    cpu, long = spec.preset("cpu"), spec.preset("long")
    assert long.train.steps > cpu.train.steps and long.rladder == cpu.rladder and long.task == cpu.task


def test_cli_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "pgm_ladder.cli", "check", "temporal", "--help"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    for flag in ("--preset", "--steps", "--seed", "--device", "--out", "--set", "--quiet"):
        assert flag in out.stdout


def test_results_json_and_figure_have_the_per_frame_curves(smoke_run):
    """Every method's ratio at every frame with its standard error over sequences, the
    pooled mean the optimal-MSE-weighted mean of the per-frame ratios, and the figure."""
    res = json.loads((smoke_run / "results.json").read_text())
    frames, optimal = res["settings"]["frames"], res["kalman"]["optimal_mse"]
    for name in ENGINES + ("vb_filter", "vb_filter_1sweep", "prior"):
        ratios, sems = res[name]["mse_ratio"], res[name]["mse_ratio_sem"]
        assert len(sems) == frames and all(s > 0 for s in sems), name
        weighted = sum(r * o for r, o in zip(ratios, optimal)) / sum(optimal)
        assert abs(res[name]["mean_mse_ratio"] - weighted) < 1e-9, name
    assert (smoke_run / "frame_ratios.png").stat().st_size > 1000

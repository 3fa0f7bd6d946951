"""The traps of the ``check`` commands (issue 14): one error style (one line on stderr,
exit 2, nothing created), no silent reuse of a run of another config, a run killed before
its first checkpoint, an interrupt naming the folder to re-run on, and what the tables and
figures of the checks say."""
from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from helpers import signal_once_logged
from pgm_ladder.checks import default_out
from pgm_ladder.cli import main
from pgm_ladder.training.run_dir import RunDir

CHECKS = ("static", "temporal", "mixture")
USER_ERRORS = {
    "unknown key": (["--set", "rladder.no_such_field=1"], "rladder.no_such_field"),
    "bad type": (["--set", "optim.lr=fast"], "cannot read 'fast' as a float"),
    "negative value": (["--steps", "-3"], "train.steps: must be >= 0, got -3"),
    "device": (["--device", "cuda"], "--device cuda: CUDA is not available"),
    "bad device name": (["--device", "tpu"], "train.device: expected auto, cpu, cuda, cuda:N or mps"),
}


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("error", sorted(USER_ERRORS))
def test_every_check_user_error_is_one_line_exit_2_and_creates_nothing(check, error, tmp_path, capsys):
    if error == "device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv, culprit = USER_ERRORS[error]
    out = tmp_path / "out"
    assert main(["check", check, "--preset", "smoke", "--out", str(out), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pgm-ladder check {check}: error: ") and culprit in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_default_out_is_a_folder_per_preset():
    assert default_out("static", "cpu") == Path("runs/check-static")
    assert default_out("static", "smoke") == Path("runs/check-static-smoke")
    assert default_out("temporal", "paper") == Path("runs/check-temporal-paper")


def smoke(out: Path, *argv: str) -> list[str]:
    return ["check", "static", "--preset", "smoke", "--out", str(out), "--quiet", "--device", "cpu", *argv]


def test_a_run_of_another_config_is_refused_naming_the_fields(tmp_path, capsys):
    out = tmp_path / "check"
    assert main(smoke(out, "--steps", "3")) == 0
    before = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert main(smoke(out, "--steps", "4", "--set", "optim.lr=0.002")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (f"{out / 'ladder'} holds a run of another config (optim.lr: 0.001 there, 0.002 asked; "
            "train.steps: 3 there, 4 asked); pass --out with a fresh folder") in err
    assert main(smoke(out, "--steps", "3", "--seed", "1")) == 2
    assert "seed: 0 there, 1 asked" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == before
    assert main(smoke(out, "--steps", "3")) == 0  # the same config is reused
    assert "continuing the run" in capsys.readouterr().out


LONG = ("--steps", "200", "--set", "train.checkpoint_every=0", "--set", "train.log_every=1")


def test_check_killed_before_the_first_checkpoint_runs_again_to_the_end(tmp_path, capsys):
    out = tmp_path / "check"
    signal_once_logged(smoke(out, *LONG), out / "ladder", signal.SIGKILL)
    assert not RunDir(out / "ladder").has_progress()
    assert main(smoke(out, *LONG)) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["engines"]["ladder"]["steps"] == 200
    assert "continuing the run" in capsys.readouterr().out


def test_sigint_is_one_line_naming_the_folder_to_rerun_on(tmp_path):
    out = tmp_path / "check"
    done = signal_once_logged(smoke(out, *LONG), out / "ladder", signal.SIGINT)
    assert done.returncode == 128 + signal.SIGINT
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"interrupted in {out / 'ladder'} (checkpoint written); re-run the same command (--out {out})" in done.stderr
    assert RunDir(out / "ladder").has_progress()


# ----------------------------------------------------------------------------- what the checks print

def test_mixture_table_puts_the_references_under_their_own_columns():
    from experiments.mixture.check import table, targets

    per_iter = {"ami": [0.1, 0.2], "cost": [1.0, 0.9], "mse": [0.5, 0.4]}
    scores = {"tagger": per_iter, "rtagger": per_iter, "vb": per_iter,
              "vb_converged": {"ami": 0.66, "cost": 0.7, "mse": 0.3},
              "gold": {"ami": 0.72, "cost": 0.6, "mse": 0.2, "rtagger_ami_same_images": 0.25}}
    text = table(scores, 2)
    reference = [line for line in text.splitlines() if "VB converged" in line][0]
    cells = [c.strip() for c in reference.strip("|").split("|")]
    header = [line for line in text.splitlines() if "reference" in line][0]
    assert [c.strip() for c in header.strip("|").split("|")] == ["reference", "AMI", "cost", "MSE"]
    assert cells == ["VB converged", "0.6600", "0.7000", "0.3000"]
    described = {key: (what, met) for key, what, met in targets(scores, 2)}
    assert described["tagger_ge_0.5"] == ("Tagger AMI 0.2000 after 2 iterations vs 0.5", False)


def test_temporal_table_holds_ratios_only():
    from experiments.temporal.check import table

    data = SimpleNamespace(size=10, optimal_mse=[2.0, 4.0])
    scores = {"rladder": {"mse_ratio": [1.5, 1.25], "mse_ratio_sem": [0.2, 0.05],
                          "mean_mse_ratio": 1.375, "mean_mse_ratio_sem": 0.1}}
    text = table(data, scores)
    rows = text.splitlines()
    header = [c.strip() for c in rows[1].strip("|").split("|")]
    assert header == ["frame t", "RLadder"]
    assert "The Kalman-optimal MSE itself" in rows[-1] and "2.0000, 4.0000 (mean 3.0000)" in rows[-1]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows[3:-1]]
    assert cells == [["1", "1.5000 ± 0.2000"], ["2", "1.2500 ± 0.0500"], ["mean", "1.3750 ± 0.1000"]]


def test_static_figure_draws_only_what_its_axes_can_show():
    import matplotlib.pyplot as plt

    from experiments.static.figures import draw_curves

    curves = {"mse_ratio": [1.2, 1.1], "kl": [0.2, 0.1], "error_gap": [0.05, 0.04]}
    results = {"ladder": curves, "rladder": curves, "vb": curves, "vb_prior": curves,
               "wiener": {"mse_ratio": 1.2},
               "settings": {"explicit_model": "classes", "preset": "smoke", "seed": 0}}
    fig = draw_curves(results)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Bayes optimum (0)" not in labels and ax.get_yscale() == "log"  # 0 is off a log axis
    wiener = [line for line in ax.get_lines() if line.get_label() == "Wiener (best linear)"][0]
    vb = [line for line in ax.get_lines() if line.get_label().startswith("VB, linear init")][0]
    assert wiener.get_zorder() > vb.get_zorder()
    plt.close(fig)

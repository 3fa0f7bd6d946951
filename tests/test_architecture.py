"""The architecture (docs/architecture.md): the import-linter contracts hold and catch a
violation; an experiment is added the documented way and trains; the catalogue lists every
experiment package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from experiments import registry
from helpers import run_cli
from pgm_ladder.training import resume

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("experiments", "pgm_ladder", "learned_inference", "explicit_models")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the packages and pyproject.toml found in ``root``."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_import_contracts_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken" in done.stdout


@pytest.mark.slow
def test_import_contracts_catch_an_arrow_up_and_a_cycle(tmp_path):
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "explicit_models" / "_upward.py").write_text("import learned_inference.base\n")
    (tmp_path / "pgm_ladder" / "_cycle_a.py").write_text("from pgm_ladder import _cycle_b\n")
    (tmp_path / "pgm_ladder" / "_cycle_b.py").write_text("from pgm_ladder import _cycle_a\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "explicit_models._upward -> learned_inference.base" in done.stdout
    assert "No cycles are allowed in pgm_ladder" in done.stdout
    assert "Contracts: 0 kept, 2 broken" in done.stdout


def test_every_experiment_package_is_in_the_catalogue():
    packages = {p.parent.name for p in (ROOT / "experiments").glob("*/__init__.py")
                if "SPEC = ExperimentSpec(" in p.read_text()}
    assert packages == {spec.name for spec in registry.BUILT_IN}
    for spec in registry.BUILT_IN:
        assert spec.home == f"experiments.{spec.name}"


THROWAWAY = '''
"""A throwaway experiment, added exactly as docs/architecture.md says."""
from dataclasses import dataclass

import torch

from pgm_ladder.training import (ExperimentConfig, ExperimentSpec, OptimConfig, Parts,
                                 SampledStream, TrainConfig)


@dataclass
class ThrowawayConfig(ExperimentConfig):
    width: int = 3


def build(config, device, seed):
    net = torch.nn.Linear(config.width, 1).to(device)
    target = torch.arange(config.width, dtype=torch.float32)

    def sample(generator, n):
        x = torch.randn(n, config.width, generator=generator)
        return x, x @ target

    def loss(model, batch):
        x, y = (t.to(device) for t in batch)
        return {"loss": (model(x).squeeze(-1) - y).pow(2).mean()}

    def evaluate(model):
        return {"weight_error": float((model.weight.detach().cpu()[0] - target).abs().max())}

    return Parts(model=net, train_batches=SampledStream(sample, config.train.batch_size, seed),
                 loss=loss, evaluate=evaluate)


def preset(steps):
    return lambda: ThrowawayConfig(train=TrainConfig(steps=steps, batch_size=32, log_every=5,
                                                     checkpoint_every=10),
                                   optim=OptimConfig(lr=0.1))


SPEC = ExperimentSpec(name="throwaway", config_type=ThrowawayConfig, build=build, home=__name__,
                      presets={"smoke": preset(20), "cpu": preset(200), "paper": preset(2000)},
                      description="a throwaway experiment (tests/test_architecture.py)")
'''


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    """A package ``throwaway_exp`` with an entry point in group ``pgm_ladder.experiments``
    (what ``pip install`` of a package declaring it in its pyproject.toml leaves behind)."""
    site = tmp_path / "site"
    (site / "throwaway_exp").mkdir(parents=True)
    (site / "throwaway_exp" / "__init__.py").write_text(textwrap.dedent(THROWAWAY))
    dist = site / "throwaway_exp-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: throwaway-exp\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\nthrowaway = throwaway_exp:SPEC\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("throwaway_exp", None)


def test_a_plugged_in_experiment_trains_resumes_and_is_listed(plugin_on_path, tmp_path, capsys):
    assert "throwaway" in registry.catalogue()
    out = tmp_path / "run"
    assert run_cli(["train", "throwaway", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    assert (out / "results.json").is_file()
    result = resume(out, overrides=["train.steps=40"], quiet=True)
    assert result.step == 40 and result.metrics["weight_error"] < 0.5
    assert run_cli(["list"]) == 0
    assert "throwaway" in capsys.readouterr().out


def test_a_plugin_may_not_take_a_built_in_name(monkeypatch):
    from pgm_ladder.training import ConfigError
    from experiments.toy import SPEC as TOY

    monkeypatch.setattr(registry, "plugins", lambda: [TOY])
    with pytest.raises(ConfigError, match="reuses the name"):
        registry.catalogue()

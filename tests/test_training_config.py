"""Typed configs, overrides, presets and the experiment registry (fast, in-process)."""
from __future__ import annotations

import dataclasses
import re

import pytest

from experiments import registry
from helpers import TOY, run_cli
from pgm_ladder.training import (ConfigError, ExperimentConfig, ExperimentSpec, OptimConfig,
                                 TrainConfig, apply_overrides, config_from_dict, config_to_dict)
from experiments.toy.experiment import ToyConfig



def smoke() -> ToyConfig:
    return TOY.preset("smoke")


def test_overrides_parse_each_field_type():
    cfg = apply_overrides(smoke(), [
        "optim.lr=3e-4", "train.steps=100", "model.hidden=[64, 32]", "train.grad_clip=1",
        "data.map_style=true", "train.schedule=cosine", "optim.betas=[0.5, 0.9]",
        "train.device=cpu",
    ])
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.train.steps == 100
    assert cfg.model.hidden == (64, 32)
    assert cfg.train.grad_clip == 1.0 and isinstance(cfg.train.grad_clip, float)
    assert cfg.data.map_style is True
    assert cfg.train.schedule == "cosine"
    assert cfg.optim.betas == (0.5, 0.9)
    assert apply_overrides(cfg, ["train.grad_clip=none"]).train.grad_clip is None


def test_overrides_leave_the_original_untouched():
    cfg = smoke()
    apply_overrides(cfg, ["optim.lr=0.5"])
    assert cfg.optim.lr == smoke().optim.lr


def test_overrides_applied_together_switch_steps_to_epochs():
    cfg = apply_overrides(smoke(), ["train.steps=0", "train.epochs=2"])
    assert (cfg.train.steps, cfg.train.epochs) == (0, 2)


@pytest.mark.parametrize("override, culprit", [
    ("optim.lrr=1", "optim.lrr"),
    ("nosuch.lr=1", "nosuch"),
    ("model.hidden.width=3", "model.hidden"),
])
def test_unknown_key_is_refused_naming_it(override, culprit):
    with pytest.raises(ConfigError, match=rf"'{culprit}'"):
        apply_overrides(smoke(), [override])


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        apply_overrides(smoke(), ["optim.lrr=1"])


@pytest.mark.parametrize("override, culprit", [
    ("train.steps=abc", "train.steps"),
    ("train.steps=1.5", "train.steps"),
    ("train.steps=true", "train.steps"),
    ("optim.lr=fast", "optim.lr"),
    ("train.compile=maybe", "train.compile"),
    ("train.schedule=wiggly", "train.schedule"),
    ("optim.name=lbfgs", "optim.name"),
    ("model.hidden=[8, \"a\"]", "model.hidden[1]"),
    ("model.hidden=8", "model.hidden"),
    ("optim.betas=[0.9]", "optim.betas"),
])
def test_ill_typed_value_is_refused_naming_the_key(override, culprit):
    with pytest.raises(ConfigError, match=re.escape(f"'{culprit}'")):
        apply_overrides(smoke(), [override])


@pytest.mark.parametrize("override, culprit", [
    ("train.steps=-1", "train.steps"),
    ("train.keep_last=0", "train.keep_last"),
    ("train.epochs=3", "train.epochs"),          # both steps and epochs set
    ("train.grad_clip=0", "train.grad_clip"),
    ("train.device=tpu", "train.device"),
    ("optim.lr=0", "optim.lr"),
])
def test_invalid_value_is_refused_naming_the_key(override, culprit):
    with pytest.raises(ConfigError, match=culprit.replace(".", r"\.")):
        apply_overrides(smoke(), [override])


def test_malformed_override_and_section_override_are_refused():
    with pytest.raises(ConfigError, match="'optim.lr'"):
        apply_overrides(smoke(), ["optim.lr"])
    with pytest.raises(ConfigError, match="'train' is a section"):
        apply_overrides(smoke(), ["train=3"])


def test_config_dict_round_trip_and_unknown_saved_key():
    cfg = apply_overrides(smoke(), ["model.hidden=[5, 6]"])
    data = config_to_dict(cfg)
    assert config_from_dict(ToyConfig, data) == cfg
    data["train"]["stpes"] = 3
    with pytest.raises(ConfigError, match="'train.stpes'"):
        config_from_dict(ToyConfig, data)


def test_presets_exist_and_are_fresh_copies():
    spec = TOY
    assert {"smoke", "cpu", "paper"} <= set(spec.presets)
    a = spec.preset("smoke")
    a.optim.lr = 123.0
    assert spec.preset("smoke").optim.lr != 123.0
    for name in ("smoke", "cpu", "paper"):
        assert isinstance(spec.preset(name).train, TrainConfig)


def test_unknown_preset_and_experiment_are_named():
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'.*smoke, cpu, paper"):
        TOY.preset("huge")
    with pytest.raises(ConfigError, match=r"unknown experiment 'nosuch'.*toy"):
        registry.get("nosuch")


def test_the_catalogue_holds_every_built_in_experiment():
    assert set(registry.catalogue()) >= {"toy", "static", "temporal", "mixture", "occluded_mnist"}


@dataclasses.dataclass
class NoTrainSection:
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)


def test_spec_checks_config_sections_and_presets():
    with pytest.raises(TypeError, match="train: TrainConfig"):
        ExperimentSpec("bad", NoTrainSection, {}, build=lambda c, d, s: None, home=__name__)
    with pytest.raises(TypeError, match=r"missing presets \['cpu', 'paper'\]"):
        ExperimentSpec("bad", ExperimentConfig, {"smoke": ExperimentConfig()},
                       build=lambda c, d, s: None, home=__name__)


@pytest.mark.parametrize("argv, culprit", [
    (["train", "nosuch", "--preset", "smoke"], "'nosuch'"),
    (["train", "toy", "--preset", "huge"], "'huge'"),
    (["train", "toy", "--preset", "smoke", "--set", "optim.lrr=1"], "'optim.lrr'"),
    (["train", "toy", "--preset", "smoke", "--set", "train.steps=many"], "'train.steps'"),
    (["sweep", "toy", "--preset", "smoke", "--seeds", "0", "--set", "x.y=1"], "'x'"),
])
def test_cli_config_errors_exit_2_naming_the_culprit(argv, culprit, capsys, tmp_path):
    assert run_cli(argv + ["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert culprit in err and "error" in err
    assert not (tmp_path / "run").exists()


def test_renamed_config_keys_and_values_still_work_with_a_warning(capsys):
    from experiments.static import SPEC as STATIC

    assert STATIC.overrides(["task.model=mixture", "task.model=linear", "optim.lr=0.5"]) == [
        "task.explicit_model=classes", "task.explicit_model=linear", "optim.lr=0.5"]
    err = capsys.readouterr().err
    assert "'task.model=mixture' is deprecated, use 'task.explicit_model=classes'" in err
    assert "'task.model=linear' is deprecated, use 'task.explicit_model=linear'" in err
    config = apply_overrides(STATIC.preset("smoke"), STATIC.overrides(["task.model=linear"]))
    assert config.task.explicit_model == "linear"
    old_run = {"task": {"model": "mixture", "engine": "ladder"}, "optim": {"lr": 0.1}}
    assert STATIC.upgrade(old_run) == {"task": {"engine": "ladder", "explicit_model": "classes"},
                                       "optim": {"lr": 0.1}}
    assert old_run["task"]["model"] == "mixture"  # the caller's dict is left alone


def test_temporal_rladder_fields_keep_their_old_override_keys(capsys):
    from experiments.temporal import SPEC as TEMPORAL

    config = apply_overrides(TEMPORAL.preset("smoke"),
                             TEMPORAL.overrides(["rladder.hidden_dims=[12, 6]", "task.model=default"]))
    assert config.rladder.ladder.hidden_dims == (12, 6) and config.task.explicit_model == "default"
    assert "use 'rladder.ladder.hidden_dims=[12, 6]'" in capsys.readouterr().err

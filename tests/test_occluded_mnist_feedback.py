"""The decoder-to-encoder mode of the ``occluded_mnist`` rows (experiments/occluded_mnist,
learned_inference/conv_rladder.py): the paper's ``input`` mode is the default, our
``gain`` mode trains too, and run directories written before the mode existed (config
``net.feedback_gain_init: 0.0``) load, evaluate and are reused as the gain runs they were."""
import json
import os

import pytest

from experiments.datasets import paths
from experiments.occluded_mnist import SPEC as OMM
from experiments.occluded_mnist.rows import engine_config
from experiments.occluded_mnist.speed import largest_relative_difference, speed
from pgm_ladder.training import apply_overrides, evaluate_run, train
from pgm_ladder.training.config import config_from_dict, config_to_dict
from pgm_ladder.training.errors import ConfigMismatchError
from pgm_ladder.training.reuse import check_same_run
from pgm_ladder.training.run_dir import RunDir

requires_data = pytest.mark.skipif(
    not (paths.SIBLING_DATA_DIR.is_dir() or os.environ.get(paths.DATA_ENV)),
    reason="real data files (../shared/data or PGM_LADDER_DATA) absent")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _old(config_dict: dict) -> dict:
    """A config dict as written before ``net.decoder_to_encoder_mode`` existed."""
    old = json.loads(json.dumps(config_dict))
    del old["net"]["decoder_to_encoder_mode"]
    old["net"]["feedback_gain_init"] = 0.0
    return old


def test_the_default_is_the_papers_input_and_old_configs_read_as_gain():
    for preset in ("smoke", "cpu", "paper"):
        config = OMM.preset(preset)
        assert config.net.decoder_to_encoder_mode == "input"
        assert engine_config(config).decoder_to_encoder_mode == "input"
    new = config_to_dict(OMM.preset("cpu"))
    assert config_from_dict(type(OMM.preset("cpu")), OMM.upgrade(new)).net.decoder_to_encoder_mode == "input"
    old = config_from_dict(type(OMM.preset("cpu")), OMM.upgrade(_old(new)))
    assert old.net.decoder_to_encoder_mode == "gain"
    assert engine_config(old).decoder_to_encoder_mode == "gain" and engine_config(old).feedback_gain_init == 0.0
    assert OMM.overrides(["net.feedback_gain_init=0.0"]) == ["net.decoder_to_encoder_mode=gain"]


@requires_data
def test_gain_mode_trains_and_an_old_run_directory_is_still_the_gain_run(tmp_path):
    gain = apply_overrides(OMM.preset("smoke"), ["net.decoder_to_encoder_mode=gain", "figure_sequences=0"])
    res = train(OMM, gain, tmp_path / "gain", preset="smoke", seed=0, quiet=True)
    assert res.step == 3 and 0.0 <= res.metrics["class_error"] <= 100.0
    timed = speed(tmp_path / "gain", skip=1)  # the smoke preset logs every step
    assert timed["steps"] == 1 and timed["s_per_step"] > 0 and len(timed["losses"]) == 3
    assert timed["seq_per_s"] == pytest.approx(8 / timed["s_per_step"])
    assert largest_relative_difference(timed["losses"], timed["losses"]) == 0.0
    assert largest_relative_difference([2.0, 3.0], [1.0, 3.0]) == 1.0
    with pytest.raises(ValueError, match="log_every"):
        speed(tmp_path / "gain", skip=2)
    run = RunDir(tmp_path / "gain")
    manifest = run.read_manifest()
    manifest["config"] = _old(manifest["config"])  # as a run of the former code wrote it
    run.write_manifest(manifest)
    assert evaluate_run(tmp_path / "gain") == pytest.approx(res.metrics, rel=1e-6)
    check_same_run(OMM, run, gain, 0, "")  # reused as the gain run it is ...
    with pytest.raises(ConfigMismatchError, match="decoder_to_encoder_mode"):
        check_same_run(OMM, run, OMM.preset("smoke"), 0, "")  # ... never as an input-mode run

"""Parameter files of the explicit models (``explicit_models.model_files``), the
``model-file`` command and every check's ``--model-file`` (issue 17 item 4)."""
import json
from pathlib import Path

import pytest
import torch

from explicit_models import StaticGaussianHierarchy, TaggerMixture, TemporalGaussianHierarchy
from explicit_models.model_files import ModelFileError, load_model_file, save_model_file, sha256_of
from explicit_models.testing.tagger import tiny_model
from pgm_ladder import harness
from pgm_ladder.cli import main
from pgm_ladder.training.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
F64 = torch.float64


def _models():
    return {
        "static_classes": StaticGaussianHierarchy.random([6, 4, 3], num_classes=3, seed=1, noise_std=0.7),
        "static_linear": StaticGaussianHierarchy.random([5, 3], seed=2),
        "temporal": TemporalGaussianHierarchy.random([4, 3, 2], seed=3, init="stationary"),
        "tagger_textures": TaggerMixture.textures(4, 5, groups=3, num_freqs=2, amplitude=2.0, offset_spread=0.5,
                                                  mix_probs=[0.2, 0.3, 0.5]),
        "tagger_bernoulli": tiny_model("bernoulli"),
    }


def _same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, list) and a and torch.is_tensor(a[0]):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    return a == b


def _answers(model):
    """A model's exact answers on fixed data (float64): what a rebuilt model must reproduce."""
    g = torch.Generator().manual_seed(5)
    if isinstance(model, StaticGaussianHierarchy):
        post = model.exact_posterior(model.sample(7, generator=g).x_noisy)
        return [post.log_evidence, *post.means, *post.covs]
    if isinstance(model, TemporalGaussianHierarchy):
        s = model.sample(3, 5, generator=g, visibility=0.7)
        kf = model.kalman_filter(s.x_noisy, s.visibility)
        return [kf.log_likelihood, kf.obs_means, kf.filtered_covs]
    s = model.sample(4, generator=g)
    return [model.marginal_log_likelihood(s.x_noisy, s.h), model.assignment_probs_given_h(s.x_noisy, s.h)]


@pytest.mark.parametrize("name", sorted(_models()))
def test_load_of_save_rebuilds_the_model_exactly(tmp_path, name):
    model = _models()[name]
    path = save_model_file(model, tmp_path / "m.json")
    loaded = load_model_file(path)
    assert type(loaded) is type(model)
    params, again = model.parameters(), loaded.parameters()
    assert params.keys() == again.keys()
    for key in params:
        assert _same(params[key], again[key]), key
    if isinstance(model, TaggerMixture):
        assert loaded.image_shape == model.image_shape
    for a, b in zip(_answers(model), _answers(loaded)):
        assert a.dtype == F64 and torch.equal(a, b)
    assert not [p for p in tmp_path.iterdir() if p.name != "m.json"]  # no temporary file left behind


def _static_file(tmp_path) -> Path:
    return save_model_file(StaticGaussianHierarchy.random([4, 3, 2], num_classes=2, seed=0), tmp_path / "m.json")


def _edit(path: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def _nan_in_stds(path: Path) -> Path:
    doc = json.loads(path.read_text())
    doc["parameters"]["stds"][1][2] = "__NAN__"
    path.write_text(json.dumps(doc).replace('"__NAN__"', "NaN"))
    return path


def _huge_in_weights(path: Path) -> Path:
    doc = json.loads(path.read_text())
    doc["parameters"]["weights"][0][1][0] = "__BIG__"
    path.write_text(json.dumps(doc).replace('"__BIG__"', "1e999"))  # parses as inf
    return path


BAD_FILES = {
    "missing": (lambda p: p.with_name("absent.json"), "no model file there"),
    "directory": (lambda p: p.parent, "is a directory"),
    "not_json": (lambda p: (p.write_text('{"format": '), p)[1], "not valid JSON (line 1"),
    "not_utf8": (lambda p: (p.write_bytes(b"\xff\xfe{"), p)[1], "not UTF-8"),
    "not_object": (lambda p: (p.write_text("[1, 2]"), p)[1], "expected a JSON object"),
    "unknown_top_field": (lambda p: _edit(p, lambda d: d.update(extra=1)), "['extra']"),
    "format": (lambda p: _edit(p, lambda d: d.update(format="other")), "format: expected"),
    "version": (lambda p: _edit(p, lambda d: d.update(version=2)), "version: this pgm-ladder reads version 1, got 2"),
    "unknown_kind": (lambda p: _edit(p, lambda d: d.update(kind="ising")), "kind: expected one of"),
    "parameters_not_object": (lambda p: _edit(p, lambda d: d.update(parameters=[1])), "parameters: expected"),
    "unknown_parameter": (lambda p: _edit(p, lambda d: d["parameters"].update(stdz=[1.0])), "unknown field(s) ['stdz']"),
    "missing_parameter": (lambda p: _edit(p, lambda d: d["parameters"].pop("stds")), "missing required field(s) ['stds']"),
    "nan": (_nan_in_stds, "parameters.stds[1][2] is nan"),
    "inf": (_huge_in_weights, "parameters.weights[0][1][0] is inf"),
    "negative_std": (lambda p: _edit(p, lambda d: d["parameters"]["stds"][1].__setitem__(0, -0.5)),
                     "parameters: stds[1] must be positive"),
    "bad_shape": (lambda p: _edit(p, lambda d: d["parameters"]["weights"][1].pop()),
                  "parameters: weights[1] has shape"),
    "text_value": (lambda p: _edit(p, lambda d: d["parameters"].update(noise_std="high")),
                   "parameters: noise_std must be real-valued"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_refused_naming_the_file_and_the_field(tmp_path, case):
    spoil, expected = BAD_FILES[case]
    path = spoil(_static_file(tmp_path))
    with pytest.raises(ModelFileError) as err:
        load_model_file(path)
    message = str(err.value)
    assert message.startswith(f"{path.absolute()}: ") and expected in message, message


def test_another_kind_is_refused(tmp_path):
    path = _static_file(tmp_path)
    with pytest.raises(ModelFileError, match="kind: the file holds a static_gaussian_hierarchy, this needs a "
                                             "tagger_mixture"):
        load_model_file(path, kind="tagger_mixture")
    assert isinstance(load_model_file(path, kind="static_gaussian_hierarchy"), StaticGaussianHierarchy)


def test_a_changed_file_is_refused_naming_both_hashes(tmp_path):
    path = _static_file(tmp_path)
    before = sha256_of(path)
    assert isinstance(load_model_file(path, sha256=before), StaticGaussianHierarchy)
    save_model_file(StaticGaussianHierarchy.random([4, 3, 2], num_classes=2, seed=1), path)
    after = sha256_of(path)
    with pytest.raises(ModelFileError) as err:
        load_model_file(path, sha256=before)
    assert before != after and before in str(err.value) and after in str(err.value)


def test_tagger_image_shape_must_match_the_pixels():
    basis = torch.ones(6, 1, dtype=F64)
    with pytest.raises(ValueError, match=r"image_shape must be \(H, W\).*N = 6"):
        TaggerMixture(basis, torch.zeros(6), [0.1, 0.2], 0.3, image_shape=(2, 2))
    assert TaggerMixture(basis, torch.zeros(6), [0.1, 0.2], 0.3, image_shape=[2, 3]).image_shape == (2, 3)


@pytest.mark.parametrize("name", ["static", "temporal", "mixture"])
def test_every_experiment_takes_its_model_from_the_task_file(tmp_path, name):
    """``EMBEDDED_MODELS.for_task``: the embedded model without a file; the file's model (of
    the experiment's kind, with the recorded sha256) with one; a file of another kind, or
    one without its sha256, is a ConfigError naming the field."""
    import importlib

    exp = importlib.import_module(f"experiments.{name}.experiment")
    task_type = getattr(exp, {"static": "StaticTask", "temporal": "TemporalTask", "mixture": "MixtureTask"}[name])
    embedded = exp.EMBEDDED_MODELS.for_task(task_type())
    assert _same_model(embedded, exp.embedded_model(task_type().explicit_model))
    model = {"static": _models()["static_linear"], "temporal": _models()["temporal"],
             "mixture": _models()["tagger_textures"]}[name]
    path = save_model_file(model, tmp_path / "m.json")
    task = task_type(model_file=str(path), model_file_sha256=sha256_of(path))
    assert _same_model(exp.EMBEDDED_MODELS.for_task(task), model)
    assert exp.EMBEDDED_MODELS.settings(task) == {"model_file": str(path), "model_file_sha256": sha256_of(path),
                                                  "model_kind": exp.EMBEDDED_MODELS.kind}
    with pytest.raises(ValueError, match=f"task.model_file_sha256: required with task.model_file.*{sha256_of(path)}"):
        task_type(model_file=str(path))
    other = save_model_file(_models()["tagger_bernoulli" if name != "mixture" else "static_linear"], tmp_path / "o.json")
    with pytest.raises(ConfigError, match="kind: the file holds a"):
        exp.EMBEDDED_MODELS.for_task(task_type(model_file=str(other), model_file_sha256=sha256_of(other)))
    with pytest.raises(ValueError, match="task.model_file_sha256: expected 64 hex digits"):
        task_type(model_file=str(path), model_file_sha256="abc")


def _same_model(a, b) -> bool:
    pa, pb = a.parameters(), b.parameters()
    return pa.keys() == pb.keys() and all(_same(pa[k], pb[k]) for k in pa)


# --------------------------------------------------------------------------- commands
def _smoke(out: Path, *extra: str) -> int:
    return main(["check", "static", "--preset", "smoke", "--horizon", "1", "--out", str(out), "--quiet",
                 "--device", "cpu", *extra])


def test_model_file_command_writes_the_embedded_recipe_at_other_widths(tmp_path, capsys):
    from experiments.static.experiment import EMBEDDED_MODELS

    path = tmp_path / "w.json"
    assert main(["model-file", "static", "--explicit-model", "linear", "--widths", "5", "3", "--out", str(path)]) == 0
    expected = StaticGaussianHierarchy.random(**{**EMBEDDED_MODELS["linear"], "widths": [5, 3]})
    assert _same_model(load_model_file(path), expected)
    assert f"pgm-ladder check static --model-file {path}" in capsys.readouterr().out
    before = path.read_bytes()
    assert main(["model-file", "static", "--out", str(path)]) == 2  # exists: --force needed
    assert path.read_bytes() == before and "--force" in capsys.readouterr().err
    assert main(["model-file", "static", "--widths", "5", "--out", str(tmp_path / "x.json")]) == 2
    other = tmp_path / "a.json"
    assert main(["model-file", "static", "--widths", "5", "3", "--arg", "class_separation=0.25", "--arg",
                 "std_range=[0.2, 0.4]", "--out", str(other)]) == 0
    recipe = {**EMBEDDED_MODELS["classes"], "widths": [5, 3], "class_separation": 0.25, "std_range": [0.2, 0.4]}
    assert _same_model(load_model_file(other), StaticGaussianHierarchy.random(**recipe))
    for bad, expected in ((["--arg", "sepration=1"], "no argument(s) ['sepration']"),
                          (["--arg", "noise_std=-1"], "noise_std must be positive"),
                          (["--arg", "noise_std"], "--arg expects KEY=VALUE")):
        assert main(["model-file", "static", *bad, "--out", str(tmp_path / "x.json")]) == 2
        assert expected in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_check_static_trains_and_scores_on_the_model_file(tmp_path, capsys):
    path = tmp_path / "mine.json"
    assert main(["model-file", "static", "--widths", "8", "4", "2", "--out", str(path)]) == 0
    out = tmp_path / "run"
    assert _smoke(out, "--model-file", str(path)) == 0
    res = json.loads((out / "results.json").read_text())
    settings = res["settings"]
    assert settings["model_file"] == str(path.resolve()) and settings["model_file_sha256"] == sha256_of(path)
    assert "explicit_model" not in settings and "model_args" not in settings
    for engine in ("ladder", "rladder"):
        assert settings["engines"][engine]["config"]["task"]["model_file_sha256"] == sha256_of(path)
    from experiments.static.experiment import PRESETS

    task = PRESETS["smoke"]().task
    data = harness.posterior_eval_set(load_model_file(path), task.eval_samples, task.eval_seed)
    assert res["bayes"]["mse"] == data.bayes_mse and res["bayes"]["error"] == data.bayes_error
    capsys.readouterr()
    # the file changes: the finished runs in OUT are not reused, nor resumed
    assert main(["model-file", "static", "--widths", "8", "4", "2", "--explicit-model", "linear", "--force",
                 "--out", str(path)]) == 0
    before = (out / "results.json").read_bytes()
    assert _smoke(out, "--model-file", str(path)) == 2
    assert "model_file_sha256" in capsys.readouterr().err
    assert main(["resume", str(out / "ladder")]) == 2
    err = capsys.readouterr().err
    assert settings["model_file_sha256"] in err and sha256_of(path) in err
    assert (out / "results.json").read_bytes() == before


@pytest.mark.parametrize("extra, expected", [
    (["--model-file", "absent.json"], "absent.json: no model file there"),
    (["--model-file", "BAD", "--explicit-model", "classes"], "--model-file and --explicit-model"),
    (["--model-file", "BAD"], "parameters: stds[1] must be positive"),
])
def test_a_check_that_refuses_a_model_file_creates_nothing(tmp_path, capsys, monkeypatch, extra, expected):
    monkeypatch.chdir(tmp_path)
    bad = _edit(_static_file(tmp_path), lambda d: d["parameters"]["stds"][1].__setitem__(0, 0.0))
    extra = [str(bad) if e == "BAD" else e for e in extra]
    assert _smoke(tmp_path / "out", *extra) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_embedded_model_written_to_a_file_reproduces_the_embedded_run(tmp_path):
    """``model-file static`` then ``check static --model-file`` trains and scores exactly as
    ``check static`` on the embedded model (same seeds, same parameters to the last bit)."""
    path = tmp_path / "classes.json"
    assert main(["model-file", "static", "--explicit-model", "classes", "--out", str(path)]) == 0
    assert _smoke(tmp_path / "file", "--model-file", str(path), "--steps", "5") == 0
    assert _smoke(tmp_path / "embedded", "--explicit-model", "classes", "--steps", "5") == 0
    by_file, embedded = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("file", "embedded"))
    for section in ("ladder", "rladder", "vb", "vb_prior", "wiener", "bayes"):
        assert by_file[section] == embedded[section], section
    assert embedded["settings"]["explicit_model"] == "classes"

"""The inference measurements of issue 17 at toy sizes (no timing is asserted: speed lives in
the bench's output): ``experiments.bench.bench`` writes its JSON, plot and table with a row
per width and method; per-example SVI baselines return closed-form-scored fits and refuse a
class-mixture top; the scaled embedded model is the embedded one at width 64."""
import json

import pytest
import torch

from experiments.bench import bench
from experiments.bench.common import scaled_model
from experiments.static.experiment import embedded_model
from explicit_models import StaticGaussianHierarchy
from explicit_models.static_svi import fit_one


def test_bench_writes_rows_plot_and_table(tmp_path):
    code = bench.main(["--widths", "8", "16", "--batch", "50", "--train-steps", "5", "--eval", "10",
                       "--vb-examples", "5", "--svi-max-s", "0.1", "--nuts-draws", "5", "--nuts-max-width", "8",
                       "--out", str(tmp_path)])
    assert code == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    assert [r["width"] for r in result["rows"]] == [8, 16]
    first = result["rows"][0]["methods"]
    assert {"exact", "ladder", "mean_field_encoder", "vb", "svi_mvn", "nuts"} <= set(first)
    assert "nuts" not in result["rows"][1]["methods"]
    assert all(first[m]["s_per_posterior_2t"] > 0 for m in ("exact", "ladder", "vb"))
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert "| 16 | ladder |" in (tmp_path / "bench.md").read_text()


def test_scaled_model_at_64_is_the_embedded_model():
    a, b = scaled_model("linear", 64), embedded_model("linear")
    assert all(torch.equal(u, v) for u, v in zip(a.weights, b.weights))
    with pytest.raises(ValueError, match="multiple of 4"):
        scaled_model("linear", 10)


def test_per_example_svi_scores_its_fit_and_refuses_a_mixture_top():
    model = StaticGaussianHierarchy.random([3, 2], seed=0)
    x = model.sample(1, torch.Generator().manual_seed(0)).x_noisy
    for kind in ("normal", "mvn"):
        fit = fit_one(model, x, kind, max_steps=400, check_every=100, target_kl=0.05)
        assert fit.kl == pytest.approx(float(fit.approximation.kl(model, x)[0]))
        assert fit.steps <= 400 and fit.reached == (fit.kl <= 0.05) and fit.kl >= 0
    mixture = StaticGaussianHierarchy.random([3, 2], num_classes=2, seed=0)
    with pytest.raises(ValueError, match="needs a Gaussian top"):
        fit_one(mixture, x, "mvn")
    with pytest.raises(ValueError, match="one example"):
        fit_one(model, x.repeat(2, 1), "mvn")

"""Shared pytest configuration: the Hypothesis profiles of the test-suite and the shared
fixtures. Helper functions live in ``helpers.py`` beside this file.

Test files are named ``test_<area>_<what>.py`` after what they test: ``test_static_*``,
``test_temporal_*``, ``test_tagger_*`` (explicit models and their checks), ``test_harness_*``,
``test_training_*``, ``test_datasets_*``, an engine's name (``test_tag``, ``test_conv_rladder``)
or an experiment's (``test_occluded_mnist``).
"""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=100,
    deadline=None,
    derandomize=True,  # reproducible runs: the same examples every time
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Under pytest-xdist every worker is its own process: one intra-op thread each keeps two
# workers on two cores from oversubscribing them (small ops slow down many-fold otherwise).
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    """Every test writes its checksum and generated-data caches to a temporary directory,
    never to the user's ``~/.cache`` (tests that need their own cache override it)."""
    from experiments.datasets.paths import CACHE_ENV

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module's tests (small ops on a busy 2-core machine
    run many times faster); restores the previous setting. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def smoke_run(request, tmp_path_factory):
    """``pgm-ladder check NAME --preset smoke`` run once per test module, ``NAME`` being the
    module's ``CHECK``; returns the output directory."""
    from pgm_ladder.cli import main

    name = request.module.CHECK
    out = tmp_path_factory.mktemp("check") / name
    assert main(["check", name, "--preset", "smoke", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    return out

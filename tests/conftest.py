"""Shared pytest configuration: the Hypothesis profiles of the test-suite."""
import os

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

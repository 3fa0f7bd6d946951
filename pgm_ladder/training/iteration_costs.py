"""How the per-iteration costs of an iterative engine are weighted in training (ours; the
papers sum, or average, the cost of every iteration with equal weights).

``uniform`` (the papers'), ``increasing`` (weight proportional to the iteration index
``t``: later iterations count more, so the engine is pushed to keep improving) or ``last``
(only the final iteration is trained). The weights sum to 1; a caller that sums costs
over iterations multiplies by the number of iterations.
"""
from __future__ import annotations

import torch

#: the choices of every ``cost_weighting`` config field
COST_WEIGHTINGS = ("uniform", "increasing", "last")


def iteration_weights(iterations: int, weighting: str) -> torch.Tensor:
    """Weights ``w_1..w_T`` (float32, summing to 1) over ``iterations`` for ``weighting``:
    uniform ``1/T``; increasing ``t / Σ_s s``; last ``δ_tT``."""
    if weighting not in COST_WEIGHTINGS:
        raise ValueError(f"cost_weighting: expected one of {COST_WEIGHTINGS}, got {weighting!r}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations: expected an int >= 1, got {iterations!r}")
    if weighting == "uniform":
        w = torch.ones(iterations)
    elif weighting == "increasing":
        w = torch.arange(1, iterations + 1, dtype=torch.float32)
    else:
        w = torch.zeros(iterations)
        w[-1] = 1.0
    return w / w.sum()

"""Inference on the static hierarchy, measured (issue 17; SPEC §3.5, §4): ``guides`` scores
the amortised Pyro guides and the baselines against the exact posterior; ``bench`` times every
inference method against the width of the model. Runnable as ``python -m experiments.bench.guides``
and ``python -m experiments.bench.bench``."""

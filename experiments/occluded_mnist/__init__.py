"""Occluded Moving MNIST (RLadder paper §3.1, Tables 1–2, Figure 4; SPEC §5–7).

Modules: :mod:`.config` (typed configs, presets, rows, regimes), :mod:`.data` (sequences,
training pools, batches), the row models :mod:`.static` (optimal reconstruction + static
classifier), :mod:`.baseline` (temporal baseline), :mod:`.ladder_rows` (hierarchical RNN,
RLadder and ablations), :mod:`.mean_teacher`, :mod:`.rows` (row name -> model and tasks),
:mod:`.task` (costs and scores), :mod:`.experiment` (``build``; ``SPEC`` is defined here), :mod:`.figures` (Figure 4) and :mod:`.tables` (Tables 1–2). See README.md.
"""
from pgm_ladder.training.spec import ExperimentSpec

from .config import PRESETS, OccludedMNISTConfig
from .experiment import build

SPEC = ExperimentSpec(
    name="occluded_mnist",
    config_type=OccludedMNISTConfig,
    presets=PRESETS,
    build=build,
    home=__name__,
    description="Occluded Moving MNIST: conv RLadder, comparison models, ablations, Mean Teacher "
                "(RLadder §3.1; row=ROW, regime=R)",
    # configs written before decoder_to_encoder_mode existed ran the gain mode (gains at 0)
    renamed={"model": "row", "net.feedback_gain_init=0.0": "net.decoder_to_encoder_mode=gain",
             "net.feedback_gain_init=0": "net.decoder_to_encoder_mode=gain"},
)

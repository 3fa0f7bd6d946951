"""Polyphonic music: next-step prediction of the 88 notes (RLadder paper §3.2, Table 3;
SPEC §5–7).

Modules: :mod:`.config` (typed config, presets, rows, corpora), :mod:`.data` (piano-roll
batches, masks, the NLL per step), :mod:`.models` (the rows), :mod:`.stopping` (early
stopping on the validation NLL), :mod:`.experiment` (``build``), :mod:`.figures` (the piano
roll with predicted probabilities) and :mod:`.tables` (Table 3 beside the paper's rows).
"""
from pgm_ladder.training.spec import ExperimentSpec, PaperNumber

from .config import PRESETS, PolyphonicConfig
from .experiment import build
from .paper import PAPER_RLADDER

SPEC = ExperimentSpec(
    name="polyphonic",
    config_type=PolyphonicConfig,
    presets=PRESETS,
    build=build,
    home=__name__,
    description="Polyphonic music next-step NLL: conv RLadder over pitch, hierarchical RNN, LSTM, "
                "note frequencies (RLadder Table 3; row=ROW, data.corpus=C)",
    # the RLadder row of Table 3 (10 seeds); the other rows: experiments.polyphonic.tables
    paper_numbers={f"nll/{corpus}": PaperNumber(value, source="RLadder Table 3, RLadder")
                   for corpus, value in PAPER_RLADDER.items()},
)

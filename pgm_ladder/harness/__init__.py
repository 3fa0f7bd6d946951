"""The comparison harness: learned engines, VB and closed-form baselines scored against the
Bayes-optimal answers of an explicit model, iteration by iteration (SPEC §4). Evaluation
only, no training.

One module per kind of explicit model, one evaluation-set type each:

* :mod:`.static` — static hierarchy: :class:`PosteriorEvalSet` (exact posterior means,
  class posterior, Bayes MSE), :func:`score_engine`, :func:`score_vb`, :func:`score_wiener`;
* :mod:`.temporal` — temporal hierarchy: :class:`PredictionEvalSet` (Kalman filter's
  next-frame predictions), :func:`score_predictions`;
* :mod:`.grouping` — Tagger mixture: :class:`GroupingEvalSet` (true assignments),
  :func:`score_groupings`;
* :mod:`.batches` — the one loop that runs an engine over an evaluation set.
"""
from pgm_ladder.harness.grouping import GroupingEvalSet, grouping_eval_set, score_groupings
from pgm_ladder.harness.static import (Curves, PosteriorEvalSet, posterior_eval_set, score_engine,
                                       score_vb, score_wiener)
from pgm_ladder.harness.temporal import PredictionEvalSet, prediction_eval_set, score_predictions

__all__ = [
    "Curves", "PosteriorEvalSet", "posterior_eval_set", "score_engine", "score_vb", "score_wiener",
    "PredictionEvalSet", "prediction_eval_set", "score_predictions",
    "GroupingEvalSet", "grouping_eval_set", "score_groupings",
]

"""Property-based testing support for the explicit models: Hypothesis strategies that draw
random models over wide parameter ranges, and reference computations written independently
of the library's own algebra. For this test-suite and for users testing their own update
rules against the exact answers (needs ``hypothesis``, the ``test`` extra); nothing in the
library imports it.

* :mod:`.static` — random static hierarchies (``static_models``) and the structural-equation
  reference joint (``sem_prior``, ``sem_posterior_precision``, ``sem_posterior_means``);
* :mod:`.tagger` — random Tagger mixtures (``tagger_models``) and their data (``data_for``,
  ``random_masks``, ``tiny_model``).
"""
from .static import (EPS64, jacobi_condition, sem_posterior_means, sem_posterior_precision, sem_prior,
                     split_levels, static_models)
from .tagger import F64, data_for, random_masks, tagger_models, tiny_model

__all__ = ["EPS64", "jacobi_condition", "sem_posterior_means", "sem_posterior_precision", "sem_prior",
           "split_levels", "static_models", "F64", "data_for", "random_masks", "tagger_models", "tiny_model"]

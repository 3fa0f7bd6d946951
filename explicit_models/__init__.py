"""Explicit probabilistic models with exact posteriors and VB updates (SPEC §2)."""
from .static_exact import ExactPosterior
from .static_hierarchy import HierarchySample, StaticGaussianHierarchy
from .static_vb import VBResult, gated_update, vb_level_update, vb_level_update_gated
from .static_vb_fixed_point import VBFixedPoint, vb_fixed_point
from .tagger_gold import GoldStandard
from .tagger_mixture import TaggerMixture, TaggerSample, TaggerVBState, TagInputs
from .tagger_vb import TaggerVBResult
from .temporal_hierarchy import TemporalGaussianHierarchy, TemporalSample

__all__ = ["StaticGaussianHierarchy", "HierarchySample", "ExactPosterior", "VBResult", "VBFixedPoint",
           "gated_update", "vb_level_update", "vb_level_update_gated", "vb_fixed_point",
           "TemporalGaussianHierarchy", "TemporalSample",
           "TaggerMixture", "TaggerSample", "TagInputs", "GoldStandard", "TaggerVBResult", "TaggerVBState"]

"""Learned inference engines (SPEC §3): Ladder, Recurrent Ladder, their cells, TAG."""
from .base import (EngineOutput, FrameOutput, GroupingIteration, GroupingOutput,
                   InferenceEngine, IterationOutput, SequenceEngine, ShapeError, StepOutput,
                   check_shape)
from .cells import (ENCODER_CELLS, NORM_KINDS, EncoderCell, GRUEncoderCell,
                    LSTMEncoderCell, build_encoder_cell, make_norm)
from .combinator import LadderCombinator
from .decoder_cells import (DECODER_CELLS, DecoderCell, G1DecoderCell,
                            LadderCombinatorDecoderCell, build_decoder_cell)
from .factory import build_engine
from .ladder import Ladder, LadderConfig
from .rladder import RLadder, RLadderCarry, RLadderConfig
from .tag import (RTagger, Tag, TagConfig, TagIteration, TagOutput, Tagger,
                  build_inner_engine)
from .tag_costs import (TagCost, gaussian_mixture_nll, group_class_log_probs, mixture_bce,
                        tag_class_nll, tag_cost)

__all__ = [
    "EngineOutput", "InferenceEngine", "IterationOutput", "ShapeError", "check_shape",
    "SequenceEngine", "StepOutput", "FrameOutput", "GroupingIteration", "GroupingOutput",
    "ENCODER_CELLS", "NORM_KINDS", "EncoderCell", "GRUEncoderCell", "LSTMEncoderCell",
    "build_encoder_cell", "make_norm", "LadderCombinator",
    "DECODER_CELLS", "DecoderCell", "G1DecoderCell", "LadderCombinatorDecoderCell",
    "build_decoder_cell", "build_engine",
    "Ladder", "LadderConfig", "RLadder", "RLadderCarry", "RLadderConfig",
    "Tag", "TagConfig", "TagIteration", "TagOutput", "Tagger", "RTagger", "build_inner_engine",
    "TagCost", "tag_cost", "tag_class_nll", "group_class_log_probs", "gaussian_mixture_nll",
    "mixture_bce",
]

"""The ``shapes`` experiment: Tagger (and RTagger) on the binary Shapes images, the Tagger
paper's Table 1 (SPEC §3.3, §5, §6).

:mod:`.experiment` (config, presets, build), :mod:`.figures` (``groupings.png``),
:mod:`.tables` (Table 1 beside the paper's numbers). See README.md.
"""
from pgm_ladder.training.spec import ExperimentSpec, PaperNumber

from .experiment import PAPER_TABLE1, PRESETS, ShapesConfig, build

_SOURCE = "Tagger Table 1 (LayerNorm, median of 20 seeds)"

SPEC = ExperimentSpec(
    name="shapes",
    config_type=ShapesConfig,
    presets=PRESETS,
    build=build,
    home=__name__,
    description="Tagger / RTagger on Shapes, AMI and denoising cost (Tagger Table 1; "
                "tag.projection_norm=layer|batch, task.engine=tagger|rtagger)",
    # the LayerNorm variant (the default); BatchNorm: 0.79 / 0.063 (experiments.shapes.tables)
    paper_numbers={
        f"{metric}/iter{t}": PaperNumber(PAPER_TABLE1["layer"][t][metric][0],
                                         std=PAPER_TABLE1["layer"][t][metric][1], source=_SOURCE)
        for t in (3, 5) for metric in ("ami", "cost")},
)

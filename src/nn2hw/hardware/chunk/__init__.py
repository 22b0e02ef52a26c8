"""The chunk-pipelined accelerator of DNA / Auto-NBA (reference notes §6), registered as ``chunk``.

Layers go to sub-accelerators by bit width, depthwise-or-not and feature size; the sub-accelerators
form a pipeline whose period is the slowest stage. ``model`` holds the reference's formulas
(vectorized over designs), ``design`` the design records and grids, ``pipeline`` the exact
exploration over sub-accelerators sharing DSP and BRAM, ``template`` the allocation, ``cost`` and
``explore``. docs/chunk-accelerator.md describes the model and its choices.
"""

from nn2hw.hardware.base import TEMPLATES
from nn2hw.hardware.chunk.design import ChunkDesign, SubDesign, parse_design
from nn2hw.hardware.chunk.template import ChunkTemplate

TEMPLATE = ChunkTemplate()
TEMPLATES.register("chunk", TEMPLATE)

__all__ = ["TEMPLATE", "ChunkDesign", "ChunkTemplate", "SubDesign", "parse_design"]

"""The FPGA tiled-convolution template (Zhang FPGA'15 / FNAS / HotNAS), registered as ``fpga``.

>>> from nn2hw.hardware.fpga import FpgaDesign, TEMPLATE
>>> d = FpgaDesign(70, 36, 64, 64, 7, 18, 6, 6)          # the published ResNet-18 design
>>> cost = TEMPLATE.cost(workload, d, "zcu102", clock_mhz=100)   # doctest: +SKIP

Formulas, variants, BRAM models and their assumptions: ``docs/fpga-cost-model.md``.
"""

from nn2hw.hardware.base import TEMPLATES
from nn2hw.hardware.fpga.design import DesignArrays, FpgaDesign, FpgaEngine, parse_design
from nn2hw.hardware.fpga.devices import FpgaDevice, get_device, load_devices
from nn2hw.hardware.fpga.explore import FpgaGrid, enumerate_grid
from nn2hw.hardware.fpga.latency import VARIANTS
from nn2hw.hardware.fpga.layers import LINEAR_MODES
from nn2hw.hardware.fpga.resources import BRAM_MODES
from nn2hw.hardware.fpga.template import FpgaOptions, FpgaTemplate

TEMPLATE = FpgaTemplate()
TEMPLATES.register("fpga", TEMPLATE)

__all__ = ["BRAM_MODES", "LINEAR_MODES", "TEMPLATE", "VARIANTS", "DesignArrays", "FpgaDesign", "FpgaDevice",
           "FpgaEngine", "FpgaGrid", "FpgaOptions", "FpgaTemplate", "enumerate_grid", "get_device", "load_devices",
           "parse_design"]

"""ASIC dataflow templates: systolic (ws/os/is), NVDLA-, ShiDianNao- and Eyeriss-style, and
heterogeneous multi-accelerator systems, with energy and area from technology tables.

Importing this package registers the templates in ``nn2hw.hardware.base.TEMPLATES``.
"""

from nn2hw.hardware.asic import eyeriss, hetero, nvdla, shidiannao, systolic
from nn2hw.hardware.asic._common import AsicLayerCost, AsicNetworkCost, Budgets, LayerTable
from nn2hw.hardware.asic.systolic import SystolicDesign
from nn2hw.hardware.asic.technology import Technology, get_technology

__all__ = ["AsicLayerCost", "AsicNetworkCost", "Budgets", "LayerTable", "SystolicDesign", "Technology",
           "eyeriss", "get_technology", "hetero", "nvdla", "shidiannao", "systolic"]

"""ASIC dataflow templates: systolic (ws/os/is), NVDLA-, ShiDianNao- and Eyeriss-style, and
heterogeneous chips of them, with energy and area from technology tables.

Each template is one module that registers itself in ``nn2hw.hardware.TEMPLATES``; ``template``
holds the base every ASIC-style template shares, ``arrays`` and ``records`` what it computes.
"""

from nn2hw.hardware.asic.arrays import LayerTable
from nn2hw.hardware.asic.records import AsicLayerCost, AsicNetworkCost
from nn2hw.hardware.asic.technology import Technology, get_technology
from nn2hw.hardware.asic.template import AsicDesign, AsicTemplate

__all__ = ["AsicDesign", "AsicLayerCost", "AsicNetworkCost", "AsicTemplate", "LayerTable", "Technology",
           "get_technology"]

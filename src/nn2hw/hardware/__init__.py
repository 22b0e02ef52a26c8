"""Hardware templates: the contract (``base``), cost records (``records``), budgets, design
selection, and one package per template family (``fpga``, ``asic``), each template registering
itself in ``TEMPLATES`` when the registry is first read."""

from nn2hw.hardware.base import TEMPLATES, HardwareTemplate, Option, get_template
from nn2hw.hardware.budgets import Budgets
from nn2hw.hardware.records import Execution, Exploration, LayerCost, NetworkCost, ResourceUse, Uncosted

__all__ = ["TEMPLATES", "Budgets", "Execution", "Exploration", "HardwareTemplate", "LayerCost", "NetworkCost",
           "Option", "ResourceUse", "Uncosted", "get_template"]

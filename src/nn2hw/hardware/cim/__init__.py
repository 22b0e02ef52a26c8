"""Computing-in-memory crossbar template (``cim``): ``data`` (component and device tables with
their sources), ``model`` (the vectorized cost model), ``template`` (designs, records, the
registered template)."""

from nn2hw.hardware.cim.data import Components, Device, components, devices, get_device
from nn2hw.hardware.cim.template import CimDesign, CimLayerCost, CimNetworkCost, CimTemplate

__all__ = ["CimDesign", "CimLayerCost", "CimNetworkCost", "CimTemplate", "Components", "Device", "components",
           "devices", "get_device"]

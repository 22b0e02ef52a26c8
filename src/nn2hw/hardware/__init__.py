"""Hardware templates. Importing this package registers the built-in ones in ``TEMPLATES``."""

from nn2hw.hardware import (
    asic,  # noqa: F401  (registers systolic, nvdla, shidiannao, eyeriss, hetero)
    fpga,  # noqa: F401  (registers the 'fpga' template)
)
from nn2hw.hardware.base import TEMPLATES, get_template

__all__ = ["TEMPLATES", "get_template"]

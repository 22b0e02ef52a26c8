"""nn2hw: take a neural network to hardware.

Hot-start co-search of a pretrained network, its compression (channel cuts, kernel patterns,
quantization, kernel expansion) and its accelerator design (FPGA tiling, ASIC dataflows), with
analytic cost models that never need torch. The public API lives in ``nn2hw.api``.
"""

__version__ = "0.1.0"

"""The NumPy arrays of the cost models, typed by what they hold."""

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
"""Cycles, energies, areas, sizes: float64 columns or (designs, layers) tables."""
Ints = npt.NDArray[np.int64]
"""Layer dimensions and indices."""
Mask = npt.NDArray[np.bool_]
"""Which designs or layers a condition holds for."""

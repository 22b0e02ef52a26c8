"""The shared value coercers: one parser of tensor shapes for the CLI, templates, exports and CSVs."""

from __future__ import annotations

import numpy as np
import pytest

from nn2hw._checks import as_shape
from nn2hw.errors import ConfigError


@pytest.mark.parametrize("value", ["1x1x28x28", " 1X1x28x28 ", "1,1,28,28", (1, 1, 28, 28), [1, 1, 28, 28],
                                   np.array([1, 1, 28, 28])])
def test_a_shape_is_read_from_text_or_sizes(value):
    assert as_shape(value) == (1, 1, 28, 28)


@pytest.mark.parametrize("value", ["", "1x0x28", "1x-1", "1xx28", "axb", (), (1, 1.5), (True, 2), None, 3])
def test_a_bad_shape_names_itself_and_the_fix(value):
    with pytest.raises(ConfigError, match="is not sizes joined by 'x'") as info:
        as_shape(value, "input_shape")
    assert info.value.cause.startswith("input_shape") and "1x1x28x28" in info.value.fix

"""Registries list their built-ins in one order, whatever an earlier import loaded first."""

from __future__ import annotations

import subprocess
import sys

import pytest

LIST = "from nn2hw.hardware import TEMPLATES; from nn2hw.search.strategies import STRATEGIES; " \
       "print(TEMPLATES.names(), STRATEGIES.names())"


@pytest.mark.parametrize("first", ["nn2hw.hardware.asic.systolic", "nn2hw.hardware.fpga.template",
                                   "nn2hw.search.strategies.reinforce"])
def test_the_order_of_the_built_ins_does_not_depend_on_what_was_imported_first(first):
    def listing(prelude: str) -> str:
        done = subprocess.run([sys.executable, "-c", f"{prelude}{LIST}"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert listing(f"import {first}; ") == listing("")

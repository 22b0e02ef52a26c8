"""The examples' quick parts run as documented (their long parts are measured, see the docs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_nasaic_chip_example_finds_a_chip_meeting_its_default_specs():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "nasaic_multi_dnn.py"), "--part", "chip"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "best chip" in done.stdout and "resnet20 ->" in done.stdout and "mobilenetv2_fmnist ->" in done.stdout

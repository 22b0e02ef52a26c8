"""Which int8 storage ONNX Runtime computes exactly with on a CPU: read from its flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nn2hw.errors import ConfigError
from nn2hw.measure.int8 import INT8_STORAGES, native_int8_storage, resolve_int8_storage
from nn2hw.measure.machine import cpu_flags


@pytest.mark.parametrize(("flags", "storage"), [
    ("fpu sse2 avx2 avx512f avx512_vnni", "s8s8"),  # VNNI: int8 products accumulate in int32
    ("fpu sse2 avx avx2 fma avx_vnni", "s8s8"),
    ("fpu sse2 avx avx2 fma", "u8u8"),  # AVX2 without VNNI: u8 x s8 pair sums saturate int16
    ("fp asimd asimddp", "s8s8"),  # ARM
])
def test_the_native_storage_follows_the_cpu_flags(flags, storage):
    chosen, why = native_int8_storage(frozenset(flags.split()))
    assert chosen == storage and why


def test_unreadable_flags_fall_back_to_s8s8_and_say_so():
    chosen, why = native_int8_storage(None)
    assert chosen == "s8s8" and "cannot be read" in why


def test_cpu_flags_reads_x86_and_arm_cpuinfo(tmp_path: Path):
    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx2 fma\n")
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert cpu_flags(str(x86)) == frozenset({"fpu", "avx2", "fma"})
    assert cpu_flags(str(arm)) == frozenset({"fp", "asimd", "asimddp"})
    assert cpu_flags(str(tmp_path / "missing")) is None


def test_both_storages_hold_the_same_integers():
    integers = np.arange(-128, 128)
    for storage in INT8_STORAGES.values():
        stored = storage.encode(integers)
        assert stored.dtype == storage.dtype
        assert np.array_equal(stored.astype(np.int64) - storage.zero_point, integers)


def test_an_explicit_storage_is_kept_and_an_unknown_one_refused():
    assert resolve_int8_storage("u8u8")[0] == "u8u8" and resolve_int8_storage("s8s8")[0] == "s8s8"
    assert resolve_int8_storage("auto")[0] in INT8_STORAGES
    with pytest.raises(ConfigError, match="s8s8, u8u8"):
        resolve_int8_storage("int4")

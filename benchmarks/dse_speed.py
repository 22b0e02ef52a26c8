"""Speed of the FPGA template's design-space exploration and cost model (prints figures and PASS/FAIL).

    python benchmarks/dse_speed.py            # all four networks
    python benchmarks/dse_speed.py --repeat 11

For ResNet-18, ResNet-50, MobileNetV2 and VGG16 it sweeps the HotNAS grid (cconv-only, or
cconv+dconv for MobileNetV2) and reports the grid size, the wall time of the vectorized sweep
(enumerate the grid, cost every design on every layer, apply every resource limit, pick the
best), the layer-design evaluations per second, the full ``explore`` call (which also builds
the cost records of the best design and the Pareto set), and the time to cost one design on
the whole network. Last, it times ``nn2hw analyze --model resnet18 --hardware fpga:zcu102
--explore`` as a subprocess, start-up included: first with an empty ``NN2HW_CACHE`` (a fresh
install: the workload comes packaged with nn2hw, or is extracted with torch if the packaged
data is stale), then twice more with the same cache.

Targets (issue 2): ResNet-18 sweep < 20 ms, >= 1e7 layer-design evaluations/s, one design on a
whole network < 1 ms, ``analyze --explore`` < 3 s. Timings are medians over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nn2hw.hardware.fpga import TEMPLATE, FpgaGrid, enumerate_grid, get_device
from nn2hw.hardware.fpga.explore import first_minimum
from nn2hw.hardware.fpga.layers import plan_layers
from nn2hw.zoo.bake import BAKE_COMMAND, baked_workload

NETWORKS = ("resnet18", "resnet50", "mobilenet_v2", "vgg16")
TARGET_SWEEP_MS = 20.0
TARGET_EVALS = 1e7
TARGET_SINGLE_MS = 1.0
TARGET_CLI_S = 3.0


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches (layer plan, NumPy)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def sweep(workload, grid: FpgaGrid, device) -> int:
    """The vectorized part of an exploration: every design of the grid, every limit, the best."""
    plan = plan_layers(workload, grid.has_dw, "host", False)
    k_std = int(plan.std.kmax.max())
    k_dw = int(plan.dw.kmax.max()) if len(plan.dw) else 1
    designs, _ = enumerate_grid(grid, device, k_std, k_dw)
    cycles, resources = TEMPLATE.evaluate(workload, designs, device)
    return first_minimum(cycles, resources.feasible())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure (median)")
    args = parser.parse_args()

    from nn2hw import zoo

    device = get_device("zcu102")
    ok = True
    print(f"{'network':13} {'grid':>6} {'layers':>6} {'distinct':>8} {'sweep ms':>9} {'evals/s':>10} "
          f"{'explore ms':>10} {'1 design ms':>11}")
    for name in NETWORKS:
        workload = zoo.workload(name)
        has_dw = any(layer.conv_type == "depthwise" for layer in workload.layers)
        grid = FpgaGrid.hotnas(depthwise=has_dw)
        plan = plan_layers(workload, has_dw, "host", False)
        n_layers = len(plan.layers)
        distinct = len(plan.std.unique()[0]) + (len(plan.dw.unique()[0]) if len(plan.dw) else 0)
        sweep_ms = median_ms(lambda w=workload, g=grid: sweep(w, g, device), args.repeat)
        explore_ms = median_ms(lambda w=workload: TEMPLATE.explore(w, device), args.repeat)
        evals = grid.size * n_layers / (sweep_ms / 1e3)
        best = TEMPLATE.explore(workload, device).best
        design = best.design
        single_ms = median_ms(lambda w=workload, d=design: TEMPLATE.cost(w, d, device), args.repeat * 5)
        print(f"{name:13} {grid.size:>6} {n_layers:>6} {distinct:>8} {sweep_ms:>9.2f} {evals:>10.3g} "
              f"{explore_ms:>10.2f} {single_ms:>11.3f}")
        if name == "resnet18":
            checks = [(f"ResNet-18 sweep {sweep_ms:.2f} ms < {TARGET_SWEEP_MS:g} ms", sweep_ms < TARGET_SWEEP_MS),
                      (f"ResNet-18 {evals:.3g} layer-design evaluations/s >= {TARGET_EVALS:g}", evals >= TARGET_EVALS)]
        checks.append((f"{name}: one design on the whole network {single_ms:.3f} ms < {TARGET_SINGLE_MS:g} ms",
                       single_ms < TARGET_SINGLE_MS))
    print("evals/s counts designs x costed layers (conv/linear) of the whole network; the sweep costs each "
          "distinct layer shape once and weights it by its count.")

    script = Path(sys.executable).with_name("nn2hw")
    launcher = [str(script)] if script.exists() else [sys.executable, "-c", "import sys; from nn2hw.cli import main; "
                                                                            "sys.exit(main(sys.argv[1:]))"]
    command = [*launcher, "analyze", "--model", "resnet18", "--hardware", "fpga:zcu102", "--explore"]
    source = ("packaged workload, no torch" if baked_workload("resnet18", "imagenet") is not None else
              f"packaged workloads stale ({BAKE_COMMAND}): torch import + trace")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NN2HW_CACHE": cache}
        timings = []
        for label in (f"cold, empty NN2HW_CACHE ({source})", "warm, same cache", "warm, same cache"):
            start = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode:
                print(done.stderr)
                return 1
            timings.append((label, seconds))
    for label, seconds in timings:
        print(f"nn2hw analyze --model resnet18 --hardware fpga:zcu102 --explore, {label}: {seconds:.2f} s")
    warm = min(s for _, s in timings[1:])
    checks.append((f"analyze --explore {warm:.2f} s (warm) < {TARGET_CLI_S:g} s", warm < TARGET_CLI_S))
    checks.append((f"analyze --explore {timings[0][1]:.2f} s (cold: empty NN2HW_CACHE, start-up included) < "
                   f"{TARGET_CLI_S:g} s", timings[0][1] < TARGET_CLI_S))

    print()
    for text, passed in checks:
        ok &= passed
        print(f"{verdict(passed)}  {text}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

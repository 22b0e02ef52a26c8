"""Which compression pays on this CPU: each variant exported as the deployable ONNX file and timed.

    .venv/bin/python benchmarks/cpu_compression.py                     # resnet20 (fashion-mnist) and resnet18 112x112
    .venv/bin/python benchmarks/cpu_compression.py --repeats 60 --resnet18-size 224

Networks: the zoo ResNet-20 with its Fashion-MNIST checkpoint (1x1x28x28) and the zoo ResNet-18
(random weights, 1x3xSxS). Variants (tests/deploy/variants.py): base fp32, a 50 % and a 25 % cut of
every cuttable layer (smaller tensors), HotNAS kernel patterns (zeroed weights, same shapes) and
int8 weights+activations on every conv/linear (QLinearConv/QGemm). Each is exported with
``nn2hw.deploy.export_onnx`` (checked against torch) and all variants of a network are timed
interleaved by ``nn2hw.measure.measure`` (ONNX Runtime, 1 thread, a fresh store). Speed-up = base
median / variant median; its spread is [base q1 / variant q3, base q3 / variant q1]. The last line
is the table as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.deploy.variants import VARIANTS, zoo_case

from nn2hw.compress import apply_plan
from nn2hw.deploy import export_onnx
from nn2hw.measure import MeasurementStore, Protocol, measure, onnx_runner, this_machine


def bench(name: str, dataset: str, shape: tuple[int, ...], pretrained: bool, protocol: Protocol,
          folder: Path) -> list[dict]:
    model, workload, plan0 = zoo_case(name, dataset, shape, pretrained)
    runners = {}
    for label, build in VARIANTS.items():
        plan = build(plan0, workload, model)
        path = folder / f"{name}-{label.replace(' ', '_').replace('%', '')}.onnx"
        export_onnx(apply_plan(plan, model, shape), path, input_shape=shape)
        runners[label] = onnx_runner(path, protocol)
    found = dict(zip(runners, measure(list(runners.values()), protocol,
                                      store=MeasurementStore(folder / f"{name}.sqlite"))))
    b = found["base fp32"]
    return [{"network": f"{name} {'x'.join(map(str, shape))}", "variant": label, "median_ms": m.median_ms,
             "iqr_ms": m.iqr_ms, "speedup": b.median_ms / m.median_ms,
             "speedup_low": b.q1_ms / m.q3_ms, "speedup_high": b.q3_ms / m.q1_ms} for label, m in found.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resnet18-size", type=int, default=112)
    args = parser.parse_args()
    protocol = Protocol(threads=args.threads, repeats=args.repeats, warmup=5, profile_runs=0)
    size = args.resnet18_size
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench("resnet20", "fashion-mnist", (1, 1, 28, 28), True, protocol, Path(tmp))
        rows += bench("resnet18", "imagenet", (1, 3, size, size), False, protocol, Path(tmp))
    machine = this_machine()
    print(f"{machine.cpu_model}, {args.threads} thread(s), ONNX Runtime {machine.runtime_version}, "
          f"{args.repeats} interleaved runs per variant")
    print(f"{'network':<22}{'variant':<18}{'median ms':>11}{'IQR ms':>9}{'speed-up':>10}  spread")
    for r in rows:
        print(f"{r['network']:<22}{r['variant']:<18}{r['median_ms']:>11.3f}{r['iqr_ms']:>9.3f}{r['speedup']:>9.2f}x"
              f"  [{r['speedup_low']:.2f}, {r['speedup_high']:.2f}]")
    print(json.dumps({"threads": args.threads, "repeats": args.repeats, "rows": rows}))


if __name__ == "__main__":
    main()

"""Transformer compression on this CPU: minilm_l6 variants exported as deployed and timed (``--hardware cpu``).

    .venv/bin/python benchmarks/transformer_compression.py                 # seq-len 128, 30 runs, 1 thread
    .venv/bin/python benchmarks/transformer_compression.py --seq-len 64 --repeats 60

Variants of the pretrained all-MiniLM-L6-v2 (plans applied with ``nn2hw.compress.apply_plan``):
base; 6 of 12 heads kept in every layer (``head_prune``); FFN 1536 -> 768 in every layer
(``channel_cut`` of each intermediate dense layer); both; the last 2 of 6 encoder layers dropped
(``layer_drop``); half the rows of every 16-column block of every linear layer zeroed
(``block_prune``: the zeros stay dense, so no speed-up is expected here); int8 weights and
activations on every linear layer (``quantize`` w8a8, activation ranges calibrated on 8 English
sentences: QGemm kernels). Each is exported by ``nn2hw.deploy.export_onnx`` (physically reduced
shapes, checked against torch) and timed interleaved by ``nn2hw.measured.measure_models``
(the ``cpu`` template's protocol: ONNX Runtime, warm-up 5), each variant in a pair with the base
and a fresh measurement store, so that both are timed in the same minutes (``nn2hw.measure``
interleaves at most 3 networks at once; on a shared machine the load drifts between groups).
Speed-up = base median / variant median within a pair, its spread [base q1 / variant q3, base q3 /
variant q1]. Fidelity is the mean cosine similarity of the variant's sentence embeddings to the
base model's on the 8 sentences (no fine-tuning: the drop a fine-tune with distillation would
recover). The last line is the table as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from nn2hw import zoo
from nn2hw.compress import apply_plan, with_block_pruning, with_cut, with_dropped_blocks, with_heads, with_quantization
from nn2hw.hardware import get_template
from nn2hw.measure import MeasurementStore, this_machine
from nn2hw.measured import measure_models
from nn2hw.plan import Plan

SENTENCES = (
    "A large carnivorous feline of Africa and Asia.",
    "The act of moving something from one place to another.",
    "An instrument for measuring the temperature of the air.",
    "She sold the old house by the river last summer.",
    "Prices of wheat rose sharply after the poor harvest.",
    "A written account of the events of a person's life.",
    "The committee postponed its decision until next week.",
    "Any of various small birds that sing melodiously.",
)


def variants(model: torch.nn.Module, workload, seq_len: int) -> dict[str, Plan]:
    base = Plan.for_workload(workload, "minilm_l6")
    ffn = base
    for layer in workload.compute_layers:
        if layer.name.endswith("intermediate.dense"):
            ffn = with_cut(ffn, workload, layer.name, layer.out_channels // 2)
    heads = with_heads(base, workload, 6)
    both = with_heads(ffn, workload, 6)
    calibration = zoo.tokenizer("minilm_l6", seq_len=seq_len)(SENTENCES)
    int8 = with_quantization(base, workload, 8, "encoder.*", act_bits=8, model=model, calibration=calibration)
    shallow = with_dropped_blocks(base, workload, ["encoder.layer.4", "encoder.layer.5"])
    blocks = with_block_pruning(base, workload, 16, 0.5, "encoder.*")
    return {"base": base, "heads 12->6": heads, "FFN 1536->768": ffn, "heads + FFN": both, "layers 6->4": shallow,
            "blocks 50%": blocks, "int8 (w8a8)": int8}


def fidelity(model: torch.nn.Module, plan: Plan, ids: torch.Tensor) -> float:
    """Mean cosine similarity of the compressed model's embeddings to the base model's."""
    with torch.inference_mode():
        return float((model(ids) * apply_plan(plan, model)(ids)).sum(dim=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = zoo.build("minilm_l6", pretrained=True).eval()
    base_workload = zoo.workload("minilm_l6", seq_len=args.seq_len)
    plans = variants(model, base_workload, args.seq_len)
    ids = zoo.tokenizer("minilm_l6", seq_len=args.seq_len)(SENTENCES)
    options = {"threads": args.threads, "repeats": args.repeats, "warmup": 5}
    template, device = get_template("cpu")
    base_plan = plans.pop("base")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, plan) in enumerate(plans.items()):  # each variant interleaved with its own base timing
            pair = [(model, base_workload, base_plan), (model, apply_plan(plan, base_workload), plan)]
            base, m = measure_models(template, device, options, pair,
                                     store=MeasurementStore(Path(tmp) / f"pair{i}.sqlite"))
            b, mm = base.measurement, m.measurement
            rows.append({"variant": label, "base_median_ms": b.median_ms, "base_iqr_ms": b.iqr_ms,
                         "median_ms": mm.median_ms, "iqr_ms": mm.iqr_ms, "speedup": b.median_ms / mm.median_ms,
                         "speedup_low": b.q1_ms / mm.q3_ms, "speedup_high": b.q3_ms / mm.q1_ms,
                         "gmacs": apply_plan(plan, base_workload).macs / 1e9, "base_gmacs": base_workload.macs / 1e9,
                         "int8_layers": len(m.export.int8_layers) if m.export is not None else 0,
                         "cosine_to_base": fidelity(model, plan, ids)})
    machine = this_machine()
    print(f"minilm_l6, seq-len {args.seq_len} ({base_workload.macs / 1e9:.3f} GMACs); {machine.cpu_model}, "
          f"{args.threads} thread(s), ONNX Runtime {machine.runtime_version}, {args.repeats} runs of each variant "
          "interleaved with as many of the base")
    print(f"{'variant':<16}{'base ms (IQR)':>16}{'variant ms (IQR)':>19}{'speed-up':>10}  {'spread':<14}{'GMACs':>7}"
          f"{'int8':>6}{'cos':>7}")
    for r in rows:
        print(f"{r['variant']:<16}{r['base_median_ms']:>8.2f} ({r['base_iqr_ms']:>5.2f}){r['median_ms']:>11.2f} "
              f"({r['iqr_ms']:>5.2f}){r['speedup']:>9.2f}x  [{r['speedup_low']:.2f}, {r['speedup_high']:.2f}]  "
              f"{r['gmacs']:>7.3f}{r['int8_layers']:>6}{r['cosine_to_base']:>7.3f}")
    print(json.dumps({"seq_len": args.seq_len, "threads": args.threads, "repeats": args.repeats, "rows": rows}))


if __name__ == "__main__":
    main()

"""How well a structurally compressed Transformer recovers, per fine-tune optimizer and learning rate.

    python benchmarks/transformer_recovery.py                  # the ViT, 500 and 2000 batches
    python benchmarks/transformer_recovery.py --batches 2000 --recipes sgd:0.003 adamw:0.001
    python benchmarks/transformer_recovery.py --model minilm_l6 --dataset wordnet-supersense --batches 300 \\
        --recipes sgd:0.003 adamw:1e-4 adamw:3e-5

The compressed network is fixed per model, the kind of plan a latency search returns: the
Fashion-MNIST ViT with encoder layers 1 and 3 dropped and 2 of 4 heads kept in layer 0; MiniLM with
layers 1 and 4 dropped and 6 of 12 heads kept in layers 0 and 2. Each recipe fine-tunes a fresh copy
as the search's final fine-tune does (batches of 32 on the training split, cosine decay from the
learning rate, distilled from the unmodified model with weight 0.5 at T = 4) with the named
optimizer (``FinetuneSettings.optimizer``), and scores it on the first ``--images`` of the
validation split. Prints top-1 and wall time per recipe; the last line is the whole result as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from functools import partial

PLANS = {"vit_fmnist": (("encoder.layer.1", "encoder.layer.3"), 2, "encoder.layer.0.*"),
         "minilm_l6": (("encoder.layer.1", "encoder.layer.4"), 6, "encoder.layer.[02].*")}
"""Per model: (encoder layers dropped, heads kept, layers whose heads are cut)."""


def compressed_plan(model: str, dataset: str):
    """The fixed compressed plan of ``model`` (``PLANS``)."""
    from nn2hw.api import load_workload
    from nn2hw.compress.head_prune import with_heads
    from nn2hw.compress.layer_drop import with_dropped_blocks
    from nn2hw.plan import Plan

    workload = load_workload(model=model, dataset=dataset)
    dropped, heads, layers = PLANS[model]
    plan = with_dropped_blocks(Plan.for_workload(workload, model, dataset), workload, dropped)
    return with_heads(plan, workload, heads, layers), workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_fmnist", choices=sorted(PLANS))
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batches", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--recipes", nargs="+", default=["sgd:0.003", "adamw:0.001"],
                        help="optimizer:learning-rate pairs")
    parser.add_argument("--images", type=int, default=3000, help="validation inputs scored")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from nn2hw import zoo
    from nn2hw.compress import apply_plan
    from nn2hw.evaluate import FinetuneEvaluator
    from nn2hw.evaluate.settings import FinetuneSettings
    from nn2hw.search.settings import FINAL_FINETUNE

    torch.set_num_threads(args.threads)
    plan, workload = compressed_plan(args.model, args.dataset)
    teacher = zoo.build(args.model, args.dataset, pretrained=True).eval()
    rows = []
    for batches in args.batches:
        for recipe in args.recipes:
            optimizer, _, lr = recipe.partition(":")
            settings = FinetuneSettings(batches=batches, lr=float(lr), schedule=FINAL_FINETUNE.schedule,
                                        distill=FINAL_FINETUNE.distill, optimizer=optimizer)
            evaluator = FinetuneEvaluator(args.dataset, split="validation", settings=settings, teacher=teacher,
                                          threads=args.threads, progress=False, max_test_images=args.images,
                                          prepare=partial(zoo.prepare, model_name=args.model))
            start = time.perf_counter()
            metrics = evaluator.evaluate(apply_plan(plan, copy.deepcopy(teacher), workload.input_shape))
            rows.append({"batches": batches, "optimizer": optimizer, "lr": float(lr), "top1": metrics.top1,
                         "seconds": time.perf_counter() - start})
            print(f"{batches:>6} batches  {optimizer:<6} lr {float(lr):<8g} top-1 {metrics.top1:6.2f} "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
    print(json.dumps({"args": vars(args), "rows": rows}))


if __name__ == "__main__":
    main()

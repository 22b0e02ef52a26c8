"""``nn2hw zoo train``: train a zoo model (the Fashion-MNIST zoo from scratch; MiniLM fine-tuned on
WordNet supersenses), resumable per epoch.

    nn2hw zoo train resnet20 --dataset fashion-mnist --out resnet20-fmnist.pt --threads 1
    nn2hw zoo train resnet20 --dataset fashion-mnist --out resnet20-fmnist.pt --threads 1 --resume
    nn2hw zoo train minilm_l6 --dataset wordnet-supersense --out minilm.safetensors --threads 2

A thin shell over ``nn2hw.api.train``; enrolled through ``nn2hw.cli.zoo.zoo_subcommand``.
"""

from __future__ import annotations

import argparse

from nn2hw.cli._common import console, require_output_files, write_json
from nn2hw.cli._options import add_data, add_dataset, add_json, add_seed, add_threads
from nn2hw.cli.zoo import zoo_subcommand


@zoo_subcommand
def register_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train", help="train a zoo model (Fashion-MNIST from scratch; minilm_l6 fine-tuned on wordnet-supersense)",
        description="Train a zoo model with nn2hw's recipe and save its weights. Image models: from scratch (SGD + "
                    "Nesterov momentum, warm-up + cosine learning rate, random crop + flip, weight decay 5e-4), a "
                    "state_dict (vit_fmnist: AdamW, lr 1e-3, weight decay 0.05). minilm_l6 on wordnet-supersense: "
                    "fine-tuned from the pretrained encoder (AdamW, "
                    "linear warm-up + decay, the top encoder layer and a new head trained, 64 tokens, the best "
                    "validation epoch kept, tested once), a small delta file on the pretrained weights. The training "
                    "state is saved after every epoch to OUT.state; --resume continues from it.")
    parser.add_argument("model", metavar="MODEL", help="zoo model, e.g. resnet20, mobilenetv2_fmnist, vgg_fmnist, "
                                                         "vit_fmnist")
    add_dataset(parser, required=False, default="fashion-mnist")
    parser.add_argument("--epochs", type=int, metavar="E", help="epochs (default per model: resnet20 30, "
                                                               "mobilenetv2_fmnist 15, vgg_fmnist 20, vit_fmnist 20, "
                                                               "minilm_l6 1)")
    parser.add_argument("--out", metavar="FILE", help="state_dict file (default runs/zoo/MODEL-DATASET.pt)")
    add_seed(parser, "init, data order and augmentation", default=None)
    parser.add_argument("--resume", action="store_true", help="continue the training saved in OUT.state")
    parser.add_argument("--lr", type=float, help="peak learning rate (0.1; vit_fmnist 1e-3; minilm_l6 2e-4)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="batch size (128; minilm_l6 32)")
    add_threads(parser, default=1, default_text="1: the committed checkpoints were trained with 1")
    add_data(parser, split=False)
    add_json(parser, "the result (accuracy, sha256, history)")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from nn2hw.api import train
    from nn2hw.evaluate.train import recipe_for

    require_output_files({"--out": args.out, "--json": args.json})
    recipe = recipe_for(args.model, epochs=args.epochs, seed=args.seed, lr=args.lr, batch_size=args.batch_size)
    result = train(args.model, args.dataset, recipe, out=args.out, resume=args.resume, threads=args.threads,
                   data_dir=args.data_dir, progress=console.is_terminal, console=console)
    m = result.metrics
    console.print(f"{result.model} on {result.dataset}: top-1 {m.top1:.2f} %, top-5 {m.top5:.2f} % on "
                  f"{m.n_images} test images after {recipe.epochs} epochs ({result.train_seconds / 60:.1f} min)",
                  soft_wrap=True)
    console.print(f"saved {result.path} (sha256 {result.sha256})", soft_wrap=True, markup=False)
    if args.json:
        record = {"model": result.model, "dataset": result.dataset, "path": str(result.path), "sha256": result.sha256,
                  "top1": m.top1, "top5": m.top5, "n_images": m.n_images, "recipe": asdict(recipe),
                  "train_seconds": result.train_seconds, "history": [asdict(h) for h in result.history]}
        console.print(f"wrote {write_json(args.json, record)}", markup=False)
    return 0

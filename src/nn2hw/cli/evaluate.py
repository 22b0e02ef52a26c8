"""``nn2hw evaluate``: top-1/top-5 of a zoo model (optionally with a plan and a short fine-tune).

    nn2hw evaluate --model resnet20 --dataset cifar10 --split test-partial
    nn2hw evaluate --model resnet20 --dataset fashion-mnist --plan plan.json --finetune-batches 100 --json out.json
    nn2hw evaluate --model minilm_l6 --dataset wordnet-supersense --metric cosine --plan p.json --seq-len 64
    nn2hw evaluate --model minilm_l6 --dataset wordnet-supersense --metric cosine --max-texts 500

``--metric cosine`` (label-free, sentence encoders): the model's encoder variant with ``--plan``
against the same encoder unmodified, 100 x the mean cosine similarity of their embeddings on the
split's texts (and the worst text's), in percent; ``--json`` has ``cosine``, ``cosine_min``,
``n_texts``. A thin shell over ``nn2hw.api.evaluate_fidelity``.

Loads the zoo checkpoint for the model and dataset (or ``--checkpoint``), applies ``--plan``,
fine-tunes ``--finetune-batches`` mini-batches (HotNAS settings), then tests. ``--json`` writes
``top1``, ``top5`` (percent), ``n_images``, ``partial``, ``dataset``, ``split`` and ``model``. A
measurement is kept in ``NN2HW_CACHE/accuracy.sqlite`` and never repeated. A thin shell over
``nn2hw.api.evaluate``.

With ``--hardware cim:DEVICE`` (``--hw-param sigma=0.1 --draws N``) it tests under device variation
instead: N Monte-Carlo draws of the programmed weights (``nn2hw.evaluate.variation``), seeded by
``--seed`` (with ``--plan`` and ``--finetune-batches`` first: a plan with ``noise_train`` fine-tunes
variation-aware); ``--json`` has ``top1`` (the mean over draws), ``top1_std``, ``top1_min`` and
``draws``. ``--backend aihwkit`` re-evaluates the draws with IBM's aihwkit-lightning (the cross-check,
``pip install "nn2hw[aihwkit]"``); the JSON then says ``backend``. ``--bn-calibration N`` re-estimates
each programmed draw's batch norms on N training images first (``calibration_images`` in the JSON).
A thin shell over ``nn2hw.api.evaluate_variation``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nn2hw.cli._common import console, require_output_files, write_json
from nn2hw.cli._options import (
    add_bn_calibration,
    add_checkpoint,
    add_data,
    add_dataset,
    add_json,
    add_model,
    add_precision,
    add_seed,
    add_seq_len,
    add_threads,
)

if TYPE_CHECKING:
    from nn2hw.evaluate import FinetuneSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw evaluate``."""
    parser = subparsers.add_parser(
        "evaluate", help="top-1/top-5 of a zoo model on a dataset (with an optional plan and fine-tune)",
        description="Measure a zoo model's top-1/top-5 accuracy on a dataset split: load its checkpoint, apply a "
                    "plan, fine-tune briefly (HotNAS: 100 batches of 32, SGD lr 0.1, momentum 0.9, wd 1e-4) and "
                    "test. Results on the partial CIFAR-10 split are marked PARTIAL.")
    add_model(parser)
    add_dataset(parser)
    add_seq_len(parser)
    add_data(parser)
    parser.add_argument("--metric", default="top1", choices=("top1", "cosine"),
                        help="top1 (default: top-1/top-5 of the classifier for --dataset) or cosine: the label-free "
                             "fidelity of a sentence encoder (the model's encoder variant, e.g. minilm_l6) with "
                             "--plan to the unmodified encoder, 100 x the mean cosine similarity of their "
                             "embeddings on --dataset's texts (percent)")
    parser.add_argument("--max-texts", type=int, metavar="N",
                        help="with --metric cosine: only the split's first N texts (the result is marked partial)")
    parser.add_argument("--download", action="store_true", help="download a missing dataset (official URL, checked)")
    add_checkpoint(parser)
    parser.add_argument("--plan", metavar="FILE", help="plan JSON to apply before fine-tuning and testing")
    parser.add_argument("--finetune-batches", type=int, default=0, metavar="B",
                        help="fine-tune this many batches on the train split first (HotNAS: 100; default 0)")
    parser.add_argument("--finetune-batch-size", type=int, default=32, metavar="N", help="fine-tune batch (32)")
    parser.add_argument("--lr", type=float, default=0.1, help="fine-tune learning rate (0.1)")
    add_precision(parser)
    add_seed(parser, "the fine-tune")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N", help="test batch size (256)")
    add_threads(parser)
    parser.add_argument("--hardware", metavar="cim[:DEVICE]",
                        help="test under the device variation of a computing-in-memory design (cim:reram, cim:fefet, "
                             "cim:pcm): Monte-Carlo draws of the programmed weights; --json then has top1 (the mean), "
                             "top1_std, top1_min and draws")
    parser.add_argument("--hw-param", action="append", metavar="KEY=VALUE",
                        help="a cim design field or noise option (sigma=0.1, adc_bits=6, rows=64, cell_bits=2, "
                             "signed=differential, read_noise=0, stuck_at_off=0, stuck_at_on=0, on_off_ratio=10); "
                             "repeatable")
    parser.add_argument("--draws", type=int, default=10, metavar="N",
                        help="noise draws with --hardware (default 10; seeded by --seed)")
    parser.add_argument("--backend", default="nn2hw", choices=("nn2hw", "aihwkit"),
                        help="who evaluates the draws with --hardware: nn2hw's bit-sliced crossbar model (default) "
                             "or IBM's aihwkit-lightning, a cross-check on the same weights and weight noise "
                             '(pip install "nn2hw[aihwkit]"; no stuck-at faults, lossless ADC only)')
    add_bn_calibration(parser, "with --hardware: ")
    add_json(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from nn2hw.api import evaluate
    from nn2hw.evaluate import FinetuneSettings

    require_output_files({"--json": args.json})
    settings = FinetuneSettings(batches=args.finetune_batches, batch_size=args.finetune_batch_size, lr=args.lr,
                                seed=args.seed, precision=args.finetune_precision)
    if args.metric == "cosine":
        return _run_fidelity(args)
    if args.max_texts is not None:
        from nn2hw.errors import ConfigError

        raise ConfigError("--max-texts limits the texts of --metric cosine; top-1 is measured on the whole split.",
                          "Drop --max-texts, or add --metric cosine.")
    if args.hardware is not None:
        return _run_variation(args, settings)
    given = [flag for flag, value in (("--backend", args.backend != "nn2hw"), ("--bn-calibration", args.bn_calibration))
             if value]
    if given:
        from nn2hw.errors import ConfigError

        raise ConfigError(f"{given[0]} applies to accuracy under crossbar variation, which needs --hardware.",
                          f"Add --hardware cim:reram (and --hw-param sigma=...), or drop {given[0]}.")
    result = evaluate(args.model, args.dataset, args.split, data_dir=args.data_dir, download=args.download,
                      checkpoint=args.checkpoint, plan=args.plan, settings=settings, test_batch_size=args.batch_size,
                      threads=args.threads, progress=console.is_terminal, seq_len=args.seq_len)
    m = result.metrics
    what = f"{result.model}" + (f" + plan {result.plan_key}" if result.plan_key else "")
    tuned = f", fine-tuned {settings.batches} batches" if settings.batches else ""
    console.print(f"{what} on {result.dataset} {result.split}{tuned}: top-1 {m.top1:.2f} %, top-5 {m.top5:.2f} %, "
                  f"{m.n_images} images", soft_wrap=True)
    if m.partial:
        console.print(f"[bold yellow]PARTIAL test set ({m.n_images} of {m.full_size} images)[/]: a quick check, not "
                      "the full test-set accuracy.", soft_wrap=True)
    if args.json:
        path = write_json(args.json, result.to_dict())
        console.print(f"wrote {path}", markup=False)
    return 0


def _run_fidelity(args: argparse.Namespace) -> int:
    """``--metric cosine``: the planned sentence encoder's embeddings against the unmodified one's."""
    from nn2hw.api import evaluate_fidelity
    from nn2hw.errors import ConfigError

    given = [flag for flag, value in (("--finetune-batches", args.finetune_batches), ("--hardware", args.hardware),
                                      ("--download", args.download)) if value]
    if given:
        raise ConfigError(f"--metric cosine measures the encoder as planned, on texts found here, and "
                          f"{', '.join(given)} do not apply to it (no labels to fine-tune on, no crossbar draws, "
                          "no text dataset to download).", f"Drop {', '.join(given)}, or use --metric top1.")
    result = evaluate_fidelity(args.model, args.dataset, args.split, data_dir=args.data_dir,
                               checkpoint=args.checkpoint, plan=args.plan, batch_size=args.batch_size,
                               threads=args.threads, progress=console.is_terminal, seq_len=args.seq_len,
                               max_texts=args.max_texts)
    what = f"{result.model} encoder" + (f" + plan {result.plan_key}" if result.plan_key else "")
    console.print(f"{what} on {result.dataset} {result.split}: cosine {result.cosine:.2f} % (worst "
                  f"{result.cosine_min:.2f} %) of the unmodified encoder's embeddings, {result.n_texts} texts"
                  + (" (PARTIAL split)" if result.partial else ""), soft_wrap=True, markup=False)
    if args.json:
        console.print(f"wrote {write_json(args.json, result.to_dict())}", markup=False)
    return 0


def _run_variation(args: argparse.Namespace, settings: FinetuneSettings) -> int:
    """``--hardware cim:DEVICE``: top-1 over Monte-Carlo draws of the design's crossbars."""
    from nn2hw.api import evaluate_variation
    from nn2hw.cli._common import parse_key_values

    result = evaluate_variation(args.model, args.dataset, args.split, hardware=args.hardware,
                                hw_params=parse_key_values(args.hw_param), draws=args.draws, seed=args.seed,
                                data_dir=args.data_dir, download=args.download, checkpoint=args.checkpoint,
                                plan=args.plan, settings=settings, test_batch_size=args.batch_size,
                                threads=args.threads, progress=console.is_terminal, backend=args.backend,
                                bn_calibration=args.bn_calibration)
    m, noise = result.metrics, result.metrics.noise
    console.print(f"{args.model} on {args.dataset} {args.split}, {args.hardware} sigma {noise['sigma']:g} "
                  f"by {result.backend} "
                  f"({m.draws} draws, seed {m.seed}): top-1 {m.top1:.2f} % +- {m.top1_std:.2f}, worst "
                  f"{m.top1_min:.2f} %, noise-free {m.top1_clean:.2f} %"
                  + (f"; batch norms re-estimated per draw on {m.calibration_images} training images"
                     if m.calibration_images else ""), soft_wrap=True, markup=False)
    if args.json:
        console.print(f"wrote {write_json(args.json, result.to_dict())}", markup=False)
    return 0

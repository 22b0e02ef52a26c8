"""``nn2hw search``: hot-start co-search of network changes, compression and hardware design.

    nn2hw search --model resnet20 --dataset fashion-mnist --hardware fpga:zcu102 --latency-ms 0.25 \\
        --strategy reinforce --trials 40 --out runs/r20
    nn2hw search --model minilm_l6 --dataset wordnet-supersense --seq-len 64 --hardware systolic --latency-ms 0.9
    nn2hw search ... --latency-levels-ms 0.30,0.25,0.20   # a family: one variant per level, and a selector
    nn2hw search ... --resume                     # continue the same study after an interruption
    nn2hw search ... --storage postgresql://user@host/db --study shared --workers 2   # many workers

Writes into --out: plan.json, weights.pt, hardware.json, bundle.json (the bundle), report.json,
layers.csv, trials.csv, pareto.csv, pareto.png and summary.html. A thin shell over
``nn2hw.api.search``.
"""

from __future__ import annotations

import argparse
import ast
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.markup import escape
from rich.table import Table

from nn2hw.cli._common import err_console, parse_key_values, wide_console
from nn2hw.cli._options import (
    add_bn_calibration,
    add_checkpoint,
    add_data,
    add_dataset,
    add_hardware,
    add_hardware_file,
    add_model,
    add_precision,
    add_seed,
    add_seq_len,
    add_spec,
    add_threads,
)
from nn2hw.compress.crossbar import DEFAULT_CLIP
from nn2hw.evaluate.settings import OPTIMIZERS
from nn2hw.hardware.records import design_label

METRICS = ("top1", "top5", "cosine")
"""``nn2hw.search.settings.METRICS``, here so that building the parser imports no search module."""
SPACE_KINDS = ("hotstart", "fbnet", "nb201")
"""``nn2hw.search.settings.SPACE_KINDS``, for the same reason."""
FAMILY_WEIGHTS = ("joint", "separate")
"""``nn2hw.search.settings.FAMILY_WEIGHTS``, for the same reason."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw search`` (without importing torch or the strategies: the parser must stay cheap)."""
    p = subparsers.add_parser(
        "search", help="co-search network, compression and hardware under latency/energy/area specs",
        description="Start from a pretrained zoo model, search channel cuts, kernel patterns, quantization, kernel "
                    "expansion and the hardware design, and return the most accurate network that meets every "
                    "spec under the cost model (re-checked before it is returned).")
    add_model(p)
    add_dataset(p)
    add_seq_len(p)
    add_data(p)
    add_checkpoint(p)
    p.add_argument("--with", dest="companions", action="append", metavar="MODEL:DATASET[:SPLIT]",
                   help="another network sharing the chip (repeatable; NASAIC-style joint search on "
                        "--hardware hetero, e.g. --with mobilenetv2_fmnist:fashion-mnist)")
    add_hardware(p)
    add_hardware_file(p)
    add_spec(p)
    p.add_argument("--latency-levels-ms", type=_levels, metavar="MS,MS,...",
                   help="RT3-style run-time reconfiguration: a family of variants, one per latency level (e.g. "
                        "0.30,0.25,0.20; instead of --latency-ms), nested and each re-checked against its level; "
                        "pick one for a budget with `nn2hw bundle select OUT --latency-ms X`")
    p.add_argument("--family-weights", choices=FAMILY_WEIGHTS, default="joint",
                   help="with --latency-levels-ms: 'joint' (default) fine-tunes the variants together as slices of "
                        "one set of weights; 'separate' fine-tunes each on its own (one weight set per variant)")
    p.add_argument("--strategy", default="reinforce", metavar="NAME",
                   help="search strategy (default reinforce; `nn2hw list strategies` lists them)")
    p.add_argument("--strategy-option", action="append", metavar="KEY=VALUE",
                   help="strategy option, e.g. lr=0.05, baseline=hotnas, population=16")
    p.add_argument("--epochs", type=float, metavar="N",
                   help="--strategy differentiable: supernet training epochs over the fit split (default 1; a "
                        "fraction such as 0.2 is allowed)")
    p.add_argument("--space-kind", default="hotstart", choices=SPACE_KINDS,
                   help="--strategy differentiable: the space its supernet relaxes (default hotstart: the "
                        "pretrained model's layers and their choices; fbnet or nb201: that built-in space from "
                        "scratch, with --model fbnet|nb201; docs/search.md)")
    p.add_argument("--proposals", type=int, default=32, metavar="N",
                   help="latency first: up to N proposals per trial for reinforce/fnas/random/evolution; those the "
                        "cost model rejects are recorded and learned from, never trained (1: no prefilter)")
    p.add_argument("--lat-penalty", default="scaled", choices=("scaled", "hotnas"),
                   help="reward of a latency over the spec: scaled (default, in band widths) or hotnas (in ms)")
    budget = p.add_argument_group("budget (the first reached stops the search)")
    budget.add_argument("--trials", type=int, metavar="N", help="candidates to propose (default 40)")
    budget.add_argument("--minutes", type=float, metavar="M", help="wall-time limit for starting new trials")
    p.add_argument("--finetune-batches", type=int, metavar="B",
                   help="fine-tune batches per candidate that meets the specs (default 100, HotNAS; 0 with "
                        "--metric cosine)")
    p.add_argument("--finetune-lr", type=float, metavar="LR",
                   help="fine-tune learning rate (default: the model's recovery recipe's with its optimizer, else "
                        "0.003, or 0.05 with --space-kind fbnet|nb201, whose networks are trained from scratch; "
                        "HotNAS used 0.1, which wrecks converged pretrained models: see docs/search.md)")
    p.add_argument("--finetune-optimizer", choices=OPTIMIZERS, default=None,
                   help="optimizer of both fine-tunes: sgd (momentum 0.9) or adamw (decay on conv/linear weights "
                        "only). Default: the model's measured recovery recipe (`nn2hw zoo info NAME`; the ViT: adamw "
                        "at 1e-3), else sgd")
    p.add_argument("--final-batches", type=int, metavar="B",
                   help="fine-tune batches of the winner before its final measurement (default 2000; cosine decay "
                        "from --finetune-lr, distilled from the unmodified model; 0 with --metric cosine)")
    p.add_argument("--no-minimize", dest="minimize", action="store_false",
                   help="return the winner with all its changes (default: first remove every change whose removal "
                        "keeps every spec met, and report them)")
    p.add_argument("--search-images", type=int, default=2000, metavar="N",
                   help="score candidates on the first N images of the validation split (default 2000)")
    p.add_argument("--report-images", type=int, metavar="N",
                   help="report the base and the result on the first N images of the test split only (a quick run; "
                        "the accuracies are marked partial; default: the whole split)")
    add_precision(p)
    p.add_argument("--validation-size", type=_count_or_fraction, metavar="N|F",
                   help="training images (or a fraction of them) set aside as the validation split candidates are "
                        "scored on; fine-tuning uses the rest (default: the dataset's own validation split, or "
                        "5000 Fashion-MNIST / CIFAR-10 training images)")
    p.add_argument("--select-on-test", action="store_true",
                   help="score candidates on --split itself, for a dataset with no training data here (every "
                        "accuracy is then marked selected-on-test: optimistic)")
    p.add_argument("--metric", default="top1", choices=METRICS,
                   help="what to maximize: top1 (default) or top5 of a classifier, or cosine: the label-free "
                        "fidelity of a sentence encoder (--model minilm_l6 alone), 100 x the mean cosine similarity "
                        "of its embeddings to the unmodified encoder's on --dataset's texts, in percent; candidates "
                        "are then scored as compressed, without fine-tuning")
    stopping = p.add_argument_group("early stopping (pruning hopeless candidates during their fine-tune)")
    stopping.add_argument("--pruner", default="median", metavar="NAME",
                          help="median (default: stop a candidate below the median of the completed trials at a "
                               "checkpoint), halving (successive halving) or none (off)")
    stopping.add_argument("--prune-checkpoints", type=int, default=3, metavar="K",
                          help="checkpoints evenly spaced in each fine-tune (default 3: at 25, 50, 75 %%)")
    stopping.add_argument("--prune-images", type=int, default=500, metavar="N",
                          help="score checkpoints on the first N images candidates are scored on (default 500)")
    stopping.add_argument("--prune-warmup", type=int, default=5, metavar="T",
                          help="prune nothing until T candidates were fine-tuned to the end (default 5)")
    cim = p.add_argument_group("accuracy under device variation (computing-in-memory templates)")
    cim.add_argument("--min-accuracy-under-variation", type=float, metavar="PCT",
                     help="a top-1 spec under the crossbars' device variation: each candidate is tested over "
                          "--variation-draws Monte-Carlo draws of its own design, and the device, crossbar size, cell "
                          "and ADC bits become searched knobs (unless --space names knobs); the winner is re-checked "
                          "on fresh draws after its final fine-tune")
    cim.add_argument("--variation-draws", type=int, default=3, metavar="N",
                     help="noise draws per candidate (default 3)")
    cim.add_argument("--final-variation-draws", type=int, default=10, metavar="N",
                     help="fresh noise draws re-checking the winner (default 10)")
    cim.add_argument("--no-variation-aware-training", dest="variation_aware_training", action="store_false",
                     help="fine-tune candidates without weight noise (default: NACIM's variation-aware training at "
                          "each design's noise)")
    cim.add_argument("--variation-clip", type=_clip, default=DEFAULT_CLIP, metavar="K|none",
                     help="with variation-aware training, clip each crossbar layer's weights to K standard "
                          f"deviations of the layer's weights (default {DEFAULT_CLIP:g}; none: no clipping)")
    add_bn_calibration(cim, "with --min-accuracy-under-variation: ")
    p.add_argument("--space", metavar="FILE", help="YAML/JSON restricting or extending the search space")
    p.add_argument("--storage", metavar="URL", help="study storage (default: sqlite file study.db in --out)")
    p.add_argument("--study", metavar="NAME", help="study name (default from model, dataset, hardware, specs)")
    p.add_argument("--resume", action="store_true", help="continue an existing study")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes on this machine")
    add_seed(p, "the strategy, the fine-tunes and the data order")
    add_threads(p, default_text="per worker: the cores / --workers")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/<study>)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(handler=_run)


def _clip(text: str) -> float | None:
    """'2.5' -> 2.5, 'none' -> None (the range is checked with the other settings)."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number of standard deviations nor 'none'") from None


def _value(text: str) -> Any:
    """'0.05' -> 0.05, '16' -> 16, 'true' -> True, 'hotnas' -> 'hotnas'."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so the search stops the same way."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (schedulers, ``docker stop``, ``kill``) stops the search as Ctrl-C does: the running
    trial is failed and queued to run first on --resume, one line says so; the exit code is 143
    (128 + SIGTERM, what schedulers expect), 130 for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    with _sigterm_interrupts():
        return _search(args)


def _search(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from nn2hw.api import search
    from nn2hw.evaluate.settings import FinetuneSettings
    from nn2hw.search.finalize import FinalizedElsewhere
    from nn2hw.search.settings import COSINE, FINAL_FINETUNE, SCRATCH_CLIP_GRAD_NORM, Member, finetune_recipe

    options = {k: _value(v) for k, v in parse_key_values(args.strategy_option, "--strategy-option").items()}
    trials = args.trials if args.trials is not None or args.minutes is not None else 40
    recipe = finetune_recipe(args.model, args.space_kind, optimizer=args.finetune_optimizer, lr=args.finetune_lr)
    lr = recipe.lr
    if recipe.from_model and not args.quiet:
        err_console.print(f"fine-tunes: {recipe.optimizer} at lr {lr:g}, {recipe.source}", soft_wrap=True,
                          markup=False, highlight=False)
    clip = 0.0 if args.space_kind == "hotstart" else SCRATCH_CLIP_GRAD_NORM
    label_free = args.metric == COSINE  # scored as compressed: no fine-tune unless asked (then refused)
    batches = (0 if label_free else 100) if args.finetune_batches is None else args.finetune_batches
    final_batches = (0 if label_free else FINAL_FINETUNE.batches) if args.final_batches is None else args.final_batches
    try:
        result = search(
            args.model, args.dataset, latency_ms=args.latency_ms, energy_mj=args.energy_mj, area_mm2=args.area_mm2,
            hardware=args.hardware, hw_params=parse_key_values(args.hw_param), hardware_file=args.hardware_file,
            progress=not args.quiet, seq_len=args.seq_len,
            data_dir=args.data_dir, split=args.split, checkpoint=args.checkpoint, strategy=args.strategy,
            strategy_options=options, trials=trials, minutes=args.minutes,
            finetune=FinetuneSettings(batches=batches, lr=lr, seed=args.seed, precision=args.finetune_precision,
                                      clip_grad_norm=clip, optimizer=recipe.optimizer),
            final_finetune=replace(FINAL_FINETUNE, batches=final_batches, lr=lr, seed=args.seed,
                                   precision=args.finetune_precision, clip_grad_norm=clip,
                                   optimizer=recipe.optimizer),
            search_images=args.search_images, report_images=args.report_images, metric=args.metric,
            validation_size=args.validation_size,
            select_on_test=args.select_on_test, pruner=args.pruner, prune_checkpoints=args.prune_checkpoints,
            prune_images=args.prune_images, prune_warmup=args.prune_warmup,
            space_config=args.space, storage=args.storage, study=args.study, resume=args.resume,
            workers=args.workers, seed=args.seed, out=args.out, threads=args.threads,
            companions=tuple(Member.parse(text) for text in args.companions or ()), proposals=args.proposals,
            lat_penalty=args.lat_penalty, minimize=args.minimize,
            min_accuracy_under_variation=args.min_accuracy_under_variation, variation_draws=args.variation_draws,
            final_variation_draws=args.final_variation_draws, variation_aware_training=args.variation_aware_training,
            variation_clip=args.variation_clip, bn_calibration=args.bn_calibration,
            latency_levels_ms=args.latency_levels_ms or (), family_weights=args.family_weights, epochs=args.epochs,
            space_kind=args.space_kind)
    except KeyboardInterrupt as exc:
        err_console.print("[bold]interrupted:[/] every completed trial is saved in the study and the interrupted one "
                          "runs again first; continue with the same command plus --resume.", soft_wrap=True)
        return 128 + signal.SIGTERM if isinstance(exc, _Terminated) else 130
    if isinstance(result, FinalizedElsewhere):  # another worker finalizes the shared study; its message said where
        return 0
    print_result(result)
    return 0


def _levels(text: str) -> tuple[float, ...]:
    """'0.30,0.25,0.20' -> (0.3, 0.25, 0.2) (checked by the search's settings)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated milliseconds, e.g. 0.30,0.25,0.20") from None


def _count_or_fraction(text: str) -> int | float:
    """'5000' -> 5000, '0.1' -> 0.1 (checked by the search's settings)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is neither a number of images nor a fraction") from None


def print_result(result: Any) -> None:
    """Base vs solution (top-1/top-5, or the mean and worst cosine), trial counts, the per-layer
    table and the files written."""
    from nn2hw.search.finalize import score_columns
    from nn2hw.search.settings import COSINE

    console = wide_console()
    spec = ", ".join(f"top-1 under variation >= {v:g} %" if k == "min_accuracy_under_variation" else f"{k} <= {v:g}"
                     for k, v in result.spec.items())
    table = Table(title=f"search result (spec: {spec})")
    extra = [k for k in ("energy_mj", "area_mm2") if getattr(result.baseline.cost, k) is not None]
    metric = result.settings.get("metric", "top1")
    scores = score_columns(metric)
    headers = ("cosine %", "worst cosine %") if metric == COSINE else ("top-1 %", "top-5 %")
    for column in ("", "latency ms", *(k.replace("_", " ") for k in extra), *headers, "design"):
        table.add_column(column, justify="left" if column in ("", "design") else "right")
    base_label = ("base model" if result.settings.get("space_kind", "hotstart") == "hotstart"
                  else "reference (float, trained here)")  # a space searched from scratch has no pretrained base
    for label, s in ((base_label, result.baseline), ("solution", result.solution)):
        design = escape(design_label(s.cost.design))
        table.add_row(label, f"{s.cost.latency_ms:.6g}", *(f"{getattr(s.cost, k):.6g}" for k in extra),
                      *(f"{s.metrics.get(k, float('nan')):.2f}" for k in scores), design)
    console.print(table)
    base, sol = result.baseline, result.solution
    if len(sol.plans) > 1:
        where = sol.to_dict()["networks"]
        nets = Table(title="networks on the chip")
        for column in ("network", "base top-1 %", "solution top-1 %", "runs on", "busy ms"):
            nets.add_column(column, justify="left" if column in ("network", "runs on") else "right")
        for net, info in where.items():
            nets.add_row(net, f"{base.networks[net]['top1']:.2f}", f"{info['top1']:.2f}", str(info["runs_on"]),
                         f"{info['sub_busy_ms']:.5g}")
        console.print(nets)
        for note in sol.cost.notes:
            console.print(f"chip: {note}", markup=False)
    saved = 100 * (1 - sol.cost.latency_ms / base.cost.latency_ms)
    what, unit = ("cosine", "texts") if metric == COSINE else (metric.replace("top", "top-"), "images")
    console.print(f"latency {saved:.1f} % lower, {what} {sol.metrics[metric] - base.metrics[metric]:+.2f} points "
                  f"({int(sol.metrics.get('n_images', 0))} {unit}"
                  f"{', PARTIAL split' if sol.metrics.get('partial') else ''})")
    t = result.trials
    console.print(f"trials: {t['total']} ({t['feasible']} met the specs, {t['trained']} trained here, "
                  f"{t['reused']} reused, {t['pruned']} more met them but were pruned early, "
                  f"{t['infeasible']} missed a spec, {t['failed']} failed)")
    legend = " (O storing output, I loading input, W loading weights, C computing)" if any(
        r.bottleneck in ("O", "I", "W", "C") for r in result.rows) else ""
    rows = Table(title=f"per layer: bottleneck on the base design{legend}, what the search changed")
    for column in ("layer", "bottleneck", "technique", "choice", "base ms", "solution ms", "saved ms"):
        rows.add_column(column, justify="right" if column.endswith("ms") else "left")
    for r in result.rows:
        rows.add_row(escape(r.layer), r.bottleneck, r.technique, escape(r.choice), f"{r.base_ms:.5f}",
                     f"{r.solution_ms:.5f}", f"{r.saved_ms:.5f}")
    console.print(rows)
    if result.family is not None:
        print_family(result.family)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"wrote {result.out_dir}: " + ", ".join(sorted(set(result.files))), markup=False)


def print_family(family: Any, chosen: float | None = None) -> None:
    """A family's levels (``BundleFamily.to_dict``): latency, accuracy and weights of each variant, the
    missing levels with their reason; ``chosen`` marks the selected level."""
    metric = family["metric"]
    table = Table(title="family: one variant per latency level (nested plans)")
    for column in ("level ms", "latency ms", f"{metric} %", "changed layers", "weights", "bundle", ""):
        table.add_column(column, justify="right" if column in ("level ms", "latency ms", f"{metric} %",
                                                                "changed layers") else "left")
    for v in sorted(family["variants"], key=lambda v: -v["level_ms"]):
        spread = f" (IQR {v['latency_iqr_ms']:.2g})" if v.get("latency_iqr_ms") is not None else ""
        weights = "own" if v["shares_weights_with"] is None else f"level {v['shares_weights_with']:g} ms's"
        table.add_row(f"{v['level_ms']:g}", f"{v['latency_ms']:.4g}{spread}",
                      f"{v['metrics'].get(metric, float('nan')):.2f}", str(v["changed_layers"]), weights,
                      escape(v["bundle"]), "selected" if chosen == v["level_ms"] else "")
    for m in family["missing"]:
        table.add_row(f"{m['level_ms']:g}", "missing", "", "", "", escape(m["reason"]), "")
    wide_console().print(table)

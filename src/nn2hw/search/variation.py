"""Accuracy under device variation as a spec of the co-search (NACIM's co-exploration, issue 12).

On a template that models device variation (``HardwareTemplate.variation_knobs``: the cim
crossbars), ``--min-accuracy-under-variation A`` makes the device, crossbar size, cell bits and ADC
bits hardware dimensions of the space beside the per-layer choices, and adds a spec on accuracy:

- during the search, a candidate that meets the cost specs is fine-tuned (variation-aware, NACIM's
  recipe: weight noise at its design's per-layer spread injected at every step, the ``noise_train``
  transform; ``variation_aware_training=False`` turns it off) and scored as usual, then
  tested over ``variation_draws`` Monte-Carlo draws of **its own design's** crossbars
  (``nn2hw.evaluate.variation``: that device's variation and faults, those cell and ADC bits, each
  layer at the bits its plan gives) on the images candidates are scored on; the mean is
  ``top1_variation`` and a candidate below ``A`` misses the spec (never a winner). Draws are seeded
  by the search's seed, so every candidate sees the same random numbers (common random numbers).
- at finalize, the winner after its final fine-tune is re-checked on ``final_variation_draws``
  **fresh** draws (another seed) over the whole selection split; a winner that fails gives way to
  the next finalist. Its accuracy under variation on the test split is reported beside.
- ``bn_calibration`` N > 0: every draw (the candidates' and the re-check's) has its batch norms
  re-estimated on the first N images of the fine-tune split before it is tested (AdaBS-style).

Among candidates meeting every spec the search maximizes clean top-1, as without this spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from nn2hw.compress import apply_plan
from nn2hw.errors import ConfigError, HardwareError
from nn2hw.evaluate import FinetuneEvaluator
from nn2hw.evaluate.store import EvaluationStore, evaluation_key
from nn2hw.hardware.records import NetworkCost, design_dict
from nn2hw.plan import Plan
from nn2hw.workload import OpKind, Workload

if TYPE_CHECKING:
    from torch import nn

    from nn2hw.data.base import Dataset
    from nn2hw.evaluate.variation import CrossbarNoise, VariationMetrics
    from nn2hw.search.context import MemberContext, SearchContext

VARIATION_METRIC = "top1_variation"
"""A candidate's mean top-1 over its draws (percent); ``_std``/``_min`` suffixes the spread and the worst."""
FRESH_SEED_OFFSET = 1
"""The finalize re-check draws with seed + this: draws no candidate was scored on."""
CROSSBAR_KINDS = (OpKind.CONV, OpKind.LINEAR)


def check_variation_search(ctx: SearchContext) -> None:
    """Refuse the accuracy-under-variation spec where it cannot be checked: a template that models
    no variation, an evaluator of the user's own (whose data the Monte-Carlo test cannot reuse)."""
    s = ctx.settings
    if s.min_accuracy_under_variation is None:
        return
    template = ctx.target.template
    if not template.variation_knobs:
        raise ConfigError(f"The {template.name} template models no device variation, so --min-accuracy-under-variation "
                          "cannot be checked on it.", "Search a computing-in-memory design: --hardware cim:reram "
                          "(or cim:fefet, cim:pcm), or drop the accuracy spec.")
    for m in ctx.members:
        if not isinstance(m.evaluator, FinetuneEvaluator):
            raise ConfigError("--min-accuracy-under-variation tests each fine-tuned candidate on the default "
                              "evaluator's images, and this search was given its own evaluator.",
                              "Leave the evaluator to nn2hw, or drop the accuracy spec.")
        if s.bn_calibration:
            from nn2hw.evaluate.variation import batch_norms

            batch_norms(m.model)  # a network without batch norm, or no training images: refused before any trial
            calibration_of(m.evaluator, s.bn_calibration)


def check_reachable_accuracy(ctx: SearchContext, base_metric: float) -> None:
    """Refuse a floor above the noise-free accuracy of the fine-tuned base model: no draw of noise
    raises accuracy, so no candidate would meet it."""
    floor = ctx.settings.min_accuracy_under_variation
    if floor is not None and floor > base_metric:
        raise ConfigError(
            f"--min-accuracy-under-variation {floor:g} % is above the accuracy of the unmodified model without any "
            f"noise ({base_metric:.2f} % top-1 on the images candidates are scored on), which device variation only "
            "lowers.", f"Give a floor below {base_metric:.2f} %, e.g. {max(base_metric - 3.0, 1.0):.1f}.")


@dataclass(frozen=True)
class DesignNoise:
    """The crossbar noise one candidate is tested with: its design's model, and each crossbar
    layer's (weight bits, input bits) from its plan (the Monte-Carlo test reads them, and the
    fixed-point grids, off the quantized modules; variation-aware training sets each layer's noise
    from them)."""

    noise: CrossbarNoise
    layer_bits: Mapping[str, tuple[int, int]]

    @property
    def key(self) -> str:
        data = [asdict(self.noise), sorted((k, list(v)) for k, v in self.layer_bits.items())]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def design_noise_of(ctx: SearchContext, cost: NetworkCost, workload: Workload) -> DesignNoise:
    """The noise of ``cost``'s design (its device, crossbar, cells, converters and the search's noise
    options), each crossbar layer of ``workload`` at its own bits."""
    from nn2hw.evaluate.variation import design_noise

    template = ctx.target.template
    options = {k: v for k, v in ctx.target.options.items() if k in template.variation_options}
    noise, _ = design_noise(f"{cost.template}:{cost.device}", {**design_dict(cost.design), **options})
    bits = {layer.name: (layer.weight_bits, layer.input_bits) for layer in workload.layers
            if layer.kind in CROSSBAR_KINDS}
    return DesignNoise(noise, bits)


def trained_plans(ctx: SearchContext, plans: Mapping[str, Plan], cost: NetworkCost | None) -> dict[str, Plan]:
    """The plans a candidate is fine-tuned with: with variation-aware training, each crossbar layer
    also gets ``train_sigma`` = its weight-level spread on ``cost``'s design (``CrossbarNoise.weight_sigma``
    at the layer's bits, at most 1) and ``train_clip`` = ``variation_clip``; unchanged otherwise, and where the
    design has no variation to train for."""
    s = ctx.settings
    if s.min_accuracy_under_variation is None or not s.variation_aware_training or cost is None:
        return dict(plans)
    m, = ctx.members
    plan = plans[m.name]
    try:
        found = design_noise_of(ctx, cost, apply_plan(plan, m.workload))
    except HardwareError:
        return dict(plans)  # the candidate is refused when its accuracy under variation is asked for
    clip = {} if s.variation_clip is None else {"train_clip": s.variation_clip}
    for layer, (weight_bits, _) in found.layer_bits.items():
        spread = min(replace(found.noise, weight_bits=weight_bits).weight_sigma, 1.0)
        if spread > 0.0:
            plan = plan.with_choice(layer, train_sigma=spread, **clip)
    return {**plans, m.name: plan}


def variation_attrs(metrics: Mapping[str, float]) -> dict[str, float]:
    """The trial attributes of a candidate's Monte-Carlo test."""
    return {VARIATION_METRIC: metrics["top1"], f"{VARIATION_METRIC}_std": metrics["top1_std"],
            f"{VARIATION_METRIC}_min": metrics["top1_min"], "variation_draws": metrics["draws"]}


def variation_miss(ctx: SearchContext, metrics: Mapping[str, float]) -> str:
    """Why a candidate misses the accuracy-under-variation spec ('' when it meets it)."""
    floor = ctx.settings.min_accuracy_under_variation
    value = metrics[VARIATION_METRIC]
    if floor is None or value >= floor:
        return ""
    return (f"top-1 under variation {value:.2f} % (worst draw {metrics[f'{VARIATION_METRIC}_min']:.2f} %) is below "
            f"the {floor:g} % spec")


def candidate_variation(ctx: SearchContext, plans: Mapping[str, Plan], cost: NetworkCost,
                        store: EvaluationStore) -> dict[str, float] | str:
    """The Monte-Carlo test of a fine-tuned candidate on its design (``variation_attrs``), shared
    through the accuracy store; the reason when its design cannot be tested (a device without a
    programming variation and no ``sigma``)."""
    m, = ctx.members
    plan = plans[m.name]
    try:
        noise = design_noise_of(ctx, cost, apply_plan(plan, m.workload))
    except HardwareError as exc:
        return f"no accuracy under variation: {exc.cause}"
    s = ctx.settings
    key = evaluation_key(plan.network_key, m.name, m.member.dataset,
                         f"{m.evaluator_id}|variation:{noise.key}|draws:{s.variation_draws}|seed:{s.seed}"
                         + (f"|bn:{s.bn_calibration}" if s.bn_calibration else ""))
    result = store.evaluate(key, lambda: _monte_carlo(ctx, m, plan, noise))
    return variation_attrs(result.metrics)


def _monte_carlo(ctx: SearchContext, m: MemberContext, plan: Plan, noise: DesignNoise) -> dict[str, float]:
    """Draw the crossbars of the candidate fine-tuned for ``plan`` (kept from its evaluation, or
    fine-tuned again: the seeded fine-tune gives the same weights) and test each draw."""
    model = ctx.trained.get(plan.network_key)
    if model is None:
        model = apply_plan(plan, m.model)
        m.evaluator(model)
    evaluator = m.evaluator
    assert isinstance(evaluator, FinetuneEvaluator)  # check_variation_search
    s = ctx.settings
    found = run_draws(model, evaluator.test_data(), noise, s.variation_draws, s.seed, evaluator.test_batch_size,
                      s.threads, calibration_of(evaluator, s.bn_calibration))
    return {"top1": found.top1, "top1_std": found.top1_std, "top1_min": found.top1_min, "draws": float(found.draws),
            "n_images": float(found.n_images)}


def calibration_of(evaluator: FinetuneEvaluator, images: int) -> Dataset | None:
    """The first ``images`` of ``evaluator``'s fine-tune split, which re-estimate each draw's batch norms
    (None: 0, the trained statistics)."""
    return evaluator.train_data().take(images) if images else None


def run_draws(model: nn.Module, data: Dataset, noise: DesignNoise, draws: int, seed: int, batch_size: int,
              threads: int | None, calibration: Dataset | None) -> VariationMetrics:
    """``draws`` Monte-Carlo draws of ``noise`` on ``model`` over ``data`` (each draw's batch norms
    re-estimated on ``calibration`` first, when given)."""
    from nn2hw.evaluate.variation import evaluate_variation

    return evaluate_variation(model, data, noise.noise, draws, seed, batch_size, threads, calibration=calibration)


@dataclass(frozen=True)
class VariationCheck:
    """The finalize re-check of the winner: fresh draws on the selection split (the spec is judged
    there) and on the test split (reported)."""

    min_top1: float
    selection: VariationMetrics
    report: VariationMetrics
    selection_split: str
    report_split: str

    @property
    def passed(self) -> bool:
        return self.selection.top1 >= self.min_top1

    def to_dict(self) -> dict[str, Any]:
        def brief(metrics: VariationMetrics, split: str) -> dict[str, Any]:
            return {"split": split, "top1": metrics.top1, "top1_std": metrics.top1_std, "top1_min": metrics.top1_min,
                    "top1_clean": metrics.top1_clean, "draws": metrics.draws, "seed": metrics.seed,
                    "n_images": metrics.n_images, "calibration_images": metrics.calibration_images}

        return {"spec_top1": self.min_top1, "passed": self.passed,
                "selection": brief(self.selection, self.selection_split),
                "report": brief(self.report, self.report_split), "noise": dict(self.report.noise)}


def final_variation(ctx: SearchContext, plans: Mapping[str, Plan], cost: NetworkCost,
                    models: Mapping[str, nn.Module]) -> VariationCheck | str:
    """Re-check the final winner on fresh draws (``FRESH_SEED_OFFSET``): the record, or the reason its
    design cannot be tested."""
    from nn2hw.search.context import default_evaluator

    s = ctx.settings
    floor = s.min_accuracy_under_variation
    assert floor is not None
    m, = ctx.members
    try:
        noise = design_noise_of(ctx, cost, apply_plan(plans[m.name], m.workload))
    except HardwareError as exc:
        return f"no accuracy under variation: {exc.cause}"
    selecting = default_evaluator(s, m.member, None, s.finetune, selecting=True)
    report_data = default_evaluator(s, m.member, s.report_images, s.finetune).test_data()
    seed, draws = s.seed + FRESH_SEED_OFFSET, s.final_variation_draws
    assert isinstance(m.evaluator, FinetuneEvaluator)
    batch, calibration = m.evaluator.test_batch_size, calibration_of(selecting, s.bn_calibration)
    return VariationCheck(floor, run_draws(models[m.name], selecting.test_data(), noise, draws, seed, batch, s.threads,
                                           calibration),
                          run_draws(models[m.name], report_data, noise, draws, seed, batch, s.threads, calibration),
                          s.selection_split, m.member.split)

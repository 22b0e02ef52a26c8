"""Train the hot-start supernet and derive the architectures the trials then judge exactly.

One pass per batch of the ``fit`` split (single-level, as SNAS): hard Gumbel-softmax gates, one for
the whole batch, the loss = cross-entropy (distilled from the unmodified model when the search's
fine-tune distills) combined with the hardware term (``RelaxOptions.loss``), then one SGD step on
the weights and one Adam step on the logits. The hardware term's value is the sampled
architecture's exact cost on the current design (the cost model, not a relaxation); its gradient
comes from the per-choice tables (``costs``) or Auto-NBA's straight-through product. The design is
re-searched with the template's DSE every ``research_every`` steps and lambda adapted every
``lambda_every`` steps so the most likely architecture reaches the spec.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from nn2hw.errors import ConfigError, InfeasibleError
from nn2hw.evaluate import FinetuneEvaluator
from nn2hw.evaluate.runtime import run_context
from nn2hw.hardware.records import design_label
from nn2hw.search.differentiable.costs import (
    CostTables,
    ExactCosts,
    build_tables,
    hardware_metrics,
    relaxed_positions,
)
from nn2hw.search.differentiable.options import DEFAULT_EPOCHS, RelaxOptions
from nn2hw.search.differentiable.supernet import HotStartSupernet, RelaxedSpace
from nn2hw.zoo.archs.supernet import available_bytes

if TYPE_CHECKING:
    from nn2hw.search.context import SearchContext

DISTILL_TEMPERATURE = 4.0


def gumbel_gates(logits: Sequence[torch.Tensor], temperature: float, generator: torch.Generator
                 ) -> tuple[list[torch.Tensor], list[int]]:
    """Hard Gumbel-softmax gates per position (one-hot forward, the soft sample's gradient) and the
    sampled choices."""
    gates, chosen = [], []
    for alpha in logits:
        uniform = torch.rand(alpha.shape, generator=generator).clamp_(1e-9, 1 - 1e-9)
        soft = torch.softmax((alpha - torch.log(-torch.log(uniform))) / temperature, dim=0)
        index = int(soft.argmax())
        hard = torch.zeros_like(soft)
        hard[index] = 1.0
        gates.append(hard - soft.detach() + soft)
        chosen.append(index)
    return gates, chosen


def hardware_value(gates: Sequence[torch.Tensor], chosen: Sequence[int], exact: np.ndarray, tables: CostTables,
                   form: str) -> torch.Tensor:
    """The hardware metrics of the sampled architecture as a tensor whose value is ``exact`` (its cost
    on the current design) and whose gradient reaches the logits: through the tables, sum_p (g_p -
    onehot_p) . delta_p (every logit), or Auto-NBA's value * prod_p ((1 - g_p[c_p]).detach() + g_p[c_p])
    (``straight_through``: every chosen logit)."""
    value = torch.as_tensor(exact, dtype=torch.float32)
    if form == "straight_through":
        factor = torch.ones(())
        for gate, c in zip(gates, chosen):
            factor = factor * ((1 - gate[c]).detach() + gate[c])
        return value * factor
    for gate, c, delta in zip(gates, chosen, tables.deltas):
        onehot = torch.zeros_like(gate)
        onehot[c] = 1.0
        value = value + (gate - onehot) @ torch.as_tensor(delta, dtype=torch.float32)
    return value


def hardware_loss(ce: torch.Tensor, metrics: torch.Tensor, limits: np.ndarray, lam: float, form: str) -> torch.Tensor:
    """``add``: CE + lam * sum(metric / limit); ``mul``: CE * prod((metric / limit) ^ lam)."""
    ratios = metrics / torch.as_tensor(limits, dtype=torch.float32)
    if form == "add":
        return ce + lam * ratios.sum()
    return ce * torch.prod(ratios.clamp_min(1e-6) ** lam)


LAMBDA_RANGE = 1000.0
"""Lambda stays within [lam / 1000, lam * 1000] of its initial value: far under the spec for long, it
would otherwise shrink to nothing (1e-9 after 55 halvings in a measured FBNet run) and take as many
updates to matter again once the architecture grows past the spec."""


def adapted(lam: float, ratio: float, options: RelaxOptions) -> float:
    """Lambda after one adaptation: up while the most likely architecture misses a limit (``ratio``
    > 1: its worst metric over its limit), down while it is more than ``slack`` under every limit;
    within ``LAMBDA_RANGE`` of the initial ``options.lam``."""
    if ratio > 1.0:
        lam *= options.lambda_factor
    elif ratio < 1.0 - options.slack:
        lam /= options.lambda_factor
    return min(max(lam, options.lam / LAMBDA_RANGE), options.lam * LAMBDA_RANGE)


def most_likely(log_probs: Sequence[np.ndarray], k: int) -> list[tuple[tuple[int, ...], float]]:
    """The ``k`` most likely architectures under independent per-position distributions, best first
    (exact k-best: each rank vector is reached once, by raising positions in index order)."""
    order = [np.argsort(-lp, kind="stable") for lp in log_probs]

    def score(ranks: tuple[int, ...]) -> float:
        return float(sum(lp[o[r]] for lp, o, r in zip(log_probs, order, ranks)))

    start = tuple(0 for _ in log_probs)
    heap = [(-score(start), start, 0)]
    found: list[tuple[tuple[int, ...], float]] = []
    while heap and len(found) < k:
        negative, ranks, last = heapq.heappop(heap)
        found.append((tuple(int(o[r]) for o, r in zip(order, ranks)), -negative))
        for i in range(last, len(ranks)):
            if ranks[i] + 1 < len(order[i]):
                raised = (*ranks[:i], ranks[i] + 1, *ranks[i + 1:])
                heapq.heappush(heap, (-score(raised), raised, i))
    return found


@dataclass
class Trace:
    """What the training did, for the report: temperature, lambda and design trajectories."""

    temperature: list[list[float]] = field(default_factory=list)
    lam: list[dict[str, Any]] = field(default_factory=list)
    designs: list[list[Any]] = field(default_factory=list)
    argmaxes: list[tuple[int, ...]] = field(default_factory=list)


def check_memory(estimate: int, options: RelaxOptions, batch: int) -> None:
    """Refuse a supernet whose training would not fit the memory given (or available)."""
    limit = options.memory_mb * 2**20 if options.memory_mb else available_bytes(torch.device("cpu"))
    if estimate > limit:
        raise ConfigError(f"The supernet needs about {estimate / 2**20:.0f} MiB to train at batch {batch} (weights, "
                          f"gradients, one weight copy per bit width, activations), more than the "
                          f"{limit / 2**20:.0f} MiB {'allowed (memory_mb)' if options.memory_mb else 'available'}.",
                          "Search fewer dimensions (a --space file), free memory, or train at a smaller batch "
                          "(api.search(finetune=FinetuneSettings(batch_size=...))); --strategy-option memory_mb=N "
                          "sets the memory allowed.")


def training_data(ctx: SearchContext) -> Any:
    """The search's fine-tuning split (``fit``), prepared as its fine-tunes see it: the default
    evaluator's, also when candidates are scored by an evaluator of the user's."""
    from nn2hw.search.context import default_evaluator

    s, member = ctx.settings, ctx.members[0]
    evaluator = member.evaluator if isinstance(member.evaluator, FinetuneEvaluator) else \
        default_evaluator(s, member.member, s.search_images, s.finetune, selecting=True)
    return evaluator.train_data()


def check_reachable(ctx: SearchContext, exact: ExactCosts, positions: Sequence[int]) -> None:
    """Refuse a spec the relaxed dimensions cannot reach (the whole space may, with the techniques the
    supernet leaves unchanged): the leanest of every combination of the relaxed techniques, each
    on its own best design, must meet every limit the hardware term carries."""
    dims = ctx.space.dimensions
    techniques = sorted({dims[p].technique for p in positions})
    reach = np.full(len(exact.metrics), np.inf)
    for size in range(1, len(techniques) + 1):
        for chosen in itertools.combinations(techniques, size):
            cost = exact.best(exact.vector(positions, [dims[p].leanest if dims[p].technique in chosen else 0
                                                       for p in positions]))
            if cost is not None:
                reach = np.minimum(reach, exact.values(cost))
    missed = [(m, r, limit) for m, r, limit in zip(exact.metrics, reach, exact.limits) if r > limit]
    if missed:
        metric, value, limit = missed[0]
        raise InfeasibleError(
            f"The differentiable strategy relaxes {', '.join(techniques)} only, and their leanest choices reach "
            f"{value:.6g} {metric.split('_')[1]} at best, above the {metric} <= {limit:g} spec (the other techniques "
            "of the space, which it leaves unchanged, would be needed).",
            f"Relax the spec to at least {value:.6g}, offer those techniques more choices with a --space file, or use "
            "a discrete strategy, which searches every technique.", best_bound=float(value))


def train_supernet(ctx: SearchContext, options: RelaxOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the relaxed space of ``ctx`` and derive its candidates; the JSON record of the run."""
    s = ctx.settings
    member = ctx.members[0]
    positions = relaxed_positions(ctx.space.dimensions)
    if not positions:
        found = sorted({d.technique for d in ctx.space.dimensions})
        raise ConfigError("The differentiable strategy relaxes kernel_pattern, quantize and channel_cut dimensions, "
                          f"and this space has none (its techniques: {', '.join(found)}).",
                          "Offer them with a --space file (docs/search.md), or use a discrete strategy.")
    dims = [ctx.space.dimensions[p] for p in positions]
    exact = ExactCosts(ctx, hardware_metrics(ctx))
    check_reachable(ctx, exact, positions)
    batch = s.finetune.batch_size
    supernet = HotStartSupernet(member.model, member.workload, dims)
    check_memory(supernet.estimate_bytes(batch), options, batch)
    data = training_data(ctx)
    epochs = s.epochs if s.epochs is not None else DEFAULT_EPOCHS
    steps = max(1, math.ceil(epochs * len(data) / batch))
    seconds = options.train_share * s.minutes * 60 if s.minutes else math.inf
    teacher = member.model if s.finetune.distill else None
    log(f"differentiable: training the supernet over {len(dims)} relaxed dimensions for up to {steps} batches "
        f"({epochs:g} epochs of {len(data)} images)" + (f", at most {seconds:.0f} s" if math.isfinite(seconds) else ""))
    started = time.perf_counter()
    with run_context(s.seed, s.threads) as generator:
        record = _train(ctx, supernet, exact, positions, options, data, steps, seconds, generator, teacher)
    record.update({"space_kind": s.space_kind, "seconds": time.perf_counter() - started, "epochs_requested": epochs,
                   "images": len(data), "batch_size": batch, "seed": s.seed, "options": options.to_dict()})
    log(f"differentiable: trained {record['batches']} batches in {record['seconds']:.0f} s; "
        f"{len(record['candidates'])} candidates derived")
    return record


def _train(ctx: SearchContext, supernet: RelaxedSpace, exact: ExactCosts, positions: Sequence[int],
           options: RelaxOptions, data: Any, steps: int, seconds: float, generator: torch.Generator,
           teacher: nn.Module | None) -> dict[str, Any]:
    s = ctx.settings
    counts = supernet.counts
    logits = [torch.zeros(n, requires_grad=True) for n in counts]
    weights = [p for p in supernet.parameters() if p.requires_grad]
    w_opt = torch.optim.SGD(weights, lr=s.finetune.lr, momentum=0.9, weight_decay=1e-4)
    a_opt = torch.optim.Adam(logits, lr=options.arch_lr, betas=(0.5, 0.999))
    design = ctx.base_cost.design
    tables = build_tables(exact, positions, counts, design)
    trace = Trace(designs=[[0, design_label(design)]])
    lam = options.lam
    decay = (options.temperature_end / options.temperature) ** (1.0 / max(1, steps - 1))
    start = time.perf_counter()
    order = torch.randperm(len(data), generator=generator)
    step = 0
    supernet.train()
    while step < steps and time.perf_counter() - start < seconds:
        if len(order) < s.finetune.batch_size:
            order = torch.randperm(len(data), generator=generator)
        indices, order = order[: s.finetune.batch_size].numpy(), order[s.finetune.batch_size:]
        images, labels = data.batch(indices, generator)
        temperature = options.temperature * decay ** step
        gates, chosen = gumbel_gates(logits, temperature, generator)
        out = supernet(images, gates)
        ce = nn.functional.cross_entropy(out, labels)
        if teacher is not None:
            ce = (1 - s.finetune.distill) * ce + s.finetune.distill * _distilled(out, teacher, images)
        value = exact.on(exact.vector(positions, chosen), tables.design)
        metrics = hardware_value(gates, chosen, tables.table(chosen) if value is None else value, tables,
                                 options.hw_gradient)
        loss = hardware_loss(ce, metrics, exact.limits, lam, options.loss)
        if not torch.isfinite(loss):
            raise ConfigError(f"The supernet's loss is {loss.item()} at batch {step + 1}.",
                              f"Lower the learning rate (--finetune-lr {s.finetune.lr}) or lam ({lam:g}).")
        w_opt.zero_grad(set_to_none=True)
        a_opt.zero_grad(set_to_none=True)
        loss.backward()
        w_opt.step()
        a_opt.step()
        step += 1
        if step % options.research_every == 0:
            best = exact.best(exact.vector(positions, _argmax(logits)))
            if best is not None and repr(best.design) != repr(tables.design):
                tables = build_tables(exact, positions, counts, best.design)
                trace.designs.append([step, design_label(best.design)])
        if step % options.lambda_every == 0 or step == steps:
            lam = _adapt(exact, positions, tables, logits, lam, options, step, temperature, trace)
    return {"batches": step, "stopped_by": "epochs" if step >= steps else "minutes",
            **_derived(exact, positions, tables, logits, options, trace, ctx)}


def _argmax(logits: Sequence[torch.Tensor]) -> list[int]:
    return [int(a.detach().argmax()) for a in logits]


def _adapt(exact: ExactCosts, positions: Sequence[int], tables: CostTables, logits: Sequence[torch.Tensor],
           lam: float, options: RelaxOptions, step: int, temperature: float, trace: Trace) -> float:
    """Record the most likely architecture's exact cost on the current design and adapt lambda to it."""
    choices = _argmax(logits)
    value = exact.on(exact.vector(positions, choices), tables.design)
    value = tables.table(choices) if value is None else value
    ratio = float(np.max(value / exact.limits))
    trace.temperature.append([step, temperature])
    trace.lam.append({"step": step, "lambda": lam, "argmax": dict(zip(exact.metrics, value.tolist())),
                      "worst_ratio_to_spec": ratio})
    if tuple(choices) not in trace.argmaxes:
        trace.argmaxes.append(tuple(choices))
    return adapted(lam, ratio, options)


def _derived(exact: ExactCosts, positions: Sequence[int], tables: CostTables, logits: Sequence[torch.Tensor],
             options: RelaxOptions, trace: Trace, ctx: SearchContext) -> dict[str, Any]:
    """The candidates: the ``candidates`` most likely architectures and the distinct most likely ones
    along the lambda trajectory, ordered by their final log-probability; each with its vector over
    the whole space, the tables' estimate and the exact cost on the final design."""
    log_probs = [torch.log_softmax(a.detach(), dim=0).numpy().astype(np.float64) for a in logits]
    ranked = dict(most_likely(log_probs, options.candidates))
    for choices in trace.argmaxes:
        ranked.setdefault(choices, float(sum(lp[c] for lp, c in zip(log_probs, choices))))
    candidates = []
    for choices, log_prob in sorted(ranked.items(), key=lambda item: -item[1]):
        on_design = exact.on(exact.vector(positions, choices), tables.design)
        candidates.append({
            "indices": list(exact.vector(positions, choices)), "log_prob": log_prob,
            "relaxed": dict(zip(exact.metrics, tables.table(choices).tolist())),
            "exact_on_design": None if on_design is None else dict(zip(exact.metrics, on_design.tolist()))})
    probs = [np.exp(lp) for lp in log_probs]
    return {"relaxed_dimensions": [ctx.space.dimensions[p].name for p in positions],
            "not_relaxed": sorted({d.name for d in ctx.space.dimensions} - {ctx.space.dimensions[p].name
                                                                           for p in positions}),
            "probabilities": {ctx.space.dimensions[p].name: pr.round(4).tolist() for p, pr in zip(positions, probs)},
            "expected": dict(zip(exact.metrics, tables.expected(probs).tolist())),
            "final_design": design_label(tables.design), "temperature": trace.temperature, "lambda": trace.lam,
            "designs": trace.designs, "candidates": candidates}


def _distilled(out: torch.Tensor, teacher: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        target = torch.softmax(teacher(images) / DISTILL_TEMPERATURE, dim=1)
    log_probs = torch.log_softmax(out / DISTILL_TEMPERATURE, dim=1)
    return nn.functional.kl_div(log_probs, target, reduction="batchmean") * DISTILL_TEMPERATURE ** 2

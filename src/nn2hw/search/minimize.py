"""Minimal plans: remove from a candidate every change that no spec needs.

A search returns the most accurate candidate it scored that meets every spec, and some of its
changes may buy nothing there (a channel cut the best design does not reward), yet each can cost
accuracy. Minimizing removes them greedily: each pass tries the candidate's changes in order of
``accuracy_risk`` (largest first), re-costs the candidate without the change on its own best
design, and keeps the removal when every spec is still met and the design fits. Removing a
change does not always raise the cost (int8 on a few channels can cost more than float on a
CPU), so passes repeat until one removes nothing: then each remaining change was tried against
the final candidate and its removal misses a spec, fits no design or leaves the plan invalid.

- ``minimize_vector(ctx, indices)``: a search's index vector (``finalize`` uses it); its
  dimensions are the changes, hardware knobs are never removed.
- ``minimize_plan(plan, workload, target)``: any plan (``nn2hw plan minimize``); a change is one
  transform's fields on one layer, on a coupling group (a channel cut, a head removal) or on a
  repeated block (a layer drop) where removing it from one layer alone leaves the plan invalid.

A change that leaves the rewritten network as it is (a fine-tuning recipe such as ``noise_train``
or ``polarize``) has no cost to pay for; it is kept and not tried. A change to layers the plan
removes (a cut or a bit width inside a dropped block) changes nothing at all: it is removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from nn2hw._json import jsonable
from nn2hw.compress import TRANSFORMS, Transform, apply_plan, ordered_transforms, plan_problems, validate_plan
from nn2hw.compress.base import has_module_weights
from nn2hw.compress.layer_drop import block_of
from nn2hw.errors import ConfigError, HardwareError, InfeasibleError, PlanError
from nn2hw.hardware.records import NetworkCost
from nn2hw.plan import LayerChoice, Plan
from nn2hw.space import HARDWARE
from nn2hw.spec import Spec
from nn2hw.workload import Layer, Workload

if TYPE_CHECKING:
    from nn2hw.search.context import SearchContext
    from nn2hw.search.target import HardwareTarget

State = TypeVar("State")
Networks: TypeAlias = Workload | Mapping[str, Workload]
"""One network's workload, or several networks' by name (a joint search)."""

_EMPTY = LayerChoice()

INFORMATIVE_BITS = 8
"""Bits of a weight or an activation that ``accuracy_risk`` counts: 8-bit fixed point keeps a
trained CNN's top-1 within a fraction of a point, so narrowing 32 -> 12 or 8 bits counts as no
loss and 8 -> 4 bits as half of the layer."""


def accuracy_risk(bases: Mapping[str, Workload], with_change: Mapping[str, Workload],
                  without_change: Mapping[str, Workload]) -> float:
    """The accuracy risk of a change (the order in which minimizing tries to remove changes): the
    base networks' parameters it takes away.

    Every conv/linear layer of a base network counts its parameters times the share of them the
    candidate keeps: kept weights (channel cuts, head removal, kernel patterns, block pruning,
    dropped blocks) times kept weight bits times kept input bits (each up to
    ``INFORMATIVE_BITS``), relative to the base layer. The risk is what the networks with the
    change keep less than without it, in parameters: cutting half the filters of a 37k-parameter
    layer risks about 18k (plus what its consumers lose), 4-bit weights in it about 18k too, 8-bit
    ones nothing. A change that keeps more than its absence (a kernel expansion) has a negative
    risk and is tried last.
    """

    def kept(networks: Mapping[str, Workload]) -> float:
        total = 0.0
        for net, base in bases.items():
            for layer in base.compute_layers:
                if layer.weights and has_module_weights(layer) and layer.name in networks[net]:
                    total += layer.parameters * _kept_share(layer, networks[net].layer(layer.name))
        return total

    return kept(without_change) - kept(with_change)


def _kept_share(base: Layer, now: Layer) -> float:
    """What ``now`` keeps of ``base``'s weights, counting informative bits (``accuracy_risk``)."""
    def weights(layer: Layer) -> float:
        rows_kept, rows = layer.kept_row_share
        return layer.weights / layer.kernel_area * layer.kept_weights * rows_kept / rows

    def bits(now_bits: int, base_bits: int) -> float:
        return min(now_bits, INFORMATIVE_BITS) / min(base_bits, INFORMATIVE_BITS)

    return (weights(now) / weights(base) * bits(now.weight_bits, base.weight_bits)
            * bits(now.input_bits, base.input_bits))


@dataclass(frozen=True)
class Change:
    """One change of a candidate: a technique on its layers (a coupling group's cut together).

    ``risk`` is its ``accuracy_risk`` in the candidate at the start of pass ``sweep`` (the pass
    that removed it; for a kept change the last, which removed nothing); ``saved_ms`` the latency
    its removal added to the candidate (negative: the change cost latency; None: no design runs
    the candidate without it); ``needed`` says, for a kept change, what removing it misses ('' for
    a removed one)."""

    technique: str
    layers: tuple[str, ...]
    label: str
    risk: float
    saved_ms: float | None
    sweep: int
    needed: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"technique": self.technique, "layers": list(self.layers), "label": self.label, "risk": self.risk,
                "saved_ms": self.saved_ms, "pass": self.sweep, **({"needed": self.needed} if self.needed else {})}


@dataclass(frozen=True)
class Minimized:
    """A candidate without the changes its specs do not need: the kept plans (and, from a search,
    the kept index vector), the changes removed (in the order removed) and kept, the cost before
    and after, the passes and re-costings it took."""

    plans: Mapping[str, Plan]
    removed: tuple[Change, ...]
    kept: tuple[Change, ...]
    before: NetworkCost
    after: NetworkCost
    passes: int
    checks: int
    seconds: float
    indices: tuple[int, ...] | None = None

    @property
    def plan(self) -> Plan:
        """The kept plan of a single network."""
        if len(self.plans) != 1:
            raise ConfigError(f"This candidate has {len(self.plans)} networks ({', '.join(self.plans)}).",
                              "Read minimized.plans[name].")
        return next(iter(self.plans.values()))

    def summary(self) -> str:
        """One sentence: what was removed and what it did to the latency."""
        total = len(self.removed) + len(self.kept)
        latency = f"latency {self.before.latency_ms:.6g} -> {self.after.latency_ms:.6g} ms"
        if not self.removed:
            return f"every one of the {total} changes is needed by a spec ({latency})"
        names = ", ".join(f"{c.technique} {c.layers[0]}{'+' if len(c.layers) > 1 else ''} ({c.label})"
                          for c in self.removed)
        return f"{len(self.removed)} of {total} changes bought nothing under the spec and were removed ({latency}): " \
               f"{names}"

    def to_dict(self) -> dict[str, Any]:
        pairs = (("before", self.before), ("after", self.after))
        costs = {f"{name}_{when}": getattr(cost, name) for when, cost in pairs
                 for name in ("latency_ms", "energy_mj", "area_mm2") if getattr(cost, name) is not None}
        return {"removed": [c.to_dict() for c in self.removed], "kept": [c.to_dict() for c in self.kept],
                **costs, "design_before": jsonable(self.before.design), "design_after": jsonable(self.after.design),
                "passes": self.passes, "checks": self.checks, "seconds": self.seconds,
                **({"indices": list(self.indices)} if self.indices is not None else {})}


@dataclass(frozen=True)
class _Unit:
    """A removable change of the current candidate (``key`` names it to ``drop``)."""

    key: Any
    technique: str
    layers: tuple[str, ...]
    label: str


@dataclass(frozen=True)
class _Judged:
    """A candidate rewritten and costed: its networks (None: an invalid plan), cost (None: no
    design runs it) and what it misses ('' when it meets every spec and fits)."""

    networks: dict[str, Workload] | None
    cost: NetworkCost | None
    miss: str


@dataclass(frozen=True)
class _Problem(Generic[State]):
    """What the greedy needs of a kind of candidate: its changes, how to drop one, how to rewrite
    the networks (``PlanError`` when invalid) and cost them on their best design."""

    names: tuple[str, ...]
    """The networks' names (a single workload is the first's)."""
    bases: dict[str, Workload]
    units: Callable[[State], list[_Unit]]
    drop: Callable[[State, Any], State]
    rewrite: Callable[[State], Networks]
    cost: Callable[[Networks], NetworkCost]
    spec: Spec

    def judge(self, state: State) -> _Judged:
        try:
            rewritten = self.rewrite(state)
        except PlanError as exc:
            return _Judged(None, None, f"the plan becomes invalid: {exc.cause}")
        networks = _by_name(rewritten, self.names)
        try:
            cost = self.cost(rewritten)
        except (PlanError, InfeasibleError, HardwareError) as exc:
            return _Judged(networks, None, f"no design runs it: {exc.cause}")
        return _Judged(networks, cost, missed(self.spec, cost))


def _gone(layers: tuple[str, ...], networks: Mapping[str, Workload]) -> bool:
    """Whether none of a change's layers is left in the rewritten networks (the plan removed them,
    e.g. with a dropped block); a joint search names them 'network/layer'."""
    if len(networks) == 1:
        workload, = networks.values()
        return not any(name in workload for name in layers)
    return not any(name.partition("/")[2] in networks.get(name.partition("/")[0], ()) for name in layers)


def _by_name(networks: Networks, names: tuple[str, ...]) -> dict[str, Workload]:
    return {names[0]: networks} if isinstance(networks, Workload) else dict(networks)


def missed(spec: Spec, cost: NetworkCost) -> str:
    """What a cost misses: the resources its design exceeds, then the specs ('' when none)."""
    over = [f"{r.name} {r.used:g} > {r.available:g}" for r in cost.resources if not r.fits]
    if over:
        return f"design exceeds {', '.join(over)}"
    return spec.describe_miss(cost)


def _greedy(problem: _Problem[State], start: State, what: str) -> tuple[State, Minimized]:
    """Remove changes of ``start`` while every spec stays met: each pass in order of accuracy risk
    (largest first, then the changes' own order), re-costed after each removal; until a pass
    removes nothing."""
    began = time.perf_counter()
    first = problem.judge(start)
    if first.cost is None or first.networks is None or first.miss:
        raise InfeasibleError(f"{what} does not meet the spec to begin with: {first.miss}.",
                              "Minimize a plan that meets every spec (relax the spec or give other hardware).")
    state, now, before = start, first, first.cost
    removed: list[Change] = []
    checks, passes = 1, 0
    while True:
        passes += 1
        assert now.networks is not None and now.cost is not None
        ranked: list[tuple[float, int, _Unit]] = []
        fixed: list[Change] = []
        for i, unit in enumerate(problem.units(state)):
            try:
                rewritten = _by_name(problem.rewrite(problem.drop(state, unit.key)), problem.names)
            except PlanError:
                risk = 0.0  # tried all the same: the judgement names the problem
            else:
                if rewritten == now.networks and _gone(unit.layers, now.networks):
                    state = problem.drop(state, unit.key)  # moot: its layers are removed with their block
                    removed.append(Change(unit.technique, unit.layers, unit.label, 0.0, 0.0, passes, ""))
                    continue
                if rewritten == now.networks:
                    fixed.append(Change(unit.technique, unit.layers, unit.label, 0.0, 0.0, passes,
                                        "no effect on the network's cost (a fine-tuning recipe): not tried"))
                    continue
                risk = accuracy_risk(problem.bases, now.networks, rewritten)
            ranked.append((risk, i, unit))
        ranked.sort(key=lambda r: (-r[0], r[1]))
        kept: list[Change] = []
        for risk, _, unit in ranked:
            without = problem.drop(state, unit.key)  # from the candidate as earlier removals left it
            judged = problem.judge(without)
            checks += 1
            saved = judged.cost.latency_ms - now.cost.latency_ms if judged.cost is not None else None
            change = Change(unit.technique, unit.layers, unit.label, risk, saved, passes, judged.miss)
            if judged.miss:
                kept.append(change)
                continue
            removed.append(change)
            state, now = without, judged
            assert now.networks is not None and now.cost is not None
        if len(kept) == len(ranked):
            assert now.cost is not None
            return state, Minimized({}, tuple(removed), (*kept, *fixed), before, now.cost, passes, checks,
                                    time.perf_counter() - began)  # the caller names the kept plans


# --- a search's index vector ----------------------------------------------------------------------
def minimize_vector(ctx: SearchContext, indices: tuple[int, ...] | list[int]) -> Minimized:
    """The search candidate ``indices`` without the changes its specs do not need: each removal
    sets one dimension back to its base choice (hardware knobs are kept), re-costed on the best
    design with the candidate's knobs, as the search costs candidates (on a measured template,
    with the predictor: ``finalize`` measures the result). An ``InfeasibleError`` when the
    candidate itself misses a spec."""
    vector = tuple(int(i) for i in indices)
    dims = ctx.space.dimensions
    knobs = ctx.space.decode(vector).hardware
    names = tuple(net for net, _ in ctx.space.parts)
    layers = _dimension_layers(ctx)

    def units(state: tuple[int, ...]) -> list[_Unit]:
        return [_Unit(k, d.technique, layers[k], f"{d.labels[0]} -> {d.labels[i]}")
                for k, (d, i) in enumerate(zip(dims, state)) if i != 0 and d.technique != HARDWARE]

    def drop(state: tuple[int, ...], key: int) -> tuple[int, ...]:
        return (*state[:key], 0, *state[key + 1:])

    problem = _Problem(names, _by_name(ctx.workloads(), names), units, drop,
                       lambda state: ctx.workloads(ctx.space.decode(state).plans),
                       lambda networks: ctx.target.best(networks, knobs), ctx.spec)
    state, found = _greedy(problem, vector, "The candidate")
    return replace(found, plans=ctx.space.decode(state).plans, indices=state)


def _dimension_layers(ctx: SearchContext) -> list[tuple[str, ...]]:
    """Each dimension's layers as its changes name them (a joint search: 'network/layer')."""
    joint = len(ctx.space.parts) > 1
    return [tuple(f"{net}/{n}" if joint else n for n in d.layers) for net, space in ctx.space.parts
            for d in space.dimensions]


UNDONE = "the measured re-check refused the plan without it"
"""What a change undone by ``partly_minimized`` needs (``Change.needed``)."""


def partly_minimized(ctx: SearchContext, indices: tuple[int, ...] | list[int], found: Minimized,
                     made: Sequence[int]) -> Minimized:
    """``found`` (``minimize_vector`` of candidate ``indices``) with only the removals at positions
    ``made`` of ``found.removed`` made, the others kept (marked ``UNDONE``), re-costed. What finalize
    falls back to, step by step, when the measurement refuses the minimal plan."""
    keys = {(d.technique, names): k for k, (d, names) in enumerate(zip(ctx.space.dimensions, _dimension_layers(ctx)))}
    state = [int(i) for i in indices]
    chosen = set(made)
    for position in chosen:
        change = found.removed[position]
        state[keys[change.technique, change.layers]] = 0
    candidate = ctx.space.decode(tuple(state))
    after = ctx.target.best(ctx.workloads(candidate.plans), candidate.hardware)
    removed = tuple(c for i, c in enumerate(found.removed) if i in chosen)
    restored = tuple(replace(c, needed=UNDONE) for i, c in enumerate(found.removed) if i not in chosen)
    return replace(found, plans=candidate.plans, removed=removed, kept=found.kept + restored, after=after,
                   indices=tuple(state))


# --- any plan --------------------------------------------------------------------------------------
def minimize_plan(plan: Plan, workload: Workload, target: HardwareTarget, spec: Spec | None = None) -> Minimized:
    """``plan`` (for ``workload``) without the changes the spec does not need, each candidate costed
    on its own best design of ``target`` (as the search costs candidates); ``spec`` defaults to the
    target's. The kept plan carries its best design (``hardware_record``). A ``PlanError`` when the
    plan is invalid for the workload, an ``InfeasibleError`` when it misses the spec already, a
    ``ConfigError`` on a measured template (it times networks rather than costing them) or without
    any spec."""
    spec = (spec or target.spec).require()
    if target.template.measured:
        raise ConfigError(f"The {target.template.name} template times networks on this machine; minimizing a plan "
                          "re-costs it dozens of times and needs a cost model.",
                          "Give a predictor of the device (--hardware predictor:FILE) or another template.")
    validate_plan(plan, workload)
    full = apply_plan(plan, workload)
    changes = plan_changes(plan, workload)
    labels = {(t.name, layers): _describe(t, plan, layers, workload, full) for t, layers in changes}

    def units(state: Plan) -> list[_Unit]:
        return [_Unit((t.name, layers), t.name, layers, labels[t.name, layers]) for t, layers in changes
                if any(t.selects(state.choices.get(n, _EMPTY)) for n in layers)]

    def drop(state: Plan, key: tuple[str, tuple[str, ...]]) -> Plan:
        return _without(state, TRANSFORMS.get(key[0]), key[1])

    name = workload.name
    problem = _Problem((name,), {name: workload}, units, drop, lambda state: apply_plan(state, workload),
                       target.best, spec)
    state, found = _greedy(problem, plan, "The plan")
    return replace(found, plans={name: state.with_hardware(hardware_record(found.after, target.name, target.options))})


def plan_changes(plan: Plan, workload: Workload) -> list[tuple[Transform, tuple[str, ...]]]:
    """The removable changes of a valid ``plan``: per transform (in application order), its layers
    grouped so that removing one group keeps the plan valid. A layer alone, else with the layers
    of its coupling group the transform also sets (a channel cut), else of its repeated block (a
    layer drop), else every layer the transform sets."""
    found: list[tuple[Transform, tuple[str, ...]]] = []
    for transform in ordered_transforms():
        selected = [n for n, c in plan.choices.items() if transform.selects(c)]
        done: set[str] = set()
        for name in selected:
            if name in done:
                continue
            group = workload.group_of(name) if name in workload else None
            block = block_of(name)
            tries = [(name,),
                     tuple(n for n in selected if group is not None and n in group.layers),
                     tuple(n for n in selected if block is not None and block_of(n) == block),
                     tuple(selected)]
            layers = next((t for t in tries if name in t and not plan_problems(_without(plan, transform, t), workload)),
                          tuple(selected))
            found.append((transform, layers))
            done.update(layers)
    return found


def _without(plan: Plan, transform: Transform, layers: tuple[str, ...]) -> Plan:
    """``plan`` with ``transform``'s fields unset on ``layers``."""
    for name in layers:
        plan = plan.with_choice(name, **dict.fromkeys(transform.fields()))
    return plan


def _describe(transform: Transform, plan: Plan, layers: tuple[str, ...], base: Workload, full: Workload) -> str:
    """A change in a few words, as the transform says it for its first layer ('32->28 ch')."""
    name = layers[0]
    after = full.layer(name) if name in full else base.layer(name)
    return transform.describe(transform.read(plan.choices[name], name), base.layer(name), after)


def hardware_record(cost: NetworkCost, hardware: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """What a plan records of the design it runs on: template, device, the ``--hardware`` given
    (``spec``), design, clock, options and resources."""
    return {"template": cost.template, "device": cost.device, "spec": hardware, "design": jsonable(cost.design),
            "clock_mhz": cost.clock_mhz, "options": jsonable(dict(options)),
            "resources": [{"name": r.name, "used": r.used, "available": r.available, "unit": r.unit}
                          for r in cost.resources]}

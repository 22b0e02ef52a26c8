"""``--strategy differentiable``: a differentiable co-search whose derived architectures are the
strategy's proposals (``nn2hw.search.differentiable``).

Before its first proposal the sampler trains the relaxed supernet of the search's space (or reads
its result from the study, where the first run stored it: a resumed study or another worker
proposes the same candidates without training again), then proposes the derived candidates in
order, each once; the latency-first prefilter, the fine-tune, the exact re-costing, finalize and
the bundle are the search's own. Once every candidate was proposed the search starts no new trial
(``exhausted``). The record of the training (seeds, temperature schedule, lambda trajectory,
designs, derived architectures) and each candidate's relaxed vs exact cost go into ``report.json``
(section ``differentiable``) and ``differentiable.json`` beside it.

The sampler needs the search it runs in (``bind_search``, called by the search when it builds the
sampler); a bare sampler over names and counts (the strategy conformance suite's toy) has no network to
relax and says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from nn2hw._json import jsonable
from nn2hw.errors import ConfigError
from nn2hw.search.differentiable.options import DEFAULT_EPOCHS, RelaxOptions
from nn2hw.search.strategies.base import STRATEGIES, StrategyInfo
from nn2hw.search.strategies.finite import FiniteList, FiniteSampler
from nn2hw.search.strategies.sampler import SamplerContext

if TYPE_CHECKING:
    from nn2hw.search.context import SearchContext

RECORD_ATTR = "nn2hw_differentiable"
"""The study attribute holding the trained supernet's record (key and derived candidates)."""
REPORT_FILE = "differentiable.json"


class DerivedCandidates(FiniteList):
    """Proposes the supernet's derived architectures in order, each once."""

    name = "differentiable"


class DifferentiableSampler(FiniteSampler):
    """Trains (or reads) the supernet's result once, then walks its candidates like a finite grid."""

    strategy: DerivedCandidates

    def __init__(self, strategy: DerivedCandidates, context: SamplerContext, options: RelaxOptions) -> None:
        super().__init__(strategy, context)
        self.options = options
        self.search: SearchContext | None = None
        self.record: dict[str, Any] | None = None
        self.trained_here = False

    def bind_search(self, ctx: SearchContext, log: Callable[[str], None] = print) -> None:
        """The search this sampler proposes for (its model, data, space, target and specs)."""
        super().bind_search(ctx, log)
        self.search = ctx

    def key(self) -> str:
        """What the trained result depends on: the study's identity, the space, the options, the epochs."""
        if self.search is None:
            raise ConfigError("The differentiable strategy trains a supernet of the search's network, and this sampler "
                              "was built without a search (a bare space of names and counts).",
                              "Run it through nn2hw search / nn2hw.api.search.")
        s = self.search.settings
        parts = [s.identity(), self.search.space.key, self.options.to_dict(),
                 DEFAULT_EPOCHS if s.epochs is None else s.epochs]
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=jsonable).encode()).hexdigest()

    def prepared(self, study: optuna.Study) -> dict[str, Any]:
        """The supernet's record: stored on the study, else trained now and stored."""
        if self.record is not None:
            return self.record
        key = self.key()
        stored = study.user_attrs.get(RECORD_ATTR)
        if not (isinstance(stored, dict) and stored.get("key") == key):
            from nn2hw.search.differentiable.train import train_supernet

            assert self.search is not None  # key() refused a sampler without a search
            record = jsonable(train_supernet(self.search, self.options, self.log))
            stored = study.user_attrs.get(RECORD_ATTR)  # another worker may have stored its result meanwhile
            if not (isinstance(stored, dict) and stored.get("key") == key):
                stored = {"key": key, "record": record}
                study.set_user_attr(RECORD_ATTR, stored)
            self.trained_here = True
        self.record = dict(stored["record"])
        self.strategy.proposals = tuple(tuple(int(i) for i in c["indices"]) for c in self.record["candidates"])
        return self.record

    def ready(self, study: optuna.Study) -> None:
        self.prepared(study)

    def spent(self) -> str:
        return (f"differentiable: all {len(self.strategy.proposals)} derived candidates were proposed; no new "
                "trial starts.")

    def report(self, study: optuna.Study) -> dict[str, Any]:
        """The record with each candidate's exact cost on its own best design (its trial, or the
        prefilter's rejection) and the relaxed vs exact gap; also written to ``differentiable.json``."""
        record = dict(self.prepared(study))
        exact = _exact_costs(study, self.context.names)
        candidates = []
        for c in record["candidates"]:
            found = exact.get(tuple(c["indices"]), {})
            latency = found.get("latency_ms")
            relaxed = c["relaxed"].get("latency_ms")
            gap = None if latency is None or relaxed is None else 100.0 * (relaxed / latency - 1.0)
            candidates.append({**c, **found, "relaxed_vs_exact_pct": gap})
        gaps = [abs(c["relaxed_vs_exact_pct"]) for c in candidates if c["relaxed_vs_exact_pct"] is not None]
        mean = sum(gaps) / len(gaps) if gaps else None
        record.update({"candidates": candidates, "trained_in_this_run": self.trained_here,
                       "gap": {"candidates_costed": len(gaps), "mean_abs_pct": mean,
                               "max_abs_pct": max(gaps) if gaps else None}})
        gap = f"mean |gap| {mean:.2f} %, max {max(gaps):.2f} % over {len(gaps)}" if gaps else "no candidate costed"
        record["note"] = (f"Differentiable: {len(candidates)} candidates derived from a supernet trained for "
                          f"{record['batches']} batches ({record['seconds']:.0f} s, seed {record['seed']}); latency "
                          f"from the cost tables vs exact on each candidate's own best design: {gap} "
                          f"({REPORT_FILE}).")
        if self.search is not None:
            out = self.search.settings.out_dir
            out.mkdir(parents=True, exist_ok=True)
            (out / REPORT_FILE).write_text(json.dumps(record, indent=1, default=jsonable) + "\n")
        return record


def _exact_costs(study: optuna.Study, names: Sequence[str]) -> dict[tuple[int, ...], dict[str, Any]]:
    """Per index vector the study costed: the trial's latency/energy on its own best design and
    outcome, or the latency of a proposal the prefilter rejected."""
    found: dict[tuple[int, ...], dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False):
        for indices, latency in t.user_attrs.get("rejected", []):
            found.setdefault(tuple(indices), {"latency_ms": latency, "outcome": "rejected by the prefilter"})
        if t.state is TrialState.RUNNING or not set(names) <= set(t.params):
            continue
        a = t.user_attrs
        outcome = "missed a spec" if not a.get("feasible") else t.state.name.lower()
        found[tuple(int(t.params[n]) for n in names)] = {
            "latency_ms": a.get("latency_ms"), "energy_mj": a.get("energy_mj"), "trial": t.number, "outcome": outcome}
    return found


def build(ctx: SamplerContext) -> DifferentiableSampler:
    """The sampler (options checked now; training waits for the search's first proposal)."""
    options = RelaxOptions.parse(dict(ctx.options))
    return DifferentiableSampler(DerivedCandidates(ctx.counts, ctx.reward, ctx.seed), ctx, options)


STRATEGIES.register("differentiable", StrategyInfo(
    "differentiable", "Gumbel-softmax supernet with the cost model in its loss; derived architectures, each once",
    build))

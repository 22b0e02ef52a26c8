"""``--space-kind fbnet|nb201``: a differentiable network / bit-width / accelerator co-search over a
built-in space, without a hot start (FBNet, DNA, Auto-NBA).

The supernet of the space (``nn2hw.zoo.archs.supernet``: FBNet's 22 blocks x 9 candidate blocks, or
NAS-Bench-201's 6 edges x 5 ops, each position with a bit width choice) is trained from scratch on
the ``fit`` split: first ``warmup`` of its steps train the weights along uniformly sampled paths,
then every step samples hard Gumbel-softmax gates from the architecture logits and takes one SGD
step on the weights and one Adam step on the logits, the loss being cross-entropy plus the hardware
term (``RelaxOptions.loss``) whose value is the block tables' lookup-sum rescaled to the exact cost of
the most likely architecture (``space_costs``), on the design the template's DSE picks for that
architecture (re-searched every ``research_every`` steps); lambda adapts so the most likely
architecture reaches the spec.

Then the derived candidates (the ``candidates`` most likely architectures and the last distinct most
likely ones along the lambda trajectory) are each costed exactly on their own best design; those
meeting every spec inherit the supernet's weights, are fine-tuned (the search's fine-tune) and scored
on the selection split, in order of likelihood within the budget (``--trials``, ``--minutes``). The
most accurate is re-costed through an independent path (the zoo's ``fbnet``/``nb201`` entry's
workload with its plan applied) and must meet the spec there too, else the next one is taken; it
gets the final fine-tune, its test accuracy is measured, and it is written as a bundle of the zoo
entry with its architecture as build options. The baseline is the space's reference architecture
(the zoo entry's default, in float) on its own best design, trained the same way.

Resumable: the supernet's training state is saved to ``OUT/space_search/`` every minute, each
scored candidate as it finishes; ``--resume`` continues where the run stopped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nn2hw._json import jsonable
from nn2hw.compress import apply_plan
from nn2hw.compress.quantize import activation_int_bits
from nn2hw.errors import ConfigError, InfeasibleError, ModelError
from nn2hw.evaluate import Evaluator
from nn2hw.evaluate.evaluator import checked_metrics
from nn2hw.evaluate.runtime import run_context
from nn2hw.hardware.records import NetworkCost, design_label
from nn2hw.plan import Plan
from nn2hw.report import LayerRow, ParetoPoint, plot_pareto, write_html, write_pareto_csv
from nn2hw.report.layers import write_layers_csv
from nn2hw.search.context import default_evaluator
from nn2hw.search.differentiable.costs import weighed_metrics
from nn2hw.search.differentiable.options import DEFAULT_EPOCHS, RelaxOptions
from nn2hw.search.differentiable.space_costs import BlockTables, SpaceCosts, split_indices
from nn2hw.search.differentiable.train import Trace, adapted, check_memory, gumbel_gates, hardware_loss, most_likely
from nn2hw.search.finalize import SearchResult, Solution
from nn2hw.search.settings import SearchSettings
from nn2hw.search.target import HardwareTarget
from nn2hw.workload.spaces.fbnet import FBNET_OPS
from nn2hw.workload.spaces.nb201 import NB201_OPS, check_nb201
from nn2hw.zoo.archs.supernet import FBNetSupernet, NB201Supernet, Supernet

STATE_DIR = "space_search"
REPORT_FILE = "differentiable.json"
CHECKPOINT_S = 60.0
"""Seconds between saves of the supernet's training state (resume continues from the last one)."""
GRAD_CLIP = 5.0
"""The supernet's weight gradients are clipped to this norm (as DARTS-style supernets are)."""
LOG_EVERY = 50
"""Training steps between progress lines."""
CALIBRATION_IMAGES = 512
"""Training images a derived network's BatchNorm statistics and activation ranges are calibrated on."""


def op_labels(space_kind: str) -> tuple[str, ...]:
    """The names of a space's candidate ops, in encoding order."""
    return tuple(op.name for op in FBNET_OPS) if space_kind == "fbnet" else tuple(NB201_OPS)


def build_supernet(settings: SearchSettings, options: RelaxOptions) -> Supernet:
    """The space's supernet on the search's dataset, with the options' bit widths."""
    bits = options.bit_widths()
    if settings.space_kind == "fbnet":
        return FBNetSupernet(settings.dataset, bits=bits, width_mult=options.width_mult)
    return NB201Supernet(settings.dataset, bits=bits, channels=options.channels, cells=options.cells)


def zoo_options(settings: SearchSettings, options: RelaxOptions, ops: Sequence[int]) -> dict[str, Any]:
    """The zoo build options of an architecture (what its bundle records)."""
    if settings.space_kind == "fbnet":
        return {"arch": [int(o) for o in ops], "width_mult": options.width_mult}
    return {"arch": [int(o) for o in ops], "channels": options.channels, "cells": options.cells}


def reference_indices(settings: SearchSettings, supernet: Supernet) -> tuple[int, ...]:
    """The baseline: the zoo entry's default architecture, every position at the widest bit width."""
    from nn2hw import zoo

    arch = dict(zoo.entry(settings.model).options)["arch"]
    ops = check_nb201(arch) if settings.space_kind == "nb201" else tuple(int(o) for o in arch)
    widest = (max(range(len(supernet.bits)), key=lambda i: supernet.bits[i]),) * supernet.positions \
        if supernet.bits else ()
    return ops + widest


def metrics_for(settings: SearchSettings, target: HardwareTarget) -> tuple[str, ...]:
    """The metrics the hardware term weighs: the spec'd ones (latency, energy; a ``ConfigError`` when
    none), and latency always (without a latency spec its limit is infinite: reported, not weighed)."""
    found = weighed_metrics(settings.spec.limits, lambda m: m in target.template.metrics, settings.hardware)
    return found if "latency_ms" in found else ("latency_ms", *found)  # latency is always reported


@dataclass
class SpaceRun:
    """What one space search works with: settings, options, supernet, costs, state folder, log."""

    settings: SearchSettings
    options: RelaxOptions
    supernet: Supernet
    costs: SpaceCosts
    folder: Path
    key: str
    log: Callable[[str], None]

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    def load_state(self) -> dict[str, Any]:
        """The saved state of this search (an empty one when none, or another search's)."""
        if self.settings.resume and self.state_file.is_file():
            state = json.loads(self.state_file.read_text())
            if state.get("key") == self.key:
                for c in state.get("record", {}).get("candidates", []):
                    c.pop("trained_in_this_run", None)  # scored by the run being resumed
                return dict(state)
        return {"key": self.key}

    def save_state(self, state: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(jsonable(dict(state)), indent=1) + "\n")
        tmp.replace(self.state_file)


def run_space_search(settings: SearchSettings, evaluator: Evaluator | None = None,
                     final_evaluator: Evaluator | None = None, log: Callable[[str], None] = print) -> SearchResult:
    """Search the space ``settings.space_kind`` from scratch; see the module doc."""
    started = time.time()
    options = RelaxOptions.parse(dict(settings.strategy_options))
    target = HardwareTarget.parse(settings.hardware, settings.hw_options, settings.hw_grid, settings.spec.limits)
    if target.template.measured:
        raise ConfigError(f"--space-kind {settings.space_kind} costs architectures with an analytical template, and "
                          f"{settings.hardware} times networks on this machine.",
                          "Search on an FPGA or ASIC template (e.g. --hardware fpga:zcu102 or eyeriss).")
    metrics = metrics_for(settings, target)
    supernet = build_supernet(settings, options)
    check_memory(supernet.estimate_bytes(settings.finetune.batch_size), options, settings.finetune.batch_size)
    costs = SpaceCosts(supernet, target, metrics, settings.spec.limits, options.cost_dataset or None, settings.model)
    run = SpaceRun(settings, options, supernet, costs, settings.out_dir / STATE_DIR, _key(settings), log)
    state = run.load_state()
    if "record" not in state:  # a resumed search checked its spec and trained already
        leanest = check_leanest(run)
        state["record"] = train(run, leanest)
        state["record"]["leanest"] = leanest
        run.save_state(state)
    picked = evaluate_candidates(run, state, evaluator, started)
    return finish(run, state, picked, final_evaluator or evaluator, started)


def _key(settings: SearchSettings) -> str:
    parts = [settings.identity(), DEFAULT_EPOCHS if settings.epochs is None else settings.epochs]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=jsonable).encode()).hexdigest()


# --- the spec against the space ---------------------------------------------------------------------
def check_leanest(run: SpaceRun) -> dict[str, Any]:
    """Refuse a spec no architecture of the space can meet: the leanest found (every block's cheapest
    (op, width) by the tables on the leanest uniform architecture's design, and each uniform
    architecture at the narrowest width), each on its own best design, must meet every limit."""
    costs, supernet = run.costs, run.supernet
    narrow = min(range(len(supernet.bits)), key=lambda i: supernet.bits[i]) if supernet.bits else 0
    tried: list[tuple[tuple[int, ...], NetworkCost]] = []
    for op in range(supernet.counts[0]):
        arch = costs.uniform(op, narrow)
        cost = costs.best(arch)
        if cost is not None:
            tried.append((arch, cost))
    if not tried:
        raise InfeasibleError(f"No architecture of the {run.settings.space_kind} space runs on "
                              f"{run.settings.hardware}.",
                              "Use a larger device or template (nn2hw list templates).")
    design_arch = min(tried, key=lambda t: t[1].latency_ms)
    tables = costs.tables(design_arch[1].design)
    cheapest = _cheapest(tables)
    cost = costs.best(cheapest)
    if cost is not None:
        tried.append((cheapest, cost))
    arch, best = min(tried, key=lambda t: float(np.max(costs.values(t[1]) / costs.limits)))
    values = costs.values(best)
    if not run.settings.spec.met(best):
        worst = int(np.argmax(values / costs.limits))
        metric = costs.metrics[worst]
        raise InfeasibleError(
            f"No architecture of the {run.settings.space_kind} space meets {metric} <= {costs.limits[worst]:g} on "
            f"{run.settings.hardware}: the leanest found ({_arch_text(run, arch)}) costs {values[worst]:.6g} "
            f"{metric.split('_')[1]} on its best design.",
            f"Relax the spec to at least {values[worst]:.6g}, narrow the space's bit widths (--strategy-option "
            "bits=...), or use a larger device.", best_bound=float(values[worst]))
    return {"indices": list(arch), **dict(zip(costs.metrics, values.tolist())), "design": design_label(best.design)}


def _cheapest(tables: BlockTables) -> tuple[int, ...]:
    """Per block the (op, width) the tables cost least (summed over the metrics' shares of the fixed part)."""
    ops, widths = [], []
    for block in tables.blocks:
        score = (block / np.maximum(tables.fixed, 1e-12)).sum(axis=-1)
        op, width = np.unravel_index(int(np.argmin(score)), score.shape)
        ops.append(int(op))
        widths.append(int(width))
    return tuple(ops) + (tuple(widths) if tables.blocks[0].shape[1] > 1 else ())


def _arch_text(run: SpaceRun, indices: Sequence[int]) -> str:
    """'k3_e1 x 12, skip x 10; bits 4 x 22' (counts per op and width)."""
    labels = op_labels(run.settings.space_kind)
    ops, widths = split_indices(indices, run.supernet.positions)
    text = ", ".join(f"{labels[o]} x {ops.count(o)}" for o in sorted(set(ops), key=ops.index))
    if run.supernet.bits:
        text += "; bits " + ", ".join(f"{run.supernet.bits[w]} x {widths.count(w)}"
                                      for w in sorted(set(widths), key=widths.index))
    return text


# --- training -------------------------------------------------------------------------------------
def training_data(run: SpaceRun) -> Any:
    """The ``fit`` split as the fine-tunes see it."""
    s = run.settings
    return default_evaluator(s, s.members[0], s.search_images, s.finetune, selecting=True).train_data()


def train(run: SpaceRun, leanest: Mapping[str, Any]) -> dict[str, Any]:
    """Train the supernet (resuming a saved state) and derive its candidates; the JSON record."""
    s, options = run.settings, run.options
    data = training_data(run)
    batch = s.finetune.batch_size
    epochs = s.epochs if s.epochs is not None else DEFAULT_EPOCHS
    steps = max(1, math.ceil(epochs * len(data) / batch))
    seconds = options.train_share * s.minutes * 60 if s.minutes else math.inf
    run.log(f"differentiable ({s.space_kind}): training the supernet ({len(run.supernet.counts)} positions) for up "
            f"to {steps} batches ({epochs:g} epochs of {len(data)} images), {options.warmup:.0%} of them weights only"
            + (f", at most {seconds:.0f} s" if math.isfinite(seconds) else ""))
    started = time.perf_counter()
    with run_context(s.seed, s.threads) as generator:
        trainer = Trainer(run, data, steps, generator, tuple(leanest["indices"]))
        trainer.restore()
        trainer.loop(seconds)
        record = trainer.record()
    record.update({"space_kind": s.space_kind, "seconds": time.perf_counter() - started, "epochs_requested": epochs,
                   "images": len(data), "batch_size": batch, "seed": s.seed, "options": options.to_dict(),
                   "bits": list(run.supernet.bits), "ops": list(op_labels(s.space_kind))})
    run.log(f"differentiable: trained {record['batches']} batches; {len(record['candidates'])} candidates derived")
    return record


class Trainer:
    """One supernet training: weights (SGD, cosine-decayed ``weight_lr``), logits (Adam), lambda, the
    design, and the trace; saved every ``CHECKPOINT_S`` seconds."""

    def __init__(self, run: SpaceRun, data: Any, steps: int, generator: torch.Generator,
                 design_arch: tuple[int, ...]) -> None:
        self.run, self.data, self.steps, self.generator = run, data, steps, generator
        self.net = run.supernet
        self.logits = [torch.zeros(n, requires_grad=True) for n in self.net.counts]
        self.weights = [p for p in self.net.parameters() if p.requires_grad]
        self.w_opt = torch.optim.SGD(self.weights, lr=run.options.weight_lr, momentum=0.9, weight_decay=4e-5)
        self.a_opt = torch.optim.Adam(self.logits, lr=run.options.arch_lr, betas=(0.5, 0.999))
        self.lam = run.options.lam
        self.step = 0
        self.scale = 1.0
        self.trace = Trace()
        self.design_arch = design_arch
        self.tables = self._tables(design_arch)
        self.trace.designs.append([0, design_label(self.tables.design)])
        self.warmup_steps = int(run.options.warmup * steps)
        self.checkpoint = run.folder / "supernet.pt"

    def _tables(self, arch: tuple[int, ...]) -> BlockTables:
        best = self.run.costs.best(arch)
        if best is None:
            raise InfeasibleError("The design search found no design for the supernet's most likely architecture.",
                                  "Report this with the command: the leanest architecture had one.")
        return self.run.costs.tables(best.design)

    def restore(self) -> None:
        """Continue a saved training of this search (``--resume``)."""
        if not (self.run.settings.resume and self.checkpoint.is_file()):
            return
        saved = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        if saved.get("key") != self.run.key:
            return
        self.net.load_state_dict(saved["supernet"])
        with torch.no_grad():
            for logit, value in zip(self.logits, saved["logits"]):
                logit.copy_(value)
        self.w_opt.load_state_dict(saved["w_opt"])
        self.a_opt.load_state_dict(saved["a_opt"])
        self.lam, self.step, self.scale = saved["lam"], saved["step"], saved["scale"]
        self.trace = Trace(**saved["trace"])
        self.trace.argmaxes = [tuple(a) for a in self.trace.argmaxes]
        self.generator.set_state(saved["generator"])
        self.design_arch = tuple(saved["design_arch"])
        self.tables = self._tables(self.design_arch)
        self.run.log(f"differentiable: resumed the supernet's training at batch {self.step}")

    def save(self) -> None:
        self.run.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save({"key": self.run.key, "supernet": self.net.state_dict(), "logits": [a.detach() for a in self.logits],
                    "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(), "lam": self.lam,
                    "step": self.step, "scale": self.scale, "trace": vars(self.trace),
                    "generator": self.generator.get_state(), "design_arch": list(self.design_arch)}, tmp)
        tmp.replace(self.checkpoint)

    def loop(self, seconds: float) -> None:
        s, options = self.run.settings, self.run.options
        batch = s.finetune.batch_size
        decay = (options.temperature_end / options.temperature) ** (1.0 / max(1, self.steps - 1))
        start = last_save = time.perf_counter()
        self.net.train()
        self.stopped_by = "epochs"
        while self.step < self.steps:
            if time.perf_counter() - start >= seconds:
                self.stopped_by = "minutes"
                break
            for group in self.w_opt.param_groups:  # cosine decay over the whole training
                group["lr"] = options.weight_lr * 0.5 * (1 + math.cos(math.pi * self.step / self.steps))
            indices = torch.randint(len(self.data), (batch,), generator=self.generator).numpy()
            images, labels = self.data.batch(indices, self.generator)
            temperature = options.temperature * decay ** self.step
            warm = self.step < self.warmup_steps
            logits = [torch.zeros_like(a) for a in self.logits] if warm else self.logits
            gates, chosen = gumbel_gates(logits, temperature, self.generator)
            ce = nn.functional.cross_entropy(self.net(images, gates), labels)
            loss = ce if warm else self._loss(ce, gates, chosen)
            if not torch.isfinite(loss):
                raise ConfigError(f"The supernet's loss is {loss.item()} at batch {self.step + 1}.",
                                  f"Lower --strategy-option weight_lr ({options.weight_lr:g}) or lam ({self.lam:g}).")
            self.w_opt.zero_grad(set_to_none=True)
            self.a_opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.weights, GRAD_CLIP)
            self.w_opt.step()
            if not warm:
                self.a_opt.step()
            self.step += 1
            if not warm and self.step % options.research_every == 0:
                self._research()
            if not warm and (self.step % options.lambda_every == 0 or self.step == self.steps):
                self._adapt(temperature)
            if self.step % LOG_EVERY == 0:
                self.run.log(f"differentiable: batch {self.step}/{self.steps}, loss {loss.item():.4f}, lambda "
                             f"{self.lam:.4g}" + (" (warm-up)" if warm else ""))
            if time.perf_counter() - last_save >= CHECKPOINT_S:
                self.save()
                last_save = time.perf_counter()
        if not self.trace.lam:
            self._adapt(options.temperature * decay ** max(0, self.step - 1))
        self.save()

    def _loss(self, ce: torch.Tensor, gates: Sequence[torch.Tensor], chosen: Sequence[int]) -> torch.Tensor:
        """Cross-entropy with the hardware term of the spec'd metrics."""
        limits = self.run.costs.limits
        weighed = np.flatnonzero(np.isfinite(limits))
        value = self._hardware(gates, chosen)[torch.as_tensor(weighed)]
        return hardware_loss(ce, value, limits[weighed], self.lam, self.run.options.loss)

    def _hardware(self, gates: Sequence[torch.Tensor], chosen: Sequence[int]) -> torch.Tensor:
        """The sampled architecture's metrics: the tables' value (rescaled to the exact model) with
        the tables' gradient to every logit, or Auto-NBA's straight-through product."""
        blocks = self.net.positions
        op_gates, bit_gates = list(gates[:blocks]), list(gates[blocks:])
        if not bit_gates:
            bit_gates = [torch.ones(1)] * blocks
        fixed = torch.as_tensor(self.tables.fixed, dtype=torch.float32)
        if self.run.options.hw_gradient == "straight_through":
            factor = torch.ones(())
            for gate, c in zip(gates, chosen):
                factor = factor * ((1 - gate[c]).detach() + gate[c])
            value = torch.as_tensor(self.tables.table(chosen), dtype=torch.float32)
            return self.scale * value * factor
        total = fixed
        for block, ops, bits in zip(self.tables.blocks, op_gates, bit_gates):
            total = total + torch.einsum("o,b,obm->m", ops, bits, torch.as_tensor(block, dtype=torch.float32))
        return self.scale * total

    def _argmax(self) -> tuple[int, ...]:
        return tuple(int(a.detach().argmax()) for a in self.logits)

    def _research(self) -> None:
        """Re-run the template's DSE on the most likely architecture; new tables when the design changed."""
        arch = self._argmax()
        best = self.run.costs.best(arch)
        if best is not None and repr(best.design) != repr(self.tables.design):
            self.tables = self.run.costs.tables(best.design)
            self.design_arch = arch
            self.trace.designs.append([self.step, design_label(best.design)])

    def _adapt(self, temperature: float) -> None:
        """The most likely architecture's exact cost on the current design: rescale the tables to it,
        record it and adapt lambda."""
        arch = self._argmax()
        cost = self.run.costs.on(arch, self.tables.design) or self.run.costs.best(arch)
        table = self.tables.table(arch)
        value = table if cost is None else self.run.costs.values(cost)
        self.scale = float(np.mean(value / np.maximum(table, 1e-12))) if cost is not None else self.scale
        ratio = float(np.max(value / self.run.costs.limits))
        self.trace.temperature.append([self.step, temperature])
        self.trace.lam.append({"step": self.step, "lambda": self.lam, "argmax": dict(zip(self.run.costs.metrics,
                                                                                         value.tolist())),
                               "tables_scale": self.scale, "worst_ratio_to_spec": ratio})
        if arch in self.trace.argmaxes:
            self.trace.argmaxes.remove(arch)
        self.trace.argmaxes.append(arch)
        self.lam = adapted(self.lam, ratio, self.run.options)

    def record(self) -> dict[str, Any]:
        """The training's record and its derived candidates (most likely first)."""
        log_probs = [torch.log_softmax(a.detach(), dim=0).numpy().astype(np.float64) for a in self.logits]
        k = self.run.options.candidates
        ranked = dict(most_likely(log_probs, k))
        for arch in self.trace.argmaxes[-k:]:  # the last distinct most likely ones, at most k
            ranked.setdefault(arch, float(sum(lp[c] for lp, c in zip(log_probs, arch))))
        candidates = [{"indices": list(arch), "log_prob": lp,
                       "relaxed": dict(zip(self.tables.metrics, (self.scale * self.tables.table(arch)).tolist()))}
                      for arch, lp in sorted(ranked.items(), key=lambda item: -item[1])]
        blocks = self.net.positions
        probs = [np.exp(lp) for lp in log_probs]
        bit_probs = probs[blocks:] or [np.ones(1)] * blocks
        return {"batches": self.step, "stopped_by": self.stopped_by, "warmup_batches": min(self.step,
                                                                                           self.warmup_steps),
                "probabilities": [p.round(4).tolist() for p in probs],
                "expected": dict(zip(self.tables.metrics,
                                     (self.scale * self.tables.expected(probs[:blocks], bit_probs)).tolist())),
                "final_design": design_label(self.tables.design), "temperature": self.trace.temperature,
                "lambda": self.trace.lam, "designs": self.trace.designs, "candidates": candidates}


# --- candidates -----------------------------------------------------------------------------------
def recalibrate_batch_norm(model: nn.Module, images: torch.Tensor, batch: int) -> None:
    """Re-estimate every BatchNorm's running statistics of a derived network on ``images`` (SPOS's BN
    recalibration): in the supernet a block's statistics moved only while it was sampled, with other
    blocks around it, so the inherited ones do not describe the derived network."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
    was_training = model.training
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            model(images[start:start + batch])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def candidate_model(run: SpaceRun, indices: Sequence[int], data: Any) -> tuple[nn.Module, Plan]:
    """The derived network with the supernet's weights, its BatchNorm statistics recalibrated and its
    bit widths applied (activation integer bits calibrated), both on the first training images."""
    derived = run.supernet.derive(indices)
    images, _ = data.batch(np.arange(min(CALIBRATION_IMAGES, len(data))), torch.Generator().manual_seed(0))
    recalibrate_batch_norm(derived, images, run.settings.finetune.batch_size)
    plan = run.supernet.bit_plan(indices, base_model=run.settings.model)
    if not plan.choices:
        return derived, plan
    by_bits: dict[int, list[str]] = {}
    for name, bits in run.supernet.layer_bits(indices).items():
        by_bits.setdefault(bits, []).append(name)
    for bits, names in by_bits.items():
        for name, formats in activation_int_bits(derived, names, images, bits).items():
            plan = plan.with_choice(name, **formats)
    return apply_plan(plan, derived), plan


def evaluate_candidates(run: SpaceRun, state: dict[str, Any], evaluator: Evaluator | None, started: float
                        ) -> list[dict[str, Any]]:
    """Cost every candidate exactly on its own best design, then fine-tune and score the feasible
    ones in order within the budget; the scored ones, best first (state saved after each)."""
    s = run.settings
    candidates = state["record"]["candidates"]
    for c in candidates:
        if "feasible" not in c:
            cost = run.costs.best(c["indices"])
            c["exact"] = None if cost is None else dict(zip(run.costs.metrics, run.costs.values(cost).tolist()))
            c["design"] = None if cost is None else design_label(cost.design)
            c["feasible"] = cost is not None and s.spec.met(cost)
            relaxed, exact = c["relaxed"].get("latency_ms"), (c["exact"] or {}).get("latency_ms")
            c["relaxed_vs_exact_pct"] = None if not (relaxed and exact) else 100.0 * (relaxed / exact - 1.0)
    run.save_state(state)
    data = training_data(run)
    scorer = evaluator or default_evaluator(s, s.members[0], s.search_images, _finetune(s.finetune), selecting=True)
    deadline = started + s.minutes * 60 if s.minutes else math.inf
    scored = [c for c in candidates if "score" in c]
    tried = len(scored) + sum("failed" in c for c in candidates)
    networks = {network_key(run, c["indices"]): n for n, c in enumerate(candidates) if "score" in c or "failed" in c}
    for number, c in enumerate(candidates):
        if not c["feasible"] or "score" in c or "failed" in c or "same_as" in c:
            continue
        same = networks.setdefault(network_key(run, c["indices"]), number)
        if same != number:  # e.g. another bit width on a skip block: the same network, not trained twice
            c["same_as"] = same
            continue
        if (s.trials is not None and tried >= s.trials) or time.time() >= deadline:
            break
        tried += 1
        model, _ = candidate_model(run, c["indices"], data)
        found = trained(scorer, model)
        if isinstance(found, str):
            c["failed"] = found
            run.save_state(state)
            run.log(f"candidate {number}: {_arch_text(run, c['indices'])}: failed: {found}")
            continue
        c["score"] = found
        c["trained_in_this_run"] = True
        scored.append(c)
        if max(scored, key=lambda x: x["score"][s.metric]) is c:
            torch.save(model.state_dict(), run.folder / "best.pt")
        run.save_state(state)
        run.log(f"candidate {number}: {_arch_text(run, c['indices'])}: {c['exact']['latency_ms']:.6g} ms, "
                f"{s.metric} {c['score'][s.metric]:.2f} %")
    if not scored:
        feasible = sum(bool(c["feasible"]) for c in candidates)
        best = min((c["exact"]["latency_ms"] for c in candidates if c["exact"]), default=None)
        raise InfeasibleError(
            f"None of the {len(candidates)} derived architectures was scored: {feasible} met every spec"
            + (f" (lowest latency {best:.6g} ms)" if best is not None else "") + ".",
            "Train the supernet longer (--epochs) or with more weight on the hardware term (--strategy-option lam=...),"
            " raise --trials/--minutes, or relax the spec.", best_bound=best)
    return sorted(scored, key=lambda c: -c["score"][s.metric])


def network_key(run: SpaceRun, indices: Sequence[int]) -> str:
    """What makes two candidates the same network: their ops and the bit widths of the layers that
    have weights (a width chosen for a block without convs, a skip, changes nothing)."""
    ops, _ = split_indices(indices, run.supernet.positions)
    return json.dumps([ops, sorted(run.supernet.layer_bits(indices).items())])


def trained(evaluator: Evaluator, model: nn.Module) -> dict[str, float] | str:
    """The metrics of ``model`` after ``evaluator``'s fine-tune, or why it failed: a fine-tune that
    diverges, or one that leaves non-finite weights (their scores would mean nothing)."""
    try:
        metrics = checked_metrics(evaluator(model))
    except ModelError as exc:
        return exc.cause
    if not all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point()):
        return "its fine-tune left non-finite weights (diverged)"
    return metrics


def _finetune(finetune: Any) -> Any:
    """A fine-tune without a teacher (there is no unmodified model to distill from)."""
    return replace(finetune, distill=0.0)


# --- the result ------------------------------------------------------------------------------------
def zoo_cost(run: SpaceRun, indices: Sequence[int], plan: Plan, design: Any) -> NetworkCost:
    """The architecture re-costed through the zoo entry's own workload with its plan applied (not
    the supernet's trace): the independent check of the spec guarantee."""
    from nn2hw import zoo

    ops, _ = split_indices(indices, run.supernet.positions)
    work = zoo.workload(run.settings.model, run.costs.cost_dataset or run.settings.dataset,
                        **zoo_options(run.settings, run.options, ops))
    return run.costs.target.recost(apply_plan(plan, work) if plan.choices else work, design)


def finish(run: SpaceRun, state: dict[str, Any], ranked: list[dict[str, Any]], final_evaluator: Evaluator | None,
           started: float) -> SearchResult:
    """Re-check, final fine-tune and test the best scored candidate; the baseline; bundle and reports."""
    s = run.settings
    data = training_data(run)
    final = final_evaluator or default_evaluator(s, s.members[0], s.report_images, _finetune(s.final_finetune))
    notes: list[str] = []
    for c in ranked:
        model, plan = candidate_model(run, c["indices"], data)
        cost = run.costs.best(c["indices"])
        assert cost is not None  # it was costed feasible
        rechecked = zoo_cost(run, c["indices"], plan, cost.design)
        if not s.spec.met(rechecked):
            notes.append(f"Candidate {_arch_text(run, c['indices'])} met the spec on the supernet's trace and "
                         f"missed it re-costed from the zoo's {s.model} ({rechecked.latency_ms:.6g} ms): not returned.")
            continue
        if (run.folder / "best.pt").is_file() and c is ranked[0]:
            model.load_state_dict(torch.load(run.folder / "best.pt", map_location="cpu", weights_only=True))
        run.log(f"final fine-tune of the winner ({_arch_text(run, c['indices'])})")
        found = trained(final, model)
        if isinstance(found, str):
            notes.append(f"Candidate {_arch_text(run, c['indices'])} failed its final fine-tune ({found}): not "
                         "returned.")
            continue
        winner, cost, metrics = c, rechecked, found
        break
    else:
        raise InfeasibleError(f"No scored candidate passed the re-check and the final fine-tune: {' '.join(notes)}",
                              "Train the supernet longer (--epochs), or lower --finetune-lr.")
    solution = Solution({s.model: plan}, cost, metrics, {s.model: metrics},
                        trial=state["record"]["candidates"].index(winner))
    baseline = _baseline(run, data, final)
    out = s.out_dir
    from nn2hw.bundle import save_bundle

    ops, _ = split_indices(winner["indices"], run.supernet.positions)
    save_bundle(out, model, plan, cost.design, base_options=zoo_options(s, run.options, ops))
    record = _report_record(run, state)
    notes.append(record["note"])
    rows = _rows(run, winner["indices"], baseline.cost, cost)
    files = _write_reports(run, state, baseline, solution, rows, notes)
    trials = _counts(state)
    result = SearchResult(s.spec.to_dict(), baseline, solution, trials, out, files,
                          {**s.identity(), "trials": s.trials, "minutes": s.minutes,
                           "final_finetune": _finetune(s.final_finetune).key},
                          time.time() - started, tuple(notes), tuple(rows), _splits(s),
                          sections={"differentiable": record})
    (out / "report.json").write_text(json.dumps(result.to_dict(), indent=2, default=jsonable) + "\n")
    return result


def _baseline(run: SpaceRun, data: Any, final: Evaluator) -> Solution:
    """The space's reference architecture on its own best design, trained as the winner was."""
    s = run.settings
    indices = reference_indices(s, run.supernet)
    cost = run.costs.best(indices)
    if cost is None:
        raise InfeasibleError(f"The reference {s.model} architecture runs on no design of {s.hardware}.",
                              "Use a larger device.")
    run.log(f"final fine-tune of the reference architecture ({_arch_text(run, indices)}), the baseline")
    model, plan = candidate_model(run, indices, data)
    found = trained(final, model)
    if isinstance(found, str):
        raise ModelError(f"The reference {s.model} architecture (the baseline) failed its final fine-tune: {found}.",
                         "Lower --finetune-lr, or train the supernet longer (--epochs).")
    return Solution({s.model: plan}, cost, found, {s.model: found})


def _counts(state: Mapping[str, Any]) -> dict[str, int]:
    candidates = state["record"]["candidates"]
    scored = [c for c in candidates if "score" in c]
    feasible = [c for c in candidates if c.get("feasible")]
    return {"total": len(candidates), "complete": len(scored), "feasible": len(feasible),
            "trained": sum(bool(c.get("trained_in_this_run")) for c in scored),
            "reused": sum(not c.get("trained_in_this_run") for c in scored),
            "infeasible": len(candidates) - len(feasible), "failed": sum("failed" in c for c in candidates),
            "pruned": 0}


def _splits(s: SearchSettings) -> dict[str, Any]:
    return {"candidates": f"{s.dataset} {s.selection_split}" + (f" (first {s.search_images})" if s.search_images
                                                                 else ""),
            "fine_tune": f"{s.dataset} {s.train_split}", "report": s.report_split(s.dataset, s.split),
            "selected_on_test": s.selection_split == s.split}


def _report_record(run: SpaceRun, state: Mapping[str, Any]) -> dict[str, Any]:
    """The training record with each candidate's relaxed vs exact gap; written to differentiable.json."""
    record = dict(state["record"])
    gaps = [abs(c["relaxed_vs_exact_pct"]) for c in record["candidates"] if c.get("relaxed_vs_exact_pct") is not None]
    mean = sum(gaps) / len(gaps) if gaps else None
    record["gap"] = {"candidates_costed": len(gaps), "mean_abs_pct": mean, "max_abs_pct": max(gaps) if gaps else None}
    gap = f"mean |gap| {mean:.2f} %, max {max(gaps):.2f} % over {len(gaps)}" if gaps else "no candidate costed"
    record["note"] = (f"Differentiable ({run.settings.space_kind} space, from scratch): {len(record['candidates'])} "
                      f"candidates derived from a supernet trained for {record['batches']} batches "
                      f"({record['seconds']:.0f} s, seed {record['seed']}); latency from the block tables "
                      f"(rescaled) vs exact on each candidate's own best design: {gap} ({REPORT_FILE}).")
    out = run.settings.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILE).write_text(json.dumps(jsonable(record), indent=1) + "\n")
    return record


def _rows(run: SpaceRun, indices: Sequence[int], base: NetworkCost, solution: NetworkCost) -> list[LayerRow]:
    """Per layer of the solution: its bottleneck, the op of its block and its bit width, and its latency
    next to the same-named layer of the reference architecture (0 where that has none)."""
    labels = op_labels(run.settings.space_kind)
    ops, _ = split_indices(indices, run.supernet.positions)
    owner = {name: p for p, names in enumerate(run.supernet.position_layers(indices)[:run.supernet.positions])
             for name in names}
    bits = run.supernet.layer_bits(indices)
    before = {layer.name: layer.latency_ms for layer in base.layers}
    rows = []
    for layer in solution.layers:
        p = owner.get(layer.name)
        technique = "fixed" if p is None else f"block {p}: {labels[ops[p]]}"
        rows.append(LayerRow(layer.name, layer.bottleneck, technique,
                             f"{bits[layer.name]}-bit" if layer.name in bits else "-",
                             before.get(layer.name, 0.0), layer.latency_ms))
    return rows


def _outcome(candidate: Mapping[str, Any]) -> str:
    """What became of a candidate, in a few words."""
    if "score" in candidate:
        return "scored"
    if "failed" in candidate:
        return f"failed: {candidate['failed']}"
    if "same_as" in candidate:
        return f"the same network as candidate {candidate['same_as']}"
    return "missed a spec" if not candidate["feasible"] else "not scored (budget)"


def _write_reports(run: SpaceRun, state: Mapping[str, Any], baseline: Solution, solution: Solution,
                   rows: Sequence[LayerRow], notes: Sequence[str]) -> dict[str, str]:
    """candidates.csv, layers.csv, pareto.csv/png and summary.html."""
    s, out = run.settings, run.settings.out_dir
    candidates = state["record"]["candidates"]
    path = out / "candidates.csv"
    columns = ["candidate", "architecture", "log_prob", "relaxed_latency_ms", "latency_ms", "energy_mj",
               "relaxed_vs_exact_pct", "feasible", s.metric, "outcome", "design", "indices"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for number, c in enumerate(candidates):
            writer.writerow({"candidate": number, "architecture": _arch_text(run, c["indices"]),
                             "log_prob": c["log_prob"], "relaxed_latency_ms": c["relaxed"].get("latency_ms"),
                             "latency_ms": (c["exact"] or {}).get("latency_ms"),
                             "energy_mj": (c["exact"] or {}).get("energy_mj"),
                             "relaxed_vs_exact_pct": c.get("relaxed_vs_exact_pct"), "feasible": c["feasible"],
                             s.metric: (c.get("score") or {}).get(s.metric), "outcome": _outcome(c),
                             "design": c.get("design"),
                             "indices": " ".join(str(i) for i in c["indices"])})
    points = [ParetoPoint(n, c["exact"]["latency_ms"], c["score"][s.metric], bool(c["feasible"]))
              for n, c in enumerate(candidates) if c.get("score") and c.get("exact")]
    png = plot_pareto(out / "pareto.png", points, s.spec.latency_ms,
                      (baseline.cost.latency_ms, baseline.metrics[s.metric]),
                      (solution.cost.latency_ms, solution.metrics[s.metric]),
                      f"{s.space_kind} space on {s.hardware}: {s.metric} vs latency ({len(points)} trained candidates)")
    facts = {"space": f"{s.space_kind} ({s.dataset}; costed on {run.costs.cost_dataset or s.dataset} shapes)",
             "hardware": f"{s.hardware} ({baseline.cost.clock_mhz:g} MHz)",
             "spec": ", ".join(f"{k} <= {v:g}" for k, v in s.spec.limits.items()),
             "reference (baseline) latency (ms)": baseline.cost.latency_ms,
             "solution latency (ms)": solution.cost.latency_ms,
             f"reference {s.metric} (%)": baseline.metrics[s.metric],
             f"solution {s.metric} (%)": solution.metrics[s.metric],
             "solution architecture": _arch_text(run, state["record"]["candidates"][solution.trial or 0]["indices"]),
             "solution design": design_label(solution.cost.design)}
    files = {"bundle": str(out), "candidates": str(path),
             "layers": str(write_layers_csv(out / "layers.csv", list(rows))),
             "pareto_csv": str(write_pareto_csv(out / "pareto.csv", points)), "pareto_png": str(png),
             "differentiable": str(out / REPORT_FILE)}
    files["summary"] = str(write_html(out / "summary.html", f"nn2hw search: {s.space_kind} space", facts, rows, png,
                                      [*notes, *solution.cost.notes]))
    return files

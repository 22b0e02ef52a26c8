"""Result bundles: a folder that rebuilds a compressed, fine-tuned model exactly, never a pickled module.

Layout::

    plan.json       the Plan (base model id, dataset, per-layer choices, hardware config)
    weights.pt      the transformed model's state_dict (torch.save of tensors only)
    hardware.json   the hardware config, when there is one
    bundle.json     base model, dataset, plan key, nn2hw and torch versions, sha256 of weights.pt,
                    and the base model's zoo build options when it has any (``base_options``)

A search with latency levels writes a family (``family.json``: one variant per level, each with
its bundle folder, latency and accuracy); ``load_family(folder).select(budget_ms)`` picks the most
accurate variant that meets a latency budget (RT3-style run-time reconfiguration). When the
variants were trained jointly, ``family/shared-weights.pt`` holds the one set of weights they are
slices of and each variant's slices (``BundleFamily.shared_parameters``).

``load_bundle`` builds the base architecture (``nn2hw.zoo.build(..., pretrained=False,
**base_options)``, e.g. a searched ``fbnet`` architecture and width, or a ``builder`` of yours),
applies the plan to get the same structure (cut channels, expanded kernels, mask and quantizer
parametrizations, activation quantizers), then loads the weights strictly: the outputs are
bit-identical to the saved model's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nn2hw import __version__
from nn2hw._json import jsonable, thaw
from nn2hw.errors import CheckpointError, ConfigError, InfeasibleError, PlanError, UnknownNameError
from nn2hw.plan import Plan

if TYPE_CHECKING:
    import torch
    from torch import nn

BUNDLE_FORMAT = "nn2hw-bundle"
BUNDLE_VERSION = 1
PLAN_FILE, WEIGHTS_FILE, HARDWARE_FILE, BUNDLE_FILE = "plan.json", "weights.pt", "hardware.json", "bundle.json"

Builder = Callable[[str, "str | None"], "nn.Module"]
"""Builds an untrained base model from (base model id, dataset); the zoo's ``build`` by default."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hardware_dict(hardware: Any) -> dict[str, Any]:
    """A JSON-able dict from a mapping, a dataclass (e.g. a template's design) or an object with to_dict()."""
    if dataclasses.is_dataclass(hardware) and not isinstance(hardware, type):
        hardware = dataclasses.asdict(hardware)
    elif hasattr(hardware, "to_dict"):
        hardware = hardware.to_dict()
    if not isinstance(hardware, Mapping):
        raise CheckpointError(f"The hardware config is a {type(hardware).__name__}, not a mapping.",
                              "Pass a dict, a dataclass or an object with to_dict().")
    try:  # nested mappings may be read-only views (a Plan's hardware is frozen): thaw them first
        return json.loads(json.dumps(thaw(hardware), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"The hardware config is not JSON-serializable: {exc}.",
                              "Use only strings, numbers, booleans, lists and dicts in it.") from None


def _base_options(options: Any) -> dict[str, Any]:
    """``options`` (zoo build options, e.g. ``{"arch": [...], "width_mult": 0.25}``) as plain JSON
    data (tuples become lists, NumPy scalars numbers); a ``CheckpointError`` for anything else."""
    if options is None:
        return {}
    if not isinstance(options, Mapping) or not all(isinstance(key, str) for key in options):
        raise CheckpointError(f"The base model's options must be a mapping of option names to values, got {options!r}.",
                              "Pass base_options as a dict of zoo build options, e.g. {'arch': [...], "
                              "'width_mult': 0.25}.")
    try:
        return json.loads(json.dumps(jsonable(thaw(options)), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"The base model's options {sorted(options)} are not JSON-serializable ({exc}), so "
                              "bundle.json could not record them.",
                              "Give them as strings, numbers, booleans, lists and dicts (e.g. arch as a list of "
                              "ints).") from None


def _described(plan: Plan, options: Mapping[str, Any]) -> str:
    """The base model and its build options, for messages."""
    given = ", ".join(f"{key}={value!r}" for key, value in options.items())
    return f"{plan.base_model!r}" + (f" ({given})" if given else "")


def _structure(plan: Plan, builder: Builder | None, options: Mapping[str, Any]) -> nn.Module:
    """The base architecture (the zoo's, built with ``options``) with the plan applied: the
    transformed model's structure (traced on the plan's input shape, or for a zoo model without
    one, the zoo variant's)."""
    from nn2hw.compress import apply_plan

    example = None
    if builder is None:
        from nn2hw import zoo

        try:
            base = zoo.build(plan.base_model, plan.dataset, pretrained=False, **options)
        except UnknownNameError as exc:
            raise UnknownNameError(f"The bundle's base model is not in the zoo: {exc.cause}",
                                   f"{exc.fix} For a model outside the zoo, pass builder=... to save_bundle "
                                   f"and load_bundle.") from None
        except ConfigError as exc:
            raise CheckpointError(f"The base model {_described(plan, options)} cannot be built: {exc.cause}",
                                  exc.fix) from None
        if not plan.input_shape:
            example = (1, *zoo.entry(plan.base_model).variant(plan.dataset).input_shape)
    elif options:
        raise CheckpointError(f"Base options {sorted(options)} are zoo build options, but a builder builds "
                              f"{plan.base_model!r} here.",
                              "Build the model in your builder (drop base_options), or drop the builder to rebuild "
                              "it from the zoo.")
    else:
        base = builder(plan.base_model, plan.dataset)
    try:
        return apply_plan(plan, base, example)
    except PlanError as exc:
        if builder is not None:
            raise
        raise PlanError(f"Plan {plan.key} does not apply to {_described(plan, options)}: {exc.cause}",
                        f"{exc.fix} A base model built with zoo options (e.g. a searched fbnet architecture) needs "
                        "the same base_options.") from None


def _mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    """'' when both state dicts have the same keys and shapes; else the named differences."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(k for k in set(expected) & set(found) if tuple(expected[k].shape) != tuple(found[k].shape))
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected)):
        if keys:
            parts.append(f"{label} {keys[:5]}{' ...' if len(keys) > 5 else ''} ({len(keys)})")
    if shapes:
        parts.append("shape mismatches " + ", ".join(
            f"{k}: {tuple(found[k].shape)} vs {tuple(expected[k].shape)} expected" for k in shapes[:5]))
    return "; ".join(parts)


def save_bundle(folder: str | Path, model: nn.Module, plan: Plan, hardware: Any = None, *,
                builder: Builder | None = None, base_options: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (already transformed by ``plan``) as a result bundle in ``folder``.

    ``hardware`` defaults to ``plan.hardware``. ``base_options`` are the zoo build options the
    base model was made with (``zoo.build(plan.base_model, plan.dataset, **base_options)``, e.g. a
    searched ``fbnet``'s ``arch`` and ``width_mult``); bundle.json records them and
    ``load_bundle`` rebuilds with them. The plan is first re-applied to a fresh base model and the
    state_dict keys and shapes compared, so a bundle that could not be reloaded is never written.
    """
    import torch

    folder = Path(folder)
    options = _base_options(base_options)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    problem = _mismatch(_structure(plan, builder, options).state_dict(), state)
    if problem:
        raise CheckpointError(f"The model does not have the structure plan {plan.key} gives "
                              f"{_described(plan, options)}: {problem}.",
                              "Save the model that apply_plan(plan, base model) returned (then trained), with the "
                              "base_options the base model was built with.")
    hardware = plan.to_dict()["hardware"] if hardware is None else hardware
    folder.mkdir(parents=True, exist_ok=True)
    plan.save(folder / PLAN_FILE)
    torch.save(state, folder / WEIGHTS_FILE)
    if hardware is not None:
        (folder / HARDWARE_FILE).write_text(json.dumps(_hardware_dict(hardware), indent=1, sort_keys=True) + "\n")
    elif (folder / HARDWARE_FILE).exists():
        (folder / HARDWARE_FILE).unlink()
    record = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "base_model": plan.base_model,
              "dataset": plan.dataset, "plan_key": plan.key, "nn2hw_version": __version__,
              "torch_version": torch.__version__, "weights_sha256": _sha256(folder / WEIGHTS_FILE),
              **({"base_options": options} if options else {})}
    (folder / BUNDLE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return folder


def _record(folder: Path) -> dict[str, Any]:
    """The bundle's ``bundle.json``, checked to be one."""
    try:
        record = json.loads((folder / BUNDLE_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder / BUNDLE_FILE} is not valid JSON ({exc.msg}).",
                              "Restore the bundle.json written by save_bundle.") from None
    if not isinstance(record, dict) or record.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"{folder / BUNDLE_FILE} is not an nn2hw bundle record.",
                              "Give the folder written by save_bundle.")
    return record


def _recorded_options(folder: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return _base_options(record.get("base_options"))
    except CheckpointError as exc:
        raise CheckpointError(f"{folder / BUNDLE_FILE}: {exc.cause}", "Restore the bundle.json written by "
                              "save_bundle.") from None


def bundle_options(folder: str | Path) -> dict[str, Any]:
    """The zoo build options a bundle's base model was made with (empty for a plain zoo model), e.g.
    to describe its workload: ``zoo.workload(plan.base_model, plan.dataset, **options)``."""
    folder = Path(folder)
    if not (folder / BUNDLE_FILE).is_file():
        raise CheckpointError(f"{folder} has no {BUNDLE_FILE}.", "Give the folder written by save_bundle.")
    return _recorded_options(folder, _record(folder))


def load_bundle(folder: str | Path, *, builder: Builder | None = None) -> tuple[nn.Module, Plan, dict | None]:
    """Rebuild a bundle's model exactly: (model in eval mode, plan, hardware config or None)."""
    import torch

    folder = Path(folder)
    missing = [name for name in (BUNDLE_FILE, PLAN_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a complete nn2hw bundle: {', '.join(missing)} missing.",
                              "Give the folder written by save_bundle, with all its files.")
    record = _record(folder)
    found = _sha256(folder / WEIGHTS_FILE)
    if found != record.get("weights_sha256"):
        raise CheckpointError(f"{folder / WEIGHTS_FILE} fails its checksum: sha256 {found[:16]}..., bundle.json "
                              f"records {str(record.get('weights_sha256'))[:16]}....",
                              "The weights were changed or truncated: copy the bundle again from its source.")
    plan = Plan.load(folder / PLAN_FILE)
    if plan.key != record.get("plan_key"):
        raise CheckpointError(f"{folder / PLAN_FILE} (key {plan.key}) is not the plan the weights were saved with "
                              f"(key {record.get('plan_key')}).",
                              "Restore the bundle's plan.json; to change the plan, apply it and save a new bundle.")
    options = _recorded_options(folder, record)
    model = _structure(plan, builder, options)
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    problem = _mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointError(f"{folder / WEIGHTS_FILE} does not fit plan {plan.key} on {_described(plan, options)}: "
                              f"{problem}.", "Save the bundle again from the trained model with save_bundle.")
    model.load_state_dict(state, strict=True)
    hardware_path = folder / HARDWARE_FILE
    hardware = json.loads(hardware_path.read_text()) if hardware_path.is_file() else None
    return model.eval(), plan, hardware


# --- families: RT3-style variants for run-time reconfiguration -------------------------------------
FAMILY_FORMAT = "nn2hw-family"
FAMILY_VERSION = 1
FAMILY_FILE = "family.json"


@dataclass(frozen=True)
class FamilyVariant:
    """One variant of a family: the network returned for latency level ``level_ms``, its latency
    (measured median on a measured template; ``latency_iqr_ms`` its spread), its metrics on the
    report split (percent), its bundle folder (relative to the family's folder), and what it
    shares: ``shares_weights_with`` names the level whose bundle (the same plan and weights) it
    uses, ``nested_in`` the tighter level whose plan holds every change of this one."""

    level_ms: float
    latency_ms: float
    metrics: Mapping[str, float]
    bundle: str
    plan_key: str
    changed_layers: int
    shares_weights_with: float | None = None
    nested_in: float | None = None
    latency_iqr_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "metrics": dict(self.metrics)}


@dataclass(frozen=True)
class BundleFamily:
    """A family of bundles, one variant per latency level (``nn2hw search --latency-levels-ms``), and
    the selector a device runs when its latency budget changes (e.g. with its DVFS state)."""

    folder: Path
    metric: str
    variants: tuple[FamilyVariant, ...]
    missing: tuple[Mapping[str, Any], ...] = ()
    """Levels no candidate met: ``{"level_ms": ..., "reason": ...}``."""
    weights: str = ""
    """What the variants share, in words."""
    shared_weights: str | None = None
    """The file (relative to ``folder``) with the one set of weights the variants were trained as
    slices of, and each variant's slices (``save_shared``); None when each has its own weights."""

    def select(self, latency_budget_ms: float) -> FamilyVariant:
        """The most accurate variant (by ``metric``; then the faster) whose latency meets the budget;
        an ``InfeasibleError`` naming the fastest variant when the budget is below every one."""
        budget = _positive_ms(latency_budget_ms)
        meeting = [v for v in self.variants if v.latency_ms <= budget]
        if not meeting:
            fastest = min(self.variants, key=lambda v: v.latency_ms)
            raise InfeasibleError(
                f"The latency budget {budget:g} ms is below every variant of the family in {self.folder}: the fastest "
                f"is level {fastest.level_ms:g} ms, which runs in {fastest.latency_ms:.4g} ms.",
                f"Give a budget of at least {fastest.latency_ms:.4g} ms, or search a family with a tighter level.",
                best_bound=fastest.latency_ms)
        return max(meeting, key=lambda v: (v.metrics.get(self.metric, float("-inf")), -v.latency_ms))

    def path(self, variant: FamilyVariant) -> Path:
        """The variant's bundle folder."""
        return self.folder / variant.bundle

    def load(self, variant: FamilyVariant, *, builder: Builder | None = None) -> tuple[nn.Module, Plan, dict | None]:
        """The variant's model, exactly (``load_bundle``)."""
        return load_bundle(self.path(variant), builder=builder)

    def shared_parameters(self, variant: FamilyVariant) -> dict[str, torch.Tensor]:
        """``variant``'s parameters computed from the family's one set of weights (its slices of
        it): what a device holding that one set runs when it switches to this level. Equal to the
        parameters of the variant's bundle; batch-norm statistics are not among them (each variant
        keeps its own, in its bundle)."""
        import torch

        from nn2hw.compress._torch import step_of

        if self.shared_weights is None:
            raise CheckpointError(f"The family in {self.folder} was not trained as one set of weights: each variant "
                                  "has its own (see its 'weights' note).", "Load each variant's bundle (load).")
        path = self.folder / self.shared_weights
        owner = variant.shares_weights_with if variant.shares_weights_with is not None else variant.level_ms
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
            state, slices = record["state"], record["slices"][_level_key(owner)]
            found = {}
            for name, (base, steps) in slices.items():
                value = state[base]
                for step in steps:
                    value = step_of(step)(value)
                found[name] = value
        except (OSError, EOFError, RuntimeError, ValueError, KeyError, TypeError, IndexError,
                pickle.UnpicklingError) as exc:  # torch.load's and a damaged record's failures
            raise CheckpointError(f"{path} is not the family's shared weights for level {owner:g} ms "
                                  f"({type(exc).__name__}: {exc}).",
                                  "Restore the family/ folder the search wrote.") from None
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"format": FAMILY_FORMAT, "version": FAMILY_VERSION, "metric": self.metric,
                "levels_ms": sorted([v.level_ms for v in self.variants] + [m["level_ms"] for m in self.missing]),
                "variants": [v.to_dict() for v in self.variants], "missing": [dict(m) for m in self.missing],
                "weights": self.weights, "shared_weights": self.shared_weights}


def _level_key(level_ms: float) -> str:
    return repr(float(level_ms))


def save_shared(path: Path, state: Mapping[str, Any], slices_by_level: Mapping[float, Mapping[str, Any]]) -> Path:
    """Write a family's one set of weights (``state``, by the base model's parameter names) and, per
    level with a network of its own, its parameters' slices of it (``{name: (base name, steps)}``,
    ``nn2hw.compress._joint.JointNetworks.steps_of``): tensors, strings and numbers only."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": dict(state), "slices": {_level_key(k): dict(v) for k, v in slices_by_level.items()}}, path)
    return path


def _positive_ms(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"A latency budget must be a positive number of milliseconds, got {value!r}.",
                          "Give e.g. select(0.25) (--latency-ms 0.25).")
    return float(value)


def save_family(family: BundleFamily) -> Path:
    """Write ``family.json`` into the family's folder (its variants' bundles are already there);
    returns its path."""
    for v in family.variants:
        if not (family.path(v) / BUNDLE_FILE).is_file():
            raise CheckpointError(f"The bundle of level {v.level_ms:g} ms is not in {family.path(v)}.",
                                  "Save each variant's bundle (save_bundle) before the family.")
    path = family.folder / FAMILY_FILE
    path.write_text(json.dumps(family.to_dict(), indent=1, sort_keys=True) + "\n")
    return path


def load_family(folder: str | Path) -> BundleFamily:
    """The family written by a search with latency levels (``folder``: its output folder)."""
    folder = Path(folder)
    path = folder / FAMILY_FILE
    if not path.is_file():
        single = " It holds a single bundle (a search without --latency-levels-ms)." \
            if (folder / BUNDLE_FILE).is_file() else ""
        raise CheckpointError(f"{folder} has no {FAMILY_FILE}: it is not a family of variants.{single}",
                              "Give the output folder of `nn2hw search --latency-levels-ms ...`.")
    try:
        record = json.loads(path.read_text())
        if record.get("format") != FAMILY_FORMAT:
            raise ValueError("format")
        variants = tuple(FamilyVariant(**v) for v in record["variants"])
        family = BundleFamily(folder, str(record["metric"]), variants, tuple(record.get("missing", ())),
                              str(record.get("weights", "")), record.get("shared_weights"))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not an nn2hw family record ({type(exc).__name__}: {exc}).",
                              "Restore the family.json the search wrote.") from None
    if not variants:
        raise CheckpointError(f"{path} lists no variant.", "Restore the family.json the search wrote.")
    if family.shared_weights is not None and not (folder / family.shared_weights).is_file():
        raise CheckpointError(f"The family's shared weights ({folder / family.shared_weights}) are missing.",
                              "Copy the family's whole output folder, with its family/ subfolder.")
    for v in variants:
        if not (family.path(v) / BUNDLE_FILE).is_file():
            raise CheckpointError(f"The bundle of level {v.level_ms:g} ms ({family.path(v)}) is missing.",
                                  "Copy the family's whole output folder, with its family/ subfolder.")
    return family

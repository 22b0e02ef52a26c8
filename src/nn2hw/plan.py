"""The ``Plan``: every per-layer compression choice for one base model, plus its hardware config.

A plan is data, separate from any model: frozen, hashable, JSON-serializable. It names its base
model (a zoo id) and dataset, maps layer names (module paths, as in the workload) to
``LayerChoice`` records, and may carry a hardware config that the search fills in.

- ``plan.apply(workload)`` rewrites the workload with no torch (cost models read the result);
- ``plan.apply(model)`` rewrites a deep copy of a torch model the same way;
- ``plan.validate(workload)`` raises one ``PlanError`` listing every problem;
- ``plan.key`` is a stable content hash (dict order and metadata do not matter) for caches.

The transforms themselves live in ``nn2hw.compress`` (one registry entry each).
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from nn2hw import __version__
from nn2hw.compress import ordered_transforms
from nn2hw.compress.base import Problem
from nn2hw.compress.kernel_pattern import DEFAULT_PATN, has_library, top_patterns
from nn2hw.compress.quantize import MAX_FRAC_BITS, activation_int_bits
from nn2hw.errors import PlanError
from nn2hw.registry import suggest
from nn2hw.workload import OpKind, Workload

if TYPE_CHECKING:
    from torch import nn

PLAN_FORMAT = "nn2hw-plan"
PLAN_VERSION = 1
MAX_BITS = 32
_FUNCTIONAL_COMPUTE_OPS = frozenset({"conv1d", "conv2d", "linear"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LayerChoice:
    """What the plan does to one conv/linear layer; unset fields leave it alone.

    - ``out_channels``: channel cut to this many output filters (``channel_cut``);
    - ``expand``: kernel K -> K + 2*expand, padding + expand (``kernel_expand``);
    - ``patterns``: the layer's PATn pattern ids in the library of its (expanded) kernel size,
      with ``pattern_zeros`` zeros (default per size) and ``pattern_keep_last`` (HotNAS's 3x3 z=2
      quirk; default as HotNAS coded it) (``kernel_pattern``);
    - ``weight_bits`` / ``weight_int_bits``: fixed-point weights (int bits chosen from the weight
      range when unset); ``act_bits`` / ``act_int_bits``: the layer's input and output activations
      (``quantize``).
    """

    out_channels: int | None = None
    expand: int = 0
    patterns: tuple[int, ...] = ()
    pattern_zeros: int | None = None
    pattern_keep_last: bool | None = None
    weight_bits: int | None = None
    weight_int_bits: int | None = None
    act_bits: int | None = None
    act_int_bits: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.patterns, (list, tuple)):
            object.__setattr__(self, "patterns", tuple(self.patterns))
        problems = self._problems()
        if problems:
            raise PlanError(" ".join(c for c, _ in problems), " ".join(dict.fromkeys(f for _, f in problems)))

    def _problems(self) -> list[Problem]:
        found: list[Problem] = []

        def need_int(name: str, value: Any, low: int, high: int | None, fix: str) -> bool:
            if value is None:
                return True
            if not _is_int(value) or value < low or (high is not None and value > high):
                span = f"{low}..{high}" if high is not None else f">= {low}"
                found.append((f"{name}={value!r} is not an integer in {span}.", fix))
                return False
            return True

        if self.out_channels == 0:
            found.append(("out_channels=0 would leave the layer with zero channels.",
                          "Keep at least 1 output channel (or leave out_channels unset to keep them all)."))
        else:
            need_int("out_channels", self.out_channels, 1, None, "Keep at least 1 output channel.")
        if self.expand is None:
            found.append(("expand=None is not an integer.", "Use expand=0 (no expansion) or 1 (K -> K+2)."))
        need_int("expand", self.expand, 0, None, "Use expand=0 (no expansion) or 1 (K -> K+2).")
        if not isinstance(self.patterns, tuple) or not all(_is_int(i) and i >= 0 for i in self.patterns):
            found.append((f"patterns={self.patterns!r} is not a list of pattern ids (integers >= 0).",
                          "Give pattern ids from the library of the layer's kernel size."))
        elif len(set(self.patterns)) != len(self.patterns):
            found.append((f"patterns={list(self.patterns)} repeats an id.", "List each pattern id once."))
        need_int("pattern_zeros", self.pattern_zeros, 1, None, "Zero at least one position per kernel.")
        if self.pattern_keep_last is not None and not isinstance(self.pattern_keep_last, bool):
            found.append((f"pattern_keep_last={self.pattern_keep_last!r} is not true/false.",
                          "Use true, false or leave it unset."))
        if not self.patterns and (self.pattern_zeros is not None or self.pattern_keep_last is not None):
            found.append(("pattern_zeros/pattern_keep_last are set without patterns.", "Give the pattern ids too."))
        for kind in ("weight", "act"):
            bits, int_bits = getattr(self, f"{kind}_bits"), getattr(self, f"{kind}_int_bits")
            ok = need_int(f"{kind}_bits", bits, 1, MAX_BITS, f"Use 1..{MAX_BITS} bits.")
            if int_bits is not None and bits is None:
                found.append((f"{kind}_int_bits is set without {kind}_bits.", f"Give {kind}_bits (the total) too."))
            elif ok and bits is not None:
                need_int(f"{kind}_int_bits", int_bits, bits - MAX_FRAC_BITS, bits,
                         f"Integer bits lie between {bits - MAX_FRAC_BITS} and {bits} for {bits}-bit values "
                         f"(at most {MAX_FRAC_BITS} fraction bits), or leave them unset to choose automatically.")
        return found

    @property
    def is_empty(self) -> bool:
        return self == LayerChoice()

    @property
    def transforms(self) -> tuple[str, ...]:
        """Names of the registered transforms this choice asks for, in application order."""
        return tuple(t.name for t in ordered_transforms() if t.selects(self))

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults (patterns as a list)."""
        default = LayerChoice()
        return {f.name: list(v) if isinstance(v, tuple) else v
                for f in fields(self) if (v := getattr(self, f.name)) != getattr(default, f.name)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], layer: str = "?") -> LayerChoice:
        if not isinstance(data, Mapping):
            raise PlanError(f"The choice for layer {layer!r} is {data!r}, not an object of fields.",
                            f"Write it as {{\"weight_bits\": 8, ...}} with fields {_CHOICE_FIELDS}.")
        unknown = sorted(set(data) - set(_CHOICE_FIELDS))
        if unknown:
            close = "".join(suggest(u, list(_CHOICE_FIELDS)) for u in unknown)
            raise PlanError(f"The choice for layer {layer!r} has unknown fields {unknown}.{close}",
                            f"Use only: {', '.join(_CHOICE_FIELDS)}.")
        try:
            return cls(**data)
        except PlanError as exc:
            raise PlanError(f"Layer {layer!r}: {exc.cause}", exc.fix) from None


_CHOICE_FIELDS = tuple(f.name for f in fields(LayerChoice))


def _freeze(value: Any) -> Any:
    """A read-only deep copy of JSON data (dicts -> mapping proxies, lists -> tuples)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Plain JSON data (dicts and lists) from ``_freeze``'s output."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _json_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanError(f"The plan's {what} is a {type(value).__name__}, not a mapping.",
                        f"Give the {what} as a dict of JSON values.")
    try:
        return json.loads(json.dumps(_thaw(value), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise PlanError(f"The plan's {what} is not JSON-serializable: {exc}.",
                        f"Use only strings, numbers, booleans, lists and dicts in the {what}.") from None


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class Plan:
    """Per-layer compression choices for ``base_model`` (a zoo id) on ``dataset``, + hardware config.

    ``input_shape`` (batch included, as ``Workload.input_shape``) lets ``apply(model)`` trace a
    model that is not in the zoo; ``metadata`` records the nn2hw version (not part of ``key``).
    """

    base_model: str
    dataset: str | None = None
    choices: Mapping[str, LayerChoice] = field(default_factory=dict)
    hardware: Mapping[str, Any] | None = None
    input_shape: tuple[int, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.base_model, str) or not self.base_model.strip():
            raise PlanError(f"A plan needs a base model id, got {self.base_model!r}.",
                            "Name the zoo model the plan applies to, e.g. 'resnet20'.")
        if self.dataset is not None and not isinstance(self.dataset, str):
            raise PlanError(f"The plan's dataset must be a name, got {self.dataset!r}.", "Use e.g. 'cifar10'.")
        if not isinstance(self.choices, Mapping):
            raise PlanError(f"The plan's choices must map layer names to choices, got {type(self.choices).__name__}.",
                            "Pass a dict {layer name: LayerChoice}.")
        choices = {}
        for name in sorted(self.choices):
            choice = self.choices[name]
            if not isinstance(name, str):
                raise PlanError(f"Layer names are strings, got {name!r}.", "Use the workload's layer names.")
            choice = choice if isinstance(choice, LayerChoice) else LayerChoice.from_dict(choice, name)
            if not choice.is_empty:
                choices[name] = choice
        object.__setattr__(self, "choices", MappingProxyType(choices))
        hardware = None if self.hardware is None else _freeze(_json_mapping(self.hardware, "hardware config"))
        object.__setattr__(self, "hardware", hardware)
        shape = tuple(self.input_shape)
        if not all(_is_int(s) and s > 0 for s in shape):
            raise PlanError(f"The plan's input_shape {self.input_shape!r} is not a tuple of positive integers.",
                            "Give the full input shape, batch included, e.g. (1, 3, 32, 32).")
        object.__setattr__(self, "input_shape", shape)
        metadata = {"nn2hw_version": __version__, **_json_mapping(self.metadata, "metadata")}
        object.__setattr__(self, "metadata", _freeze(metadata))

    # --- identity ---------------------------------------------------------------------------
    def _content(self, hardware: bool = True) -> dict[str, Any]:
        content = {"base_model": self.base_model, "dataset": self.dataset,
                   "layers": {n: c.to_dict() for n, c in self.choices.items()}}
        if hardware:
            content["hardware"] = _thaw(self.hardware)
        return content

    @property
    def key(self) -> str:
        """Stable hash of base model, dataset, choices and hardware (not metadata or input shape)."""
        return _digest(self._content())

    @property
    def network_key(self) -> str:
        """Stable hash of what decides the trained network (base model, dataset, choices): for accuracy caches."""
        return _digest(self._content(hardware=False))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.key)

    # --- serialization ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "version": PLAN_VERSION, **self._content(),
                "input_shape": list(self.input_shape), "metadata": _thaw(self.metadata)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        if not isinstance(data, Mapping) or data.get("format") != PLAN_FORMAT:
            raise PlanError(f"This is not an nn2hw plan (no \"format\": \"{PLAN_FORMAT}\").",
                            "Load a file written by Plan.save / plan.to_json().")
        if not _is_int(data.get("version")) or data["version"] > PLAN_VERSION:
            raise PlanError(f"The plan has format version {data.get('version')!r}; this nn2hw reads up to "
                            f"{PLAN_VERSION}.", "Upgrade nn2hw, or write the plan with this version.")
        allowed = {"format", "version", "base_model", "dataset", "layers", "hardware", "input_shape", "metadata"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PlanError(f"The plan has unknown fields {unknown}.", f"Use only: {', '.join(sorted(allowed))}.")
        layers = data.get("layers", {})
        if not isinstance(layers, Mapping):
            raise PlanError("The plan's \"layers\" is not an object.", "Map layer names to choice objects.")
        return cls(base_model=data.get("base_model"), dataset=data.get("dataset"),
                   choices={n: LayerChoice.from_dict(c, n) for n, c in layers.items()},
                   hardware=data.get("hardware"), input_shape=tuple(data.get("input_shape", ())),
                   metadata=data.get("metadata", {}))

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(f"The plan is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                            "Fix the JSON syntax, or write plans with Plan.save.") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the plan as JSON to ``path``; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        path = Path(path)
        if not path.is_file():
            raise PlanError(f"No plan file at {path}.", "Give the path of a plan JSON written by Plan.save.")
        try:
            return cls.from_json(path.read_text())
        except PlanError as exc:
            raise PlanError(f"{path}: {exc.cause}", exc.fix) from None

    # --- building ---------------------------------------------------------------------------
    @classmethod
    def for_workload(cls, workload: Workload, base_model: str | None = None, dataset: str | None = None,
                     hardware: Mapping[str, Any] | None = None) -> Plan:
        """An empty plan for the model ``workload`` describes (records its input shape)."""
        return cls(base_model or workload.name, dataset, {}, hardware, workload.input_shape)

    def with_choice(self, layer: str, **updates: Any) -> Plan:
        """A copy with ``layer``'s choice fields updated (e.g. ``weight_bits=8``); others kept."""
        unknown = sorted(set(updates) - set(_CHOICE_FIELDS))
        if unknown:
            raise PlanError(f"Unknown choice fields {unknown}.", f"Use only: {', '.join(_CHOICE_FIELDS)}.")
        try:
            choice = replace(self.choices.get(layer, LayerChoice()), **updates)
        except PlanError as exc:
            raise PlanError(f"Layer {layer!r}: {exc.cause}", exc.fix) from None
        return replace(self, choices={**self.choices, layer: choice})

    def with_hardware(self, hardware: Mapping[str, Any] | None) -> Plan:
        """A copy carrying ``hardware`` (a JSON-able mapping, e.g. a template's design)."""
        return replace(self, hardware=hardware)

    def with_cut(self, workload: Workload, layer: str, out_channels: int) -> Plan:
        """Cut ``layer`` to ``out_channels`` together with every layer of its coupling group."""
        group = workload.group_of(layer)
        names = group.layers if group is not None and layer in group.layers else (layer,)
        plan = self
        for name in names:
            plan = plan.with_choice(name, out_channels=out_channels)
        return plan

    def with_patterns(self, workload: Workload, layers: str = "*", patterns: Iterable[int] | None = None, *,
                      model: nn.Module | None = None, patn: int = DEFAULT_PATN, zeros: int | None = None,
                      keep_last: bool | None = None, kernel: int | None = None) -> Plan:
        """Pattern-prune every conv matching the glob ``layers`` that has a pattern library.

        ``patterns`` gives the PATn ids; without them ``model`` (the base model) is required and
        each kernel size's ``patn`` ids are the library patterns most often best for those
        layers' kernels (``nn2hw.compress.kernel_pattern.top_patterns``). ``kernel`` restricts to
        one kernel size, e.g. ``with_patterns(w, "layer1.*", model=m)`` prunes ResNet stage 1.
        """
        chosen = [l for l in workload.compute_layers if fnmatch.fnmatchcase(l.name, layers)
                  and l.kind is OpKind.CONV and has_library(l.kernel_h, l.kernel_w)
                  and (kernel is None or l.kernel_h == kernel) and l.op not in _FUNCTIONAL_COMPUTE_OPS]
        if not chosen:
            raise PlanError(f"No conv with a pattern library (square, odd kernel >= 3) matches {layers!r}"
                            f"{f' with kernel {kernel}' if kernel else ''} in {workload.name!r}.",
                            "Check the layer glob against the workload's layer names.")
        sizes = sorted({l.kernel_h for l in chosen})
        if patterns is not None:
            if len(sizes) > 1:
                raise PlanError(f"The layers matching {layers!r} have kernels of sizes {sizes}; one list of pattern "
                                f"ids cannot fit several libraries.", "Pass kernel=... to pick one size.")
            ids = {sizes[0]: tuple(patterns)}
        elif model is None:
            raise PlanError("with_patterns needs either the pattern ids or the base model to choose them from.",
                            "Pass patterns=[...] or model=<the base nn.Module>.")
        else:
            weights = {l.name: model.get_submodule(l.name).weight for l in chosen}
            grown = [n for n, l in zip(weights, chosen) if weights[n].shape[-1] != l.kernel_h]
            if grown:
                raise PlanError(f"Layers {grown} have other kernel sizes in the workload than in the model "
                                f"(expanded?), so the model's weights cannot choose their patterns.",
                                "Pass the pattern ids of the expanded kernel's library explicitly.")
            ids = {k: top_patterns([weights[l.name] for l in chosen if l.kernel_h == k], patn, zeros, keep_last)
                   for k in sizes}
        plan = self
        for l in chosen:
            plan = plan.with_choice(l.name, patterns=ids[l.kernel_h], pattern_zeros=zeros, pattern_keep_last=keep_last)
        return plan

    def with_quantization(self, workload: Workload, weight_bits: int | None = 8, layers: str = "*", *,
                          weight_int_bits: int | None = None, act_bits: int | None = None,
                          act_int_bits: int | None = None, model: nn.Module | None = None,
                          calibration: Any = None) -> Plan:
        """Quantize every conv/linear layer matching the glob ``layers`` (8-bit weights by default).

        With ``act_bits`` and a ``calibration`` batch (plus the base ``model``), each layer's
        activation integer bits are chosen from the largest |input| / |output| it sees on the
        batch and written into the plan (``nn2hw.compress.quantize.activation_int_bits``).
        """
        chosen = [l.name for l in workload.compute_layers
                  if fnmatch.fnmatchcase(l.name, layers) and l.op not in _FUNCTIONAL_COMPUTE_OPS]
        if not chosen:
            raise PlanError(f"No conv/linear layer matches {layers!r} in {workload.name!r}.",
                            "Check the layer glob against the workload's layer names.")
        per_layer = {}
        if calibration is not None:
            if model is None or act_bits is None or act_int_bits is not None:
                raise PlanError("Calibration chooses activation integer bits: it needs act_bits and the base "
                                "model, and no act_int_bits.", "Pass act_bits=..., model=... and calibration=batch.")
            per_layer = activation_int_bits(model, chosen, calibration, act_bits)
        plan = self
        for name in chosen:
            plan = plan.with_choice(name, weight_bits=weight_bits, weight_int_bits=weight_int_bits,
                                    act_bits=act_bits, act_int_bits=per_layer.get(name, act_int_bits))
        return plan

    # --- checking and applying ----------------------------------------------------------------
    def problems(self, workload: Workload) -> list[Problem]:
        """Every (cause, fix) that makes this plan invalid for ``workload`` (empty when valid)."""
        found: list[Problem] = []
        compute = [l.name for l in workload.compute_layers]
        for name in self.choices:
            if name not in workload:
                found.append((f"{workload.name!r} has no layer {name!r}.{suggest(name, compute)}",
                              "Use conv/linear layer names from the workload (`nn2hw analyze` lists them)."))
            elif not workload.layer(name).is_compute:
                found.append((f"Layer {name!r} is a {workload.layer(name).kind.value} op; plans choose for conv and "
                              f"linear layers only.", "Put the choice on the conv/linear layer instead."))
            elif workload.layer(name).op in _FUNCTIONAL_COMPUTE_OPS:
                found.append((f"Layer {name!r} is a functional {workload.layer(name).op} call, not a module, so its "
                              f"weights cannot be rewritten.", "Use nn.Conv2d / nn.Linear modules for that layer."))
        if found:
            return found
        current = workload
        for transform in ordered_transforms():
            selected = transform.selected(self.choices)
            if not selected:
                continue
            step = transform.problems(current, selected)
            if not step:
                try:
                    current = current.with_changes(transform.changes(current, selected))
                except PlanError as exc:
                    step = [(exc.cause, exc.fix)]
            found += step
        return found

    def validate(self, workload: Workload) -> None:
        """Raise one ``PlanError`` naming every problem of this plan for ``workload``."""
        found = list(dict.fromkeys(self.problems(workload)))  # a graph-wide problem may come from several steps
        if len(found) == 1:
            raise PlanError(*found[0])
        if found:
            raise PlanError(
                f"The plan for {self.base_model!r} has {len(found)} problems: "
                + " ".join(f"({i}) {cause}" for i, (cause, _) in enumerate(found, 1)),
                " ".join(f"({i}) {fix}" for i, (_, fix) in enumerate(found, 1)),
            )

    def apply(self, target: Any, example_input: Any = None) -> Any:
        """Apply to a ``Workload`` (pure, returns a new one) or an ``nn.Module`` (returns a new model).

        The caller's workload or model is never modified. For a model, ``example_input`` (a
        tensor or shape) traces it; by default the plan's ``input_shape`` or the zoo entry's.
        """
        if isinstance(target, Workload):
            return self._apply_workload(target)
        import torch

        if isinstance(target, torch.nn.Module):
            return self._apply_model(target, example_input)
        raise PlanError(f"A plan applies to a Workload or a torch nn.Module, not a {type(target).__name__}.",
                        "Pass the model or its workload (nn2hw.workload.from_module).")

    def _apply_workload(self, workload: Workload) -> Workload:
        self.validate(workload)
        for transform in ordered_transforms():
            selected = transform.selected(self.choices)
            if selected:
                workload = workload.with_changes(transform.changes(workload, selected))
        return workload

    def _apply_model(self, model: nn.Module, example_input: Any) -> nn.Module:
        from nn2hw.compress._torch import is_compressed
        from nn2hw.workload import from_module

        done = [n for n, m in model.named_modules() if is_compressed(m)]
        if done:
            raise PlanError(f"The model is already compressed by nn2hw (e.g. {done[0]!r}); plans apply to the "
                            f"base model.", "Apply the plan to the uncompressed base model.")
        new = copy.deepcopy(model)
        workload = from_module(new, self._example_input(new) if example_input is None else example_input,
                               name=self.base_model)
        self.validate(workload)
        for transform in ordered_transforms():
            selected = transform.selected(self.choices)
            if selected:
                transform.apply_model(new, workload, selected)
                workload = workload.with_changes(transform.changes(workload, selected))
        return new

    def _example_input(self, model: nn.Module) -> Any:
        import torch

        shape = self.input_shape or self._zoo_input_shape()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        return torch.zeros(shape, device=device)

    def _zoo_input_shape(self) -> tuple[int, ...]:
        try:
            from nn2hw import zoo

            return (1, *zoo.entry(self.base_model).variant(self.dataset).input_shape)
        except (ImportError, AttributeError, KeyError) as exc:
            raise PlanError(f"The plan has no input_shape and {self.base_model!r} gives none through the zoo "
                            f"({type(exc).__name__}: {exc}).",
                            "Pass example_input=... to apply(), or build the plan with Plan.for_workload.") from None

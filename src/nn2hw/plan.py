"""The ``Plan``: every per-layer compression choice for one base model, plus its hardware config.

A plan is a pure record, separate from any model: frozen, hashable, JSON-serializable. It names
its base model (a zoo id) and dataset, maps layer names (module paths, as in the workload) to
``LayerChoice`` records, and may carry the hardware config the search chose. ``plan.key`` is a
stable content hash (dict order and metadata do not matter) for caches.

What the fields of a choice mean, and whether their values are valid for a network, is for the
transforms to say: each registered transform owns its fields (``nn2hw.compress``), and
``nn2hw.compress.validate_plan`` / ``apply_plan`` check and apply a plan to a workload (no torch)
or a model. This module knows only the record's structure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nn2hw import __version__
from nn2hw._checks import is_int
from nn2hw._json import freeze, thaw
from nn2hw.errors import PlanError
from nn2hw.workload import Workload

PLAN_FORMAT = "nn2hw-plan"
PLAN_VERSION = 1


def _field_value(name: str, value: Any) -> Any:
    """A choice value checked for JSON structure (numbers, strings, booleans, lists of them), frozen."""
    if isinstance(value, (list, tuple)):
        return tuple(_field_value(name, v) for v in value)
    if isinstance(value, (bool, int, float, str)):
        return value
    raise PlanError(f"Choice field {name}={value!r} is not a JSON value.",
                    "Give numbers, strings, booleans or lists of them.")


@dataclass(frozen=True, init=False)
class LayerChoice:
    """What a plan does to one layer: the fields the transforms own (``out_channels``,
    ``weight_bits``, ``patterns``...) with their values; a field left out (or None) is unset.

    ``LayerChoice(weight_bits=8)`` or ``LayerChoice({"weight_bits": 8})``. Which fields exist and
    which values are valid is checked by ``nn2hw.compress.validate_plan``.
    """

    values: Mapping[str, Any]

    def __init__(self, values: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
        if values is not None and not isinstance(values, Mapping):
            raise PlanError(f"A layer choice is a mapping of fields, got {values!r}.",
                            "Write it as {\"weight_bits\": 8, ...}.")
        merged = {**(values or {}), **fields}
        for name in merged:
            if not isinstance(name, str) or not name.isidentifier():
                raise PlanError(f"Choice field names are identifiers, got {name!r}.", "Use e.g. weight_bits.")
        object.__setattr__(self, "values", MappingProxyType(
            {name: _field_value(name, merged[name]) for name in sorted(merged) if merged[name] is not None}))

    def __hash__(self) -> int:
        return hash(tuple(self.values.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LayerChoice) and dict(self.values) == dict(other.values)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    @property
    def is_empty(self) -> bool:
        return not self.values

    def updated(self, **updates: Any) -> LayerChoice:
        """A copy with fields set (a None value unsets a field)."""
        return LayerChoice({**self.values, **updates})

    def to_dict(self) -> dict[str, Any]:
        """The set fields, lists for sequences."""
        return {name: thaw(value) for name, value in self.values.items()}

    @classmethod
    def from_dict(cls, data: Any, layer: str = "?") -> LayerChoice:
        if not isinstance(data, Mapping):
            raise PlanError(f"The choice for layer {layer!r} is {data!r}, not an object of fields.",
                            "Write it as {\"weight_bits\": 8, ...}.")
        try:
            return cls(data)
        except PlanError as exc:
            raise PlanError(f"Layer {layer!r}: {exc.cause}", exc.fix) from None


def _json_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanError(f"The plan's {what} is a {type(value).__name__}, not a mapping.",
                        f"Give the {what} as a dict of JSON values.")
    try:
        plain: Mapping[str, Any] = json.loads(json.dumps(thaw(value), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise PlanError(f"The plan's {what} is not JSON-serializable: {exc}.",
                        f"Use only strings, numbers, booleans, lists and dicts in the {what}.") from None
    return plain


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")


@dataclass(frozen=True, eq=False)
class Plan:
    """Per-layer compression choices for ``base_model`` (a zoo id) on ``dataset``, + hardware config.

    ``input_shape`` (batch included, as ``Workload.input_shape``) and ``input_dtype`` let a plan
    be applied to a model without an example input; ``metadata`` records the nn2hw version. Neither
    is part of ``key``.
    """

    base_model: str
    dataset: str | None = None
    choices: Mapping[str, LayerChoice] = field(default_factory=dict)
    hardware: Mapping[str, Any] | None = None
    input_shape: tuple[int, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    input_dtype: str = "float32"

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
        for name in sorted(self.choices, key=str):
            if not isinstance(name, str):
                raise PlanError(f"Layer names are strings, got {name!r}.", "Use the workload's layer names.")
            choice = self.choices[name]
            choice = choice if isinstance(choice, LayerChoice) else LayerChoice.from_dict(choice, name)
            if not choice.is_empty:
                choices[name] = choice
        object.__setattr__(self, "choices", MappingProxyType(choices))
        hardware = None if self.hardware is None else freeze(_json_mapping(self.hardware, "hardware config"))
        object.__setattr__(self, "hardware", hardware)
        shape = tuple(self.input_shape)
        if not all(is_int(s) and s > 0 for s in shape):
            raise PlanError(f"The plan's input_shape {self.input_shape!r} is not a tuple of positive integers.",
                            "Give the full input shape, batch included, e.g. (1, 3, 32, 32).")
        object.__setattr__(self, "input_shape", shape)
        if self.input_dtype not in _DTYPES:
            raise PlanError(f"The plan's input_dtype {self.input_dtype!r} is not a tensor element type.",
                            f"Use one of: {', '.join(_DTYPES)}.")
        metadata = {"nn2hw_version": __version__, **_json_mapping(self.metadata, "metadata")}
        object.__setattr__(self, "metadata", freeze(metadata))

    # --- identity ---------------------------------------------------------------------------
    def _content(self, hardware: bool = True) -> dict[str, Any]:
        content = {"base_model": self.base_model, "dataset": self.dataset,
                   "layers": {n: c.to_dict() for n, c in self.choices.items()}}
        if hardware:
            content["hardware"] = thaw(self.hardware)
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
        data = {"format": PLAN_FORMAT, "version": PLAN_VERSION, **self._content(),
                "input_shape": list(self.input_shape), "metadata": thaw(self.metadata)}
        if self.input_dtype != "float32":
            data["input_dtype"] = self.input_dtype
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        if not isinstance(data, Mapping) or data.get("format") != PLAN_FORMAT:
            raise PlanError(f"This is not an nn2hw plan (no \"format\": \"{PLAN_FORMAT}\").",
                            "Load a file written by Plan.save / plan.to_json().")
        if not is_int(data.get("version")) or data["version"] > PLAN_VERSION:
            raise PlanError(f"The plan has format version {data.get('version')!r}; this nn2hw reads up to "
                            f"{PLAN_VERSION}.", "Upgrade nn2hw, or write the plan with this version.")
        allowed = {"format", "version", "base_model", "dataset", "layers", "hardware", "input_shape", "input_dtype",
                   "metadata"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PlanError(f"The plan has unknown fields {unknown}.", f"Use only: {', '.join(sorted(allowed))}.")
        layers = data.get("layers", {})
        if not isinstance(layers, Mapping):
            raise PlanError("The plan's \"layers\" is not an object.", "Map layer names to choice objects.")
        return cls(base_model=data.get("base_model"),  # type: ignore[arg-type]  # checked in __post_init__
                   dataset=data.get("dataset"),
                   choices={n: LayerChoice.from_dict(c, n) for n, c in layers.items()},
                   hardware=data.get("hardware"), input_shape=tuple(data.get("input_shape", ())),
                   metadata=data.get("metadata", {}), input_dtype=data.get("input_dtype", "float32"))

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
            return cls.from_json(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise PlanError(f"{path} is not UTF-8 text (byte {exc.start}).",
                            "Give the plan JSON written by Plan.save.") from None
        except PlanError as exc:
            raise PlanError(f"{path}: {exc.cause}", exc.fix) from None

    # --- building ---------------------------------------------------------------------------
    @classmethod
    def for_workload(cls, workload: Workload, base_model: str | None = None, dataset: str | None = None,
                     hardware: Mapping[str, Any] | None = None) -> Plan:
        """An empty plan for the model ``workload`` describes (records its input shape and dtype)."""
        return cls(base_model or workload.name, dataset, {}, hardware, workload.input_shape,
                   input_dtype=_input_dtype(workload))

    def with_choice(self, layer: str, **updates: Any) -> Plan:
        """A copy with ``layer``'s choice fields updated (e.g. ``weight_bits=8``; None unsets one)."""
        try:
            choice = self.choices.get(layer, LayerChoice()).updated(**updates)
        except PlanError as exc:
            raise PlanError(f"Layer {layer!r}: {exc.cause}", exc.fix) from None
        return replace(self, choices={**self.choices, layer: choice})

    def with_hardware(self, hardware: Mapping[str, Any] | None) -> Plan:
        """A copy carrying ``hardware`` (a JSON-able mapping, e.g. a template's design)."""
        return replace(self, hardware=hardware)


def _input_dtype(workload: Workload) -> str:
    """The element type of the workload's first input (float32 when it has no input layer)."""
    return workload.inputs[0].dtype if workload.inputs else "float32"

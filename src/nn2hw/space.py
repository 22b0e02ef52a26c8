"""iSpace: the joint search space of network changes, compression and hardware knobs.

Built automatically from a workload and its per-layer bottlenecks, with the remedies the hardware
template declares (``HardwareTemplate.remedies``). On the FPGA template this is HotNAS's iSpace:
- compute-bound (C) layers get kernel-pattern pruning and channel cuts;
- weight-bound (W) layers get quantization (and channel cuts: fewer filters, fewer weights);
- input/output-bound (I/O) layers get kernel expansion (a larger kernel is free while the layer
  waits on memory, and may raise accuracy); the port split is a hardware knob of the same space.
On the ASIC dataflow templates (which run dense kernels) compute-bound layers get channel cuts and
memory-bound ones quantization and channel cuts.
A config file (YAML or JSON, ``SpaceConfig``) restricts or extends every rule, validated with
precise errors. The space is a tuple of categorical ``Dimension``s; choice 0 of each is "leave it
as it is" (or "let the DSE choose" for hardware knobs), so the all-zero vector is the base model.
No torch here: pattern ids chosen from pretrained weights are passed in by the caller.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from nn2hw.errors import ConfigError
from nn2hw.plan import Plan
from nn2hw.registry import suggest
from nn2hw.workload import Layer, OpKind, Workload

BOTTLENECKS = ("O", "I", "W", "C", "compute", "mapping", "fill-drain", "sram-bandwidth", "dram")
"""Labels the templates use: the FPGA's O/I/W/C (iDetect) and the ASIC dataflows' words."""
TECHNIQUES = ("pattern", "channels", "quantize", "expand")


@dataclass(frozen=True)
class Dimension:
    """One categorical decision. ``choices[i]`` is a JSON value; ``labels[i]`` says it in words.

    ``technique`` is one of ``TECHNIQUES`` or 'hardware'; ``layers`` are the layers it changes
    (all layers of a coupling group for a channel cut). ``leanest`` is the index of the choice
    with the lowest hardware cost, used to bound the latency any candidate can reach.
    """

    name: str
    technique: str
    layers: tuple[str, ...]
    choices: tuple[Any, ...]
    labels: tuple[str, ...]
    leanest: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "technique": self.technique, "layers": list(self.layers),
                "choices": list(self.choices), "labels": list(self.labels)}


@dataclass(frozen=True)
class Candidate:
    """A decoded point of the space: the plan and the hardware knobs fixed by the strategy."""

    indices: tuple[int, ...]
    plan: Plan
    hardware: Mapping[str, Any]


class _Dimensions:
    """What every space derives from its ordered ``dimensions``: names, choice counts, size."""

    dimensions: tuple[Dimension, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(len(d.choices) for d in self.dimensions)

    @property
    def size(self) -> int:
        return math.prod(self.counts)

    def _check_length(self, indices: Sequence[int]) -> None:
        if len(indices) != len(self.dimensions):
            raise ConfigError(f"A candidate needs {len(self.dimensions)} indices, got {len(indices)}.",
                              "Decode vectors proposed for this space only.")


@dataclass(frozen=True)
class SearchSpace(_Dimensions):
    """The ordered dimensions of one search, with the empty plan they modify."""

    base: Plan
    dimensions: tuple[Dimension, ...]

    @property
    def key(self) -> str:
        """A short content hash of the dimensions: a resumed study must have the same space."""
        import hashlib

        text = json.dumps([d.to_dict() for d in self.dimensions], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def decode(self, indices: Sequence[int]) -> Candidate:
        """The plan and hardware knobs of an index vector (one index per dimension)."""
        self._check_length(indices)
        plan, hardware = self.base, {}
        for dim, index in zip(self.dimensions, indices):
            if not 0 <= int(index) < len(dim.choices):
                raise ConfigError(f"Index {index} is outside the {len(dim.choices)} choices of {dim.name!r}.",
                                  "Decode vectors proposed for this space only.")
            value = dim.choices[int(index)]
            if dim.technique == "hardware":
                if value is not None:
                    hardware.update(value)
            elif value is not None:
                plan = _APPLY[dim.technique](plan, dim, value)
        return Candidate(tuple(int(i) for i in indices), plan, hardware)

    def leanest(self) -> tuple[int, ...]:
        """The vector giving every layer its lowest-cost choice, hardware knobs left to the DSE."""
        return tuple(d.leanest for d in self.dimensions)

    def changes(self, indices: Sequence[int]) -> list[tuple[Dimension, str]]:
        """The dimensions an index vector moves away from choice 0, with the chosen label."""
        return [(d, d.labels[i]) for d, i in zip(self.dimensions, indices) if i != 0]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "dimensions": [d.to_dict() for d in self.dimensions]}


@dataclass(frozen=True)
class JointCandidate:
    """A decoded point of a joint space: one plan per network and the hardware knobs."""

    indices: tuple[int, ...]
    plans: Mapping[str, Plan]
    hardware: Mapping[str, Any]


@dataclass(frozen=True)
class JointSpace(_Dimensions):
    """The spaces of one or several networks searched together for one chip.

    With one network its dimensions keep their names (a single-model study reads as before);
    with several each name is prefixed ``'<network>/'``. Hardware knobs are shared: give them to
    one part only.
    """

    parts: tuple[tuple[str, SearchSpace], ...]

    @cached_property
    def dimensions(self) -> tuple[Dimension, ...]:
        if len(self.parts) == 1:
            return self.parts[0][1].dimensions
        return tuple(replace(d, name=f"{net}/{d.name}") for net, space in self.parts for d in space.dimensions)

    @property
    def key(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps([[net, space.key] for net, space in self.parts]).encode()).hexdigest()[:16]

    @property
    def bases(self) -> dict[str, Plan]:
        return {net: space.base for net, space in self.parts}

    def decode(self, indices: Sequence[int]) -> JointCandidate:
        self._check_length(indices)
        plans, hardware, start = {}, {}, 0
        for net, space in self.parts:
            part = space.decode(indices[start:start + len(space.dimensions)])
            plans[net] = part.plan
            hardware.update(part.hardware)
            start += len(space.dimensions)
        return JointCandidate(tuple(int(i) for i in indices), plans, hardware)

    def leanest(self) -> tuple[int, ...]:
        return tuple(d.leanest for d in self.dimensions)

    def changes(self, indices: Sequence[int]) -> list[tuple[Dimension, str]]:
        return [(d, d.labels[i]) for d, i in zip(self.dimensions, indices) if i != 0]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "networks": [net for net, _ in self.parts],
                "dimensions": [d.to_dict() for d in self.dimensions]}


def _apply_pattern(plan: Plan, dim: Dimension, value: Mapping[str, Any]) -> Plan:
    return plan.with_choice(dim.layers[0], patterns=tuple(value["patterns"]), pattern_zeros=value["zeros"])


def _apply_channels(plan: Plan, dim: Dimension, value: int) -> Plan:
    for name in dim.layers:
        plan = plan.with_choice(name, out_channels=int(value))
    return plan


def _apply_quantize(plan: Plan, dim: Dimension, value: int) -> Plan:
    return plan.with_choice(dim.layers[0], weight_bits=int(value))


def _apply_expand(plan: Plan, dim: Dimension, value: int) -> Plan:
    return plan.with_choice(dim.layers[0], expand=int(value))


_APPLY: dict[str, Callable[[Plan, Dimension, Any], Plan]] = {
    "pattern": _apply_pattern, "channels": _apply_channels, "quantize": _apply_quantize, "expand": _apply_expand}


# --- configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TechniqueRule:
    """When a technique is offered (layers with one of ``bottlenecks``; None: the bottlenecks the
    hardware template says it relieves, ``HardwareTemplate.remedies``) and with which options."""

    enabled: bool = True
    bottlenecks: tuple[str, ...] | None = None
    options: tuple[Any, ...] = ()


_DEFAULT_RULES: dict[str, TechniqueRule] = {
    "pattern": TechniqueRule(options=()),  # zeros per kernel; () = DEFAULT_3X3_ZEROS / the library default
    "channels": TechniqueRule(options=(0.875, 0.75, 0.625, 0.5)),  # kept fractions
    "quantize": TechniqueRule(options=(12, 8, 6)),  # weight bits below the base width
    "expand": TechniqueRule(options=(1, 3)),  # kernel sizes that may grow by 2
}
_OPTION_NAME = {"pattern": "zeros", "channels": "keep", "quantize": "bits", "expand": "kernels"}


@dataclass(frozen=True)
class SpaceConfig:
    """User restrictions and extensions of the automatic space (from YAML/JSON, see ``load``).

    ``include``/``exclude`` are layer-name globs; ``rules`` per technique say which bottlenecks
    get it and its options; ``overrides`` map a layer glob to per-technique options (a list) or
    ``false``, applied regardless of bottleneck; ``hardware`` lists the hardware knobs to search
    (the template's knob names) — the rest is left to the design-space exploration.
    """

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    rules: Mapping[str, TechniqueRule] = field(default_factory=lambda: dict(_DEFAULT_RULES))
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    hardware: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> SpaceConfig:
        """Read a YAML (.yaml/.yml) or JSON file and validate it."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"No space configuration file at {path}.", "Give an existing YAML or JSON file.")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
            raise ConfigError(f"{path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: "
                              f"{exc}.", "Fix the syntax at the position given.") from None
        try:
            return cls.from_dict(data or {})
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.cause}", exc.fix) from None

    @classmethod
    def from_dict(cls, data: Any) -> SpaceConfig:
        _expect(isinstance(data, Mapping), "the configuration", data, "a mapping of sections")
        _known(data, ("include", "exclude", "techniques", "overrides", "hardware"), "top-level section")
        include = _globs(data.get("include", ["*"]), "include")
        exclude = _globs(data.get("exclude", []), "exclude")
        rules = dict(_DEFAULT_RULES)
        techniques = data.get("techniques", {})
        _expect(isinstance(techniques, Mapping), "techniques", techniques, "a mapping technique -> rule")
        _known(techniques, TECHNIQUES, "technique")
        for name, spec in techniques.items():
            rules[name] = _rule(name, spec, rules[name])
        overrides = data.get("overrides", {})
        _expect(isinstance(overrides, Mapping), "overrides", overrides, "a mapping layer-glob -> techniques")
        checked: dict[str, dict[str, Any]] = {}
        for glob, spec in overrides.items():
            _expect(isinstance(spec, Mapping), f"overrides[{glob!r}]", spec, "a mapping technique -> options|false")
            _known(spec, TECHNIQUES, f"technique in overrides[{glob!r}]")
            checked[str(glob)] = {t: (False if v is False else _options(t, v, f"overrides[{glob!r}].{t}"))
                                  for t, v in spec.items()}
        hardware = _globs(data.get("hardware", []), "hardware")
        return cls(include, exclude, rules, checked, hardware)


def _expect(ok: bool, where: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"In the space configuration, {where} is {value!r}; expected {expected}.",
                          "Fix that entry (see docs/search.md for the format).")


def _known(data: Mapping[str, Any], allowed: Sequence[str], what: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"Unknown {what} {key!r} in the space configuration.{suggest(str(key), list(allowed))}",
                              f"Use one of: {', '.join(allowed)}.")


def _globs(value: Any, where: str) -> tuple[str, ...]:
    _expect(isinstance(value, list) and all(isinstance(v, str) and v for v in value), where, value,
            "a list of non-empty strings")
    return tuple(value)


def _options(technique: str, value: Any, where: str) -> tuple[Any, ...]:
    _expect(isinstance(value, list) and bool(value), where, value, f"a non-empty list of {_OPTION_NAME[technique]}")
    for v in value:
        if technique == "channels":
            _expect(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1, where, value,
                    "kept fractions strictly between 0 and 1")
        elif technique == "quantize":
            _expect(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 32, where, value,
                    "bit widths, integers in 1..32")
        elif technique == "pattern":
            _expect(isinstance(v, int) and not isinstance(v, bool) and v >= 1, where, value,
                    "numbers of zeros per kernel, integers >= 1")
        else:
            _expect(isinstance(v, int) and not isinstance(v, bool) and v >= 1 and v % 2 == 1, where, value,
                    "odd kernel sizes >= 1")
    return tuple(value)


def _rule(name: str, spec: Any, default: TechniqueRule) -> TechniqueRule:
    if spec is False:
        return TechniqueRule(False, default.bottlenecks, default.options)
    _expect(isinstance(spec, Mapping), f"techniques.{name}", spec, "false or a mapping")
    _known(spec, ("enabled", "bottlenecks", _OPTION_NAME[name]), f"field of techniques.{name}")
    enabled = spec.get("enabled", True)
    _expect(isinstance(enabled, bool), f"techniques.{name}.enabled", enabled, "true or false")
    bottlenecks = spec.get("bottlenecks")
    if bottlenecks is not None:
        _expect(isinstance(bottlenecks, list) and all(b in BOTTLENECKS for b in bottlenecks),
                f"techniques.{name}.bottlenecks", bottlenecks, f"a list of {'/'.join(BOTTLENECKS)}")
        bottlenecks = tuple(bottlenecks)
    options = spec.get(_OPTION_NAME[name])
    opts = default.options if options is None else _options(name, options, f"techniques.{name}.{_OPTION_NAME[name]}")
    return TechniqueRule(enabled, bottlenecks, opts)


# --- building ------------------------------------------------------------------------------------
PatternChooser = Callable[[Sequence[Layer], int], tuple[int, ...]]
"""(layers of one kernel size, zeros) -> PATn pattern ids; the caller picks them from weights."""

DEFAULT_3X3_ZEROS = (3, 4, 5)
"""3x3 kernels keep 6, 5 or 4 weights by default: HotNAS's z=3 library, its z=4 one, and the
4-entry patterns of PatDNN. Small layers on a large MAC array are limited by kernel positions,
not channels, so these are the levers that shorten them."""


def build_space(workload: Workload, bottlenecks: Mapping[str, str], base: Plan, *,
                remedies: Mapping[str, Sequence[str]], config: SpaceConfig | None = None,
                patterns: PatternChooser | None = None, hardware: Sequence[Dimension] = (),
                default_zeros: Callable[[int], int] | None = None) -> SearchSpace:
    """The joint space for ``workload`` given each compute layer's bottleneck label.

    ``remedies`` maps a label to the techniques that relieve it on the hardware template
    (``HardwareTemplate.remedies``); a rule of ``config`` that names its own bottlenecks wins.

    ``patterns`` chooses the pattern ids of a kernel size (from the pretrained weights); without
    it no pattern dimension is offered. ``hardware`` are the template's knob dimensions, kept
    when ``config.hardware`` names them.
    """
    config = config or SpaceConfig()
    layers = [l for l in workload.compute_layers
              if any(fnmatch.fnmatchcase(l.name, g) for g in config.include)
              and not any(fnmatch.fnmatchcase(l.name, g) for g in config.exclude)]
    dims: list[Dimension] = []
    cut_groups: set[tuple[str, ...]] = set()
    for layer in layers:
        for technique in TECHNIQUES:
            options = _layer_options(layer, technique, bottlenecks.get(layer.name), config, remedies)
            if options is None:
                continue
            dim = _DIMENSION[technique](workload, layer, options, patterns, default_zeros)
            if dim is None or (technique == "channels" and dim.layers in cut_groups):
                continue
            if technique == "channels":
                cut_groups.add(dim.layers)
            dims.append(dim)
    dims += [d for d in hardware if any(fnmatch.fnmatchcase(d.name.split(":", 1)[-1], g) for g in config.hardware)]
    return SearchSpace(base, tuple(dims))


def _layer_options(layer: Layer, technique: str, bottleneck: str | None, config: SpaceConfig,
                   remedies: Mapping[str, Sequence[str]]) -> tuple | None:
    """Options of ``technique`` for ``layer``: an override wins, else the bottleneck rule."""
    for glob, spec in config.overrides.items():
        if fnmatch.fnmatchcase(layer.name, glob) and technique in spec:
            return None if spec[technique] is False else spec[technique]
    rule = config.rules[technique]
    relieved = rule.bottlenecks if rule.bottlenecks is not None else tuple(
        label for label, techniques in remedies.items() if technique in techniques)
    return rule.options if rule.enabled and bottleneck in relieved else None


def _pattern_dim(workload: Workload, layer: Layer, options: tuple, patterns: PatternChooser | None,
                 default_zeros: Callable[[int], int] | None) -> Dimension | None:
    k = layer.kernel_h
    if patterns is None or layer.kind is not OpKind.CONV or k != layer.kernel_w or k < 3 or k % 2 == 0:
        return None
    zeros = options or (DEFAULT_3X3_ZEROS if k == 3 else (default_zeros(k),) if default_zeros else ())
    choices: list[Any] = [None]
    labels = ["dense"]
    for z in zeros:
        if z >= k * k:
            continue
        choices.append({"patterns": list(patterns([layer], z)), "zeros": int(z)})
        labels.append(f"{len(choices[-1]['patterns'])} patterns, {k * k - z}/{k * k} kept")
    if len(choices) == 1:
        return None
    return Dimension(f"pattern:{layer.name}", "pattern", (layer.name,), tuple(choices), tuple(labels),
                     leanest=max(range(len(choices)), key=lambda i: 0 if choices[i] is None else choices[i]["zeros"]))


def _channels_dim(workload: Workload, layer: Layer, options: tuple, *_: Any) -> Dimension | None:
    group = workload.group_of(layer.name)
    if group is None or not group.cuttable:
        return None
    widths = sorted({max(1, int(round(group.channels * f))) for f in options} - {group.channels}, reverse=True)
    if not widths:
        return None
    choices = (None, *widths)
    labels = (f"{group.channels} ch", *(f"{w} ch" for w in widths))
    return Dimension(f"channels:{group.layers[0]}", "channels", group.layers, choices, labels, leanest=len(choices) - 1)


def _quantize_dim(workload: Workload, layer: Layer, options: tuple, *_: Any) -> Dimension | None:
    bits = sorted({b for b in options if b < layer.weight_bits}, reverse=True)
    if not bits:
        return None
    choices = (None, *bits)
    labels = (f"{layer.weight_bits}-bit", *(f"{b}-bit" for b in bits))
    return Dimension(f"quantize:{layer.name}", "quantize", (layer.name,), choices, labels, leanest=len(choices) - 1)


def _expand_dim(workload: Workload, layer: Layer, options: tuple, *_: Any) -> Dimension | None:
    if layer.kind is not OpKind.CONV or layer.kernel_h != layer.kernel_w or layer.kernel_h not in options \
            or layer.conv_type == "grouped":
        return None
    k = layer.kernel_h
    return Dimension(f"expand:{layer.name}", "expand", (layer.name,), (None, 1), (f"{k}x{k}", f"{k + 2}x{k + 2}"),
                     leanest=0)


_DIMENSION = {"pattern": _pattern_dim, "channels": _channels_dim, "quantize": _quantize_dim, "expand": _expand_dim}

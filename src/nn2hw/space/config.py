"""User restrictions and extensions of the automatic space (``--space FILE``, YAML or JSON).

    include: ['*']                        # layer-name globs offered to the search
    exclude: ['conv1']
    techniques:                           # registered transform names
      channel_cut: {keep: [0.75, 0.5]}    # options (the transform says what they are)
      quantize: {bottlenecks: [W, compute], bits: [8, 4]}
      kernel_expand: false                # never offered
    overrides:                            # per layer glob, regardless of bottleneck
      'layer2.*': {quantize: [8, 4], kernel_pattern: false}
    hardware: [Tr, Tc]                    # hardware knobs to search (the rest left to the DSE)

Every field is checked against the registered transforms (their names, option names and
option values); bottleneck labels are checked against the hardware template's vocabulary when the
space is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nn2hw._config import read_config
from nn2hw.compress import TRANSFORMS, Transform
from nn2hw.errors import ConfigError
from nn2hw.registry import suggest

_RENAMED = {"channels": "channel_cut", "pattern": "kernel_pattern", "expand": "kernel_expand"}
"""Technique names of nn2hw 0.1 space files, for a precise error."""


@dataclass(frozen=True)
class TechniqueRule:
    """When a technique is offered (layers with one of ``bottlenecks``; None: the bottlenecks the
    hardware template says it relieves) and with which options (() = the transform's defaults)."""

    enabled: bool = True
    bottlenecks: tuple[str, ...] | None = None
    options: tuple[Any, ...] = ()


def default_rules() -> dict[str, TechniqueRule]:
    """One rule per registered transform: enabled, the template's bottlenecks, its default options."""
    return {name: TechniqueRule(options=tuple(t.default_options)) for name, t in TRANSFORMS.items()}


@dataclass(frozen=True)
class SpaceConfig:
    """``include``/``exclude`` are layer-name globs; ``rules`` per technique say which bottlenecks
    get it and its options; ``overrides`` map a layer glob to per-technique options (a tuple) or
    ``False``, applied regardless of bottleneck; ``hardware`` lists the hardware knobs to search
    (the template's knob names) — the rest is left to the design-space exploration."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    rules: Mapping[str, TechniqueRule] = field(default_factory=default_rules)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    hardware: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> SpaceConfig:
        """Read a YAML (.yaml/.yml) or JSON file and validate it."""
        data = read_config(path, "space configuration file")
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
        rules = default_rules()
        techniques = data.get("techniques", {})
        _expect(isinstance(techniques, Mapping), "techniques", techniques, "a mapping technique -> rule")
        _known(techniques, TRANSFORMS.names(), "technique")
        for name, spec in techniques.items():
            rules[name] = _rule(TRANSFORMS.get(name), spec, rules[name])
        overrides = data.get("overrides", {})
        _expect(isinstance(overrides, Mapping), "overrides", overrides, "a mapping layer-glob -> techniques")
        checked: dict[str, dict[str, Any]] = {}
        for glob, spec in overrides.items():
            _expect(isinstance(spec, Mapping), f"overrides[{glob!r}]", spec, "a mapping technique -> options|false")
            _known(spec, TRANSFORMS.names(), f"technique in overrides[{glob!r}]")
            checked[str(glob)] = {
                t: False if v is False else _options(TRANSFORMS.get(t), v, f"overrides[{glob!r}].{t}")
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
            renamed = f" nn2hw now names it {_RENAMED[key]!r}." if key in _RENAMED else ""
            hint = renamed or suggest(str(key), list(allowed))
            raise ConfigError(f"Unknown {what} {key!r} in the space configuration.{hint}",
                              f"Use one of: {', '.join(allowed)}.")


def _globs(value: Any, where: str) -> tuple[str, ...]:
    _expect(isinstance(value, list) and all(isinstance(v, str) and v for v in value), where, value,
            "a list of non-empty strings")
    return tuple(value)


def _options(transform: Transform, value: Any, where: str) -> tuple[Any, ...]:
    _expect(isinstance(value, list) and bool(value), where, value, f"a non-empty list of {transform.option_name}")
    _expect(all(transform.check_option(v) for v in value), where, value, transform.option_help)
    return tuple(value)


def _rule(transform: Transform, spec: Any, default: TechniqueRule) -> TechniqueRule:
    if spec is False:
        return TechniqueRule(False, default.bottlenecks, default.options)
    _expect(isinstance(spec, Mapping), f"techniques.{transform.name}", spec, "false or a mapping")
    _known(spec, ("enabled", "bottlenecks", transform.option_name), f"field of techniques.{transform.name}")
    enabled = spec.get("enabled", True)
    _expect(isinstance(enabled, bool), f"techniques.{transform.name}.enabled", enabled, "true or false")
    bottlenecks = spec.get("bottlenecks")
    if bottlenecks is not None:
        _expect(isinstance(bottlenecks, list) and all(isinstance(b, str) and b for b in bottlenecks),
                f"techniques.{transform.name}.bottlenecks", bottlenecks, "a list of bottleneck labels")
        bottlenecks = tuple(bottlenecks)
    options = spec.get(transform.option_name)
    opts = default.options if options is None else _options(transform, options,
                                                             f"techniques.{transform.name}.{transform.option_name}")
    return TechniqueRule(enabled, bottlenecks, opts)

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

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nn2hw._config import FieldChecker, read_config
from nn2hw.compress import TRANSFORMS, Transform

_RENAMED = {"channels": "channel_cut", "pattern": "kernel_pattern", "expand": "kernel_expand"}
"""Technique names of nn2hw 0.1 space files, for a precise error."""
_DOC = "docs/search.md"
"""Where the format is described (named in the fix of a bad field)."""


@dataclass(frozen=True)
class TechniqueRule:
    """When a technique is offered (layers with one of ``bottlenecks``; None: the bottlenecks the
    hardware template says it relieves) and with which options (() = the transform's defaults)."""

    enabled: bool = True
    bottlenecks: tuple[str, ...] | None = None
    options: tuple[Any, ...] = ()


def default_rules() -> dict[str, TechniqueRule]:
    """One rule per registered transform: enabled, the template's bottlenecks, the default options
    (the template's ``space_options`` for it, else the transform's)."""
    return {name: TechniqueRule() for name in TRANSFORMS.names()}


@dataclass(frozen=True)
class SpaceConfig:
    """``include``/``exclude`` are layer-name globs; ``rules`` per technique say which bottlenecks
    get it and its options; ``overrides`` map a layer glob to per-technique options (a tuple) or
    ``False``, applied regardless of bottleneck; ``hardware`` lists the hardware knobs to search
    (the template's knob names) — the rest is left to the design-space exploration. ``path`` is
    the file it was read from ('' when built in code), named in errors."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    rules: Mapping[str, TechniqueRule] = field(default_factory=default_rules)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    hardware: tuple[str, ...] = ()
    path: str = ""

    @classmethod
    def load(cls, path: str | Path) -> SpaceConfig:
        """Read a YAML (.yaml/.yml) or JSON file and validate it."""
        return cls.from_dict(read_config(path, "space configuration file") or {}, path)

    @classmethod
    def from_dict(cls, data: Any, path: str | Path = "") -> SpaceConfig:
        """Validate parsed data (``path``: the file it was read from, named in errors)."""
        check = FieldChecker(path, "Space configuration file" if path else "Space configuration", _DOC)
        check.mapping(data, "(top level)")
        check.known(data, ("include", "exclude", "techniques", "overrides", "hardware"), "top-level section")
        include = _globs(check, data.get("include", ["*"]), "include")
        exclude = _globs(check, data.get("exclude", []), "exclude")
        rules = default_rules()
        techniques = check.mapping(data.get("techniques", {}), "techniques")
        check.known(techniques, TRANSFORMS.names(), "technique", renamed=_RENAMED)
        for name, spec in techniques.items():
            rules[name] = _rule(check, TRANSFORMS.get(name), spec, rules[name])
        overrides = check.mapping(data.get("overrides", {}), "overrides")
        checked: dict[str, dict[str, Any]] = {}
        for glob, spec in overrides.items():
            check.mapping(spec, f"overrides[{glob!r}]")
            check.known(spec, TRANSFORMS.names(), "technique", f"overrides[{glob!r}]", _RENAMED)
            checked[str(glob)] = {
                t: False if v is False else _options(check, TRANSFORMS.get(t), v, f"overrides[{glob!r}].{t}")
                for t, v in spec.items()}
        hardware = _globs(check, data.get("hardware", []), "hardware")
        return cls(include, exclude, rules, checked, hardware, str(path))


def _globs(check: FieldChecker, value: Any, where: str) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
        raise check.fail(where, "a list of non-empty strings", value)
    return tuple(value)


def _options(check: FieldChecker, transform: Transform, value: Any, where: str) -> tuple[Any, ...]:
    if not (isinstance(value, list) and value):
        raise check.fail(where, f"a non-empty list of {transform.option_name}", value)
    if not all(transform.check_option(v) for v in value):
        raise check.fail(where, transform.option_help, value)
    return tuple(value)


def _rule(check: FieldChecker, transform: Transform, spec: Any, default: TechniqueRule) -> TechniqueRule:
    where = f"techniques.{transform.name}"
    if spec is False:
        return TechniqueRule(False, default.bottlenecks, default.options)
    if not isinstance(spec, Mapping):
        raise check.fail(where, "false or a mapping", spec)
    check.known(spec, ("enabled", "bottlenecks", transform.option_name), "field", where)
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise check.fail(f"{where}.enabled", "true or false", enabled)
    bottlenecks = spec.get("bottlenecks")
    if bottlenecks is not None:
        if not (isinstance(bottlenecks, list) and all(isinstance(b, str) and b for b in bottlenecks)):
            raise check.fail(f"{where}.bottlenecks", "a list of bottleneck labels", bottlenecks)
        bottlenecks = tuple(bottlenecks)
    options = spec.get(transform.option_name)
    opts = default.options if options is None else _options(check, transform, options,
                                                             f"{where}.{transform.option_name}")
    return TechniqueRule(enabled, bottlenecks, opts)

"""Building iSpace: per layer, the transforms that relieve its bottleneck on the hardware template.

The hardware template says which transforms relieve each of its bottleneck labels
(``HardwareTemplate.remedies``). On the FPGA template this is HotNAS's iSpace:
- compute-bound (C) layers get kernel-pattern pruning and channel cuts;
- weight-bound (W) layers get quantization (and channel cuts: fewer filters, fewer weights);
- input/output-bound (I/O) layers get kernel expansion (a larger kernel is free while the layer
  waits on memory, and may raise accuracy); the port split is a hardware knob of the same space.
On the ASIC dataflow templates (which run dense kernels) compute-bound layers get channel cuts and
memory-bound ones quantization and channel cuts. Each transform builds its own dimension
(``Transform.offer``); a ``SpaceConfig`` restricts or extends every rule. No torch here: the
pretrained weights (for kernel patterns) reach the transforms through ``SpaceContext``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from nn2hw.compress import SpaceContext, Transform, ordered_transforms
from nn2hw.errors import ConfigError
from nn2hw.plan import Plan
from nn2hw.space.config import SpaceConfig
from nn2hw.space.dimensions import Dimension, SearchSpace, knob_name
from nn2hw.workload import Layer, OpKind, Workload


def build_space(workload: Workload, bottlenecks: Mapping[str, str], base: Plan, *,
                remedies: Mapping[str, Sequence[str]], vocabulary: Mapping[str, str] | None = None,
                config: SpaceConfig | None = None, context: SpaceContext = SpaceContext(),
                hardware: Sequence[Dimension] = (), space_options: Mapping[str, Sequence[Any]] | None = None
                ) -> SearchSpace:
    """The joint space for ``workload`` given each compute layer's bottleneck label.

    ``remedies`` maps a label to the transforms that relieve it on the hardware template and
    ``vocabulary`` lists the template's labels (a rule of ``config`` naming other labels is an
    error). ``hardware`` are the template's knob dimensions, kept when ``config.hardware`` names
    them; ``space_options`` the template's options of a technique where ``config`` gives none.
    Each (transform, layers) dimension is offered once (a coupling group's cut, once).
    """
    config = config or SpaceConfig()
    _check_labels(config, vocabulary)
    layers = [l for l in workload.compute_layers
              if any(fnmatch.fnmatchcase(l.name, g) for g in config.include)
              and not any(fnmatch.fnmatchcase(l.name, g) for g in config.exclude)]
    dims: dict[tuple[str, tuple[str, ...]], Dimension] = {}
    given = _GivenOptions(workload, context)
    for layer in layers:
        for transform in ordered_transforms():
            options = _layer_options(layer, transform, bottlenecks.get(layer.name), config, remedies,
                                     (space_options or {}).get(transform.name))
            if options is None:
                continue
            offer = transform.offer(workload, layer, options, context)
            where = _given_where(layer, transform, config)
            if where is not None:
                given.record(where, transform, layer, options, offer is not None)
            if offer is None or (transform.name, offer.layers) in dims:
                continue
            dims[(transform.name, offer.layers)] = Dimension(
                f"{transform.name}:{offer.layers[0]}", transform.name, offer.layers,
                tuple(None if c is None else dict(c) for c in offer.choices), offer.labels, offer.leanest,
                None if offer.unchanged is None else dict(offer.unchanged))
    given.check(config.path)
    knobs = [d for d in hardware if any(fnmatch.fnmatchcase(knob_name(d), g) for g in config.hardware)]
    return SearchSpace(base, (*dims.values(), *knobs))


def _given_where(layer: Layer, transform: Transform, config: SpaceConfig) -> str | None:
    """Where the space file gives ``transform``'s options for ``layer`` ('overrides['layer2.*'].quantize',
    'techniques.quantize.bits'), or None where the defaults apply."""
    for glob, spec in config.overrides.items():
        if fnmatch.fnmatchcase(layer.name, glob) and transform.name in spec:
            return None if spec[transform.name] is False else f"overrides[{glob!r}].{transform.name}"
    rule = config.rules.get(transform.name)
    return f"techniques.{transform.name}.{transform.option_name}" if rule is not None and rule.options else None


class _GivenOptions:
    """Each option value a space file gives, and whether it changes any layer it was offered to: a
    value no layer can take (``zeros: [9]`` on 3x3 kernels, ``bits: [16]`` on 8-bit weights) is an
    error naming it and the layers, never dropped silently."""

    def __init__(self, workload: Workload, context: SpaceContext) -> None:
        self.workload, self.context = workload, context
        self.tried: dict[tuple[str, Any], list[Layer]] = {}
        self.used: set[tuple[str, Any]] = set()
        self.transforms: dict[str, Transform] = {}

    def record(self, where: str, transform: Transform, layer: Layer, options: Sequence[Any], offered: bool) -> None:
        """Note which of ``options`` change ``layer`` (each tried alone until one layer takes it);
        a layer the technique cannot change with any option does not count."""
        if not offered and transform.offer(self.workload, layer, transform.default_options, self.context) is None:
            return
        self.transforms[where] = transform
        for value in options:
            key = (where, value)
            if key in self.used:
                continue
            self.tried.setdefault(key, []).append(layer)
            if offered and transform.offer(self.workload, layer, (value,), self.context) is not None:
                self.used.add(key)

    def check(self, path: str) -> None:
        for (where, value), layers in self.tried.items():
            if (where, value) in self.used:
                continue
            transform = self.transforms[where]
            names = ", ".join(_describe(layer) for layer in layers[:6]) + (
                f" and {len(layers) - 6} more" if len(layers) > 6 else "")
            origin = f"Space configuration file {path}" if path else "Space configuration"
            raise ConfigError(
                f"{origin}: '{where}' gives {transform.option_name} {value!r}, which changes none of the layers "
                f"{transform.name} is offered to: {names}.",
                f"Give {transform.option_name} values these layers can take ({transform.option_help}), or remove "
                f"{value!r}.")


def _describe(layer: Layer) -> str:
    """'layer1.0.conv1 (3x3 conv, 16 out channels, 8-bit weights)'."""
    kernel = f"{layer.kernel_h}x{layer.kernel_w} " if layer.kind is OpKind.CONV else ""
    return (f"{layer.name} ({kernel}{layer.kind.value}, {layer.out_channels} out channels, "
            f"{layer.weight_bits}-bit weights)")


def _check_labels(config: SpaceConfig, vocabulary: Mapping[str, str] | None) -> None:
    if vocabulary is None:
        return
    for name, rule in config.rules.items():
        unknown = [b for b in rule.bottlenecks or () if b not in vocabulary]
        if unknown:
            raise ConfigError(f"In the space configuration, techniques.{name}.bottlenecks names {unknown}, which "
                              f"this hardware template does not report.",
                              f"Use its labels: {', '.join(f'{k} ({v})' for k, v in vocabulary.items())}.")


def _layer_options(layer: Layer, transform: Transform, bottleneck: str | None, config: SpaceConfig,
                   remedies: Mapping[str, Sequence[str]], template_options: Sequence[Any] | None
                   ) -> tuple[Any, ...] | None:
    """Options of ``transform`` for ``layer``: an override wins, else the bottleneck rule (whose
    options default to the template's, else the transform's)."""
    for glob, spec in config.overrides.items():
        if fnmatch.fnmatchcase(layer.name, glob) and transform.name in spec:
            return None if spec[transform.name] is False else tuple(spec[transform.name])
    rule = config.rules.get(transform.name)
    if rule is None or not rule.enabled:
        return None
    relieved = rule.bottlenecks if rule.bottlenecks is not None else tuple(
        label for label, names in remedies.items() if transform.name in names)
    if bottleneck not in relieved:
        return None
    return rule.options or tuple(template_options or transform.default_options)

"""The hardware-template contract and its registry.

A template (FPGA tiled conv, systolic array, NVDLA-, ShiDianNao- or Eyeriss-style dataflow, a
heterogeneous chip, a plugin's...) declares in one class everything the rest of nn2hw needs:

- its device presets (``devices``) and design presets (``presets``);
- its typed options (``options``: name, parser, help): an option it does not declare is refused
  with the list of those it does, so an FPGA-only option never reaches an ASIC template;
- its bottleneck vocabulary (``bottlenecks``: label -> meaning) and the registered transforms
  that relieve each label (``remedies``), which the co-search offers;
- which spec metrics its costs model (``metrics``) and whether it honours specs in ``explore``;
- whether it runs several networks at once (``multi_network``: ``cost_networks``/``explore_networks``);
- how it runs each op kind (``execution``: on the compute array, a vector unit, fused into the
  producer, on the host, as data layout), so that every op is costed or explained;
- a cost function and a design-space exploration, vectorized over designs, never importing torch.

Registering a template (``TEMPLATES``, or the ``nn2hw.templates`` entry-point group for a plugin)
enrols it in the conformance suite (``nn2hw.testing.TemplateContract``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nn2hw.errors import ConfigError, HardwareError
from nn2hw.hardware.records import Execution, Exploration, NetworkCost, Uncosted
from nn2hw.registry import Registry, suggest
from nn2hw.workload import Layer, OpKind, Workload


@dataclass(frozen=True)
class Option:
    """One option a template takes (``--hw-param NAME=VALUE`` on the CLI, ``options={NAME: value}``
    in the API): ``parse`` turns a string or a value into the checked value (a ``ConfigError``
    otherwise)."""

    name: str
    parse: Callable[[Any], Any]
    help: str


EXECUTION_REASONS = {
    Execution.FUSED: "fused into the op that produces its input (no cycles of its own)",
    Execution.HOST: "left to the host processor (not costed on the accelerator)",
    Execution.LAYOUT: "data layout only (addressing, no compute)",
    Execution.OMITTED: "outside the template's published model",
}
NOT_UNDERSTOOD = "op not understood by the extractor, so no template can cost it"
"""Default reasons of the modes without cycles; a template may say more (``execution_reason``)."""

TRANSFORMER_REMEDIES = ("head_prune", "layer_drop")
"""What shrinks a Transformer besides channel cuts (an FFN's width) and fewer bits: fewer attention heads
(the Q/K/V and output projections, both attention products and the softmax shrink) and fewer encoder
layers (a whole block goes). A template offers them with ``with_transformer_remedies``."""
TRANSFORMER_SPACE_OPTIONS: Mapping[str, tuple[Any, ...]] = {"layer_drop": ("attention",)}
"""The option that keeps a CNN's space as it was: ``layer_drop`` offers only blocks with attention
products (``nn2hw.compress.layer_drop.ATTENTION_ONLY``); a CNN has no attention heads, so ``head_prune``
offers it nothing anyway. A space file still drops a ResNet's blocks (``layer_drop: {drop: [true]}``)."""


def with_transformer_remedies(remedies: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """``remedies`` with ``TRANSFORMER_REMEDIES`` added to every label that channel cuts relieve: removing
    heads or a block removes channels, MACs, weights and activations as a cut does, so it shortens
    what a cut shortens. Use with ``TRANSFORMER_SPACE_OPTIONS`` in the template's ``space_options``."""
    return {label: (*names, *(t for t in TRANSFORMER_REMEDIES if t not in names)) if "channel_cut" in names else names
            for label, names in remedies.items()}


class HardwareTemplate(ABC):
    """A family of accelerators with a parameter space, presets, typed options and a cost model."""

    name: ClassVar[str]
    description: ClassVar[str]
    bottlenecks: ClassVar[Mapping[str, str]] = {}
    """The labels this template puts on a layer (``LayerCost.bottleneck``) -> what each means."""
    remedies: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """Bottleneck label -> the registered transforms that shorten a layer with that bottleneck on
    this template; the co-search offers them."""
    options: ClassVar[tuple[Option, ...]] = ()
    space_options: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    """A remedy's options in this template's search space when the space configuration gives none
    (transform name -> its options): e.g. the ``cpu`` runs int8 kernels only when weights *and*
    activations are 8-bit, so it offers quantization as ``w8a8``."""
    metrics: ClassVar[tuple[str, ...]] = ("latency_ms",)
    """The spec metrics (``nn2hw.spec.METRICS``) this template's costs model."""
    honours_specs: ClassVar[bool] = False
    """True when ``explore(..., specs=Spec(...))`` returns the best design *meeting* latency,
    energy and area specs (raising ``InfeasibleError`` when none does). Without it the objective's
    best is the right choice for any spec (the FPGA template: latency is its only spec)."""
    multi_network: ClassVar[bool] = False
    """True when ``cost_networks``/``explore_networks`` run several networks on one design."""
    execution: ClassVar[Mapping[OpKind, Execution]] = {}
    """How each op kind runs on this template; a kind missing here cannot run on it."""
    fused_by_graph: ClassVar[bool] = False
    """True when the template runs a runtime that fuses ops by looking at the graph (batch norm folded
    into the convolution before it, an activation into its producer): a layer may then be reported
    as fused into a kernel whatever ``execution`` says for its kind."""
    measured: ClassVar[bool] = False
    """True when the template is a real device that times the network (the ``cpu`` template):
    ``cost`` then predicts, and ``nn2hw.measured`` times the network a user deploys."""
    variation_knobs: ClassVar[tuple[str, ...]] = ()
    """The knobs that change a network's accuracy under device variation (the cim template's device,
    crossbar size, cell and ADC bits): a search with an accuracy-under-variation spec searches them
    unless its space names knobs. Empty: the template models no variation, and refuses that spec."""
    variation_options: ClassVar[tuple[str, ...]] = ()
    """The options that change the noise a design is evaluated with (non-idealities overriding the device's)."""

    # --- presets and options -------------------------------------------------------------------
    @abstractmethod
    def devices(self) -> Sequence[str]:
        """Names of the device presets this template knows (boards, technology nodes...)."""

    def accepts_device(self, device: str) -> bool:
        """Whether ``TEMPLATE:device`` names a device of this template (a preset, by default; a
        predictor template takes a file)."""
        return device in self.devices()

    def presets(self) -> Sequence[str]:
        """Names of its design presets (``--hw-param preset=NAME``); none by default."""
        return ()

    @abstractmethod
    def design_fields(self) -> Sequence[str]:
        """The design parameters ``parse_design`` and the grid take (``--hw-param KEY=VALUE``)."""

    def option_names(self) -> tuple[str, ...]:
        return tuple(option.name for option in self.options)

    def split_params(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(design parameters, parsed options) of ``--hw-param`` pairs; a key that is neither is an
        error listing the template's design fields and options."""
        fields = set(self.design_fields())
        design = {k: v for k, v in params.items() if k in fields}
        return design, self.parse_options({k: v for k, v in params.items() if k not in fields})

    def parse_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Checked option values; an unknown option names the template's options and design fields."""
        declared = {option.name: option for option in self.options}
        for key in options:
            if key in self.design_fields():
                raise ConfigError(f"{key!r} is a design parameter of the {self.name} template, given here among its "
                                  "options.", f"Give it as a design value: --hw-param {key}=... on the command line, "
                                  "hw_params= in nn2hw.api, hw_grid= in SearchSettings.")
            if key not in declared:
                known = [*declared, *self.design_fields()]
                raise ConfigError(
                    f"The {self.name} template has no option or design parameter {key!r}.{suggest(str(key), known)}",
                    f"Its options: {', '.join(declared) or 'none'}; its design parameters: "
                    f"{', '.join(self.design_fields()) or 'none'} (`nn2hw list templates {self.name}` describes them).")
        return {key: declared[key].parse(value) for key, value in options.items()}

    # --- op kinds ---------------------------------------------------------------------------------
    def execution_of(self, layer: Layer, options: Mapping[str, Any]) -> Execution | None:
        """How ``layer`` runs here (``execution`` by kind; a template may look closer, e.g. at the op
        or an option). None for an op the extractor did not understand (``OpKind.OTHER``)."""
        if layer.kind is OpKind.OTHER:
            return None
        mode = self.execution.get(layer.kind)
        if mode is None:
            runs = [name for name, t in TEMPLATES.items() if layer.kind in t.execution]
            raise HardwareError(
                f"The {self.name} template cannot run {layer.kind.value} ops such as {layer.name!r} ({layer.op}).",
                f"Use a template that runs them: {', '.join(runs) or 'none is registered'}; or leave the op out "
                f"of the network.")
        return mode

    def execution_reason(self, layer: Layer, mode: Execution | None) -> str:
        """Why ``layer`` has no cycles of its own in ``mode`` (for the report)."""
        return NOT_UNDERSTOOD if mode is None else EXECUTION_REASONS.get(mode, mode.value)

    def uncosted(self, layer: Layer, mode: Execution | None) -> Uncosted:
        """The record of an op without cycles of its own: how it runs and why."""
        return Uncosted(layer.name, layer.op or layer.kind.value, self.execution_reason(layer, mode), mode)

    # --- designs and costs --------------------------------------------------------------------------
    @abstractmethod
    def parse_design(self, params: Mapping[str, Any]) -> Any:
        """A design from user parameters (``--hw-param`` strings, a preset, a mapping), validated."""

    def design_from_params(self, params: Mapping[str, Any]) -> Any:
        """The design ``--hw-param`` values describe, or None when they do not fix one (no
        parameter, or a list of values for some axis): the exploration then picks it."""
        return None

    @abstractmethod
    def cost(self, workload: Workload, design: Any, device: str | None = None, **options: Any) -> NetworkCost:
        """Cost of ``workload`` on one design (resources are reported, not enforced)."""

    @abstractmethod
    def explore(self, workload: Workload, device: str | None = None, grid: Any = None,
                **options: Any) -> Exploration:
        """Best feasible design for ``workload`` over a grid (vectorized), plus the Pareto set."""

    def default_grid(self, workload: Workload) -> Mapping[str, Sequence[Any]]:
        """The axes of the default exploration grid for ``workload`` (parameter -> values).

        The co-search offers every axis with several values as a hardware knob ("auto" or one
        value); ``explore(grid={axis: [value]})`` must accept such a restriction. A template
        without a grid offers no knobs.
        """
        return {}

    def knob_axes(self, workload: Workload) -> Mapping[str, Sequence[Any]]:
        """The values the co-search may pin each hardware knob to: the default grid's axes, plus any
        a template offers beyond its default exploration (the cim template's devices and finer ADCs)."""
        return self.default_grid(workload)

    def label_base(self, workload: Workload, cost: NetworkCost, device: str | None = None,
                   **options: Any) -> NetworkCost:
        """The base network's cost with its bottleneck labels refined by what this device's own
        measurements say pays (the search builds its space from these labels); unchanged by default."""
        return cost

    def cost_networks(self, workloads: Mapping[str, Workload], design: Any, device: str | None = None,
                      **options: Any) -> NetworkCost:
        """Several networks on one design (``multi_network`` templates only)."""
        raise self._one_network(workloads)

    def explore_networks(self, workloads: Mapping[str, Workload], device: str | None = None, grid: Any = None,
                         **options: Any) -> Exploration:
        """The best design for several networks at once (``multi_network`` templates only)."""
        raise self._one_network(workloads)

    def _one_network(self, workloads: Mapping[str, Workload]) -> ConfigError:
        hosts = [name for name, t in TEMPLATES.items() if t.multi_network]
        return ConfigError(f"Several networks ({', '.join(workloads)}) share one design only on a multi-network "
                           f"template; {self.name!r} runs one network.",
                           f"Use --hardware {' or '.join(hosts) or '(none registered)'}, or search one model at a "
                           "time.")


TEMPLATES: Registry[HardwareTemplate] = Registry("hardware template", "nn2hw list templates", builtins="nn2hw.hardware",
                                                 group="nn2hw.templates", kind=HardwareTemplate)


def split_hardware(spec: str) -> tuple[str, str | None]:
    """'fpga:zcu102' -> ('fpga', 'zcu102'); 'systolic' -> ('systolic', None)."""
    template, _, device = spec.partition(":")
    if not template:
        raise ConfigError(f"Empty hardware name in {spec!r}.", "Write TEMPLATE[:DEVICE], e.g. fpga:zcu102.")
    return template, device or None


def get_template(spec: str) -> tuple[HardwareTemplate, str | None]:
    """The registered template and device named by a 'TEMPLATE[:DEVICE]' string."""
    name, device = split_hardware(spec)
    template = TEMPLATES.get(name)
    if device is not None and not template.accepts_device(device):
        raise ConfigError(
            f"Template {name!r} has no device {device!r}.{suggest(device, list(template.devices()))}",
            f"Use one of: {', '.join(template.devices())}.",
        )
    return template, device

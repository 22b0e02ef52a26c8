"""What a compression transform is: one class that owns its whole technique.

A transform (registered in ``nn2hw.compress.TRANSFORMS`` under its ``name``, which is also the
technique's name in space files and in the templates' remedies) declares

- its plan fields: ``choice_type``, a frozen dataclass whose fields (all defaulting to None) are
  the ``LayerChoice`` fields it owns and whose ``__post_init__`` checks their values;
- its search dimension: ``offer`` builds the choices for one layer from the layer, its options
  (``option_name`` / ``default_options`` / ``check_option`` say what a space file may give) and
  the pretrained weights; a choice is a partial ``LayerChoice`` (a mapping of its fields);
- its workload side (``problems``, ``changes``, optionally ``rewritten_problems``: pure, no
  torch) and its torch side (``apply_model``; torch imported lazily);
- how a report describes a choice (``label``, ``describe``).

``nn2hw.compress.pipeline`` runs the registered transforms in ``order``. The conformance suite
(``nn2hw.testing.TransformContract``) checks that extracting the workload of a rewritten model
equals rewriting the extracted workload, and that choice 0 of every dimension is the identity.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nn2hw._checks import is_int
from nn2hw.errors import PlanError, Problem
from nn2hw.plan import LayerChoice
from nn2hw.registry import Registry
from nn2hw.workload import Layer, OpKind, Workload

if TYPE_CHECKING:
    from torch import nn

    from nn2hw.compress.quantize import ActivationRange

__all__ = ["FUNCTIONAL_OPS", "TRANSFORMS", "Offer", "Problem", "SpaceContext", "Transform", "check_int",
           "has_module_weights", "ordered_transforms"]

FUNCTIONAL_OPS = frozenset({"conv1d", "conv2d", "linear"})
"""Op names of conv/linear layers called as functions (``F.conv2d``...): no module owns their weights."""


def has_module_weights(layer: Layer) -> bool:
    """Whether ``layer`` is a conv or linear module, whose weights a transform can rewrite."""
    return layer.kind in (OpKind.CONV, OpKind.LINEAR) and layer.op not in FUNCTIONAL_OPS


def check_int(name: str, value: Any, lo: int, hi: int | None = None, fix: str = "") -> None:
    """A ``PlanError`` unless ``value`` is None or an integer (not a bool) in lo..hi (>= lo without
    ``hi``): what a choice type's ``__post_init__`` checks of an integer plan field."""
    if value is not None and (not is_int(value) or value < lo or (hi is not None and value > hi)):
        span = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise PlanError(f"{name}={value!r} is not an integer {span}.", fix or f"Give {name} as an integer {span}.")


@dataclass(frozen=True)
class Offer:
    """A transform's search dimension for one layer (or one coupling group of layers).

    ``choices[0]`` is None (leave the layers as they are); every other choice is a mapping of the
    transform's fields set on each of ``layers``. ``labels`` say each choice in words;
    ``leanest`` is the index of the choice with the lowest hardware cost. ``unchanged`` says what
    choice 0 keeps in the same fields as the other choices (``{"out_channels": 16}``), for a reader
    that compares choices (the ``uniform`` strategy); None when the fields have no such value.
    """

    layers: tuple[str, ...]
    choices: tuple[Mapping[str, Any] | None, ...]
    labels: tuple[str, ...]
    leanest: int
    unchanged: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.choices or self.choices[0] is not None or len(self.labels) != len(self.choices) \
                or not 0 <= self.leanest < len(self.choices):
            raise PlanError(f"Malformed search dimension for {list(self.layers)}: choice 0 must be None, one label "
                            f"per choice and the leanest index among them.", "Fix the transform's offer().")


@dataclass(frozen=True)
class SpaceContext:
    """What building a transform's dimension may read besides the workload.

    ``weights`` maps a layer name to its pretrained weight (a tensor or an array; None when the
    caller has no model): kernel patterns are chosen from it. ``activation_range`` maps a layer
    name to the largest |input| and |output| the pretrained model shows on a calibration batch
    (None without one): quantized activations take their integer bits from it.
    """

    weights: Callable[[str], Any] | None = None
    activation_range: Callable[[str], ActivationRange] | None = None


class Transform(ABC):
    """One compression technique (see the module docstring for what it declares)."""

    name: ClassVar[str]
    label: ClassVar[str]
    """How reports name the technique ('channel cut')."""
    order: ClassVar[int]
    """Application order (lower first): built-ins cut (0), expand (1), prune patterns (2), quantize (3)."""
    choice_type: ClassVar[type]
    option_name: ClassVar[str]
    """What a space file calls this technique's options (``keep``, ``bits``...)."""
    option_help: ClassVar[str]
    """What the options are, for error messages ('kept fractions strictly between 0 and 1')."""
    default_options: ClassVar[tuple[Any, ...]] = ()

    # --- plan fields ------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The ``LayerChoice`` fields this transform owns."""
        return tuple(f.name for f in dataclasses.fields(cls.choice_type))

    def selects(self, choice: LayerChoice) -> bool:
        """Whether ``choice`` sets one of this transform's fields."""
        return any(name in choice for name in self.fields())

    def read(self, choice: LayerChoice, layer: str = "?") -> Any:
        """This transform's fields of ``choice`` as its checked ``choice_type`` (a ``PlanError``
        naming the layer when a value is invalid)."""
        try:
            return self.choice_type(**{name: choice.get(name) for name in self.fields()})
        except PlanError as exc:
            raise PlanError(f"Layer {layer!r}: {exc.cause}", exc.fix) from None

    def selected(self, choices: Mapping[str, LayerChoice]) -> dict[str, Any]:
        """The checked choices (``choice_type``) of the layers that select this transform, in plan order."""
        return {name: self.read(c, name) for name, c in choices.items() if self.selects(c)}

    # --- the search dimension ---------------------------------------------------------------------
    def check_option(self, value: Any) -> bool:
        """Whether ``value`` is a valid option (an element of a space file's options list)."""
        return True

    @abstractmethod
    def offer(self, workload: Workload, layer: Layer, options: Sequence[Any], context: SpaceContext) -> Offer | None:
        """The dimension this transform offers ``layer`` with ``options`` (None: nothing to offer)."""

    # --- the workload side (pure) and the torch side --------------------------------------------
    @abstractmethod
    def problems(self, workload: Workload, choices: Mapping[str, Any]) -> list[Problem]:
        """What is wrong with ``choices`` (checked ``choice_type`` records, all selecting this
        transform) for ``workload``."""

    @abstractmethod
    def changes(self, workload: Workload, choices: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Layer field updates for ``Workload.with_changes`` (pure: no torch)."""

    def rewrite(self, workload: Workload, choices: Mapping[str, Any]) -> Workload:
        """``workload`` with ``choices`` applied (pure): ``Workload.with_changes`` of ``changes``. A
        transform that removes layers (``layer_drop``) overrides it."""
        return workload.with_changes(self.changes(workload, choices))

    def rewritten_problems(self, before: Workload, after: Workload, choices: Mapping[str, Any]) -> list[Problem]:
        """What is wrong with ``choices`` that only the rewritten workload shows: ``after`` is
        ``before`` with ``changes`` applied (called only when ``problems`` found none; by default
        nothing). The pipeline rewrites once and hands both here, so no check rewrites again."""
        return []

    @abstractmethod
    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, Any]) -> None:
        """Rewrite ``model`` in place; ``workload`` is its current workload (valid ``choices`` only)."""

    # --- reports ----------------------------------------------------------------------------------
    @abstractmethod
    def describe(self, choice: Any, before: Layer, after: Layer) -> str:
        """One choice in a few words, e.g. '64->48 ch', from the layer before and after the plan."""



TRANSFORMS: Registry[Transform] = Registry("transform", "nn2hw list transforms", builtins="nn2hw.compress",
                                           group="nn2hw.transforms", kind=Transform)


def ordered_transforms() -> list[Transform]:
    """The registered transforms in application order."""
    return sorted((t for _, t in TRANSFORMS.items()), key=lambda t: t.order)

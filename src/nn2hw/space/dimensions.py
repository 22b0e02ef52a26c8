"""The search space as data: categorical dimensions, single- and multi-network spaces, decoding.

A space is a tuple of ``Dimension``s; choice 0 of each is "leave it as it is" (or "let the DSE
choose" for hardware knobs), so the all-zero vector is the base model. A dimension's other
choices are partial layer choices (the fields of one transform, set on each of its layers) or
hardware knob values. Decoding needs no transform and no torch: it only writes the fields.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from nn2hw.errors import ConfigError
from nn2hw.plan import Plan

HARDWARE = "hardware"
"""The technique of a hardware knob dimension (the others are transform names)."""
KNOB_PREFIX = "hw:"
"""What a hardware knob dimension's name starts with: 'hw:<knob>'."""


@dataclass(frozen=True)
class Dimension:
    """One categorical decision. ``choices[i]`` is a JSON value; ``labels[i]`` says it in words.

    ``technique`` is a registered transform's name or 'hardware'; ``layers`` are the layers it
    changes (all layers of a coupling group for a channel cut). ``leanest`` is the index of the
    choice with the lowest hardware cost, used to bound the latency any candidate can reach.
    ``unchanged`` is what choice 0 keeps in the other choices' fields (the transform's
    ``Offer.unchanged``; None when it has none).
    """

    name: str
    technique: str
    layers: tuple[str, ...]
    choices: tuple[Any, ...]
    labels: tuple[str, ...]
    leanest: int
    unchanged: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "technique": self.technique, "layers": list(self.layers),
                "choices": list(self.choices), "labels": list(self.labels)}


def knob_dimension(name: str, values: Sequence[Any]) -> Dimension:
    """The dimension of hardware knob ``name``: choice 0 'auto' (the DSE picks), then each of ``values``."""
    return Dimension(f"{KNOB_PREFIX}{name}", HARDWARE, (), (None, *({name: v} for v in values)),
                     ("auto", *(f"{name}={v}" for v in values)), leanest=0)


def knob_name(dimension: Dimension) -> str:
    """The hardware knob a dimension searches ('hw:Tr' -> 'Tr')."""
    return dimension.name.removeprefix(KNOB_PREFIX)


@dataclass(frozen=True)
class Candidate:
    """A decoded point of the space: the plan and the hardware knobs fixed by the strategy."""

    indices: tuple[int, ...]
    plan: Plan
    hardware: Mapping[str, Any]


def _key(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


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

    def leanest(self) -> tuple[int, ...]:
        """The vector giving every layer its lowest-cost choice, hardware knobs left to the DSE."""
        return tuple(d.leanest for d in self.dimensions)

    def changes(self, indices: Sequence[int]) -> list[tuple[Dimension, str]]:
        """The dimensions an index vector moves away from choice 0, with the chosen label."""
        return [(d, d.labels[i]) for d, i in zip(self.dimensions, indices) if i != 0]

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
        return _key([d.to_dict() for d in self.dimensions])

    def decode(self, indices: Sequence[int]) -> Candidate:
        """The plan and hardware knobs of an index vector (one index per dimension)."""
        self._check_length(indices)
        plan, hardware = self.base, {}
        for dim, index in zip(self.dimensions, indices):
            if not 0 <= int(index) < len(dim.choices):
                raise ConfigError(f"Index {index} is outside the {len(dim.choices)} choices of {dim.name!r}.",
                                  "Decode vectors proposed for this space only.")
            value = dim.choices[int(index)]
            if value is None:
                continue
            if dim.technique == HARDWARE:
                hardware.update(value)
            else:
                for layer in dim.layers:
                    plan = plan.with_choice(layer, **value)
        return Candidate(tuple(int(i) for i in indices), plan, hardware)

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

    @cached_property  # computed once from the parts; mypy sees a property overridden by a cached one
    def dimensions(self) -> tuple[Dimension, ...]:  # type: ignore[override]
        if len(self.parts) == 1:
            return self.parts[0][1].dimensions
        return tuple(replace(d, name=f"{net}/{d.name}") for net, space in self.parts for d in space.dimensions)

    @property
    def key(self) -> str:
        return _key([[net, space.key] for net, space in self.parts])

    @property
    def bases(self) -> dict[str, Plan]:
        return {net: space.base for net, space in self.parts}

    def decode(self, indices: Sequence[int]) -> JointCandidate:
        self._check_length(indices)
        plans: dict[str, Plan] = {}
        hardware: dict[str, Any] = {}
        start = 0
        for net, space in self.parts:
            part = space.decode(indices[start:start + len(space.dimensions)])
            plans[net] = part.plan
            hardware.update(part.hardware)
            start += len(space.dimensions)
        return JointCandidate(tuple(int(i) for i in indices), plans, hardware)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "networks": [net for net, _ in self.parts],
                "dimensions": [d.to_dict() for d in self.dimensions]}

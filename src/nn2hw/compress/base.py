"""What every compression transform provides: a pure workload side and a torch side.

A transform owns some fields of ``nn2hw.plan.LayerChoice`` (``channel_cut`` owns
``out_channels``...). Given the choices that select it, it can

- list what is wrong with them for a workload (``problems``: (cause, fix) pairs, no torch);
- say how they change the workload's ``Layer`` fields (``changes``, fed to ``Workload.with_changes``);
- rewrite a torch model in place the same way (``apply_model``; torch imported lazily).

``nn2hw.plan.Plan`` runs the registered transforms in ``order``; the test suite checks, for every
registered transform, that extracting the workload of the rewritten model equals rewriting the
extracted workload.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from torch import nn

    from nn2hw.plan import LayerChoice
    from nn2hw.workload import Workload

Problem = tuple[str, str]
"""A (cause, fix) pair: one thing wrong with a plan and how to fix it."""


class Transform(ABC):
    """One compression transform (registered in ``nn2hw.compress.TRANSFORMS``)."""

    name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]
    """The ``LayerChoice`` fields this transform reads; a choice selects it when any is set."""
    order: ClassVar[int]
    """Application order (lower first): cut, then expand, then patterns, then quantization."""
    summary: ClassVar[str]

    def selects(self, choice: LayerChoice) -> bool:
        """Whether ``choice`` asks for this transform (one of its fields differs from the default)."""
        return any(getattr(choice, f) != getattr(type(choice)(), f) for f in self.fields)

    def selected(self, choices: Mapping[str, LayerChoice]) -> dict[str, LayerChoice]:
        """The layer choices that ask for this transform, in the plan's order."""
        return {name: c for name, c in choices.items() if self.selects(c)}

    @abstractmethod
    def problems(self, workload: Workload, choices: Mapping[str, LayerChoice]) -> list[Problem]:
        """What is wrong with ``choices`` (all selecting this transform) for ``workload``."""

    @abstractmethod
    def changes(self, workload: Workload, choices: Mapping[str, LayerChoice]) -> dict[str, dict[str, Any]]:
        """Layer field updates for ``Workload.with_changes`` (pure: no torch)."""

    @abstractmethod
    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, LayerChoice]) -> None:
        """Rewrite ``model`` in place; ``workload`` is its current workload (valid ``choices`` only)."""

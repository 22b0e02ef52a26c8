"""Networks trained as slices of one set of weights (RT3 families: ``nn2hw.search.family``).

Every variant of a family is its plan applied to one base model. A cut keeps rows and columns of
the base's tensors, a grown kernel pads them, and the transforms record those steps on the module
(``compress._torch.derive``); masks and fake quantizers are parametrizations over an original that
is such a slice. So each parameter of a variant is a function of the base parameter of the same
name, and ``JointNetworks`` holds **one** copy of the base's parameters and computes every
variant's from it on each forward (``torch.func.functional_call``): a training step on the joint
module moves the shared weights of all variants at once (the sandwich rule: every variant trains on
every batch, their losses summed; ``nn2hw.evaluate.finetune`` reads ``stacks_members``). Batch-norm
statistics stay each variant's own (a narrower network has other activation statistics, as in
slimmable networks). A parameter the recorded steps do not reproduce exactly (checked when built,
on the effective weight where it is parametrized) is left the variant's own and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize

from nn2hw.compress import _torch

ORIGINAL = ".original"
PARAMETRIZED = ".parametrizations."


@dataclass(frozen=True)
class Derivation:
    """How a variant's parameter is computed from the base model's parameter ``base``."""

    base: str
    steps: tuple[_torch.Step, ...]

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            tensor = step(tensor)
        return tensor


def base_name(name: str) -> str:
    """The base model's name of a variant's parameter: ``a.parametrizations.weight.original`` is
    ``a.weight`` (a masked or quantized weight's original)."""
    if PARAMETRIZED in f".{name}" and name.endswith(ORIGINAL):
        owner, _, rest = f".{name}".partition(PARAMETRIZED)
        return f"{owner}.{rest[: -len(ORIGINAL)]}".lstrip(".")
    return name


def _effective(module: nn.Module, attr: str, value: torch.Tensor) -> torch.Tensor:
    """``value`` as module's ``attr`` would use it: through its parametrizations, if any."""
    if parametrize.is_parametrized(module, attr):
        steps = cast(nn.ModuleDict, module.parametrizations)[attr]  # a ParametrizationList
        for step in cast(nn.ModuleList, steps):
            value = step(value)
    return value


def derivations(base: nn.Module, variant: nn.Module) -> tuple[dict[str, Derivation], tuple[str, ...]]:
    """Per parameter of ``variant``: its ``Derivation`` from ``base``'s parameters (shared), or its
    name among the variant's own (no base parameter of that name, or the recorded steps do not give
    its value exactly)."""
    sources = dict(base.named_parameters())
    shared: dict[str, Derivation] = {}
    own: list[str] = []
    with torch.no_grad():
        for name, param in variant.named_parameters():
            source = sources.get(base_name(name))
            owner, _, attr = base_name(name).rpartition(".")
            module = variant.get_submodule(owner) if owner else variant
            found = Derivation(base_name(name), _torch.derivation(module, attr))
            if source is not None and _same(module, attr, found(source.detach()), param.detach()):
                shared[name] = found
            else:
                own.append(name)
    return shared, tuple(own)


def _same(module: nn.Module, attr: str, derived: torch.Tensor, original: torch.Tensor) -> bool:
    if derived.shape != original.shape:
        return False
    return torch.equal(_effective(module, attr, derived), _effective(module, attr, original))


class JointNetworks(nn.Module):
    """Variants of one base model trained as slices of one set of its weights (see the module's
    docstring). ``forward`` returns every variant's output, stacked on a new first axis."""

    stacks_members = True
    """``nn2hw.evaluate.finetune`` sums the loss over the first axis (one term per variant)."""

    def __init__(self, base: nn.Module, variants: Sequence[nn.Module]) -> None:
        super().__init__()
        found = [derivations(base, v) for v in variants]
        names = sorted({d.base for shared, _ in found for d in shared.values()})
        sources = dict(base.named_parameters())
        self.shared_names = tuple(names)
        self.shared = nn.ParameterList(
            nn.Parameter(sources[n].detach().clone(), requires_grad=sources[n].requires_grad) for n in names)
        self.variants = nn.ModuleList(variants)
        self._derived = [{name: (names.index(d.base), d) for name, d in shared.items()} for shared, _ in found]
        self.own = tuple(own for _, own in found)
        """Per variant: the names of its parameters that are its own (not slices of the shared set)."""
        for variant, derived in zip(variants, self._derived):
            for name in derived:
                variant.get_parameter(name).requires_grad_(False)  # trained through the shared copy
        self.config = getattr(variants[0], "config", None)  # the fine-tune trims padding by it (text models)

    def parameters_of(self, index: int) -> dict[str, torch.Tensor]:
        """Variant ``index``'s shared parameters, computed from the shared set (differentiable)."""
        return {name: derivation(self.shared[i]) for name, (i, derivation) in self._derived[index].items()}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([functional_call(v, self.parameters_of(k), (inputs,), strict=False)
                            for k, v in enumerate(self.variants)])

    def materialize(self) -> list[nn.Module]:
        """Write each variant's shared parameters from the shared set into the variant (which then
        runs on its own, e.g. to be tested, bundled or exported) and return the variants."""
        with torch.no_grad():
            for k, variant in enumerate(self.variants):
                for name, value in self.parameters_of(k).items():
                    variant.get_parameter(name).copy_(value)
        return list(self.variants)

    def shared_state(self) -> dict[str, torch.Tensor]:
        """The one set of weights, by the base model's parameter names (loadable into the base model
        with ``strict=False``)."""
        return {name: p.detach().clone() for name, p in zip(self.shared_names, self.shared)}

    def steps_of(self, index: int) -> dict[str, tuple[str, list[tuple[Any, ...]]]]:
        """Variant ``index``'s shared parameters: each one's base name and steps, as records
        (``compress._torch.step_of`` reads them back)."""
        return {name: (d.base, [step.record() for step in d.steps]) for name, (_, d) in self._derived[index].items()}

    def counts(self) -> tuple[int, int]:
        """(parameters of all variants computed from the shared set, parameters that are a variant's own),
        as numbers of values."""
        shared = sum(t.numel() for k in range(len(self.variants)) for t in self.parameters_of(k).values())
        own = sum(v.get_parameter(n).numel() for v, names in zip(self.variants, self.own) for n in names)
        return shared, own

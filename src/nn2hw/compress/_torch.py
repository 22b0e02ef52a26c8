"""Torch-side building blocks of the transforms, imported only when a model is rewritten.

Masks and fake quantizers are weight parametrizations (``torch.nn.utils.parametrize``): the
module's ``weight`` is recomputed from ``parametrizations.weight.original`` on every use, so an
optimizer step on the original can never revive a pruned weight or leave the quantization grid.
Their state (mask, integer bits) is in buffers, hence in the ``state_dict`` of a result bundle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

import torch
from torch import nn
from torch.nn.utils import parametrize

from nn2hw.errors import PlanError
from nn2hw.fixedpoint import fixed_point, straight_through
from nn2hw.workload.torch_extract import COMPRESSION_FIELDS_ATTR, FIXED_POINT_ATTR

WEIGHT_MODULES = (nn.Conv1d, nn.Conv2d, nn.Linear)
WeightModule = nn.Conv1d | nn.Conv2d | nn.Linear
M = TypeVar("M", bound=nn.Module)


@overload
def weight_module(model: nn.Module, name: str, kinds: tuple[type[M], ...], transform: str = ...) -> M: ...
@overload
def weight_module(model: nn.Module, name: str, *, transform: str = ...) -> WeightModule: ...
def weight_module(model: nn.Module, name: str, kinds: tuple[type[nn.Module], ...] = WEIGHT_MODULES,
                  transform: str = "this transform") -> nn.Module:
    """The module called ``name`` in ``model``, which must be one of ``kinds``; a ``PlanError`` otherwise."""
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise PlanError(
            f"Layer {name!r} is not a module of the model (a functional op, or a second call of a shared "
            f"module), so {transform} cannot rewrite its weights.",
            "Leave it out of the plan, or define it as an nn.Conv2d / nn.Linear module called once.",
        ) from None
    if not isinstance(module, kinds):
        raise PlanError(
            f"Layer {name!r} is a {type(module).__name__}; {transform} rewrites "
            f"{' / '.join(k.__name__ for k in kinds)} modules only.",
            "Leave this layer out of that part of the plan.",
        )
    return module


def is_compressed(module: nn.Module) -> bool:
    """Whether an nn2hw transform already rewrote ``module``."""
    return hasattr(module, COMPRESSION_FIELDS_ATTR)


def record_fields(module: nn.Module, **fields: int) -> None:
    """Record Layer fields on ``module`` for the workload extractor (bits, kept weights per kernel)."""
    setattr(module, COMPRESSION_FIELDS_ATTR, {**getattr(module, COMPRESSION_FIELDS_ATTR, {}), **fields})


def record_fixed_point(module: nn.Module, **steps: float) -> None:
    """Record the fixed-point step of ``module``'s weights or inputs (``weight_step``, ``input_step``)."""
    setattr(module, FIXED_POINT_ATTR, {**getattr(module, FIXED_POINT_ATTR, {}), **steps})


DERIVED_ATTR = "_nn2hw_derived"
"""Per parameter name of a rewritten module: the ``Take``/``Pad`` steps that made it from the base
model's parameter of the same name (``derive``); read by ``derivation``."""


@dataclass(frozen=True, eq=False)
class Take:
    """Keep the entries ``index`` (ascending) along ``axis``: a cut's slice of a parameter."""

    axis: int
    index: torch.Tensor

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.index_select(self.axis, self.index.to(tensor.device))

    def record(self) -> tuple[str, int, torch.Tensor]:
        return ("take", self.axis, self.index)


@dataclass(frozen=True, eq=False)
class Pad:
    """Zero-pad the trailing axes by ``widths`` (``torch.nn.functional.pad``'s order): a grown kernel."""

    widths: tuple[int, ...]

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(tensor, self.widths)

    def record(self) -> tuple[str, tuple[int, ...]]:
        return ("pad", self.widths)


Step = Take | Pad


def step_of(record: Sequence[Any]) -> Step:
    """The step a ``record()`` describes (as saved with a family's shared weights)."""
    if record[0] == "take":
        return take(int(record[1]), record[2])
    if record[0] == "pad":
        return Pad(tuple(int(w) for w in record[1]))
    raise ValueError(f"unknown step {record[0]!r}")


def derive(module: nn.Module, name: str, *steps: Step) -> None:
    """Replace parameter ``name`` by the result of ``steps`` on it (new shape allowed; requires_grad
    kept) and record the steps, so a parameter of a rewritten model can be recomputed from the base
    model's (``derivation``: networks trained as slices of one set of weights)."""
    old = getattr(module, name)
    if parametrize.is_parametrized(module, name):
        raise PlanError(
            f"The {name} of {type(module).__name__} is parametrized, so its shape cannot be changed.",
            "Cut channels and expand kernels on the plain base model, before other parametrizations.",
        )
    value = old.detach()
    for step in steps:
        value = step(value)
    setattr(module, name, nn.Parameter(value.clone().contiguous(), requires_grad=old.requires_grad))
    recorded = getattr(module, DERIVED_ATTR, {})
    setattr(module, DERIVED_ATTR, {**recorded, name: (*recorded.get(name, ()), *steps)})


def take(axis: int, index: Any) -> Take:
    """``Take`` of integer indices given as a tensor or a sequence."""
    index = torch.as_tensor(index)
    assert not index.dtype.is_floating_point and index.dtype != torch.bool, "indices, not a mask"
    return Take(axis, index.long())


def derivation(module: nn.Module, name: str) -> tuple[Step, ...]:
    """The steps that made ``module``'s parameter ``name`` from the base model's (none: unchanged)."""
    return tuple(getattr(module, DERIVED_ATTR, {}).get(name, ()))


def set_buffer(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Replace a registered buffer (e.g. a BatchNorm running mean) by a new tensor."""
    module._buffers[name] = value.detach().clone().contiguous()


class WeightMask(nn.Module):
    """Weight parametrization ``w * mask``; the mask is a buffer (saved in the state_dict)."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


class FixedPointWeight(nn.Module):
    """Weight parametrization: fixed-point fake quantization with a straight-through gradient.

    ``int_bits`` is a buffer so that a reloaded bundle uses the value chosen on the trained
    weights, not one recomputed from freshly initialized ones.
    """

    int_bits: torch.Tensor

    def __init__(self, bits: int, int_bits: int) -> None:
        super().__init__()
        self.bits = bits
        self.register_buffer("int_bits", torch.tensor(int_bits, dtype=torch.int64))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return straight_through(weight, fixed_point(weight, self.bits, int(self.int_bits)))


class Passthrough(nn.Module):
    """What a dropped block becomes: it returns its first input (a block's other inputs, such as an
    attention mask, are ignored)."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x


class ActivationQuantizer:
    """Fixed-point fake quantization of a layer's input (``int_bits``) and output (``out_int_bits``,
    the input's when None) with a straight-through gradient: each side has its own range, since a
    Transformer's FFN output holds outliers (|y| ~ 200) its input never shows."""

    def __init__(self, bits: int, int_bits: int, out_int_bits: int | None = None) -> None:
        self.bits = bits
        self.int_bits = int_bits
        self.out_int_bits = int_bits if out_int_bits is None else out_int_bits

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return straight_through(x, fixed_point(x, self.bits, self.int_bits))

    def output(self, y: torch.Tensor) -> torch.Tensor:
        return straight_through(y, fixed_point(y, self.bits, self.out_int_bits))


def accumulator_bias(bias: torch.Tensor, input_frac_bits: int, weight_frac_bits: int) -> torch.Tensor:
    """``bias`` as the accumulator of a fixed-point layer holds it: rounded to the step of the products
    of its inputs and weights, 2^-(input_frac + weight_frac). An int8 kernel (QGemm, QLinearConv)
    takes exactly that int32 bias, so the fake-quantized layer computes what it computes. Not
    clamped: an accumulator is as wide as its products need (int32 for int8 operands)."""
    step = 2.0 ** -(input_frac_bits + weight_frac_bits)
    return torch.round(bias / step) * step


@contextmanager
def _bias_in_accumulator(module: nn.Module, quantizer: ActivationQuantizer) -> Iterator[None]:
    """While a layer with fixed-point weights and inputs runs, its bias is on the accumulator's grid
    (``accumulator_bias``, straight-through gradient). The parameter itself is left as trained (the
    state_dict is unchanged); a layer with float weights or no bias is left alone."""
    bias = module._parameters.get("bias")
    weights = cast(nn.ModuleList, cast(nn.ModuleDict, module.parametrizations)["weight"]) \
        if parametrize.is_parametrized(module, "weight") else nn.ModuleList()
    fixed = next((p for p in weights if isinstance(p, FixedPointWeight)), None)
    if bias is None or fixed is None:
        yield
        return
    grid = accumulator_bias(bias, quantizer.bits - quantizer.int_bits, fixed.bits - int(fixed.int_bits))
    module._parameters["bias"] = cast(nn.Parameter, straight_through(bias, grid))  # read by the layer's forward
    try:
        yield
    finally:
        module._parameters["bias"] = bias


_ACT_QUANTIZED: dict[type[nn.Module], type[nn.Module]] = {}
ACT_QUANTIZER_ATTR = "nn2hw_act_quantizer"


def _act_quantized_class(cls: type[nn.Module]) -> type[nn.Module]:
    """A subclass of ``cls`` whose forward quantizes its first input and its output (and, where the
    weights are fixed point too, adds the bias on the accumulator's grid: ``_bias_in_accumulator``).

    It keeps ``cls.__module__`` so that tracers (torch.fx's leaf test) treat it as they treat
    ``cls``; being inside forward, the quantization neither changes the tensors the module's
    hooks see as inputs nor appears as separate ops in a trace.
    """
    if cls not in _ACT_QUANTIZED:
        def forward(self: nn.Module, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            quantize = getattr(self, ACT_QUANTIZER_ATTR)
            with _bias_in_accumulator(self, quantize):
                # nn.Module declares forward as a Callable attribute, which mypy does not find through super()
                return quantize.output(super(sub, self).forward(quantize.input(x), *args, **kwargs))  # type: ignore[misc]

        sub: type[nn.Module] = type(f"ActQuantized{cls.__name__}", (cls,),
                                    {"forward": forward, "__module__": cls.__module__})
        _ACT_QUANTIZED[cls] = sub
    return _ACT_QUANTIZED[cls]


def quantize_activations(module: nn.Module, bits: int, int_bits: int, out_int_bits: int | None = None) -> None:
    """Make ``module`` fake-quantize its first input (``int_bits`` integer bits) and its output
    (``out_int_bits``, the input's when None) to ``bits``-bit fixed point."""
    setattr(module, ACT_QUANTIZER_ATTR, ActivationQuantizer(bits, int_bits, out_int_bits))
    module.__class__ = _act_quantized_class(type(module))


def add_weight_parametrization(module: nn.Module, parametrization: nn.Module) -> None:
    """Chain ``parametrization`` after any already on ``module.weight``."""
    parametrize.register_parametrization(module, "weight", parametrization)

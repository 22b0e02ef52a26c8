"""The deployable torch network of a compressed model: parametrizations baked in, quantization read off.

``apply_plan`` leaves masks and fixed-point weights as weight parametrizations and activation
quantizers inside ``forward``. An exported file needs plain tensors: ``freeze`` bakes every
parametrized weight (zeroed pattern weights stay dense zeros: a dense CPU kernel still multiplies
them), bakes the bias of a layer with fixed-point weights and inputs onto its accumulator's grid
(as that layer's forward adds it: ``compress._torch.accumulator_bias``) and, for layers that will run
as int8 operators, removes the activation quantizer, whose work the ONNX QuantizeLinear /
DequantizeLinear pair then does exactly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from nn2hw.compress._torch import ACT_QUANTIZER_ATTR, FixedPointWeight, accumulator_bias, quantize_activations

INT8_BITS = 8
"""Widest fixed-point value an int8 operator holds exactly."""


@dataclass(frozen=True)
class LayerQuant:
    """A layer's fixed-point formats as the plan applied them (``None``: that side stays float)."""

    name: str
    weight_bits: int | None = None
    weight_int_bits: int | None = None
    act_bits: int | None = None
    act_int_bits: int | None = None
    out_int_bits: int | None = None
    """The output's integer bits (``act_int_bits`` holds the input's)."""

    @property
    def int8(self) -> bool:
        """Whether weights and activations both fit int8, so the layer runs an int8 kernel."""
        return (self.weight_bits is not None and self.act_bits is not None
                and self.weight_bits <= INT8_BITS and self.act_bits <= INT8_BITS)

    @property
    def fp32_reason(self) -> str:
        """Why a quantized layer stays a float operator ('' for an int8 layer)."""
        if self.int8:
            return ""
        if self.act_bits is None:
            return (f"{self.weight_bits}-bit weights but float activations: an int8 kernel needs both quantized, so "
                    "it runs in fp32 with the fixed-point weights stored as float")
        if self.weight_bits is None:
            return (f"{self.act_bits}-bit activations but float weights: an int8 kernel needs both quantized, so it "
                    "runs in fp32 with the activations fake-quantized by float ops")
        return (f"{self.weight_bits}-bit weights / {self.act_bits}-bit activations are wider than int8: it runs in "
                "fp32 with the fixed-point values held in float")

    @property
    def weight_step(self) -> float:
        assert self.weight_bits is not None and self.weight_int_bits is not None
        return 2.0 ** (self.weight_int_bits - self.weight_bits)

    @property
    def act_step(self) -> float:
        """The input's quantization step."""
        assert self.act_bits is not None and self.act_int_bits is not None
        return 2.0 ** (self.act_int_bits - self.act_bits)

    @property
    def out_step(self) -> float:
        """The output's quantization step."""
        assert self.act_bits is not None and self.out_int_bits is not None
        return 2.0 ** (self.out_int_bits - self.act_bits)

    @property
    def bias_step(self) -> float | None:
        """The step of the bias a layer with fixed-point weights and inputs adds (input step x weight
        step: an int8 kernel's int32 bias scale); None unless both are fixed point."""
        if self.weight_bits is None or self.act_bits is None:
            return None
        return self.act_step * self.weight_step

    @property
    def act_range(self) -> tuple[float, float]:
        """The input's fixed-point range [-2^(int-1), 2^(int-1) - step]."""
        assert self.act_int_bits is not None
        top = 2.0 ** (self.act_int_bits - 1)
        return -top, top - self.act_step

    @property
    def out_range(self) -> tuple[float, float]:
        """The output's fixed-point range."""
        assert self.out_int_bits is not None
        top = 2.0 ** (self.out_int_bits - 1)
        return -top, top - self.out_step


def weight_parametrizations(module: nn.Module) -> tuple[nn.Module, ...]:
    """The parametrizations on ``module.weight``, first applied first (none when it has none)."""
    if not parametrize.is_parametrized(module, "weight"):
        return ()
    return tuple(cast(nn.ModuleList, cast(nn.ModuleDict, module.parametrizations)["weight"]))


def read_quant(name: str, module: nn.Module) -> LayerQuant | None:
    """The fixed-point formats the plan gave ``module`` (None when it is not quantized)."""
    weight = next((p for p in weight_parametrizations(module) if isinstance(p, FixedPointWeight)), None)
    act = getattr(module, ACT_QUANTIZER_ATTR, None)
    if weight is None and act is None:
        return None
    return LayerQuant(name,
                      weight.bits if weight is not None else None,
                      int(weight.int_bits) if weight is not None else None,
                      act.bits if act is not None else None,
                      act.int_bits if act is not None else None,
                      act.out_int_bits if act is not None else None)


def _bake_weight(module: nn.Module) -> None:
    """Replace a parametrized weight by its value. (``parametrize.remove_parametrizations`` edits the
    module's class, which a deep copy shares with the original model, so it is not used here.)"""
    value = cast(torch.Tensor, module.weight).detach().clone()
    module.__class__ = module.__class__.__bases__[0]  # parametrize's per-module subclass wraps the original
    del module._modules["parametrizations"]
    module.weight = nn.Parameter(value, requires_grad=False)


def _bake_bias(module: nn.Module, quant: LayerQuant) -> None:
    """Put the bias of a layer with fixed-point weights and inputs on its accumulator's grid, as the
    layer's forward does while it runs (its parameter stays as trained)."""
    bias = module._parameters.get("bias")
    if bias is None or quant.bias_step is None:
        return
    assert quant.act_bits is not None and quant.act_int_bits is not None
    assert quant.weight_bits is not None and quant.weight_int_bits is not None
    value = accumulator_bias(bias.detach(), quant.act_bits - quant.act_int_bits,
                             quant.weight_bits - quant.weight_int_bits)
    module.bias = nn.Parameter(value, requires_grad=False)


def freeze(model: nn.Module, *, int8: bool = True) -> tuple[nn.Module, dict[str, LayerQuant]]:
    """A copy of ``model`` (eval mode) with plain weights, and the quantized layers by module path.

    Every parametrized weight is replaced by its value (masks and fixed-point rounding baked in), the
    bias of a layer with fixed-point weights and inputs by its value on the accumulator's grid.
    With ``int8``, the layers whose weights and activations both fit int8 lose their activation
    quantizer: the exporter puts exact QuantizeLinear/DequantizeLinear pairs in its place.
    """
    frozen = copy.deepcopy(model).eval()
    quantized: dict[str, LayerQuant] = {}
    for name, module in list(frozen.named_modules()):
        quant = read_quant(name, module)
        if quant is not None and quant.act_bits is not None:  # unwrap first: parametrize expects its own class
            delattr(module, ACT_QUANTIZER_ATTR)
            module.__class__ = module.__class__.__mro__[1]  # the class the quantizing subclass wraps
        if parametrize.is_parametrized(module, "weight"):
            _bake_weight(module)
        if quant is None:
            continue
        _bake_bias(module, quant)
        quantized[name] = quant
        if quant.act_bits is not None and not (int8 and quant.int8):
            assert quant.act_int_bits is not None
            quantize_activations(module, quant.act_bits, quant.act_int_bits, quant.out_int_bits)
    return frozen, quantized

"""Per-layer fixed-point quantization of weights and, optionally, activations (HotNAS §2.5).

A value is rounded to a multiple of 2^-frac and clamped to [-2^(int-1), 2^(int-1) - 2^-frac],
with bits = int + frac. ``int`` may be 0 or negative (all bits fractional, a range below ±0.5),
as HotNAS's "0 integer bits" for ResNet-18 weights; frac stays within 0..32.

Weights are fake-quantized by a weight parametrization, activations (the layer's input and its
output) inside the layer's forward (``_torch.quantize_activations``); both pass gradients straight
through (STE) so the model fine-tunes. A layer with both quantized adds its bias as an int8 kernel
does, on the int32 accumulator's grid (step = input step x weight step; ``_torch.accumulator_bias``),
while the trained bias parameter stays as it is.

Integer bits when only a total width is given:
- weights: ``auto_int_bits``: with max|w| = f * 2^e (0.5 <= f < 1), int = e + 1, the range
  [-2^e, 2^e) holds every weight, so nothing is clipped and every other bit is resolution. The
  chosen value is a buffer, saved with the weights.
- activations: ``activation_int_bits`` applies the same rule to the largest |input| and, on its
  own, to the largest |output| of each layer on a calibration batch (``act_int_bits`` and
  ``out_int_bits``; ``with_quantization(..., calibration=batch)`` stores them in the plan, which
  stays self-contained). Each side has its own format because the two ranges can differ by 2^4 or
  more: MiniLM's FFN output layers read GELU outputs (|x| up to 25) and write its outlier
  dimensions (|y| up to 196); one format for both put the input on a step of 2 and cost 10 points
  of accuracy, two formats cost 4 (docs/compression.md). Without calibration, half the bits for both
  (``default_act_int_bits``): 8-bit activations cover [-8, 8) in steps of 1/16, which clips the
  large pre-BatchNorm outputs of many layers: calibrate.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nn2hw._checks import is_int
from nn2hw.compress.base import TRANSFORMS, Offer, SpaceContext, Transform, check_int, has_module_weights
from nn2hw.errors import PlanError, Problem
from nn2hw.fixedpoint import MAX_FRAC_BITS, fixed_point_step, int_bits_for
from nn2hw.plan import Plan
from nn2hw.workload.layer import Layer, Workload

if TYPE_CHECKING:
    import torch
    from torch import nn

MAX_BITS = 32
"""The widest operand a plan may ask for."""


@dataclass(frozen=True)
class QuantChoice:
    """``weight_bits`` / ``weight_int_bits``: fixed-point weights (integer bits chosen from the weight
    range when unset); ``act_bits``: the width of the layer's input and output activations,
    ``act_int_bits`` the input's integer bits, ``out_int_bits`` the output's (the input's when unset)."""

    weight_bits: int | None = None
    weight_int_bits: int | None = None
    act_bits: int | None = None
    act_int_bits: int | None = None
    out_int_bits: int | None = None

    def __post_init__(self) -> None:
        for kind in ("weight", "act"):
            bits, int_bits = getattr(self, f"{kind}_bits"), getattr(self, f"{kind}_int_bits")
            check_int(f"{kind}_bits", bits, 1, MAX_BITS, f"Use 1..{MAX_BITS} bits.")
            if int_bits is not None and bits is None:
                raise PlanError(f"{kind}_int_bits is set without {kind}_bits.", f"Give {kind}_bits (the total) too.")
            if bits is not None:
                check_int(f"{kind}_int_bits", int_bits, bits - MAX_FRAC_BITS, bits,
                          f"Integer bits lie between {bits - MAX_FRAC_BITS} and {bits} for {bits}-bit values "
                          f"(at most {MAX_FRAC_BITS} fraction bits), or leave them unset to choose automatically.")
        if self.out_int_bits is not None:
            if self.act_bits is None:
                raise PlanError("out_int_bits is set without act_bits.", "Give act_bits (the total) too.")
            check_int("out_int_bits", self.out_int_bits, self.act_bits - MAX_FRAC_BITS, self.act_bits,
                      f"Integer bits lie between {self.act_bits - MAX_FRAC_BITS} and {self.act_bits} for "
                      f"{self.act_bits}-bit values, or leave them unset to use the input's.")


def auto_int_bits(weight: torch.Tensor, bits: int) -> int:
    """Integer bits for ``bits``-bit weights: the fewest for which max|w| lies in range unclipped."""
    return int_bits_for(float(weight.detach().abs().max()) if weight.numel() else 0.0, bits)


@dataclass(frozen=True)
class ActivationRange:
    """The largest |input| and |output| a layer shows on a calibration batch."""

    input_max: float
    output_max: float

    def int_bits(self, bits: int) -> dict[str, int]:
        """The plan fields of ``bits``-bit activations that hold both sides unclipped."""
        return {"act_int_bits": int_bits_for(self.input_max, bits), "out_int_bits": int_bits_for(self.output_max, bits)}


def activation_int_bits(model: nn.Module, layers: Iterable[str], batch: torch.Tensor,
                        bits: int) -> dict[str, dict[str, int]]:
    """Per layer, the input and output integer bits (``act_int_bits``, ``out_int_bits``) that hold its
    largest |input| and |output| on ``batch`` (eval mode)."""
    return {name: seen.int_bits(bits) for name, seen in activation_ranges(model, layers, batch).items()}


def activation_ranges(model: nn.Module, layers: Iterable[str], batch: torch.Tensor) -> dict[str, ActivationRange]:
    """Per layer, the largest |input| and |output| it sees on ``batch`` (eval mode)."""
    import torch

    largest: dict[str, ActivationRange] = {}
    handles = []
    for name in layers:
        def record(module, args, output, _name=name):
            old = largest.get(_name, ActivationRange(0.0, 0.0))
            largest[_name] = ActivationRange(max(old.input_max, float(args[0].detach().abs().max())),
                                             max(old.output_max, float(output.detach().abs().max())))

        handles.append(model.get_submodule(name).register_forward_hook(record))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(batch)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return largest


def default_act_int_bits(bits: int) -> int:
    """Integer bits of ``bits``-bit activations when none are given: half of them."""
    return bits // 2


def with_quantization(plan: Plan, workload: Workload, weight_bits: int | None = 8, layers: str = "*", *,
                      weight_int_bits: int | None = None, act_bits: int | None = None,
                      act_int_bits: int | None = None, model: nn.Module | None = None,
                      calibration: Any = None) -> Plan:
    """``plan`` with every conv/linear layer matching the glob ``layers`` quantized (8-bit weights by default).

    With ``act_bits`` and a ``calibration`` batch (plus the base ``model``), each layer's input and
    output integer bits are chosen from the largest |input| and |output| it sees on the batch and
    written into the plan (``activation_int_bits``).
    """
    chosen = [l.name for l in workload.compute_layers if fnmatch.fnmatchcase(l.name, layers) and has_module_weights(l)]
    if not chosen:
        raise PlanError(f"No conv/linear layer matches {layers!r} in {workload.name!r}.",
                        "Check the layer glob against the workload's layer names.")
    per_layer = {}
    if calibration is not None:
        if model is None or act_bits is None or act_int_bits is not None:
            raise PlanError("Calibration chooses activation integer bits: it needs act_bits and the base "
                            "model, and no act_int_bits.", "Pass act_bits=..., model=... and calibration=batch.")
        per_layer = activation_int_bits(model, chosen, calibration, act_bits)
    for name in chosen:
        plan = plan.with_choice(name, weight_bits=weight_bits, weight_int_bits=weight_int_bits, act_bits=act_bits,
                                **per_layer.get(name, {"act_int_bits": act_int_bits, "out_int_bits": None}))
    return plan


def option_bits(value: Any) -> tuple[int, int | None] | None:
    """(weight bits, activation bits or None) of a space option: an integer (weights only) or
    'wNaM'; None when it is neither."""
    if is_int(value):
        return (value, None) if 1 <= value <= MAX_BITS else None
    match = re.fullmatch(r"w(\d+)a(\d+)", str(value).strip().lower()) if isinstance(value, str) else None
    if match is None:
        return None
    weight, act = int(match[1]), int(match[2])
    return (weight, act) if 1 <= weight <= MAX_BITS and 1 <= act <= MAX_BITS else None


def _narrower(bits: tuple[int, int | None], layer: Layer) -> bool:
    weight, act = bits
    return weight < layer.weight_bits or (act is not None and act < layer.input_bits)


def _choice(weight: int, act: int | None, largest: ActivationRange | None) -> dict[str, int]:
    """The plan fields of a width; activations take the input and output integer bits that hold
    ``largest`` (the calibrated ranges) when they are known, else the default (half the bits)."""
    if act is None:
        return {"weight_bits": weight}
    choice = {"weight_bits": weight, "act_bits": act}
    if largest is not None:
        choice.update(largest.int_bits(act))
    return choice


def _label(weight: int, act: int | None) -> str:
    return f"{weight}-bit" if act is None else f"w{weight}a{act}"


class Quantize(Transform):
    """Fixed-point fake quantization (STE) of weights and optionally activations (``weight_bits``, ``act_bits``)."""

    name = "quantize"
    label = "quantization"
    order = 3
    choice_type = QuantChoice
    option_name = "bits"
    option_help = (f"bit widths: integers in 1..{MAX_BITS} (weights), or 'wNaM' (N-bit weights and M-bit "
                   "activations, e.g. w8a8: what int8 CPU kernels need)")
    default_options = (12, 8, 6)
    """Weight bits below the base width."""

    def check_option(self, value: Any) -> bool:
        return option_bits(value) is not None

    def offer(self, workload: Workload, layer: Layer, options: Sequence[Any], context: SpaceContext) -> Offer | None:
        """The widths of ``options`` narrower than the layer's weights (or, with activations, its input);
        none for a layer without weights (a matmul of two activations)."""
        if not has_module_weights(layer):
            return None
        widths = sorted({bits for bits in map(option_bits, options) if bits is not None and _narrower(bits, layer)},
                        key=lambda bits: (bits[0], bits[1] or MAX_BITS + 1), reverse=True)
        if not widths:
            return None
        largest = None if context.activation_range is None else context.activation_range(layer.name)
        return Offer((layer.name,), (None, *(_choice(w, a, largest) for w, a in widths)),
                     (f"{layer.weight_bits}-bit", *(_label(w, a) for w, a in widths)), leanest=len(widths),
                     unchanged={"weight_bits": layer.weight_bits})

    def describe(self, choice: QuantChoice, before: Layer, after: Layer) -> str:
        parts = [f"{choice.weight_bits}-bit weights" if choice.weight_bits is not None else "",
                 f"{choice.act_bits}-bit activations" if choice.act_bits is not None else ""]
        return "; ".join(p for p in parts if p)

    def problems(self, workload: Workload, choices: Mapping[str, QuantChoice]) -> list[Problem]:
        return [(f"Layer {name!r} ({workload.layer(name).kind.value}) has no weights to quantize.",
                 "Quantize conv and linear layers only.") for name in choices if not workload.layer(name).is_compute]

    def changes(self, workload: Workload, choices: Mapping[str, QuantChoice]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, choice in choices.items():
            fields = out.setdefault(name, {})
            if choice.weight_bits is not None:
                fields["weight_bits"] = choice.weight_bits
            if choice.act_bits is not None:
                fields["input_bits"] = fields["output_bits"] = choice.act_bits
        return out

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, QuantChoice]) -> None:
        from nn2hw.compress import _torch

        for name, choice in choices.items():
            module = _torch.weight_module(model, name, transform="quantize")
            if choice.weight_bits is not None:
                bits = choice.weight_bits
                int_bits = choice.weight_int_bits
                if int_bits is None:
                    int_bits = auto_int_bits(module.weight, bits)
                _torch.add_weight_parametrization(module, _torch.FixedPointWeight(bits, int_bits))
                _torch.record_fields(module, weight_bits=bits)
                _torch.record_fixed_point(module, weight_step=fixed_point_step(bits, int_bits))
            if choice.act_bits is not None:
                bits = choice.act_bits
                int_bits = default_act_int_bits(bits) if choice.act_int_bits is None else choice.act_int_bits
                _torch.quantize_activations(module, bits, int_bits, choice.out_int_bits)
                _torch.record_fields(module, input_bits=bits, output_bits=bits)
                _torch.record_fixed_point(module, input_step=fixed_point_step(bits, int_bits))


TRANSFORMS.register(Quantize.name, Quantize())

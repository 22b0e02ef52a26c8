"""Accuracy under device non-idealities: Monte-Carlo draws of a crossbar accelerator's programmed
conductances and its converters (NACIM's evaluation), deterministic given a seed.

**Programming** (per draw, every conv and linear weight of a copy of the model, in place, from the
saved originals, so draws never compound and the caller's model is untouched).
A layer's weights ``w`` are held as ``weight_bits``-bit integers over ``max|w|`` (``L = 2^weight_bits
- 1`` levels; a layer a plan quantized holds its own fixed-point codes at its own bits, and its DACs
drive its inputs' fixed-point codes: nothing is rounded twice), bit-sliced into ``slices =
ceil(weight_bits / cell_bits)`` cells of ``cell_bits``:

- ``differential``: |w|'s code in a positive array where w >= 0, in a negative array otherwise (the
  other array's cells hold 0); the weight is (positive - negative) / L x max|w|;
- ``offset``: one array holds (w / max|w| + 1) / 2 x L, the offset column subtracts half the range;
- ``polarized``: one array holds |w|'s code, its column fragment's sign (FORMS) gives the sign; the
  weights must be polarized for the crossbar's ``rows`` (checked).

Each cell's value is off by a Gaussian of ``sqrt(sigma^2 + read_noise^2)`` times its range
(programming variation, plus read noise drawn once per draw as aihwkit applies it per inference
time); a cell is stuck at its lowest level with probability ``stuck_at_off`` and at its highest with
``stuck_at_on``. So a weight is off by ``weight_sigma`` x max|w| (``CrossbarNoise.weight_sigma``).

**Converters** (per forward pass, hooks on every conv/linear module). Inputs are quantized to
``input_bits`` over the largest |input| a layer sees on a calibration batch (the first batch of the
calibration images when given, below, else of the test images; larger inputs clip); signed inputs
keep a sign bit and take two passes. They enter ``dac_bits`` at a time, so a column's sum per input
cycle and weight slice spans ``rows x (2^cell_bits - 1) x (2^dac_bits - 1)`` LSBs, plus the
off-state current ``1/(on_off - 1)`` of that, which the ADC's range must also cover. An ADC of
``adc_bits`` has a step of ``span / (2^adc_bits - 1)`` LSBs: at most 1, every integer sum is
resolved; above, each conversion whose column sees an active input digit adds a rounding error of
variance step^2/12 (the additive quantization-noise model; the off-state current makes the analog
sum fractional), while an idle column reads exactly 0. The share of active conversions per input
cycle comes from the digit densities of the calibration batch (rows taken as independent). The
shift-and-add units weight cycle j and slice k by ``2^(dac_bits j) 2^(cell_bits k)``, over every row
fragment (``ceil(K^2 C_in / rows)``), both arrays of a pair and both input passes, and the layer's
output gets that Gaussian error, freshly drawn per forward pass from the draw's generator.

**Batch-norm re-estimation** (``calibration``, off unless given): after each draw is programmed, the
batch norms' running statistics are re-estimated from scratch on the calibration images, run through
that draw's crossbars and converters (a chip whose batch norms are digital can do this once after
programming; Joshi et al., Nature Communications 11, 2473, 2020, adapt batch norm to PCM drift the
same way, their AdaBS). The statistics then match the draw's shifted activations instead of the
noise-free network's. The same images also set the converters' input ranges (above), so no test
image informs how the chip is set up. Give it training images, never the test images.

Not modelled: drift (needs a time since programming), IR drop, the offset column's own noise, and
the rounding of noisy analog sums by a lossless ADC. The result is the mean, standard deviation and
worst top-1 over the draws, with the noise-free digital network's top-1.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from nn2hw.data.base import Dataset
from nn2hw.errors import ConfigError, HardwareError
from nn2hw.evaluate.loops import test
from nn2hw.evaluate.runtime import run_context
from nn2hw.hardware.polarity import check_polarized, fragment_signs
from nn2hw.workload.layer import DEFAULT_BITS
from nn2hw.workload.torch_extract import COMPRESSION_FIELDS_ATTR, FIXED_POINT_ATTR

MAX_DRAWS = 10_000
SIGNED = ("differential", "offset", "polarized")
CROSSBAR_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
CrossbarModule = nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value!r} is outside 0..1.", f"Give {name} as a fraction, e.g. {name}=0.1.")
    return float(value)


def _whole(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name}={value!r} is not a whole number in {low}..{high}.",
                          f"Give {name} as a whole number in {low}..{high}.")
    return value


@dataclass(frozen=True)
class CrossbarNoise:
    """How a crossbar design holds and reads weights: the cell's programming variation ``sigma``
    and ``read_noise`` (fractions of a cell's range), stuck-at rates, the on/off ratio (None:
    infinite), the cell, weight and input bits, the signed-weight scheme, the crossbar's rows and
    its converters (``adc_bits`` None: an ideal ADC; ``input_bits`` None: inputs not quantized)."""

    sigma: float
    cell_bits: int = 2
    weight_bits: int = 8
    signed: str = "differential"
    read_noise: float = 0.0
    stuck_at_off: float = 0.0
    stuck_at_on: float = 0.0
    on_off_ratio: float | None = None
    rows: int = 128
    adc_bits: int | None = None
    dac_bits: int = 1
    input_bits: int | None = None

    def __post_init__(self) -> None:
        for name in ("sigma", "read_noise", "stuck_at_off", "stuck_at_on"):
            _fraction(name, getattr(self, name))
        if self.stuck_at_off + self.stuck_at_on > 1.0:
            raise ConfigError(f"stuck_at_off + stuck_at_on = {self.stuck_at_off + self.stuck_at_on:g} exceeds 1.",
                              "Give stuck-at rates whose sum is at most 1.")
        for name, high in (("cell_bits", 16), ("weight_bits", 32), ("rows", 4096), ("dac_bits", 16)):
            _whole(name, getattr(self, name), 1, high)
        if self.adc_bits is not None:
            _whole("adc_bits", self.adc_bits, 1, 16)
        if self.input_bits is not None:
            _whole("input_bits", self.input_bits, 2, 32)
        if self.adc_bits is not None and self.input_bits is None:
            raise ConfigError("An ADC model needs the input bits (the scale of a column sum).",
                              "Give input_bits (e.g. the layers' activation bits, 16 by default) with adc_bits.")
        if self.on_off_ratio is not None and (isinstance(self.on_off_ratio, bool) or not 1.0 < self.on_off_ratio):
            raise ConfigError(f"on_off_ratio={self.on_off_ratio!r} is not above 1.",
                              "Give the on/off conductance ratio, e.g. 10, or None for an ideal off state.")
        if self.signed not in SIGNED:
            raise ConfigError(f"signed={self.signed!r} is not one of {', '.join(SIGNED)}.",
                              "Use signed=differential, offset or polarized.")

    @property
    def slices(self) -> int:
        return math.ceil(self.weight_bits / self.cell_bits)

    @property
    def cell_sigma(self) -> float:
        """A cell's error per draw, relative to its range: programming variation and read noise."""
        return math.hypot(self.sigma, self.read_noise)

    @property
    def arrays(self) -> int:
        """Arrays holding one weight: two for a differential pair, else one."""
        return 2 if self.signed == "differential" else 1

    @property
    def weight_sigma(self) -> float:
        """The standard deviation of a programmed weight relative to the layer's max |w| (faults aside):
        cell_sigma x (2^c - 1) x sqrt(sum_k 4^(c k)) / (2^weight_bits - 1), x sqrt(2) for a
        differential pair, x 2 with an offset (one cell range spans -max|w|..max|w|)."""
        c = self.cell_bits
        spread = (2**c - 1) * math.sqrt(sum(4.0 ** (c * k) for k in range(self.slices))) / (2**self.weight_bits - 1)
        scheme = {"differential": math.sqrt(2.0), "offset": 2.0, "polarized": 1.0}[self.signed]
        return self.cell_sigma * spread * scheme

    @property
    def adc_step(self) -> float:
        """The ADC's step in LSBs of a column sum (<= 1: lossless); 0 without an ADC model."""
        if self.adc_bits is None:
            return 0.0
        span = self.rows * (2**self.cell_bits - 1) * (2**self.dac_bits - 1)
        if self.on_off_ratio is not None:
            span *= self.on_off_ratio / (self.on_off_ratio - 1.0)
        return span / (2**self.adc_bits - 1)

    def adc_sigma(self, fragments: int, cycle_weight: float) -> float:
        """The ADC's error on a layer's output in units of (weight LSB x input LSB): every active
        conversion's step^2/12, weighted by its shift-and-add factor and summed over slices, row
        fragments and arrays; ``cycle_weight`` = sum over input cycles (and passes) of the share of
        conversions that see an active input bit x 4^(dac_bits j) (``cycle_weight``). 0 when the
        ADC is lossless."""
        step = self.adc_step
        if step <= 1.0:
            return 0.0
        slices = sum(4.0 ** (self.cell_bits * k) for k in range(self.slices))
        return step / math.sqrt(12.0) * math.sqrt(fragments * self.arrays * cycle_weight * slices)

    def cycle_weight(self, codes: torch.Tensor, rows: float) -> float:
        """Sum over input cycles j of 4^(dac_bits j) x the share of conversions with an active row:
        1 - (1 - p_j)^rows, p_j the share of input codes (``codes``, integers) whose cycle-j digit
        is non-zero, ``rows`` the rows of a fragment (rows taken as independent). A column whose
        inputs are all 0 in a cycle carries no current and reads exactly 0."""
        d, digit = self.dac_bits, 2**self.dac_bits - 1
        total, j = 0.0, 0
        while True:
            shifted = codes >> (d * j)
            if not bool(shifted.any()):
                return total
            density = float(((shifted & digit) != 0).double().mean())
            total += (1.0 - (1.0 - density) ** rows) * 4.0 ** (d * j)
            j += 1


def design_noise(hardware: str, params: Mapping[str, Any] | None = None, weight_bits: int = DEFAULT_BITS,
                 input_bits: int = DEFAULT_BITS) -> tuple[CrossbarNoise, dict[str, Any]]:
    """The noise model of a cim design (``hardware`` 'cim:DEVICE', ``params`` its design fields and
    options, as ``--hw-param`` gives them) and the design record. The device's sourced
    non-idealities apply unless the options override them; a device without a programming
    variation (FeFET) needs ``sigma``."""
    from nn2hw.hardware import get_template
    from nn2hw.hardware.cim import CimTemplate

    template, device_name = get_template(hardware)
    if not isinstance(template, CimTemplate):
        raise ConfigError(f"Accuracy under variation runs on cim designs; got --hardware {hardware}.",
                          "Give --hardware cim:reram (or cim:fefet, cim:pcm).")
    design_params, options = template.split_params(dict(params or {}))
    design, device = template.parse_design(design_params).built_of(template.device(device_name))
    design.check_device(device)
    sigma = design.effective_sigma(device)
    if sigma is None:
        raise HardwareError(f"The {device.name} preset has no programming variation (no source gives one).",
                            "Give it: --hw-param sigma=0.05.")

    def rate(name: str) -> float:
        value = options.get(name, getattr(device, name))
        return 0.0 if value is None else float(value)

    noise = CrossbarNoise(sigma, design.cell_bits, weight_bits, design.signed, read_noise=rate("read_noise"),
                          stuck_at_off=rate("stuck_at_off"), stuck_at_on=rate("stuck_at_on"),
                          on_off_ratio=options.get("on_off_ratio", device.on_off_ratio), rows=design.rows,
                          adc_bits=design.adc_bits, dac_bits=design.dac_bits, input_bits=input_bits)
    return noise, design.to_dict()


@dataclass(frozen=True)
class VariationMetrics:
    """Top-1 over Monte-Carlo draws: mean (``top1``), standard deviation, worst, every draw, and the
    noise-free network's top-1."""

    top1: float
    top1_std: float
    top1_min: float
    draws: int
    top1_draws: tuple[float, ...]
    top1_clean: float
    noise: Mapping[str, object] = field(default_factory=dict)
    seed: int = 0
    n_images: int = 0
    partial: bool = False
    calibration_images: int = 0
    """Images the batch norms were re-estimated on after each draw was programmed (0: not re-estimated)."""

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "top1_draws": list(self.top1_draws), "noise": dict(self.noise)}


def crossbar_modules(model: nn.Module) -> dict[str, CrossbarModule]:
    """The modules whose weights a crossbar holds: every conv and linear layer, in module order."""
    found: dict[str, CrossbarModule] = {}
    for name, m in model.named_modules():
        if isinstance(m, CROSSBAR_MODULES) and getattr(m, "weight", None) is not None:
            found[name] = m
    return found


def programmed_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weights a crossbar holds: those of every conv and linear layer, in module order."""
    return [m.weight for m in crossbar_modules(model).values()]


def draw_seed(seed: int, draw: int) -> int:
    """The generator seed of one draw: a function of (seed, draw) only, so any draw can be replayed."""
    return (seed * 1_000_003 + draw) % (2**63)


def weight_grid(largest: float, noise: CrossbarNoise, step: float | None = None) -> tuple[float, float]:
    """(unit, zero): the weight one code step holds and the weight of code 0's offset (``offset``
    only). Over the layer's own range by default (``weight_bits`` levels across max|w|, twice that
    span with an offset). On a quantized layer's fixed-point ``step`` the crossbar holds the codes
    themselves times the largest whole factor that keeps the largest within the cells' levels (the
    output stage divides it out, as it applies any layer's scale): exact integers that use the
    conductance range about as fully as the default, instead of leaving fixed point's sign bit and
    integer headroom unused."""
    levels = 2**noise.weight_bits - 1
    if step is None:
        return (2.0 * largest / levels, largest) if noise.signed == "offset" else (largest / levels, 0.0)
    half = 2 ** (noise.weight_bits - 1)
    room = half - 1 if noise.signed == "offset" else levels  # an offset code holds the sign around its middle
    unit = step / max(room // max(round(largest / step), 1), 1)
    return unit, half * unit


def program(weight: torch.Tensor, noise: CrossbarNoise, generator: torch.Generator,
            signs: torch.Tensor | None = None, step: float | None = None) -> torch.Tensor:
    """One draw of what a crossbar holds for ``weight``: its bit-sliced cells with variation and
    stuck-at faults, read back as weights (``signs``: the column fragments' signs, polarized only;
    ``step``: the fixed-point step of weights a plan quantized, ``weight_grid``)."""
    largest = float(weight.detach().abs().max())
    if largest == 0.0:
        return weight.detach().clone()
    levels = 2**noise.weight_bits - 1
    unit, zero = weight_grid(largest, noise, step)
    w = weight.detach().double()
    if noise.signed == "offset":
        codes = torch.round((w + zero) / unit).clamp(0, levels)[None]
    else:
        magnitude = torch.round(w.abs() / unit).clamp(0, levels)
        codes = (torch.stack([magnitude * (w >= 0), magnitude * (w < 0)]) if noise.signed == "differential"
                 else magnitude[None])
    cells = _cells(codes.long(), noise)
    top = float(2**noise.cell_bits - 1)
    if noise.cell_sigma > 0:
        cells += torch.randn(cells.shape, generator=generator, dtype=cells.dtype) * (noise.cell_sigma * top)
    if noise.stuck_at_off or noise.stuck_at_on:
        u = torch.rand(cells.shape, generator=generator, dtype=cells.dtype)
        cells = torch.where(u < noise.stuck_at_off, 0.0, torch.where(u >= 1.0 - noise.stuck_at_on, top, cells))
    place = torch.tensor([2.0 ** (noise.cell_bits * k) for k in range(noise.slices)], dtype=cells.dtype)
    values = torch.tensordot(place, cells, dims=([0], [1])) * unit  # (arrays, *shape), in weight units
    if noise.signed == "offset":
        held = values[0] - zero
    elif noise.signed == "differential":
        held = values[0] - values[1]
    else:
        assert signs is not None  # polarized weights come with their fragments' signs
        held = signs.double() * values[0]
    return held.to(weight.dtype)


def _cells(codes: torch.Tensor, noise: CrossbarNoise) -> torch.Tensor:
    """Integer codes (arrays, *shape) as their cells (arrays, slices, *shape), least significant first."""
    mask = 2**noise.cell_bits - 1
    return torch.stack([(codes >> (noise.cell_bits * k)) & mask for k in range(noise.slices)], dim=1).double()


@dataclass
class _Layer:
    """One crossbar layer's converter model: its input LSB, whether inputs are signed, its row
    fragments and their mean rows, its weight LSB, and the active-conversion weight of the batch
    being run (``CrossbarNoise.cycle_weight``)."""

    input_lsb: float
    signed_inputs: bool
    fragments: int
    rows_per_fragment: float
    weight_lsb: float = 0.0
    cycle_weight: float | None = None


def _input_ranges(model: nn.Module, modules: Mapping[str, nn.Module], batch: torch.Tensor
                  ) -> dict[str, tuple[float, bool]]:
    """Per layer, the largest |input| and whether any input is negative, on ``batch`` (eval mode)."""
    seen: dict[str, tuple[float, bool]] = {}
    handles = [m.register_forward_pre_hook(
        lambda _m, args, _n=name: seen.__setitem__(_n, (float(args[0].abs().max()), bool((args[0] < 0).any())))
    ) for name, m in modules.items()]
    try:
        with torch.no_grad():
            model.eval()(batch)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _converter_layers(model: nn.Module, modules: Mapping[str, CrossbarModule], noises: Mapping[str, CrossbarNoise],
                      data: Dataset, batch_size: int) -> dict[str, _Layer]:
    """Each layer's converter model (none without input bits), calibrated on the first batch of ``data``;
    a layer whose inputs a plan quantized is driven on their fixed-point grid (its codes, as they are)."""
    modules = {name: m for name, m in modules.items() if noises[name].input_bits is not None}
    if not modules:
        return {}
    images, _ = next(iter(data.batches(batch_size)))
    ranges = _input_ranges(model, modules, images)
    layers = {}
    for name, m in modules.items():
        noise = noises[name]
        assert noise.input_bits is not None  # kept above
        largest, negative = ranges.get(name, (0.0, False))
        magnitude_levels = 2 ** (noise.input_bits - (1 if negative else 0)) - 1
        rows_needed = m.weight[0].numel()
        fragments = math.ceil(rows_needed / noise.rows)
        step = _grid_steps(m).get("input_step")
        lsb = step if step is not None else largest / magnitude_levels if largest > 0 else 0.0
        layers[name] = _Layer(lsb, negative, fragments, rows_needed / fragments)
    if any(noises[name].adc_step > 1.0 for name in layers):  # the active conversions' shares, measured once on the
        with _converters(modules, layers, noises, torch.Generator(), with_adc=False), torch.no_grad():  # quantized
            model.eval()(images)  # calibration batch
    return layers


@contextmanager
def _converters(modules: Mapping[str, nn.Module], layers: Mapping[str, _Layer], noises: Mapping[str, CrossbarNoise],
                generator: torch.Generator, with_adc: bool = True) -> Iterator[None]:
    """Hooks that quantize each layer's input (DAC) and add its ADC error to its output; a layer
    without its ``cycle_weight`` yet (calibration) measures it on the batch it sees."""
    def quantize(layer: _Layer, noise: CrossbarNoise):
        bits = noise.input_bits or 0  # converter layers exist only with input bits
        def hook(_module: nn.Module, args: tuple) -> tuple:
            if layer.input_lsb == 0.0:
                return args
            top = 2 ** (bits - (1 if layer.signed_inputs else 0)) - 1
            codes = torch.round(args[0] / layer.input_lsb).clamp(-top if layer.signed_inputs else 0, top)
            if layer.cycle_weight is None:  # calibration; signed inputs: a pass for each sign
                magnitude = codes.abs().long()
                passes = [magnitude * (codes > 0), magnitude * (codes < 0)] if layer.signed_inputs else [magnitude]
                layer.cycle_weight = sum(noise.cycle_weight(p, layer.rows_per_fragment) for p in passes)
            return (codes * layer.input_lsb, *args[1:])
        return hook

    def adc(layer: _Layer, noise: CrossbarNoise):
        def hook(_module: nn.Module, _args: tuple, output: torch.Tensor) -> torch.Tensor:
            std = noise.adc_sigma(layer.fragments, layer.cycle_weight or 0.0) * layer.weight_lsb * layer.input_lsb
            if std == 0.0:
                return output
            return output + torch.randn(output.shape, generator=generator, dtype=output.dtype) * std
        return hook

    handles = []
    for name, layer in layers.items():
        handles.append(modules[name].register_forward_pre_hook(quantize(layer, noises[name])))
        if with_adc:
            handles.append(modules[name].register_forward_hook(adc(layer, noises[name])))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def baked(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parametrized weights (quantization, masks, training noise) hold their
    current values as plain parameters: what is programmed into the crossbars.

    Each parametrization list becomes the identity over a parameter holding the value, so
    ``module.weight`` *is* that parameter (draws write it in place) while the module keeps its class:
    a class that wraps the parametrized one (activation quantization) keeps its forward. Not
    ``parametrize.remove_parametrizations``, which edits the generated class ``model`` shares."""
    plain = copy.deepcopy(model).eval()  # eval: training-only parametrizations (noise) are the identity
    for module in list(plain.modules()):
        if parametrize.is_parametrized(module):
            lists = cast(nn.ModuleDict, module.parametrizations)
            with torch.no_grad():
                values = {name: getattr(module, name).detach().clone() for name in lists}
            for name, value in values.items():
                lists[name] = parametrize.ParametrizationList([nn.Identity()], nn.Parameter(value))
    return plain


def evaluate_variation(model: nn.Module, data: Dataset, noise: CrossbarNoise, draws: int = 10, seed: int = 0,
                       batch_size: int = 256, threads: int | None = None, progress: bool = False,
                       calibration: Dataset | None = None) -> VariationMetrics:
    """Top-1 of ``model`` on ``data`` over ``draws`` draws of its crossbars (module docstring).

    Draw ``d`` uses a generator seeded by ``draw_seed(seed, d)`` alone, for the cells and for the
    converters, so two designs evaluated with one seed see the same random numbers (common random
    numbers: only the design's scale differs). A layer a plan quantized keeps its own bits and its
    fixed-point grids (its weights' codes are what the cells hold, its inputs' codes what the DACs
    drive); the others take ``noise``'s bits over their own ranges. ``model`` is not modified. With
    ``calibration``, each draw's batch norms are re-estimated on those images first (module docstring).
    """
    if not isinstance(draws, int) or isinstance(draws, bool) or not 1 <= draws <= MAX_DRAWS:
        raise ConfigError(f"draws={draws!r} is not a whole number in 1..{MAX_DRAWS}.",
                          "Give --draws as e.g. 10 (NACIM averages Monte-Carlo draws).")
    network = baked(model)
    modules = crossbar_modules(network)
    if not modules:
        raise ConfigError("The model has no conv or linear weights to program into crossbars.",
                          "Evaluate a network with convolutions or linear layers.")
    norms = _batch_norms(network, calibration)
    saved = {name: m.weight.detach().clone() for name, m in modules.items()}
    noises = {name: _layer_noise(noise, m) for name, m in modules.items()}
    weight_steps = {name: _grid_steps(m).get("weight_step") for name, m in modules.items()}
    signs = None
    if noise.signed == "polarized":
        arrays = {name: w.double().numpy() for name, w in saved.items()}
        check_polarized(arrays, noise.rows)
        signs = {name: torch.from_numpy(fragment_signs(a, noise.rows)) for name, a in arrays.items()}
    clean = test(network, data, batch_size, threads, progress)
    layers = _converter_layers(network, modules, noises, data if calibration is None else calibration, batch_size)
    for name, layer in layers.items():
        layer.weight_lsb = weight_grid(float(saved[name].abs().max()), noises[name], weight_steps[name])[0]
    tops: list[float] = []
    for draw in range(draws):  # each draw overwrites every weight of the copy from the saved originals
        generator = torch.Generator().manual_seed(draw_seed(seed, draw))
        with torch.no_grad():
            for name, m in modules.items():
                m.weight.copy_(program(saved[name], noises[name], generator, None if signs is None else signs[name],
                                       weight_steps[name]))
        with _converters(modules, layers, noises, generator):
            if calibration is not None:
                _reestimate(network, norms, calibration, batch_size, threads)
            tops.append(test(network, data, batch_size, threads, progress).top1)
    record = {**asdict(noise), "weight_sigma": noise.weight_sigma, "adc_step": noise.adc_step}
    return VariationMetrics(top1=statistics.fmean(tops), top1_std=statistics.pstdev(tops), top1_min=min(tops),
                            draws=draws, top1_draws=tuple(tops), top1_clean=clean.top1, noise=record, seed=seed,
                            n_images=clean.n_images, partial=clean.partial,
                            calibration_images=0 if calibration is None else len(calibration))


def batch_norms(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch norms batch-norm re-estimation resets; a ConfigError naming the fix when there are none."""
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ConfigError("Batch-norm re-estimation was asked for, and the model has no batch norm.",
                          "Drop the calibration images (--bn-calibration 0).")
    return norms


def _batch_norms(network: nn.Module, calibration: Dataset | None) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch norms whose statistics ``calibration`` re-estimates (none without it); a ConfigError
    when there are calibration images and nothing to re-estimate."""
    if calibration is None:
        return []
    norms = batch_norms(network)
    if len(calibration) < 1:
        raise ConfigError("Batch-norm re-estimation was given no calibration images.",
                          "Give a number of training images, e.g. --bn-calibration 512.")
    return norms


def _reestimate(network: nn.Module, norms: list[nn.modules.batchnorm._BatchNorm], calibration: Dataset,
                batch_size: int, threads: int | None) -> None:
    """Re-estimate ``norms``' running statistics from scratch on ``calibration`` through ``network`` as
    programmed (a cumulative average over its batches), the rest of the network in eval mode."""
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative: every calibration batch counts alike
        norm.train()
    try:
        with run_context(None, threads), torch.no_grad():
            for images, _ in calibration.batches(batch_size):
                network(images)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
            norm.eval()


def _layer_noise(noise: CrossbarNoise, module: nn.Module) -> CrossbarNoise:
    """``noise`` at the weight and input bits a plan recorded on ``module`` (its own where it recorded none)."""
    recorded = getattr(module, COMPRESSION_FIELDS_ATTR, {})
    weight_bits = recorded.get("weight_bits", noise.weight_bits)
    input_bits = None if noise.input_bits is None else recorded.get("input_bits", noise.input_bits)
    return replace(noise, weight_bits=weight_bits, input_bits=input_bits)


def fixed_point_layers(model: nn.Module) -> list[str]:
    """The crossbar layers whose weights or inputs a plan quantized to fixed point."""
    return [name for name, m in crossbar_modules(model).items() if _grid_steps(m)]


def _grid_steps(module: nn.Module) -> dict[str, float]:
    """The fixed-point steps a quantizing plan recorded on ``module`` (``weight_step``, ``input_step``)."""
    return dict(getattr(module, FIXED_POINT_ATTR, {}))

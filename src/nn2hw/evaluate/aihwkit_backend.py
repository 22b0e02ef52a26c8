"""A cross-check of nn2hw's accuracy under crossbar variation by a tool nn2hw did not write: IBM's
``aihwkit-lightning`` (``pip install "nn2hw[aihwkit]"``, pure PyTorch on a CPU; its Triton kernels
are used only on a GPU with ``AIHWKIT_USE_TRITON``).

The network (the same baked copy nn2hw programs) is converted with aihwkit-lightning's
``convert_to_analog`` and its analog layers run the forward pass; each draw perturbs the clean
weights with aihwkit-lightning's own weight-noise injection (``TorchLinear.modify_weight``,
``WeightNoiseInjectionType.ADD_NORMAL``) once, and the draw tests every image with those weights,
as nn2hw's draw programs its crossbars once. How nn2hw's ``CrossbarNoise`` maps onto a
``TorchInferenceRPUConfig``:

Exact (the same distribution or the same arithmetic):

- **Weight noise.** nn2hw's bit-sliced cells with variation ``sigma`` and ``read_noise`` read back as
  a weight off by a Gaussian of ``weight_sigma`` x max|w| of the layer (a sum of Gaussian cell
  errors, scaled by the shift-and-add factors); aihwkit-lightning's ``modifier.std_dev`` is relative
  to the tile's max|w|, so ``std_dev = weight_sigma`` with one tile per layer
  (``mapping.max_input_size = -1``). aihwkit draws it from its own code and the global generator
  (seeded per draw by ``draw_seed(seed, d)`` inside ``torch.random.fork_rng``).
- **DAC / input quantization.** nn2hw quantizes a layer's input to ``input_bits`` over the largest
  |input| on the first test batch (a sign bit when inputs are negative); aihwkit-lightning's input
  range (``pre_post.input_range``, fixed: no learning, no update from data) is set to that largest
  |input| and ``forward.inp_res`` to ``2 x levels`` states over -range..range, the same step.
- **ADC, when lossless** (``adc_step <= 1``: ``adc_bits`` at least the cost model's
  ``exact_adc_bits``): no output quantization in either tool.

Not mapped (refused with the fix, never approximated silently):

- **A lossy ADC.** nn2hw rounds each bit-sliced column sum per input cycle and weight slice;
  aihwkit-lightning's ``forward.out_res`` quantizes a tile's whole analog dot product over
  ``out_bound``, and its ``out_noise`` acts only in training mode: neither is the same ADC.
- **Stuck-at faults.** aihwkit-lightning has no fault model.
- **Bit slicing itself, the signed-weight scheme and the on/off ratio** enter only through
  ``weight_sigma`` (their effect on the ADC is what a lossless ADC removes); per-column ADC sharing
  and the crossbar's ``rows`` (row fragments) change only the ADC's error, so they do not matter
  here either. The 16-bit rounding of weight codes (an error below max|w| / 65535) is not applied.
"""

from __future__ import annotations

import contextlib
import io
import statistics
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from nn2hw.data.base import Dataset
from nn2hw.errors import ConfigError
from nn2hw.evaluate.loops import test
from nn2hw.evaluate.variation import (
    MAX_DRAWS,
    CrossbarNoise,
    VariationMetrics,
    _input_ranges,
    baked,
    crossbar_modules,
    draw_seed,
    fixed_point_layers,
)

BACKENDS = ("nn2hw", "aihwkit")
INSTALL = 'pip install "nn2hw[aihwkit]"'


def load_aihwkit() -> SimpleNamespace:
    """aihwkit-lightning's conversion, configuration and weight-noise code, imported on first use."""
    try:
        # it prints a notice on stdout when Triton is absent (the CPU path is the plain PyTorch one)
        with contextlib.redirect_stdout(io.StringIO()):
            from aihwkit_lightning.nn.conversion import convert_to_analog
            from aihwkit_lightning.nn.modules.torch_utils.torch_linear import TorchLinear
            from aihwkit_lightning.simulator.configs import TorchInferenceRPUConfig, WeightNoiseInjectionType
    except ImportError as exc:
        raise ConfigError(f"--backend aihwkit needs IBM's aihwkit-lightning, which is not installed ({exc}).",
                          f"Install the extra: {INSTALL}, or use --backend nn2hw.") from exc
    return SimpleNamespace(convert_to_analog=convert_to_analog, modify_weight=TorchLinear.modify_weight,
                           config=TorchInferenceRPUConfig, add_normal=WeightNoiseInjectionType.ADD_NORMAL)


def check_backend(backend: str, noise: CrossbarNoise | None = None) -> None:
    """Refuse a ``backend`` not in ``BACKENDS``; for 'aihwkit', a missing extra and (given ``noise``)
    non-idealities it cannot model (``check_mappable``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}.",
                          "Use --backend nn2hw (nn2hw's bit-sliced crossbar model) or --backend aihwkit "
                          "(the cross-check with IBM's aihwkit-lightning).")
    if backend == "aihwkit":
        load_aihwkit()
        if noise is not None:
            check_mappable(noise)


def check_mappable(noise: CrossbarNoise) -> None:
    """Refuse the parts of ``noise`` aihwkit-lightning cannot model (module docstring), naming the
    ``--hw-param`` settings that turn them off."""
    unmapped, fixes = [], []
    if noise.stuck_at_off or noise.stuck_at_on:
        unmapped.append(f"stuck-at faults (stuck_at_off={noise.stuck_at_off:g}, stuck_at_on={noise.stuck_at_on:g}): "
                        "aihwkit-lightning has no fault model")
        fixes.append("--hw-param stuck_at_off=0 --hw-param stuck_at_on=0")
    if noise.adc_step > 1.0:
        lossless = [b for b in range(1, 17) if CrossbarNoise(**{**asdict(noise), "adc_bits": b}).adc_step <= 1.0]
        unmapped.append(f"a lossy ADC (adc_bits={noise.adc_bits}, a step of {noise.adc_step:.2f} column-sum LSBs): "
                        "aihwkit-lightning quantizes whole tile outputs, not bit-sliced column sums")
        fixes.append(f"--hw-param adc_bits={lossless[0]} (lossless for this crossbar)" if lossless else
                     "fewer rows, cell bits or DAC bits (no ADC up to 16 bits is lossless for this crossbar)")
    if unmapped:
        raise ConfigError("The aihwkit backend cannot model " + "; ".join(unmapped) + ".",
                          "Turn them off with " + " ".join(fixes) + ", or evaluate them with --backend nn2hw.")


def _rpu_config(kit: SimpleNamespace, noise: CrossbarNoise, largest: float, negative: bool) -> Any:
    """One layer's aihwkit-lightning configuration: weight noise of ``weight_sigma`` x max|w| on one
    tile, and its input quantized as nn2hw's DAC quantizes it (``largest`` |input|, signed or not)."""
    config = kit.config()
    config.mapping.max_input_size = -1
    config.modifier.noise_type = kit.add_normal
    config.modifier.std_dev = noise.weight_sigma
    if noise.input_bits is not None and largest > 0.0:
        levels = 2 ** (noise.input_bits - (1 if negative else 0)) - 1
        config.pre_post.input_range.enable = True
        config.pre_post.input_range.learn_input_range = False
        config.pre_post.input_range.init_from_data = 0
        config.pre_post.input_range.init_value = largest
        config.forward.inp_res = 2 * levels  # states over -range..range: a step of largest / levels
    return config


def unparametrized(network: nn.Module) -> nn.Module:
    """``network`` (a ``baked`` copy, changed in place) with each parametrized module back to its own
    class, the values its parametrizations give held as plain parameters. aihwkit-lightning converts
    layers by their exact class, and torch's parametrized modules are subclasses generated for them
    (a variation-aware plan's clipping and training noise, a pruning mask). The generated class is
    shared with the model ``baked`` copied, so only the instance's class changes."""
    for module in list(network.modules()):
        if parametrize.is_parametrized(module):
            with torch.no_grad():
                values = {name: getattr(module, name).detach().clone()
                          for name in cast(nn.ModuleDict, module.parametrizations)}
            del module._modules["parametrizations"]
            module.__class__ = type(module).__bases__[0]
            for name, value in values.items():
                module.register_parameter(name, nn.Parameter(value))
    return network


def analog_network(network: nn.Module, noise: CrossbarNoise, calibration: torch.Tensor
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """``network`` converted to aihwkit-lightning analog layers (a copy), with each layer's input range
    from ``calibration`` (nn2hw's: the first test batch), and those layers by name."""
    kit = load_aihwkit()
    modules = crossbar_modules(network)
    ranges = _input_ranges(network, modules, calibration)
    configs = {name: _rpu_config(kit, noise, *ranges.get(name, (0.0, False))) for name in modules}
    with contextlib.redirect_stdout(io.StringIO()):
        analog = kit.convert_to_analog(network, kit.config(), specific_rpu_config_fun=lambda name, _m, c:
                                       configs.get(name, c), inplace=False)
    layers = {name: m for name, m in analog.named_modules() if name in configs and hasattr(m, "rpu_config")}
    missing = sorted(set(configs) - set(layers))
    if missing:
        raise ConfigError(f"aihwkit-lightning did not convert the layers {', '.join(missing)}.",
                          "Use --backend nn2hw for this network (aihwkit-lightning converts Linear and Conv1d/2d/3d).")
    with torch.no_grad():
        for name, layer in layers.items():
            if getattr(layer, "input_range", None) is not None:
                layer.input_range.fill_(ranges[name][0])
    return analog.eval(), layers


def evaluate_variation_aihwkit(model: nn.Module, data: Dataset, noise: CrossbarNoise, draws: int = 10, seed: int = 0,
                               batch_size: int = 256, threads: int | None = None, progress: bool = False
                               ) -> VariationMetrics:
    """Top-1 of ``model`` on ``data`` over ``draws`` weight-noise draws made and run by
    aihwkit-lightning (module docstring), in ``nn2hw.evaluate.variation.evaluate_variation``'s
    result form; ``noise`` must be mappable (``check_mappable``). ``model`` is not modified."""
    if not isinstance(draws, int) or isinstance(draws, bool) or not 1 <= draws <= MAX_DRAWS:
        raise ConfigError(f"draws={draws!r} is not a whole number in 1..{MAX_DRAWS}.",
                          "Give --draws as e.g. 10 (NACIM averages Monte-Carlo draws).")
    check_mappable(noise)
    network = unparametrized(baked(model))
    if not crossbar_modules(network):
        raise ConfigError("The model has no conv or linear weights to program into crossbars.",
                          "Evaluate a network with convolutions or linear layers.")
    quantized = fixed_point_layers(network)
    if quantized:
        raise ConfigError(f"The plan quantized {len(quantized)} layer(s) ({', '.join(quantized[:3])}...) to fixed "
                          "point, whose codes nn2hw's crossbars hold as they are; aihwkit-lightning draws one weight "
                          "noise per layer over its range at the design's bits, so the two would not model the same "
                          "crossbars.", "Cross-check an unquantized network (a --plan without quantize), or use "
                          "--backend nn2hw.")
    grouped = [name for name, m in crossbar_modules(network).items() if getattr(m, "groups", 1) > 1]
    if grouped:
        raise ConfigError(f"{len(grouped)} layer(s) are grouped convolutions ({', '.join(grouped[:3])}"
                          f"{'...' if len(grouped) > 3 else ''}, e.g. depthwise), which aihwkit-lightning does not "
                          "convert (it supports one group per convolution).",
                          "Cross-check a network without grouped convolutions, or use --backend nn2hw.")
    clean = test(network, data, batch_size, threads, progress)
    images, _ = next(iter(data.batches(batch_size)))
    analog, layers = analog_network(network, noise, images)
    kit = load_aihwkit()
    saved = {name: layer.weight.detach().clone() for name, layer in layers.items()}
    tops: list[float] = []
    for draw in range(draws):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(draw_seed(seed, draw))
            with torch.no_grad():
                for name, layer in layers.items():
                    layer.weight.copy_(kit.modify_weight(saved[name].clone(), None, layer.rpu_config))
            tops.append(test(analog, data, batch_size, threads, progress).top1)
    record = {**asdict(noise), "weight_sigma": noise.weight_sigma, "adc_step": noise.adc_step, "backend": "aihwkit"}
    return VariationMetrics(top1=statistics.fmean(tops), top1_std=statistics.pstdev(tops), top1_min=min(tops),
                            draws=draws, top1_draws=tuple(tops), top1_clean=clean.top1, noise=record, seed=seed,
                            n_images=clean.n_images, partial=clean.partial)

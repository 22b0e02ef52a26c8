"""Single-path supernets of the FBNet space and the NAS-Bench-201 cell space, for the differentiable co-search.

A supernet holds every candidate of every searchable position and computes, per forward, only the
one each gate selects (single path, as ProxylessNAS / FBNetV2-style straight-through search):

- ``FBNetSupernet``: 22 block positions x the 9 candidate blocks of ``FBNET_OPS`` (skip included;
  the discrete network's own modules: ``ConvBlock``, the projecting ``Skip`` or the identity);
- ``NB201Supernet``: 6 edge positions x the 5 ops of ``NB201_OPS``, one genotype shared by every
  cell (NAS-Bench-201's definition); each cell keeps its own weights per edge and op.

``counts`` lists the choices per position: first the op positions (block 0..21 / edge 0..5, in the
architecture encoding's order), then, when the supernet has ``bits`` (e.g. ``(32, 8, 6, 4)``),
one bit-width position per block / edge in the same order, each with ``len(bits)`` choices:
FBNet ``(9,) * 22 + (len(bits),) * 22``, NB201 ``(5,) * 6 + (len(bits),) * 6``. ``indices`` (for
``derive`` and the rest) follow that layout. A bit width of 32 is float (no quantization); a
narrower one fake-quantizes (straight-through) the weights and inputs of every conv of the chosen
block / edge op, with ``nn2hw.compress.quantize``'s fixed-point rule (integer bits that hold the
tensor's largest magnitude unclipped; for activations that is the current batch's, as a plan's
calibration batch gives). The stem, head and NB201's reduction blocks are not searched and stay float.

``forward(x, gates)``: ``gates[i]`` of shape ``(counts[i],)``, a hard one-hot in value with a soft
gradient (straight-through Gumbel-softmax, made by the caller). The selected candidate's output
is multiplied by ``1 + (g - g.detach())`` of its gate entry ``g``: exactly 1 in value (so the
forward equals the discrete network's), the gate's gradient in the backward.

``derive(indices)`` is the discrete network (``fbnet_network`` / ``nb201_network``, width-scaled
for an FBNet supernet with ``width_mult``) holding the supernet's weights (weight inheritance:
the same state, so the same output); ``bit_plan`` gives its bit widths as a ``Plan`` keyed by its
workload's layer names; ``position_layers`` / ``fixed_layers`` split those layer names by the
position that produced them, for per-position cost tables.

Fashion-MNIST (1x28x28, 10 classes) runs on the CIFAR layout (CIFAR-10's strides and widths)
with a one-channel stem: 28 -> 14 -> 7 -> 4 in FBNet's strided stages, 28 -> 14 -> 7 in NB201's.
``workload(indices, dataset="cifar10")`` gives the same architecture on CIFAR-10's shapes for costing.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import re
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.fixedpoint import fake_quantize
from nn2hw.plan import Plan
from nn2hw.workload import Layer, Workload, from_module
from nn2hw.workload.spaces.fbnet import FBNET_DEPTH, FBNET_LAYOUTS, FBNET_OPS, fbnet_blocks
from nn2hw.workload.spaces.nb201 import NB201_CELLS, NB201_CHANNELS, NB201_DATASETS, NB201_EDGES, NB201_OPS
from nn2hw.zoo.archs._init import init_weights
from nn2hw.zoo.archs.fbnet import FBNet, block_module, check_width_mult, fbnet_network, scaled_blocks
from nn2hw.zoo.archs.nb201 import InferCell, TinyNetwork, _positive, edge_op, nb201_network, run_cell

FLOAT_BITS = 32
"""A bit-width choice of 32 leaves the block in float32."""
MIN_BITS = 2
_GATE_TOLERANCE = 1e-3
_TRAINING_COPIES = 4
"""Bytes per parameter byte while training: the weight, its gradient and Adam's two moments."""
_ACTIVATION_COPIES = 2
"""Saved bytes per output byte of a layer on the path (its output and a same-sized input or mask
kept for the backward); a quantized conv keeps its quantized input too (``_QUANT_COPIES``)."""
_QUANT_COPIES = 1
_TRACES_KEPT = 64


@dataclass(frozen=True)
class SupernetInput:
    """A dataset's input for a supernet: the builder's layout name, input channels and size, classes."""

    dataset: str
    layout: str
    channels: int
    size: int
    classes: int

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.channels, self.size, self.size)


_FASHION_MNIST = SupernetInput("fashion-mnist", "cifar10", 1, 28, 10)
FBNET_INPUTS: dict[str, SupernetInput] = {
    **{name: SupernetInput(name, name, 3, layout.input_size, layout.classes) for name, layout in FBNET_LAYOUTS.items()},
    _FASHION_MNIST.dataset: _FASHION_MNIST}
NB201_INPUTS: dict[str, SupernetInput] = {
    **{name: SupernetInput(name, name, 3, data.input_size, data.classes) for name, data in NB201_DATASETS.items()},
    _FASHION_MNIST.dataset: _FASHION_MNIST}


def _find_input(inputs: dict[str, SupernetInput], dataset: str, space: str) -> SupernetInput:
    found = {name.lower(): entry for name, entry in inputs.items()}.get(str(dataset).lower())
    if found is None:
        raise ConfigError(f"The {space} supernet has no input layout for dataset {dataset!r}.",
                          f"Use one of {sorted(inputs)}.")
    return found


def _check_bits(bits: Sequence[int] | None) -> tuple[int, ...]:
    if bits is None:
        return ()
    if isinstance(bits, (str, bytes)) or not isinstance(bits, Sequence) or not bits:
        raise ConfigError(f"The supernet's bit widths must be a non-empty list of integers, got {bits!r}.",
                          "Pass e.g. bits=(32, 8, 6, 4), or bits=None for float only.")
    for value in bits:
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_BITS <= value <= FLOAT_BITS:
            raise ConfigError(f"Bit width {value!r} is outside {MIN_BITS}..{FLOAT_BITS}.",
                              f"Use integers from {MIN_BITS} (the narrowest fixed point) to {FLOAT_BITS} (float).")
    if len(set(bits)) != len(bits):
        raise ConfigError(f"The bit widths {list(bits)} repeat a value, so two choices would be the same.",
                          "List each bit width once.")
    return tuple(bits)


def _check_classes(num_classes: int | None, default: int) -> int:
    if num_classes is None:
        return default
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}.",
                          f"Use e.g. num_classes={default}, or leave it out for the dataset's count.")
    return num_classes


class _QuantConv2d(nn.Conv2d):
    """A conv that fake-quantizes its weight and input to ``bits`` when set (None: float).

    Installed by class swap on the candidates' convs: parameters and state-dict keys stay a conv's.
    """

    bits: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return super().forward(x)
        return self._conv_forward(fake_quantize(x, self.bits), fake_quantize(self.weight, self.bits), self.bias)


class Choice(nn.Module):
    """One searchable position's candidates (``candidates.<j>``); runs the selected one only."""

    def __init__(self, candidates: Iterable[nn.Module]) -> None:
        super().__init__()
        self.candidates = nn.ModuleList(candidates)
        for module in self.candidates.modules():
            if type(module) is nn.Conv2d:
                module.__class__ = _QuantConv2d
        self._convs = [[m for m in c.modules() if isinstance(m, _QuantConv2d)] for c in self.candidates]

    def forward(self, x: torch.Tensor, choice: int, bits: int | None) -> torch.Tensor:
        for conv in self._convs[choice]:
            conv.bits = bits
        return self.candidates[choice](x)


def _unit(gate: torch.Tensor, choice: int) -> torch.Tensor:
    """1 in value, the gradient of ``gate[choice]`` in the backward."""
    value = gate[choice]
    return 1 + (value - value.detach())


# --- memory ----------------------------------------------------------------------------------------


def available_bytes(device: torch.device) -> int:
    """Free memory for tensors on ``device``: the GPU's free memory, else the host's MemAvailable."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# --- the shared machinery ------------------------------------------------------------------------------


class Supernet(nn.Module, metaclass=ABCMeta):
    """What both supernets share: the position layout, gates, derivation, workloads, plans and memory.

    A subclass sets ``space``, ``positions`` (op positions) and ``choices`` (candidates per op
    position), calls ``_configure`` first in its constructor, and defines ``_inputs`` (its datasets),
    ``_discrete`` (the derived network for op indices and an input), ``_run`` (the gated forward),
    ``_supernet_key`` (a derived state-dict key's name in the supernet) and ``_owner`` (the op
    position a module path belongs to).
    """

    space: str
    positions: int
    choices: int
    input: SupernetInput
    bits: tuple[int, ...]
    num_classes: int
    counts: tuple[int, ...]
    """Choices per position: the op positions, then (with ``bits``) one bit position per op position."""

    def _configure(self, dataset: str, num_classes: int | None, bits: Sequence[int] | None,
                   twin: Callable[[], Supernet]) -> None:
        """Check and set what the constructors share (the input, classes, bit widths, ``counts``);
        then, before anything is allocated, check that the weights and their training state fit
        the memory of the device being built on, from ``twin()`` built on the meta device."""
        self.input = self._inputs(dataset)
        self.num_classes = _check_classes(num_classes, self.input.classes)
        self.bits = _check_bits(bits)
        self.counts = (self.choices,) * self.positions + (len(self.bits),) * (self.positions if self.bits else 0)
        device = torch.empty(()).device
        if device.type != "meta":
            with torch.device("meta"):
                probe = twin()
            probe.check_memory(0, available=available_bytes(device))

    # --- layout ---------------------------------------------------------------------------------

    @property
    def op_positions(self) -> range:
        return range(self.positions)

    @property
    def bit_positions(self) -> range:
        return range(self.positions, len(self.counts))

    def check_indices(self, indices: Sequence[int]) -> tuple[tuple[int, ...], tuple[int | None, ...]]:
        """(op indices, per op position the bit width or None for float) of ``indices``; a
        ``ConfigError`` naming a wrong length or an index out of range."""
        counts = self.counts
        layout = f"{self.positions} op indices" + (f" then {self.positions} bit-width indices" if self.bits else "")
        if isinstance(indices, (str, bytes)) or not hasattr(indices, "__len__"):
            raise ConfigError(f"Supernet indices must be a sequence of {len(counts)} integers, got {indices!r}.",
                              f"Pass {layout}.")
        if len(indices) != len(counts):
            raise ConfigError(f"The {self.space} supernet has {len(counts)} positions; {len(indices)} indices were "
                              "given.", f"Pass {layout} (see counts).")
        values: list[int] = []
        for position, (given, count) in enumerate(zip(indices, counts)):
            value = _index(given)
            if value is None or not 0 <= value < count:
                what = "op" if position < self.positions else "bit-width"
                raise ConfigError(f"Position {position} ({what}) of the {self.space} supernet has index {given!r}, "
                                  f"outside 0..{count - 1}.",
                                  f"Use an integer in 0..{count - 1} at position {position}.")
            values.append(value)
        ops = tuple(values[:self.positions])
        widths = tuple(self._float_or(self.bits[i]) for i in values[self.positions:]) or (None,) * self.positions
        return ops, widths

    @staticmethod
    def _float_or(bits: int) -> int | None:
        return None if bits >= FLOAT_BITS else bits

    # --- forward ----------------------------------------------------------------------------------
    def _selected(self, gates: Sequence[torch.Tensor]) -> tuple[list[int], list[torch.Tensor]]:
        """The selected index of every gate and its unit factor; a ``ConfigError`` for a wrong gate."""
        counts = self.counts
        if len(gates) != len(counts):
            raise ConfigError(f"The {self.space} supernet takes {len(counts)} gates (one per position); "
                              f"{len(gates)} were given.", "Pass one gate per entry of counts.")
        for position, (gate, count) in enumerate(zip(gates, counts)):
            if not isinstance(gate, torch.Tensor) or tuple(gate.shape) != (count,):
                shape = tuple(gate.shape) if isinstance(gate, torch.Tensor) else type(gate).__name__
                raise ConfigError(f"Gate {position} has shape {shape}; position {position} has {count} choices.",
                                  f"Pass a tensor of shape ({count},) for position {position}.")
        flat = [gate.detach() for gate in gates]
        top = torch.stack([g.max() for g in flat])
        off = torch.stack([(g.sum() - g.max()).abs() + (-g.min()).clamp(min=0) for g in flat])
        if (top - 1).abs().max() > _GATE_TOLERANCE or off.max() > _GATE_TOLERANCE:
            raise ConfigError("The gates are not one-hot in value; a single-path supernet runs one candidate per "
                              "position.", "Pass straight-through hard gates, e.g. "
                              "torch.nn.functional.gumbel_softmax(logits, tau, hard=True).")
        choices = torch.stack([g.argmax() for g in flat]).tolist()
        return choices, [_unit(gate, choice) for gate, choice in zip(gates, choices)]

    def forward(self, x: torch.Tensor, gates: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits of the path ``gates`` select (see the module docstring)."""
        choices, units = self._selected(gates)
        ops, widths = self.check_indices(choices)
        factors = units[:self.positions]
        if self.bits:
            factors = [op * bit for op, bit in zip(factors, units[self.positions:])]
        return self._run(x, ops, widths, factors)

    @abstractmethod
    def _run(self, x: torch.Tensor, ops: Sequence[int], widths: Sequence[int | None],
             factors: Sequence[torch.Tensor]) -> torch.Tensor:
        """The network's output along ``ops``, each position at its bit width in ``widths`` (None: float) and
        its output times its gate factor."""

    # --- the derived network --------------------------------------------------------------------------
    @abstractmethod
    def _discrete(self, ops: tuple[int, ...], shapes: SupernetInput) -> nn.Module:
        """The discrete network of ``ops`` for ``shapes`` (built on whatever device is current)."""

    @abstractmethod
    def _supernet_key(self, key: str, ops: tuple[int, ...]) -> str:
        """The supernet state-dict key a derived network's ``key`` inherits from."""

    @abstractmethod
    def _owner(self, name: str) -> int | None:
        """The op position a module path belongs to (None: the stem, the head, a reduction)."""

    def derive(self, indices: Sequence[int]) -> nn.Module:
        """The discrete network of ``indices`` with the supernet's weights and batch-norm statistics,
        on the supernet's device and in its training mode. Its output equals the supernet's forward
        with one-hot gates at ``indices`` (in float; bit widths are the plan's business: ``bit_plan``)."""
        ops, _ = self.check_indices(indices)
        with torch.device("meta"):
            net = self._discrete(ops, self.input)
        source = self.state_dict()
        device = next(self.parameters()).device
        net.to_empty(device=device)
        net.load_state_dict({key: source[self._supernet_key(key, ops)] for key in net.state_dict()}, strict=True)
        return net.train(self.training)

    def workload(self, indices: Sequence[int], batch: int = 1, dataset: str | None = None) -> Workload:
        """The derived network's workload on a ``batch`` of ``dataset``'s inputs (default: the
        supernet's own; e.g. "cifar10" to cost a Fashion-MNIST supernet on CIFAR-10's shapes), traced
        on the meta device. Bit widths are not in it: apply ``bit_plan`` to it."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"Batch size must be a positive integer, got {batch!r}.", "Use e.g. batch=1.")
        ops, _ = self.check_indices(indices)
        shapes = self.input if dataset is None else self._inputs(dataset)
        return self._trace(ops, shapes, batch)[0]

    def _trace(self, ops: tuple[int, ...], shapes: SupernetInput, batch: int) -> tuple[Workload, dict[str, int | None]]:
        """The workload of ``ops``' derived network and each layer's op position (``_owners``); the
        last ``_TRACES_KEPT`` are kept, as cost tables ask for the same few architectures often."""
        key = (ops, shapes, batch)
        if key not in self._traces:
            with torch.device("meta"):
                net = self._discrete(ops, shapes)
            work = from_module(net, torch.empty(shapes.shape(batch), device="meta"),
                               name=f"{self.space}-{shapes.dataset}-{''.join(str(op) for op in ops)}")
            if len(self._traces) >= _TRACES_KEPT:
                del self._traces[next(iter(self._traces))]
            self._traces[key] = (work, self._owners(work.layers, {name for name, _ in net.named_modules()}))
        return self._traces[key]

    @cached_property
    def _traces(self) -> dict[tuple[tuple[int, ...], SupernetInput, int], tuple[Workload, dict[str, int | None]]]:
        return {}

    @abstractmethod
    def _inputs(self, dataset: str) -> SupernetInput:
        """The input layout of ``dataset`` (its shape, channels and classes)."""

    # --- layers per position -----------------------------------------------------------------------
    def _owners(self, layers: Sequence[Layer], modules: set[str]) -> dict[str, int | None]:
        """Each layer's op position: by module path, else (a functional layer: channel shuffle,
        residual add, node sum, a zero) the position of its first input that has one, else None."""
        owners: dict[str, int | None] = {}
        for layer in layers:
            owner = self._owner(layer.name)
            if owner is None and layer.name not in modules:
                owner = next((owners[i] for i in layer.inputs if owners.get(i) is not None), None)
            owners[layer.name] = owner
        return owners

    def position_layers(self, indices: Sequence[int]) -> list[list[str]]:
        """For each position (``counts``' layout), the workload layer names of ``indices``' derived
        network that its choice produced: for an op position, every layer of its block / edge op (a
        functional layer goes with the position of its first input that has one; exact for FBNet,
        a node sum of NB201 goes with one of its edges); for a bit position, the conv layers whose
        bit width it sets. Layers no op position produced are ``fixed_layers``."""
        ops, _ = self.check_indices(indices)
        work, owners = self._trace(ops, self.input, 1)
        by_position: list[list[str]] = [[] for _ in range(self.positions)]
        for layer in work.layers:
            owner = owners[layer.name]
            if owner is not None:
                by_position[owner].append(layer.name)
        if self.bits:
            convs = {layer.name for layer in work.layers if layer.is_compute}
            by_position += [[name for name in names if name in convs] for names in by_position]
        return by_position

    def fixed_layers(self, indices: Sequence[int]) -> list[str]:
        """The workload layers of ``indices``' derived network that no op position produced
        (input, stem, head, NB201's reduction blocks and the node sums fed by those)."""
        ops, _ = self.check_indices(indices)
        work, owners = self._trace(ops, self.input, 1)
        return [layer.name for layer in work.layers if owners[layer.name] is None]

    def layer_bits(self, indices: Sequence[int]) -> dict[str, int]:
        """Each quantized conv layer of the derived network and its bit width (weights and activations);
        layers left out stay float (32)."""
        _, widths = self.check_indices(indices)
        positions = self.position_layers(indices)[self.positions:] if self.bits else []
        return {name: bits for names, bits in zip(positions, widths) if bits is not None for name in names}

    def bit_plan(self, indices: Sequence[int], base_model: str | None = None) -> Plan:
        """``indices``' bit widths as a plan for the derived network: ``weight_bits`` and ``act_bits``
        per quantized conv (activation integer bits unset: calibrate them, e.g. with
        ``nn2hw.compress.quantize.activation_int_bits`` on the derived network)."""
        plan = Plan.for_workload(self.workload(indices), base_model=base_model, dataset=self.input.dataset)
        for name, bits in self.layer_bits(indices).items():
            plan = plan.with_choice(name, weight_bits=bits, act_bits=bits)
        return plan

    # --- memory -------------------------------------------------------------------------------------
    @cached_property
    def _path_elements(self) -> int:
        """Output elements per sample along the largest path: per op position the candidate whose
        layers output the most, plus the layers no position owns (their largest count over candidates)."""
        best = [0] * self.positions
        fixed = 0
        for op in range(self.choices):
            work, owners = self._trace((op,) * self.positions, self.input, 1)
            sums = [0] * self.positions
            rest = 0
            for layer in work.layers:
                elements = math.prod(layer.output_shape)
                owner = owners[layer.name]
                if owner is None:
                    rest += elements
                else:
                    sums[owner] += elements
            best = [max(a, b) for a, b in zip(best, sums)]
            fixed = max(fixed, rest)
        return sum(best) + fixed

    def estimate_bytes(self, batch: int) -> int:
        """An upper estimate of the bytes training takes at ``batch``: parameters x 4 (weights,
        gradients, Adam's two moments) + buffers + the saved activations of the largest path."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
            raise ConfigError(f"Batch size must be a non-negative integer, got {batch!r}.", "Use e.g. batch=64.")
        return self._state_bytes + (batch * self._sample_bytes if batch else 0)

    @property
    def _state_bytes(self) -> int:
        parameters = sum(p.numel() * p.element_size() for p in self.parameters())
        return _TRAINING_COPIES * parameters + sum(b.numel() * b.element_size() for b in self.buffers())

    @property
    def _sample_bytes(self) -> int:
        copies = _ACTIVATION_COPIES + (_QUANT_COPIES if self.bits else 0)
        return copies * self._path_elements * torch.finfo(torch.float32).bits // 8

    def check_memory(self, batch: int, available: int | None = None) -> int:
        """``estimate_bytes(batch)``, checked against ``available`` bytes (default: free memory on the
        supernet's device); a ``ConfigError`` naming the estimate and the largest batch that fits."""
        needed = self.estimate_bytes(batch)
        if available is None:
            available = available_bytes(next(self.parameters()).device)
        if needed <= available:
            return needed
        state = self._state_bytes
        fits = (available - state) // self._sample_bytes if state < available else 0
        smaller = "a smaller width_mult" if self.space == "fbnet" else "fewer channels or cells"
        fix = f"Use a batch of at most {fits}, or {smaller}." if fits >= 1 else \
            f"Use {smaller}: the weights and optimizer state alone do not fit."
        what = f"to train at batch {batch}" if batch else "for its weights and training state"
        raise ConfigError(f"The {self.space} supernet needs about {_gib(needed)} {what} "
                          f"({_gib(state)} weights, gradients and optimizer state, {_gib(needed - state)} "
                          f"activations of its largest path); {_gib(available)} is available.", fix)


def _index(value: object) -> int | None:
    """``value`` as an int when it is an integer (numpy's included, bool not), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


# --- FBNet ------------------------------------------------------------------------------------------


class FBNetSupernet(Supernet):
    """The FBNet space's supernet: ``cells.<i>.candidates.<j>`` is candidate block ``FBNET_OPS[j]`` of block i.

    ``width_mult`` scales every width as ``fbnet_network`` does (rounded to a multiple of 4): the
    derived networks are the width-scaled ones. ``dataset``: cifar10, cifar100, ImageNet or
    fashion-mnist (CIFAR-10's layout, one input channel, 28x28).
    """

    space = "fbnet"
    positions = FBNET_DEPTH
    choices = len(FBNET_OPS)

    def __init__(self, dataset: str, num_classes: int | None = None, *, bits: Sequence[int] | None = None,
                 width_mult: float = 1.0) -> None:
        super().__init__()
        self.width_mult = check_width_mult(width_mult)
        self._configure(dataset, num_classes, bits,
                        lambda: FBNetSupernet(dataset, num_classes, bits=bits, width_mult=width_mult))
        skeleton = self._discrete((FBNET_OPS.index(_SKIP),) * FBNET_DEPTH, self.input)
        blocks = scaled_blocks(fbnet_blocks((0,) * FBNET_DEPTH, self.input.layout), self.width_mult)
        self.stem = skeleton.stem
        self.cells = nn.ModuleList(
            Choice(block_module(dataclasses.replace(block, op=op)) for op in FBNET_OPS) for block in blocks)
        self.header, self.avgpool, self.fc = skeleton.header, skeleton.avgpool, skeleton.fc
        init_weights(self)

    def _inputs(self, dataset: str) -> SupernetInput:
        return _find_input(FBNET_INPUTS, dataset, self.space)

    def _discrete(self, ops: tuple[int, ...], shapes: SupernetInput) -> FBNet:
        return fbnet_network(ops, shapes.layout, in_channels=shapes.channels, num_classes=self.num_classes,
                             width_mult=self.width_mult)

    def _run(self, x: torch.Tensor, ops: Sequence[int], widths: Sequence[int | None],
             factors: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.stem(x)
        for cell, op, bits, factor in zip(self.cells, ops, widths, factors):
            x = cell(x, op, bits) * factor
        return self.fc(torch.flatten(self.avgpool(self.header(x)), 1))

    def _supernet_key(self, key: str, ops: tuple[int, ...]) -> str:
        match = _FBNET_BLOCK.match(key)
        if match is None:
            return key
        return f"cells.{match[1]}.candidates.{ops[int(match[1])]}.{key[match.end():]}"

    def _owner(self, name: str) -> int | None:
        match = _FBNET_BLOCK.match(name)
        return None if match is None else int(match[1])


_SKIP = next(op for op in FBNET_OPS if op.is_skip)
_FBNET_BLOCK = re.compile(r"cells\.(\d+)\.")


# --- NAS-Bench-201 ------------------------------------------------------------------------------------


class SuperCell(nn.Module):
    """A NAS-Bench-201 cell with every op on every edge: ``layers.<e>.candidates.<j>`` is ``NB201_OPS[j]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Choice(edge_op(name, channels) for name in NB201_OPS) for _ in NB201_EDGES)

    def forward(self, x: torch.Tensor, ops: Sequence[int], widths: Sequence[int | None],
                factors: Sequence[torch.Tensor]) -> torch.Tensor:
        return run_cell(x, ops, lambda edge, value: self.layers[edge](value, ops[edge], widths[edge]) * factors[edge])


class NB201Supernet(Supernet):
    """The NAS-Bench-201 cell space's supernet: TinyNetwork with every searched cell a ``SuperCell``.

    ``dataset``: cifar10, cifar100, ImageNet16-120 or fashion-mnist (one input channel, 28x28);
    ``channels`` (C) and ``cells`` (N) as ``nb201_network`` (NAS-Bench-201: 16 and 5).
    """

    space = "nb201"
    positions = len(NB201_EDGES)
    choices = len(NB201_OPS)

    def __init__(self, dataset: str, num_classes: int | None = None, *, bits: Sequence[int] | None = None,
                 channels: int = NB201_CHANNELS, cells: int = NB201_CELLS) -> None:
        super().__init__()
        self.channels, self.cell_count = _positive(channels, "channels"), _positive(cells, "cells")
        self._configure(dataset, num_classes, bits,
                        lambda: NB201Supernet(dataset, num_classes, bits=bits, channels=channels, cells=cells))
        skeleton: TinyNetwork = self._discrete((NB201_OPS.index("none"),) * len(NB201_EDGES), self.input)
        self.stem = skeleton.stem
        self.cells = nn.ModuleList(SuperCell(channels * 2 ** (k // (cells + 1))) if isinstance(block, InferCell)
                                   else block for k, block in enumerate(skeleton.cells))
        self.lastact, self.global_pooling, self.classifier = \
            skeleton.lastact, skeleton.global_pooling, skeleton.classifier
        init_weights(self)

    def _inputs(self, dataset: str) -> SupernetInput:
        return _find_input(NB201_INPUTS, dataset, self.space)

    def _discrete(self, ops: tuple[int, ...], shapes: SupernetInput) -> TinyNetwork:
        return nb201_network(ops, shapes.layout, self.channels, self.cell_count, in_channels=shapes.channels,
                             num_classes=self.num_classes)

    def _run(self, x: torch.Tensor, ops: Sequence[int], widths: Sequence[int | None],
             factors: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x, ops, widths, factors) if isinstance(cell, SuperCell) else cell(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(torch.flatten(x, 1))

    def _supernet_key(self, key: str, ops: tuple[int, ...]) -> str:
        match = _NB201_EDGE.match(key)
        if match is None:
            return key
        edge = int(match[2])
        return f"cells.{match[1]}.layers.{edge}.candidates.{ops[edge]}.{key[match.end():]}"

    def _owner(self, name: str) -> int | None:
        match = _NB201_EDGE.match(name)
        return None if match is None else int(match[2])


_NB201_EDGE = re.compile(r"cells\.(\d+)\.layers\.(\d+)\.")

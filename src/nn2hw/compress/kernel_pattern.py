"""Kernel pattern pruning with HotNAS's pattern library (§2.5, ``pattern_generator.py``).

The library of a K x K kernel with ``z`` zeros is every mask that zeroes ``z`` of the kernel's
*prunable* positions (positions are row-major, 0 .. K*K-1):

- 3x3: every position but the centre (8 prunable): z=3 -> C(8,3) = 56 patterns, z=4 -> 70.
  HotNAS's z=2 loop never reaches position 8, so its z=2 library has C(7,2) = 21 patterns; that
  quirk is the default for 3x3 z=2 and is switched by ``keep_last`` (``False``: C(8,2) = 28).
- K >= 5 (odd): the inner (K-2)x(K-2) block and the 4 mid-edge positions of the outer ring are
  always kept; the other 4K-8 positions of the outer ring are prunable. 5x5 is HotNAS's library
  (12 prunable, z=6 -> 924 patterns of 19 ones); 7x7 follows the same rule (20 prunable) in place
  of HotNAS's 4 hand-drawn masks, so that every size has a library built one way.

Pattern ids are ranks in the lexicographic order of the zeroed positions, which is the order
HotNAS's nested loops produce. Default ``z``: 3 for 3x3 (6 kept weights, HotNAS's PATn=4
setting), half the prunable ring (2K-4) for K >= 5 (6 for 5x5 as in HotNAS, 10 for 7x7).

A layer picks PATn patterns (ids); each kernel of the layer takes the chosen pattern that keeps
the largest L2 norm of its weights. The masks are weight parametrizations, so fine-tuning can
never revive a pruned weight.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from math import comb
from typing import TYPE_CHECKING, Any

import numpy as np

from nn2hw._checks import is_int
from nn2hw.compress.base import TRANSFORMS, Offer, SpaceContext, Transform, check_int, has_module_weights
from nn2hw.errors import PlanError, Problem
from nn2hw.plan import Plan
from nn2hw.workload.layer import Layer, OpKind, Workload

if TYPE_CHECKING:
    import torch
    from torch import nn

DEFAULT_PATN = 4
"""Patterns per layer in HotNAS's DNA (one entry per kernel size)."""


def has_library(kernel_h: int, kernel_w: int) -> bool:
    """Whether a pattern library exists for this kernel: square, odd, at least 3x3."""
    return kernel_h == kernel_w and kernel_h >= 3 and kernel_h % 2 == 1


def default_zeros(kernel: int) -> int:
    """HotNAS's default number of zeroed positions: 3 for 3x3, 2K-4 (half the prunable ring) above."""
    return 3 if kernel == 3 else 2 * kernel - 4


def default_keep_last(kernel: int, zeros: int) -> bool:
    """Whether HotNAS's library keeps the last position: only its 3x3, z=2 loop does."""
    return kernel == 3 and zeros == 2


@cache
def prunable_positions(kernel: int, keep_last: bool = False) -> tuple[int, ...]:
    """Row-major positions a pattern may zero (see the module docstring)."""
    if not has_library(kernel, kernel):
        raise PlanError(f"There is no pattern library for {kernel}x{kernel} kernels.",
                        "Prune only square, odd kernels of 3x3 or more (3x3, 5x5, 7x7, ...).")
    centre = kernel // 2
    if kernel == 3:
        positions = [p for p in range(9) if p != 4]
    else:
        ring = [(r, c) for r in range(kernel) for c in range(kernel) if min(r, c) == 0 or max(r, c) == kernel - 1]
        mid_edges = {(0, centre), (centre, 0), (centre, kernel - 1), (kernel - 1, centre)}
        positions = sorted(r * kernel + c for r, c in ring if (r, c) not in mid_edges)
    return tuple(p for p in positions if not (keep_last and p == kernel * kernel - 1))


def library_size(kernel: int, zeros: int | None = None, keep_last: bool | None = None) -> int:
    """Number of patterns in the library of a ``kernel`` x ``kernel`` kernel with ``zeros`` zeros."""
    zeros = default_zeros(kernel) if zeros is None else zeros
    keep_last = default_keep_last(kernel, zeros) if keep_last is None else keep_last
    return comb(len(prunable_positions(kernel, keep_last)), zeros)


def _check_zeros(kernel: int, zeros: int, keep_last: bool) -> int:
    n = len(prunable_positions(kernel, keep_last))
    if not 1 <= zeros <= n:
        raise PlanError(f"A {kernel}x{kernel} pattern can zero 1..{n} positions, not {zeros}.",
                        f"Choose pattern_zeros between 1 and {n} (default {default_zeros(kernel)}).")
    return n


@lru_cache(maxsize=64)
def _rank_table(n: int, z: int) -> np.ndarray:
    """table[slot, c] = number of combinations whose ``slot``-th element is below ``c`` (prefix fixed)."""
    table = np.zeros((z, n + 1), dtype=np.int64)
    for slot in range(z):
        for c in range(n):
            table[slot, c + 1] = table[slot, c] + comb(n - c - 1, z - slot - 1)
    return table


def rank_combinations(n: int, combos: np.ndarray) -> np.ndarray:
    """Lexicographic ranks of sorted ``z``-subsets of range(n), one row each (vectorized)."""
    combos = np.asarray(combos, dtype=np.int64)
    z = combos.shape[1]
    table = _rank_table(n, z)
    prev = np.concatenate([np.full((len(combos), 1), -1), combos[:, :-1]], axis=1) + 1
    slots = np.arange(z)
    return (table[slots, combos] - table[slots, prev]).sum(axis=1)


def _unrank(n: int, z: int, rank: int) -> list[int]:
    """The ``rank``-th ``z``-subset of range(n) in lexicographic order."""
    out, start = [], 0
    for slot in range(z):
        for c in range(start, n):
            count = comb(n - c - 1, z - slot - 1)
            if rank < count:
                out.append(c)
                start = c + 1
                break
            rank -= count
    return out


def pattern_mask(kernel: int, pattern_id: int, zeros: int | None = None, keep_last: bool | None = None) -> np.ndarray:
    """The ``kernel`` x ``kernel`` boolean mask (True = kept) of one library pattern."""
    zeros = default_zeros(kernel) if zeros is None else zeros
    keep_last = default_keep_last(kernel, zeros) if keep_last is None else keep_last
    positions = prunable_positions(kernel, keep_last)
    size = comb(_check_zeros(kernel, zeros, keep_last), zeros)
    if not 0 <= pattern_id < size:
        raise PlanError(f"Pattern id {pattern_id} is outside the {kernel}x{kernel} library with {zeros} zeros "
                        f"(ids 0..{size - 1}).", f"Use ids between 0 and {size - 1}.")
    mask = np.ones(kernel * kernel, dtype=bool)
    mask[[positions[i] for i in _unrank(len(positions), zeros, pattern_id)]] = False
    return mask.reshape(kernel, kernel)


def pattern_library(kernel: int, zeros: int | None = None, keep_last: bool | None = None) -> np.ndarray:
    """Every mask of the library, shape (size, kernel, kernel), in id order (enumerates: small libraries)."""
    return np.stack([pattern_mask(kernel, i, zeros, keep_last) for i in range(library_size(kernel, zeros, keep_last))])


def best_library_patterns(weight: Any, zeros: int | None = None, keep_last: bool | None = None) -> np.ndarray:
    """Per kernel of a (O, I, K, K) weight: the id of the library pattern keeping the most L2 norm.

    Keeping the largest norm means zeroing the ``zeros`` smallest-magnitude prunable positions
    (ties to the lower position), so no enumeration of the library is needed.
    """
    kernel = int(weight.shape[-1])
    zeros = default_zeros(kernel) if zeros is None else zeros
    keep_last = default_keep_last(kernel, zeros) if keep_last is None else keep_last
    positions = prunable_positions(kernel, keep_last)
    _check_zeros(kernel, zeros, keep_last)
    values = np.abs(np.asarray(weight.detach().cpu() if hasattr(weight, "detach") else weight, dtype=np.float64))
    flat = values.reshape(-1, kernel * kernel)[:, list(positions)]
    zeroed = np.sort(np.argsort(flat, axis=1, kind="stable")[:, :zeros], axis=1)
    return rank_combinations(len(positions), zeroed)


def top_patterns(weights: Iterable[Any], patn: int = DEFAULT_PATN, zeros: int | None = None,
                 keep_last: bool | None = None) -> tuple[int, ...]:
    """The ``patn`` library patterns that are most often the best for the kernels of ``weights``.

    A data-free way to pick a layer set's PATn patterns (HotNAS's RL controller searches them):
    each kernel votes for its best pattern of the whole library; the most voted win, ties to the
    lower id.
    """
    weights = list(weights)
    if not weights:
        raise PlanError("No layers to choose patterns for.", "Select at least one conv with a pattern library.")
    kernel = int(weights[0].shape[-1])
    size = library_size(kernel, zeros, keep_last)
    if not 1 <= patn <= size:
        raise PlanError(f"PATn={patn} is outside 1..{size} for the {kernel}x{kernel} library.",
                        f"Choose between 1 and {size} patterns.")
    votes = np.zeros(size, dtype=np.int64)
    for w in weights:
        votes += np.bincount(best_library_patterns(w, zeros, keep_last), minlength=size)
    return tuple(sorted(int(i) for i in np.argsort(-votes, kind="stable")[:patn]))


DEFAULT_3X3_ZEROS = (3, 4, 5)
"""3x3 kernels keep 6, 5 or 4 weights in the search by default: HotNAS's z=3 library, its z=4 one,
and the 4-entry patterns of PatDNN. Small layers on a large MAC array are limited by kernel
positions, not channels, so these are the levers that shorten them."""


@dataclass(frozen=True)
class PatternChoice:
    """``patterns``: the layer's PATn pattern ids in the library of its (expanded) kernel size, with
    ``pattern_zeros`` zeros (default per size) and ``pattern_keep_last`` (HotNAS's 3x3 z=2 quirk;
    default as HotNAS coded it)."""

    patterns: tuple[int, ...] | None = None
    pattern_zeros: int | None = None
    pattern_keep_last: bool | None = None

    def __post_init__(self) -> None:
        if self.patterns is not None:
            if not isinstance(self.patterns, (list, tuple)) or not self.patterns \
                    or not all(is_int(i) and i >= 0 for i in self.patterns):
                raise PlanError(f"patterns={self.patterns!r} is not a list of pattern ids (integers >= 0).",
                                "Give pattern ids from the library of the layer's kernel size.")
            if len(set(self.patterns)) != len(self.patterns):
                raise PlanError(f"patterns={list(self.patterns)} repeats an id.", "List each pattern id once.")
            object.__setattr__(self, "patterns", tuple(self.patterns))
        check_int("pattern_zeros", self.pattern_zeros, 1, fix="Zero at least one position per kernel.")
        if self.pattern_keep_last is not None and not isinstance(self.pattern_keep_last, bool):
            raise PlanError(f"pattern_keep_last={self.pattern_keep_last!r} is not true/false.",
                            "Use true, false or leave it unset.")
        if self.patterns is None and (self.pattern_zeros is not None or self.pattern_keep_last is not None):
            raise PlanError("pattern_zeros/pattern_keep_last are set without patterns.", "Give the pattern ids too.")

    def library(self, kernel: int) -> tuple[int, bool]:
        """(zeros, keep_last) of this choice's library for a ``kernel`` x ``kernel`` kernel."""
        zeros = default_zeros(kernel) if self.pattern_zeros is None else self.pattern_zeros
        keep_last = default_keep_last(kernel, zeros) if self.pattern_keep_last is None else self.pattern_keep_last
        return zeros, keep_last


def with_patterns(plan: Plan, workload: Workload, layers: str = "*", patterns: Iterable[int] | None = None, *,
                  model: nn.Module | None = None, patn: int = DEFAULT_PATN, zeros: int | None = None,
                  keep_last: bool | None = None, kernel: int | None = None) -> Plan:
    """``plan`` with every conv matching the glob ``layers`` that has a pattern library pattern-pruned.

    ``patterns`` gives the PATn ids; without them ``model`` (the base model) is required and each
    kernel size's ``patn`` ids are the library patterns most often best for those layers'
    kernels (``top_patterns``). ``kernel`` restricts to one kernel size, e.g.
    ``with_patterns(plan, w, "layer1.*", model=m)`` prunes ResNet stage 1.
    """
    chosen = [l for l in workload.compute_layers if fnmatch.fnmatchcase(l.name, layers) and has_module_weights(l)
              and l.kind is OpKind.CONV and has_library(l.kernel_h, l.kernel_w)
              and (kernel is None or l.kernel_h == kernel)]
    if not chosen:
        raise PlanError(f"No conv with a pattern library (square, odd kernel >= 3) matches {layers!r}"
                        f"{f' with kernel {kernel}' if kernel else ''} in {workload.name!r}.",
                        "Check the layer glob against the workload's layer names.")
    sizes = sorted({l.kernel_h for l in chosen})
    if patterns is not None:
        if len(sizes) > 1:
            raise PlanError(f"The layers matching {layers!r} have kernels of sizes {sizes}; one list of pattern "
                            f"ids cannot fit several libraries.", "Pass kernel=... to pick one size.")
        ids = {sizes[0]: tuple(patterns)}
    elif model is None:
        raise PlanError("with_patterns needs either the pattern ids or the base model to choose them from.",
                        "Pass patterns=[...] or model=<the base nn.Module>.")
    else:
        # nn.Module.__getattr__ types a submodule's weight as Tensor | Module
        weights: dict[str, torch.Tensor] = {l.name: model.get_submodule(l.name).weight  # type: ignore[misc]
                                            for l in chosen}
        grown = [n for n, l in zip(weights, chosen) if weights[n].shape[-1] != l.kernel_h]
        if grown:
            raise PlanError(f"Layers {grown} have other kernel sizes in the workload than in the model "
                            f"(expanded?), so the model's weights cannot choose their patterns.",
                            "Pass the pattern ids of the expanded kernel's library explicitly.")
        ids = {k: top_patterns([weights[l.name] for l in chosen if l.kernel_h == k], patn, zeros, keep_last)
               for k in sizes}
    for l in chosen:
        plan = plan.with_choice(l.name, patterns=ids[l.kernel_h], pattern_zeros=zeros, pattern_keep_last=keep_last)
    return plan


class KernelPattern(Transform):
    """Prune each conv kernel to the best of the layer's PATn library patterns (``patterns``, ``pattern_zeros``)."""

    name = "kernel_pattern"
    label = "pattern pruning"
    order = 2
    choice_type = PatternChoice
    option_name = "zeros"
    option_help = "numbers of zeros per kernel, integers >= 1"
    default_options = ()
    """() = DEFAULT_3X3_ZEROS for 3x3 kernels, the library default (``default_zeros``) for larger ones."""

    def check_option(self, value: Any) -> bool:
        return is_int(value) and value >= 1

    def offer(self, workload: Workload, layer: Layer, options: Sequence[Any], context: SpaceContext) -> Offer | None:
        """PATn patterns chosen from the pretrained weights at each number of zeros (none without weights)."""
        k = layer.kernel_h
        if context.weights is None or layer.kind is not OpKind.CONV or not has_library(k, layer.kernel_w):
            return None
        zeros = options or (DEFAULT_3X3_ZEROS if k == 3 else (default_zeros(k),))
        choices: list[Mapping[str, Any] | None] = [None]
        labels = ["dense"]
        for z in (int(z) for z in zeros if z < k * k):
            ids = top_patterns([context.weights(layer.name)], DEFAULT_PATN, z, None)
            choices.append({"patterns": list(ids), "pattern_zeros": z})
            labels.append(f"{len(ids)} patterns, {k * k - z}/{k * k} kept")
        if len(choices) == 1:
            return None
        zeros_of = [0 if c is None else c["pattern_zeros"] for c in choices]
        leanest = max(range(len(choices)), key=zeros_of.__getitem__)
        return Offer((layer.name,), tuple(choices), tuple(labels), leanest)

    def describe(self, choice: PatternChoice, before: Layer, after: Layer) -> str:
        return f"{len(choice.patterns or ())} patterns, {after.kept_weights}/{after.kernel_area} kept"

    def problems(self, workload: Workload, choices: Mapping[str, PatternChoice]) -> list[Problem]:
        found = []
        for name, choice in choices.items():
            layer = workload.layer(name)
            if layer.kind is not OpKind.CONV or not has_library(layer.kernel_h, layer.kernel_w):
                found.append((f"Layer {name!r} ({layer.kind.value}, kernel {layer.kernel_h}x{layer.kernel_w}) has "
                              f"no pattern library.", "Prune only convs with square, odd kernels of 3x3 or more."))
                continue
            try:
                zeros, keep_last = choice.library(layer.kernel_h)
                size = comb(_check_zeros(layer.kernel_h, zeros, keep_last), zeros)
            except PlanError as exc:
                found.append((f"Layer {name!r}: {exc.cause}", exc.fix))
                continue
            bad = [i for i in choice.patterns or () if not 0 <= i < size]
            if bad:
                found.append((f"Layer {name!r}: pattern ids {bad} are outside its {layer.kernel_h}x{layer.kernel_w} "
                              f"library with {zeros} zeros (ids 0..{size - 1}).",
                              f"Use ids between 0 and {size - 1}."))
        return found

    def changes(self, workload: Workload, choices: Mapping[str, PatternChoice]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, choice in choices.items():
            layer = workload.layer(name)
            zeros, _ = choice.library(layer.kernel_h)
            out[name] = {"kept_per_kernel": layer.kernel_area - zeros}
        return out

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, PatternChoice]) -> None:
        import torch

        from nn2hw.compress import _torch

        for name, choice in choices.items():
            conv = _torch.weight_module(model, name, (torch.nn.Conv2d,), "kernel_pattern")
            kernel = conv.weight.shape[-1]
            zeros, keep_last = choice.library(kernel)
            masks = torch.from_numpy(np.stack([pattern_mask(kernel, i, zeros, keep_last)
                                               for i in choice.patterns or ()]))
            mask = kernel_masks(conv.weight.detach(), masks.to(conv.weight.dtype))
            with torch.no_grad():
                conv.weight.mul_(mask)
            _torch.add_weight_parametrization(conv, _torch.WeightMask(mask))
            _torch.record_fields(conv, kept_per_kernel=kernel * kernel - zeros)


def kernel_masks(weight: Any, masks: Any) -> Any:
    """Per kernel of a (O, I, K, K) weight, the one of ``masks`` (P, K, K) keeping the largest L2 norm.

    Ties go to the first of ``masks``; returns the (O, I, K, K) mask tensor.
    """
    import torch

    kept_energy = torch.einsum("oikl,pkl->oip", weight * weight, masks)
    return masks[kept_energy.argmax(dim=-1)]


TRANSFORMS.register(KernelPattern.name, KernelPattern())

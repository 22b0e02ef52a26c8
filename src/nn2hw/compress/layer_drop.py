"""Layer (block) dropping: remove whole repeated blocks, e.g. encoder layers of a BERT, that map a tensor
to one of the same shape.

A block is the module an element of a ``ModuleList`` / ``Sequential`` is: its layers' names start
with a path whose last part is an index (``encoder.layer.3``, ``layer1.0``, ``blocks.2``). The plan
sets ``drop=True`` on every conv/linear layer of the block (``with_dropped_blocks`` does it).

Workload side (pure): the block's region is every layer on a path from its entry (the tensor its
first layer reads) to its last named layer, plus the shape-keeping ops right after that read only
the block's values (a pre-norm block's residual add, a ResNet block's final ReLU; BERT's post-norm
block ends at its output LayerNorm). The region is removed and its exit's consumers read the entry
instead; entry and exit must have the same shape, and nothing inside may be read from outside.
Dropping every block of a ``ModuleList`` is refused.

Torch side: the block's module is replaced by ``_torch.Passthrough`` (returns its first input), so
the other blocks keep their names and weights. It runs after the other transforms (``order``), so a
plan may also cut or quantize layers it drops.

Search dimension (where a template's remedies or a space file name ``layer_drop``): one per block,
choice 0 keeps it, choice 1 drops it, offered from any of its conv/linear layers. The first block of
each stack (index 0) is never offered, so no candidate drops every block; a block that changes
shapes (a downsampling ResNet block) or has no single exit is not offered either. The option value
``'attention'`` (instead of ``true``) offers only blocks with attention matrix products (Transformer
layers). The per-layer report lists the removed layers with no solution time.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from nn2hw.compress.base import TRANSFORMS, Offer, SpaceContext, Transform, has_module_weights
from nn2hw.errors import PlanError, Problem
from nn2hw.plan import Plan
from nn2hw.workload.layer import Layer, OpKind, Workload

if TYPE_CHECKING:
    from torch import nn

ATTENTION_ONLY = "attention"
"""The option value that offers only Transformer layers (blocks holding attention's matrix products):
a template whose measurements show layer drops paying for Transformers names it without changing
what it offers CNNs (``nn2hw.hardware.base.TRANSFORMER_SPACE_OPTIONS``)."""


@dataclass(frozen=True)
class DropChoice:
    """``drop``: True removes the block this layer belongs to (set on every conv/linear layer of it)."""

    drop: bool | None = None

    def __post_init__(self) -> None:
        if self.drop is not None and self.drop is not True:
            raise PlanError(f"drop={self.drop!r}: a layer is dropped with drop=True.",
                            "Set drop=True to remove the layer's block, or leave drop unset to keep it.")


def block_of(name: str) -> str | None:
    """The repeated block a layer belongs to: its path up to the first index (``encoder.layer.3``)."""
    parts = name.split(".")
    index = next((i for i, part in enumerate(parts[:-1]) if part.isdigit()), None)
    return ".".join(parts[:index + 1]) if index is not None else None


def _members(workload: Workload, block: str) -> list[Layer]:
    return [layer for layer in workload.layers if layer.name.startswith(block + ".")]


def droppable(workload: Workload, block: str) -> list[str]:
    """The conv/linear layers of ``block`` a plan marks to drop it."""
    return [layer.name for layer in _members(workload, block) if layer.is_compute and has_module_weights(layer)]


def with_dropped_blocks(plan: Plan, workload: Workload, blocks: Iterable[str]) -> Plan:
    """``plan`` dropping each block of ``blocks`` (paths or globs, e.g. ``encoder.layer.5``)."""
    names = sorted({b for layer in workload.layers if (b := block_of(layer.name)) is not None})
    for pattern in blocks:
        chosen = [b for b in names if fnmatch.fnmatchcase(b, pattern)]
        if not chosen:
            examples = ", ".join(names[:3]) or "(none: the network has no repeated blocks)"
            raise PlanError(f"No repeated block of {workload.name!r} matches {pattern!r}.",
                            f"Name blocks such as {examples}.")
        for block in chosen:
            for name in droppable(workload, block):
                plan = plan.with_choice(name, drop=True)
    return plan


def block_region(workload: Workload, block: str) -> tuple[str, str, frozenset[str]]:
    """(entry, exit, layers removed) of ``block``; a ``PlanError`` when it is not a same-shape block.

    The region is every layer on a path from the entry (what the block's first layer reads) to the
    block's last named layer, extended by the shape-keeping ops right after it that read only the
    block's values (a residual add, a final ReLU: functional ops carry no module path). Nothing but
    the exit may be read from outside it."""
    members = _members(workload, block)
    entries = [i for i in members[0].inputs if not i.startswith(block + ".")] if members else []
    if not entries:
        raise PlanError(f"Block {block!r} has no input from outside it.", "Drop a block that reads a tensor.")
    entry = workload.layer(entries[0])
    order = {layer.name: i for i, layer in enumerate(workload.layers)}
    last = max(order[layer.name] for layer in members)
    below: set[str] = set()  # descendants of the entry
    for layer in workload.layers[order[entry.name] + 1:last + 1]:
        if any(i == entry.name or i in below for i in layer.inputs):
            below.add(layer.name)
    region = _ancestors(workload, workload.layers[last].name) & below
    exit_name = workload.layers[last].name
    for layer in workload.layers[last + 1:]:
        reads = set(layer.inputs)
        if layer.defines_channels or not reads <= region | {entry.name} or not reads & region or \
                layer.output_shape != entry.output_shape:
            break
        region.add(layer.name)
        exit_name = layer.name
    consumers = {i for layer in workload.layers if layer.name not in region
                 for i in layer.inputs if i in region and i != exit_name}
    outside = [m.name for m in members if m.name not in region]
    if consumers or outside or (region - {exit_name}) & set(workload.outputs):
        raise PlanError(f"Block {block!r} has no single exit: "
                        + (f"{sorted(consumers)} are read from outside it." if consumers else
                           f"{outside} do not lie between its input and its output."),
                        "Drop only blocks whose result leaves through one tensor.")
    shapes = entry.output_shape, workload.layer(exit_name).output_shape
    if shapes[0] != shapes[1]:
        raise PlanError(f"Block {block!r} maps {list(shapes[0])} ({entry.name}) to {list(shapes[1])} "
                        f"({exit_name}); dropping it would change the shapes after it.",
                        "Drop only blocks whose output has their input's shape (e.g. encoder layers).")
    return entry.name, exit_name, frozenset(region)


def _ancestors(workload: Workload, name: str) -> set[str]:
    found, todo = {name}, [name]
    while todo:
        for i in workload.layer(todo.pop()).inputs:
            if i not in found:
                found.add(i)
                todo.append(i)
    return found


def _first_sibling(workload: Workload, block: str) -> str:
    """The lowest-indexed block of ``block``'s stack (``encoder.layer.0``)."""
    parent = block.rpartition(".")[0]
    siblings = {b for layer in workload.layers if (b := block_of(layer.name)) is not None
                and b.rpartition(".")[0] == parent}
    return min(siblings, key=lambda b: int(b.rpartition(".")[2]))


def _blocks(choices: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys(b for name in choices if (b := block_of(name)) is not None))


def _without(workload: Workload, block: str) -> Workload:
    """``workload`` without ``block``: the exit's consumers read the entry."""
    entry, exit_name, region = block_region(workload, block)

    def rewired(layer: Layer) -> Layer:
        if exit_name not in layer.inputs:
            return layer
        return replace(layer, inputs=tuple(entry if i == exit_name else i for i in layer.inputs))

    return replace(workload, layers=tuple(rewired(layer) for layer in workload.layers if layer.name not in region),
                   outputs=tuple(entry if o == exit_name else o for o in workload.outputs))


class LayerDrop(Transform):
    """Remove whole repeated blocks whose output has their input's shape (``drop``)."""

    name = "layer_drop"
    label = "layer drop"
    order = 6
    choice_type = DropChoice
    option_name = "drop"
    option_help = (f"true (drop whole blocks) or {ATTENTION_ONLY!r} (drop only Transformer layers: blocks with "
                   "attention matrix products)")
    default_options = (True,)

    def check_option(self, value: Any) -> bool:
        return value is True or value == ATTENTION_ONLY

    def offer(self, workload: Workload, layer: Layer, options: Sequence[Any], context: SpaceContext) -> Offer | None:
        """Keep or drop ``layer``'s block (one dimension per block); None for a layer outside a
        block, the first block of its stack (kept, so no candidate is empty), a block that cannot
        be dropped (``block_region`` refuses it), or with only ``ATTENTION_ONLY`` among ``options``
        a block without attention products (a CNN's residual block)."""
        block = block_of(layer.name)
        if block is None or block == _first_sibling(workload, block):
            return None
        layers = tuple(droppable(workload, block))
        if layer.name not in layers:
            return None
        if True not in options and not any(m.kind is OpKind.MATMUL for m in _members(workload, block)):
            return None
        try:
            block_region(workload, block)
        except PlanError:
            return None
        return Offer(layers, (None, {"drop": True}), (f"{block} kept", f"{block} dropped"), leanest=1)

    def describe(self, choice: DropChoice, before: Layer, after: Layer) -> str:
        return f"block {block_of(before.name)} dropped"

    def problems(self, workload: Workload, choices: Mapping[str, DropChoice]) -> list[Problem]:
        found: list[Problem] = []
        for name in choices:
            if block_of(name) is None:
                found.append((f"Layer {name!r} is not inside a repeated block (a ModuleList or Sequential "
                              f"element), so there is no block to drop.",
                              "Set drop on the layers of a block such as encoder.layer.3 "
                              "(nn2hw.compress.with_dropped_blocks does it)."))
        if found:
            return found
        for block in _blocks(choices):
            missing = [n for n in droppable(workload, block) if n not in choices]
            if missing:
                found.append((f"Dropping block {block!r} needs drop=True on all its conv/linear layers; "
                              f"{missing} lack it.", "Mark the whole block; with_dropped_blocks does it."))
            try:
                block_region(workload, block)
            except PlanError as exc:
                found.append((exc.cause, exc.fix))
        dropped = set(_blocks(choices))
        for parent in {b.rpartition(".")[0] for b in dropped}:
            siblings = {b for layer in workload.layers if (b := block_of(layer.name)) is not None
                        and b.rpartition(".")[0] == parent}
            if siblings <= dropped:
                found.append((f"The plan drops every block of {parent!r} ({len(siblings)} of {len(siblings)}), "
                              f"which leaves the network without them.",
                              f"Keep at least one block of {parent!r}."))
        return found

    def changes(self, workload: Workload, choices: Mapping[str, DropChoice]) -> dict[str, dict[str, Any]]:
        """No field changes: the blocks are removed by ``rewrite``."""
        return {}

    def rewrite(self, workload: Workload, choices: Mapping[str, DropChoice]) -> Workload:
        for block in _blocks(choices):
            workload = _without(workload, block)
        return workload

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, DropChoice]) -> None:
        from nn2hw.compress import _torch

        for block in _blocks(choices):
            parent, _, index = block.rpartition(".")
            try:
                model.get_submodule(block)
            except AttributeError:
                raise PlanError(f"Block {block!r} is not a module of the model, so it cannot be replaced.",
                                "Drop blocks that are elements of a ModuleList or Sequential.") from None
            setattr(model.get_submodule(parent) if parent else model, index, _torch.Passthrough())


TRANSFORMS.register(LayerDrop.name, LayerDrop())

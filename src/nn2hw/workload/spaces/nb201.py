"""The NAS-Bench-201 cell space: 5 operations on the 6 edges of a 4-node cell, 5**6 = 15,625 cells.

Node 0 is the cell's input; node i (1..3) sums one operation applied to every earlier node; node 3
is the output. An architecture is written two ways, both parsed and formatted here:

- NAS-Bench-201's canonical string, nodes 1..3 separated by ``+``, each edge ``op~source``:
  ``|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|``;
- six op indices into ``NB201_OPS`` (NAS-Bench-201's operation order), one per edge in the
  string's order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2 (``NB201_EDGES``).

``nb201_code`` numbers the cells 0..15,624 by reading the six op indices as a base-5 number
(edge 1<-0 the most significant digit). This is nn2hw's own enumeration, **not** NAS-Bench-201's
architecture index: that order comes from the benchmark's own file (absent here), so never pass a
code where NAS-Bench-201 or HW-NAS-Bench expects an index.

The macro skeleton (``TinyNetwork``, C = 16, N = 5) and the three datasets' input sizes and classes
are recorded here for the builders in ``nn2hw.zoo.archs.nb201``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nn2hw.errors import ConfigError

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The 5 edge operations, in NAS-Bench-201's order: the op indices of an architecture."""

NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""The 6 edges as (node, source node), in the canonical string's order."""

NB201_NODES = 3
"""Computed nodes per cell (node 0 is the input)."""

NB201_SIZE = len(NB201_OPS) ** len(NB201_EDGES)
"""Cells in the space: 15,625."""

NB201_CHANNELS = 16
"""TinyNetwork's first-stage width C (stages C, 2C, 4C)."""

NB201_CELLS = 5
"""TinyNetwork's cells per stage N."""

_FORMAT = "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"


@dataclass(frozen=True)
class Nb201Dataset:
    """One of NAS-Bench-201's datasets: square input size and classes."""

    name: str
    input_size: int
    classes: int


NB201_DATASETS: dict[str, Nb201Dataset] = {
    d.name: d for d in (Nb201Dataset("cifar10", 32, 10), Nb201Dataset("cifar100", 32, 100),
                        Nb201Dataset("ImageNet16-120", 16, 120))
}
"""CIFAR-10 and CIFAR-100 at 32x32, ImageNet16-120 (120 classes of ImageNet at 16x16)."""


def nb201_dataset(dataset: str) -> Nb201Dataset:
    """The dataset called ``dataset`` (case-insensitive); a ``ConfigError`` naming the known ones otherwise."""
    by_lower = {name.lower(): d for name, d in NB201_DATASETS.items()}
    found = by_lower.get(str(dataset).lower())
    if found is None:
        raise ConfigError(f"NAS-Bench-201 has no dataset {dataset!r}.", f"Use one of {sorted(NB201_DATASETS)}.")
    return found


def _op_index(name: str, where: str) -> int:
    if name in NB201_OPS:
        return NB201_OPS.index(name)
    close = difflib.get_close_matches(name, NB201_OPS, n=1)
    hint = f"Did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"{where} names the operation {name!r}, which is not a NAS-Bench-201 operation.",
                      f"{hint}Use one of {', '.join(NB201_OPS)}.")


def _edge(token: str, node: int, position: int, text: str) -> int:
    """Op index of edge ``position`` of ``node`` from its token ``op~source``, checking the source."""
    where = f"Edge {position} of node {node} in {text!r}"
    name, sep, source = token.partition("~")
    if not sep or not source.isdigit():
        raise ConfigError(f"{where} is {token!r}, not 'op~source'.", f"Write every edge as op~source, as in {_FORMAT}.")
    if int(source) != position:
        raise ConfigError(f"{where} comes from node {source}; node {node}'s edges must come from nodes "
                          f"{', '.join(str(j) for j in range(node))} in that order.",
                          f"List node {node}'s edges as {'|'.join(f'op~{j}' for j in range(node))}.")
    return _op_index(name, where)


def parse_nb201(text: str) -> tuple[int, ...]:
    """The six op indices of a NAS-Bench-201 architecture string; a ``ConfigError`` naming the fault otherwise."""
    if not isinstance(text, str):
        raise ConfigError(f"A NAS-Bench-201 architecture string must be text, got {type(text).__name__}.",
                          f"Pass a string such as {_FORMAT}.")
    nodes = text.strip().split("+")
    if len(nodes) != NB201_NODES:
        raise ConfigError(f"The NAS-Bench-201 string {text!r} has {len(nodes)} node(s) separated by '+'; "
                          f"a cell has {NB201_NODES}.", f"Write it as {_FORMAT}.")
    ops: list[int] = []
    for node, part in enumerate(nodes, start=1):
        if not (part.startswith("|") and part.endswith("|")) or len(part) < 2:
            raise ConfigError(f"Node {node} of the NAS-Bench-201 string {text!r} is {part!r}, "
                              "not edges between '|' bars.", f"Write it as {_FORMAT}.")
        tokens = part[1:-1].split("|")
        if len(tokens) != node:
            raise ConfigError(f"Node {node} of the NAS-Bench-201 string {text!r} has {len(tokens)} edge(s); "
                              f"node {node} has {node} (one from each earlier node).", f"Write it as {_FORMAT}.")
        ops += [_edge(token, node, position, text) for position, token in enumerate(tokens)]
    return tuple(ops)


def check_nb201(arch: str | Sequence[int]) -> tuple[int, ...]:
    """``arch`` (a NAS-Bench-201 string or six op indices) as six op indices in 0..4.

    A ``ConfigError`` names a wrong length, a bad index or a malformed string.
    """
    if isinstance(arch, str):
        return parse_nb201(arch)
    if isinstance(arch, bytes) or not isinstance(arch, (Sequence, np.ndarray)):
        raise ConfigError(f"A NAS-Bench-201 architecture is a string or {len(NB201_EDGES)} op indices, "
                          f"got {arch!r}.", f"Pass e.g. {_FORMAT} or a list of {len(NB201_EDGES)} integers in "
                          f"0..{len(NB201_OPS) - 1}.")
    if len(arch) != len(NB201_EDGES):
        raise ConfigError(f"A NAS-Bench-201 cell has {len(NB201_EDGES)} edges; this architecture has "
                          f"{len(arch)} op indices.", f"Give exactly {len(NB201_EDGES)} op indices, one per edge "
                          "in the order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.")
    for position, value in enumerate(arch):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < len(NB201_OPS):
            raise ConfigError(
                f"Edge {position} of the NAS-Bench-201 architecture has op index {value!r}, outside "
                f"0..{len(NB201_OPS) - 1}.",
                "Use op indices " + ", ".join(f"{i}={name}" for i, name in enumerate(NB201_OPS)) + ".")
    return tuple(int(v) for v in arch)


def format_nb201(arch: str | Sequence[int]) -> str:
    """NAS-Bench-201's canonical string of ``arch`` (a string is checked and normalized)."""
    ops = check_nb201(arch)
    nodes: list[list[str]] = [[] for _ in range(NB201_NODES)]
    for (node, source), op in zip(NB201_EDGES, ops):
        nodes[node - 1].append(f"{NB201_OPS[op]}~{source}")
    return "+".join("|" + "|".join(edges) + "|" for edges in nodes)


def nb201_code(arch: str | Sequence[int]) -> int:
    """nn2hw's number of ``arch`` in 0..15,624 (base 5, edge 1<-0 first); not NAS-Bench-201's index."""
    code = 0
    for op in check_nb201(arch):
        code = code * len(NB201_OPS) + op
    return code


def nb201_from_code(code: int) -> tuple[int, ...]:
    """The six op indices numbered ``code`` by ``nb201_code``; a ``ConfigError`` outside 0..15,624."""
    if isinstance(code, bool) or not isinstance(code, (int, np.integer)) or not 0 <= code < NB201_SIZE:
        raise ConfigError(f"A NAS-Bench-201 cell code is an integer in 0..{NB201_SIZE - 1}, got {code!r}.",
                          f"Use a code in 0..{NB201_SIZE - 1} (nn2hw's base-5 enumeration), or pass the "
                          "architecture string.")
    ops: list[int] = []
    rest = int(code)
    for _ in NB201_EDGES:
        rest, op = divmod(rest, len(NB201_OPS))
        ops.append(op)
    return tuple(reversed(ops))


def random_nb201(rng: np.random.Generator) -> tuple[int, ...]:
    """A uniformly drawn cell: six op indices in 0..4."""
    return tuple(int(v) for v in rng.integers(0, len(NB201_OPS), size=len(NB201_EDGES)))

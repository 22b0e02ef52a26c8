"""Evaluating the shape arithmetic exporters leave in a graph, so that every activation gets sized."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nn2hw.workload.onnx.load import SHAPE_OPS, Shape, attrs, graph_inputs, reads, static_shape

_FOLD_LIMIT = 4096  # largest constant (elements) that shape arithmetic folding evaluates
MAX_FOLDS = 4  # rounds of folding + shape inference (each round can size what the last one could not)


def fold_shape_arithmetic(onnx: Any, model: Any) -> bool:
    """Evaluate small constant subgraphs and store their results as initializers, in place.

    Exporters compute slice bounds, pads and reshape targets with chains of Constant, Shape,
    Gather, Unsqueeze, Concat... that ONNX shape inference does not evaluate, leaving the
    activations they shape unsized. With static inputs these chains are constants: the reference
    evaluator computes them once (output names kept, so parameter names survive). Runs only when
    an activation is unsized; returns whether anything was folded.
    """
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    shapes: dict[str, Shape] = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        shape = static_shape(value.type)
        if shape is not None:
            shapes[value.name] = shape
    active = {value.name for value in graph_inputs(model)}
    known: dict[str, Any] = {}  # Shape/Size of a sized activation: a constant
    foldable: set[str] = set()  # outputs of constant nodes being folded
    fold, unsized = [], False
    for node in graph.node:
        names = [n for n in node.input if n]
        if any(n in active for n in names) or any(a.HasField("g") or len(a.graphs) for a in node.attribute):
            if node.op_type in SHAPE_OPS and node.input[0] in shapes:
                dims = shapes[node.input[0]]
                found = attrs(onnx, node)
                value = np.array(dims[found.get("start", 0):found.get("end", len(dims))] if node.op_type == "Shape"
                                 else int(np.prod(dims)), dtype=np.int64)
                known[node.output[0]] = value
                fold.append(node)
                continue
            produced = [o for o in node.output if o]
            active.update(produced)
            unsized = unsized or any(o not in shapes for o in produced)
        elif all(n in foldable or n in known or math.prod(shapes.get(n, (_FOLD_LIMIT + 1,))) <= _FOLD_LIMIT
                 for n in names):
            fold.append(node)
            foldable.update(o for o in node.output if o)
    if not unsized or not fold:
        return False
    folded = {id(node) for node in fold}
    needed = {n for node in graph.node if id(node) not in folded for n in reads(node)} | \
        {o.name for o in graph.output}
    nodes = [node for node in fold if node.op_type not in SHAPE_OPS or node.output[0] not in known]
    wanted = sorted(needed & foldable)
    values = dict(known)
    if wanted:
        feeds = {n for node in nodes for n in node.input if n} - foldable
        sub = onnx.helper.make_model(
            onnx.helper.make_graph(nodes, "shape_arithmetic", [], [onnx.helper.make_empty_tensor_value_info(n)
                                                                  for n in wanted],
                                   [t for t in graph.initializer if t.name in feeds] +
                                   [onnx.numpy_helper.from_array(v, n) for n, v in known.items() if n in feeds]),
            opset_imports=model.opset_import, ir_version=model.ir_version)
        try:
            values.update(zip(wanted, ReferenceEvaluator(sub).run(None, {})))
        except Exception:  # an op the reference evaluator lacks: leave the graph as it is
            return False
    kept = [node for node in graph.node if id(node) not in folded]
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(values[n]), n)
                             for n in sorted(needed & set(values)) if n not in {t.name for t in graph.initializer})
    sized = [value for value in graph.value_info if static_shape(value.type) is not None]
    del graph.value_info[:]  # a symbolic size inferred before would survive the next inference
    graph.value_info.extend(sized)
    return True

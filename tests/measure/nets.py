"""Small ONNX networks built with onnx.helper for the measurement tests (and the repeatability benchmark)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def matmul_net(size: int, dynamic_batch: bool = False) -> bytes:
    """x[size, size] @ W[size, size] + b, then Relu: MACs grow with size cubed."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(size)
    weight = numpy_helper.from_array(rng.standard_normal((size, size)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal((size,)).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"], name="matmul"),
             helper.make_node("Add", ["m", "b"], ["a"], name="bias"),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]
    rows: int | str = "N" if dynamic_batch else size
    graph = helper.make_graph(nodes, f"matmul{size}", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                    [rows, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def conv_net(channels: Sequence[int], size: int = 32, seed: int = 0) -> bytes:
    """A stack of 3x3 Conv + Relu layers with the given channel counts (the first is the input's)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights, current = [], [], "x"
    for index, (c_in, c_out) in enumerate(zip(channels, channels[1:])):
        weights.append(numpy_helper.from_array(
            (rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(9 * c_in)).astype(np.float32), f"w{index}"))
        nodes += [helper.make_node("Conv", [current, f"w{index}"], [f"c{index}"], name=f"conv{index}",
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{index}"], [f"r{index}"], name=f"relu{index}")]
        current = f"r{index}"
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            [1, channels[0], size, size])],
                              [helper.make_tensor_value_info(current, TensorProto.FLOAT, None)], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def single_op_net(op: str, domain: str = "") -> bytes:
    """One node of ``op`` (in ``domain``) on a float [2, 2] input: for ops a runtime may not know."""
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x"], ["y"], name="the_node", domain=domain)
    graph = helper.make_graph([node], "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()

"""Module paths in the node names of torch's ONNX export and in ONNX Runtime's kernel names.

torch's TorchScript exporter names a node by the scopes of the modules it ran in, then its op:
``/layer1/layer1.0/conv1/Conv`` is the Conv of module ``layer1.0.conv1`` and
``/features/features.1/conv/conv.0/conv.0.0/Conv`` that of ``features.1.conv.0.0`` (a container's
child extends its parent's scope, ``layer1.0`` after ``layer1``, ``conv.0`` after ``conv``; any other
scope is an attribute under the previous one, as ``conv1``: ``nn2hw.workload.onnx.read.scope_path``,
the rule the workload reader uses); a functional op is named after the module that called it,
``/layer1/layer1.0/Relu_1`` (the second Relu there). ONNX Runtime's kernels keep those names, or,
for a kernel it rewrote into its NCHWc layout, the name of the output it writes plus ``_nchwc`` (a
fused Conv+BatchNorm+Relu is ``/layer1/layer1.0/Relu_output_0_nchwc``), and a node a fusion pass
rewrote is named after the first node plus the pass
(``/encoder/layer.0/attention/self/MatMul/MatMulScaleFusion/``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from nn2hw.workload.onnx.read import scope_path

_ORT_SUFFIXES = re.compile(r"(_kernel_time)$|(_nchwc)$|(/[A-Z][A-Za-z0-9]*Fusion/?)$")
"""What ONNX Runtime appends to a node it rewrote: the profiler's '_kernel_time', its NCHWc layout, a
fusion named after its pass ('/MatMulAddFusion', '/MatMulScaleFusion/' for Q.K^T with its scaling)."""
_OUTPUT_SUFFIX = re.compile(r"_output_\d+$")
_OP_INDEX = re.compile(r"^(?P<op>[A-Z][A-Za-z0-9]*?)(?:_(?P<index>\d+))?(?:_[A-Za-z].*)?$")
"""'Relu_1' -> Relu, 1; 'Conv_token_91' (a node ONNX Runtime rewrote) and 'Conv_x_quant' (nn2hw's) -> Conv, 0."""


class NodeName(NamedTuple):
    """A node name read back: the module path it ran in ('' at the top), its op type and occurrence."""

    path: str
    op_type: str
    occurrence: int


def parse_node_name(name: str) -> NodeName | None:
    """``/layer1/layer1.0/Relu_1`` -> ('layer1.0', 'Relu', 1); None for names torch's exporter did not
    give (ONNX Runtime's own nodes such as 'ReorderInput_token_5')."""
    name = _ORT_SUFFIXES.sub("", _ORT_SUFFIXES.sub("", name))
    name = _OUTPUT_SUFFIX.sub("", name)
    if not name.startswith("/"):
        return None
    *scopes, last = name[1:].split("/")
    found = _OP_INDEX.match(last)
    if found is None:
        return None
    return NodeName(scope_path(scopes), found["op"], int(found["index"] or 0))

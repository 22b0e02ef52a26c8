"""ONNX Runtime runners: one ONNX network on the CPU execution provider, with fixed random inputs.

onnxruntime (and onnx) are imported inside functions: they are the optional extra ``nn2hw[measure]``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nn2hw.errors import ConfigError, HardwareError, ModelError
from nn2hw.measure.machine import MEASURE_EXTRA
from nn2hw.measure.protocol import Protocol
from nn2hw.measure.records import KernelTime

INPUT_SEED = 0
"""Seed of the fixed random inputs (the same for every run and every process)."""

ID_RANGE = 100
"""Integer inputs (token ids, indices) are drawn from [0, ID_RANGE): valid for any embedding of that size."""

_FLOAT_TYPES = {"float": np.float32, "float16": np.float16, "double": np.float64}
_INT_TYPES = {"int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
              "uint16": np.uint16}
_KERNEL_SUFFIX = "_kernel_time"
_UNSUPPORTED_FIX = ("Replace or remove the {op} op (export with standard ONNX ops and a released opset), "
                    "or measure the network with runtime='torch'.")
_FAILED_FIX = ("Check the input shapes (input_shapes) against what node '{node}' expects, and that the network "
               "runs in onnxruntime.InferenceSession on its own.")
_OP_PATTERNS = (  # what ORT's messages say about the node it could not load or run: (pattern, cause, fix)
    (re.compile(r"No Op registered for (?P<op>[\w.]+)"), "cannot run op {op}", _UNSUPPORTED_FIX),
    (re.compile(r"Fatal error: (?P<op>[\w.:]+)\(-?\d*\) is not a registered"), "cannot run op {op}", _UNSUPPORTED_FIX),
    (re.compile(r"Could not find an implementation for (?P<op>\w+)\(\d+\) node with name '(?P<node>[^']*)'"),
     "cannot run op {op} (node '{node}')", _UNSUPPORTED_FIX),
    (re.compile(r"of operator \((?P<op>\w+)\) in node \((?P<node>[^)]*)\)"), "cannot run op {op} (node '{node}')",
     _UNSUPPORTED_FIX),
    (re.compile(r"running (?P<op>\w+) node\. Name:'(?P<node>[^']*)'"), "failed running op {op} (node '{node}')",
     _FAILED_FIX),
)


def import_ort() -> Any:
    """The onnxruntime module, or a HardwareError naming the extra to install."""
    try:
        import onnxruntime  # type: ignore[import-untyped]  # no stubs; typed as Any here
    except ImportError:
        raise HardwareError("ONNX Runtime is not installed, so ONNX networks cannot be timed on this CPU.",
                            MEASURE_EXTRA) from None
    return onnxruntime


class OnnxRunner:
    """One ONNX network in an InferenceSession (CPU EP, fixed threads), ready to run and to profile."""

    runtime = "onnxruntime"

    def __init__(self, model: bytes, protocol: Protocol, input_shapes: Mapping[str, Sequence[int]] | None) -> None:
        self._ort = import_ort()
        self.runtime_version: str = self._ort.__version__
        self._model, self._protocol = model, protocol
        self._inference = self._session(None)
        shapes = _resolved_shapes(self._inference.get_inputs(), input_shapes)
        self._feeds = _random_inputs(self._inference.get_inputs(), shapes)
        self.key: str = network_key(model, shapes)
        self.run()  # a network ORT loads but cannot run fails here, not in the middle of a measurement

    def run(self) -> None:
        """One inference on the fixed inputs."""
        self._guarded(lambda: self._inference.run(None, self._feeds))

    def profile(self, runs: int) -> tuple[KernelTime, ...]:
        """Per-kernel medians over ``runs`` profiled runs (after one unrecorded run), from ORT's trace.

        A second session writes the trace and its optimized graph to a temporary folder (removed
        afterwards); the graph says which activations ORT fused into a kernel and what each writes."""
        if runs < 1:
            return ()
        with tempfile.TemporaryDirectory(prefix="nn2hw-profile-") as folder:
            session = self._session(Path(folder))
            for _ in range(runs + 1):
                self._guarded(lambda: session.run(None, self._feeds))
            trace = json.loads(Path(session.end_profiling()).read_text())
            nodes = _optimized_nodes(Path(folder) / "optimized.onnx")
        return _kernel_medians(trace, nodes, skip_runs=1)

    def _session(self, profile_folder: Path | None) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._protocol.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = _optimization_level(ort, self._protocol.optimization)
        options.log_severity_level = 4  # fatal only: failures become our errors; the graph dump's warning is moot
        if profile_folder is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(profile_folder / "trace")
            options.optimized_model_filepath = str(profile_folder / "optimized.onnx")
        return self._guarded(lambda: ort.InferenceSession(self._model, options, providers=["CPUExecutionProvider"]))

    def _guarded(self, call: Callable[[], Any]) -> Any:
        """``call()``, with ORT's failures turned into errors naming the op and the fix."""
        try:
            return call()
        except Exception as exc:
            if type(exc).__module__.startswith("onnxruntime"):
                raise ort_error(str(exc), self.runtime_version) from None
            raise


def onnx_runner(model: bytes | str | Path, protocol: Protocol, *,
                input_shapes: Mapping[str, Sequence[int]] | None = None) -> OnnxRunner:
    """A runner of the ONNX network ``model`` (bytes or a file) under ``protocol`` (runtime 'onnxruntime').

    Inputs take the model's shapes; dynamic dimensions need ``input_shapes`` ({input name: shape})."""
    if protocol.runtime != "onnxruntime":
        raise ConfigError(f"onnx_runner runs ONNX Runtime, but the protocol's runtime is {protocol.runtime!r}.",
                          "Use Protocol(runtime='onnxruntime'), or a torch runner from nn2hw.deploy.")
    return OnnxRunner(_model_bytes(model), protocol, input_shapes)


def network_key(model: bytes, shapes: Mapping[str, Sequence[int]]) -> str:
    """sha256 hex of the ONNX bytes and the input shapes timed: one network, one key."""
    digest = hashlib.sha256(model)
    digest.update(json.dumps({name: list(shape) for name, shape in sorted(shapes.items())}).encode())
    return digest.hexdigest()


def ort_error(message: str, version: str) -> ModelError | HardwareError:
    """A ModelError for bytes that are not ONNX; a HardwareError naming the op ORT cannot run otherwise."""
    first_line = message.strip().splitlines()[0] if message.strip() else "no message"
    if "INVALID_PROTOBUF" in message or "protobuf parsing failed" in message:
        return ModelError(f"The network is not a valid ONNX model: ONNX Runtime says '{first_line}'.",
                          "Give the bytes of a .onnx file (e.g. from torch.onnx.export or nn2hw export --onnx).")
    for pattern, cause, fix in _OP_PATTERNS:
        found = pattern.search(message)
        if found:
            names = found.groupdict()
            return HardwareError(f"ONNX Runtime {version} {cause.format(**names)} on the CPU: '{first_line}'.",
                                 fix.format(**names))
    return HardwareError(f"ONNX Runtime {version} cannot load or run the network: '{first_line}'.",
                         "Check the model with onnx.checker.check_model and export it with a released opset.")



def _model_bytes(model: bytes | str | Path) -> bytes:
    if isinstance(model, bytes):
        return model
    path = Path(model)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"The ONNX file {path} cannot be read ({exc.strerror or exc}).",
                          "Give the path of an existing .onnx file, or the model's bytes.") from None


def _optimization_level(ort: Any, name: str) -> Any:
    levels = ort.GraphOptimizationLevel
    return {"disabled": levels.ORT_DISABLE_ALL, "basic": levels.ORT_ENABLE_BASIC,
            "extended": levels.ORT_ENABLE_EXTENDED, "all": levels.ORT_ENABLE_ALL}[name]


def _resolved_shapes(inputs: Sequence[Any], given: Mapping[str, Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    """Each input's shape: the model's, with ``given`` shapes filling (and having to agree with) it."""
    given = dict(given or {})
    names = [i.name for i in inputs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigError(f"input_shapes names {', '.join(unknown)}, which the network does not take.",
                          f"Name only the network's inputs: {', '.join(names)}.")
    return {i.name: _input_shape(i.name, list(i.shape), given.get(i.name)) for i in inputs}


def _input_shape(name: str, declared: list[Any], given: Sequence[int] | None) -> tuple[int, ...]:
    dynamic = [i for i, d in enumerate(declared) if not isinstance(d, int) or d < 0]
    if given is None:
        if dynamic:
            raise ConfigError(f"Input {name!r} has dynamic dimensions {declared} (the network fixes no size there).",
                              f"Pass input_shapes={{{name!r}: [...]}} with a whole number for every dimension, "
                              "e.g. the batch size and image size you deploy.")
        return tuple(declared)
    shape = tuple(given)
    fits = len(shape) == len(declared) and all(
        isinstance(s, int) and s >= 1 and (i in dynamic or s == declared[i]) for i, s in enumerate(shape))
    if not fits:
        raise ConfigError(f"input_shapes gives {name!r} the shape {list(shape)}, which does not fit its declared "
                          f"shape {declared}.",
                          f"Give {len(declared)} positive whole numbers, equal to the fixed dimensions.")
    return shape


def _random_inputs(inputs: Sequence[Any], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Seeded inputs: standard normal floats, integer ids in [0, ID_RANGE), random booleans."""
    rng = np.random.default_rng(INPUT_SEED)
    feeds: dict[str, np.ndarray] = {}
    for item in inputs:
        kind, shape = str(item.type).removeprefix("tensor(").removesuffix(")"), shapes[item.name]
        if kind in _FLOAT_TYPES:
            feeds[item.name] = rng.standard_normal(shape).astype(_FLOAT_TYPES[kind])
        elif kind in _INT_TYPES:
            feeds[item.name] = rng.integers(0, ID_RANGE, size=shape).astype(_INT_TYPES[kind])
        elif kind == "bool":
            feeds[item.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        else:
            raise ConfigError(f"Input {item.name!r} has type {item.type}, which nn2hw cannot fill with test data.",
                              "Give the network float, integer or bool inputs.")
    return feeds


class _OptimizedNode(NamedTuple):
    """What ORT's optimized graph tells of one node: the (op, activation) it fused ('FusedConv' with
    activation 'Relu' -> ('Conv', 'Relu'); other fusions ORT does not spell out) and its first output."""

    fused: tuple[str, ...]
    output: str


def _kernel_medians(trace: Sequence[Mapping[str, Any]], nodes: Mapping[str, _OptimizedNode],
                    skip_runs: int) -> tuple[KernelTime, ...]:
    """Per-node median time (ms) over the runs in an ORT trace, in execution order, after ``skip_runs``.

    A node's time in one run is the sum of its kernel events inside that run's 'model_run' span."""
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("cat") == "Session"
                   and e.get("name") == "model_run")[skip_runs:]
    starts = [start for start, _ in spans]
    per_run: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(spans))
    op_types: dict[str, str] = {}
    for event in trace:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith(_KERNEL_SUFFIX):
            continue
        run = bisect.bisect_right(starts, event["ts"]) - 1
        if run < 0 or event["ts"] > spans[run][1]:  # a skipped run's, or outside any run
            continue
        node = name.removesuffix(_KERNEL_SUFFIX)
        per_run[node][run] += event["dur"] / 1000.0  # µs -> ms
        op_types.setdefault(node, str(event.get("args", {}).get("op_name", "")))
    unknown = _OptimizedNode((), "")
    return tuple(KernelTime(name=node, op_type=op_types[node], median_ms=statistics.median(times),
                            fused=nodes.get(node, unknown).fused, output=nodes.get(node, unknown).output)
                 for node, times in per_run.items())


def _optimized_nodes(optimized: Path) -> dict[str, _OptimizedNode]:
    """Node name -> its facts, read from ORT's optimized graph (empty without onnx: the kernels are still
    timed, only their fusions and outputs are not named)."""
    try:
        import onnx
    except ImportError:
        return {}
    if not optimized.is_file():
        return {}
    graph = onnx.load(str(optimized), load_external_data=False).graph
    nodes: dict[str, _OptimizedNode] = {}
    for node in graph.node:
        activation = next((a.s.decode() for a in node.attribute if a.name == "activation"), "")
        fused = (node.op_type.removeprefix("Fused"), activation) if activation else ()
        nodes[node.name] = _OptimizedNode(fused, next((out for out in node.output if out), ""))
    return nodes

"""Export a torch model to an ONNX file that ``from_onnx`` reads as ``from_module`` reads the model.

torch 2.13 has two exporters and both fold BatchNorm into the preceding conv by default (the
torch.export-based one in its onnxscript optimizer pass, the TorchScript one in its eval-mode
peephole with constant folding), which would make the ONNX workload lose its norm layers. The
default here is the torch.export-based exporter (``dynamo=True``, torch's default and maintained
path) with ``optimize=False``, followed by onnxscript's constant folding and dead-node removal
only: the graph is clean, BatchNorm stays, and every node keeps its module scope. The deprecated
TorchScript exporter (``dynamo=False``) is run with ``do_constant_folding=False`` for the same
reason; it is much faster, and its node names (``/layer1/layer1.0/conv1/Conv``) carry the scopes.
Weights are written inside the single file (no external-data file).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from nn2hw.errors import ConfigError, ModelError
from nn2hw.workload.onnx.load import INSTALL_FIX, import_onnx
from nn2hw.workload.torch_extract import _as_inputs, _input_names

_TORCH_NOTICES = (
    "You are using the legacy TorchScript-based ONNX export",  # chosen knowingly with dynamo=False
    "Constant folding - Only steps=1",  # the TorchScript exporter on strided slices; nothing to act on
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # inside torch.export itself
)
"""Warnings torch raises during export that the caller can do nothing about."""


def to_onnx(model: nn.Module, example_input: torch.Tensor | Sequence[int] | tuple[torch.Tensor, ...],
            path: str | Path, *, dynamo: bool = True, opset: int | None = None,
            dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` run on ``example_input`` (a tensor, tensors or an input shape) to ``path``.

    Static shapes, eval mode (the caller's training flag is restored), BatchNorm kept as its own
    node, weights embedded, graph inputs named after ``forward``'s parameters. ``dynamo`` picks
    torch's exporter (see the module doc); ``opset`` is the ONNX opset (torch's default when
    ``None``); ``dtype`` fills an input shape (float32 unless told). Returns the path written.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"Expected a torch.nn.Module, got {type(model).__name__}.", "Pass the model object itself.")
    import_onnx()
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"Cannot write {path}: folder {path.parent} does not exist.", "Create the folder first.")
    inputs = _as_inputs(example_input, dtype)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            for message in _TORCH_NOTICES:
                warnings.filterwarnings("ignore", message=message)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            if dynamo:
                _export_dynamo(model, inputs, path, opset)
            else:
                torch.onnx.export(model, inputs, str(path), dynamo=False, do_constant_folding=False,
                                  opset_version=opset, training=torch.onnx.TrainingMode.EVAL,
                                  input_names=_input_names(model, len(inputs)))
    except (ImportError, ModuleNotFoundError) as exc:
        raise ModelError(f"ONNX export needs a package that is missing ({exc}).", INSTALL_FIX) from None
    except Exception as exc:  # torch.export / TorchScript raise many kinds on untraceable code
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelError(
            f"torch.onnx cannot export {type(model).__name__} ({type(exc).__name__}: {first}).",
            "Make the forward free of data-dependent control flow, or try the other exporter "
            f"(dynamo={not dynamo}).",
        ) from None
    finally:
        model.train(was_training)
    return path


def _export_dynamo(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, opset: int | None) -> None:
    """torch.export-based export without the optimizer's BatchNorm fusion, then constant folding."""
    from onnxscript import optimizer

    program = torch.onnx.export(model, inputs, dynamo=True, optimize=False, verbose=False, opset_version=opset)
    assert program is not None  # the dynamo exporter returns its program
    optimizer.fold_constants(program.model)
    optimizer.remove_unused_nodes(program.model)
    program.save(path, external_data=False)

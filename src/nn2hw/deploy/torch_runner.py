"""``TorchRunner``: a torch model as an ``nn2hw.measure.Runner`` (the ``cpu:torch`` runtime)."""

from __future__ import annotations

import hashlib
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import nn

from nn2hw._checks import as_shape
from nn2hw.deploy.inputs import example_input
from nn2hw.measure import KernelTime

INPUT_SEED = 0


def network_key(model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> str:
    """sha256 of the state_dict's names and bytes, the architecture's repr and the input shape (and
    element type, when not float32)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digest.update(repr(model).encode())
    digest.update(repr(tuple(input_shape)).encode())
    if dtype != torch.float32:
        digest.update(str(dtype).encode())
    return digest.hexdigest()


class TorchRunner:
    """``model`` in eval mode on one fixed seeded input of ``input_shape`` (standard normal; token ids
    for an integer ``dtype``, ``nn2hw.deploy.inputs``).

    ``torch.set_num_threads(threads)`` is set once here (it is process-wide); runs use inference_mode."""

    runtime = "torch"

    def __init__(self, model: nn.Module, input_shape: Sequence[int], *, threads: int = 1,
                 dtype: torch.dtype = torch.float32) -> None:
        shape = as_shape(input_shape)
        torch.set_num_threads(threads)
        self.runtime_version: str = torch.__version__
        self._model = model.eval()
        self._input = example_input(shape, dtype, torch.Generator().manual_seed(INPUT_SEED))
        self.key: str = network_key(model, shape, dtype)

    def run(self) -> None:
        """One inference on the fixed input."""
        with torch.inference_mode():
            self._model(self._input)

    def profile(self, runs: int) -> tuple[KernelTime, ...]:
        """Per leaf module, the median over ``runs`` runs of its forward time (perf_counter_ns between
        forward pre- and post-hooks), named by module path, in first-run order."""
        if runs < 1:
            return ()
        times: dict[str, list[float]] = defaultdict(list)
        kinds: dict[str, str] = {}
        started: dict[str, int] = {}
        handles = []
        for name, module in self._model.named_modules():
            if name and not any(True for _ in module.children()):
                kinds[name] = type(module).__name__

                def pre(_module: nn.Module, _args: object, _name: str = name) -> None:
                    started[_name] = time.perf_counter_ns()

                def post(_module: nn.Module, _args: object, _out: object, _name: str = name) -> None:
                    times[_name].append((time.perf_counter_ns() - started[_name]) / 1e6)

                handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
        try:
            for _ in range(runs):
                self.run()
        finally:
            for handle in handles:
                handle.remove()
        return tuple(KernelTime(name=name, op_type=kinds[name], median_ms=statistics.median(values))
                     for name, values in times.items())

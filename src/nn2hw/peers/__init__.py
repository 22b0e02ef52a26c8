"""Optional cross-checks against peer simulators nn2hw did not write (SCALE-Sim, ZigZag).

Each peer runs in its own virtual environment (``scripts/install_peers.sh``); the adapters
``nn2hw.peers.scalesim`` and ``nn2hw.peers.zigzag`` convert a ``Workload`` and a design to the
peer's input files, run it by subprocess with a timeout and parse its reports into nn2hw records.
"""

from __future__ import annotations

from typing import Any

from nn2hw.errors import ConfigError
from nn2hw.hardware.records import NetworkCost
from nn2hw.peers._runner import PACKAGES, install_command, installed, peer_python, peer_version
from nn2hw.workload import Workload

PEERS = tuple(PACKAGES)
BACKENDS = ("analytic", *PEERS)

__all__ = ["BACKENDS", "PEERS", "cost_with", "install_command", "installed", "peer_python", "peer_version"]


def cost_with(backend: str, workload: Workload, template: str, design: Any, technology: str | None = None,
              clock_mhz: float | None = None, timeout_s: float = 1800) -> NetworkCost:
    """The peer ``backend``'s cost of ``workload`` on a systolic ``design`` as nn2hw records:
    SCALE-Sim gives compute cycles per layer, ZigZag latency and energy per layer (on the
    description equivalent to the design in ``technology``)."""
    if backend not in PEERS:
        raise ConfigError(f"Unknown backend {backend!r}.", f"Use one of: {', '.join(BACKENDS)}.")
    if template != "systolic":
        raise ConfigError(f"The {backend} backend cross-checks systolic designs only, not {template!r}.",
                          "Use --hardware systolic with --backend, or --backend analytic for this template.")
    from nn2hw.hardware.asic.technology import get_technology

    tech = get_technology(technology)
    clock = clock_mhz or tech.clock_mhz
    if backend == "scalesim":
        from nn2hw.peers import scalesim

        return scalesim.run(workload, design, timeout_s=timeout_s).to_network_cost(workload.name, clock)
    from nn2hw.peers import zigzag

    return zigzag.run(workload, design, tech, timeout_s=timeout_s).to_network_cost(clock)

"""Optional cross-checks against peer simulators nn2hw did not write (SCALE-Sim, ZigZag).

Each peer is a backend module that registers itself in ``BACKENDS`` (``nn2hw.peers.base``) and
runs in its own virtual environment (``nn2hw peers install``); it converts a ``Workload`` and a
design to the peer's input files, runs it by subprocess with a timeout and parses its reports into
nn2hw records.
"""

from __future__ import annotations

from typing import Any

from nn2hw.errors import ConfigError
from nn2hw.hardware.records import NetworkCost
from nn2hw.peers._runner import install_command, installed, peer_python, peer_version
from nn2hw.peers.base import BACKENDS, PeerBackend
from nn2hw.workload import Workload

__all__ = ["BACKENDS", "PeerBackend", "cost_with", "install_command", "installed", "peer_python", "peer_version"]


def cost_with(backend: str, workload: Workload, template: str, design: Any, technology: str | None = None,
              clock_mhz: float | None = None, timeout_s: float = 1800) -> NetworkCost:
    """The peer ``backend``'s cost of ``workload`` on ``design`` of ``template`` as nn2hw records
    (on the description equivalent to the design in ``technology``)."""
    from nn2hw.hardware.asic.technology import get_technology

    peer = BACKENDS.get(backend)
    if template not in peer.templates:
        raise ConfigError(f"The {backend} backend cross-checks {', '.join(peer.templates)} designs only, not "
                          f"{template!r}.", f"Use --hardware {peer.templates[0]} with --backend {backend}, or drop "
                          f"--backend for this template.")
    tech = get_technology(technology)
    return peer.cost(workload, design, tech, clock_mhz or tech.clock_mhz, timeout_s)

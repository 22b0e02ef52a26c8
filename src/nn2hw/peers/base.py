"""The peer-simulator contract: a backend that re-costs a design with a simulator nn2hw did not write.

A backend declares the packages its own virtual environment holds (their pins conflict with
nn2hw's), the templates whose designs it can cost, and a ``cost`` function returning nn2hw records.
Each backend module registers itself in ``BACKENDS``; ``nn2hw peers`` and ``--backend`` read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nn2hw.hardware.asic.technology import Technology
from nn2hw.hardware.records import NetworkCost
from nn2hw.registry import Registry
from nn2hw.workload import Workload


@dataclass(frozen=True)
class PeerBackend:
    """One peer simulator: its venv's packages (the first is the peer itself), the templates it costs,
    and ``cost(workload, design, technology, clock_mhz, timeout_s)``."""

    name: str
    description: str
    packages: tuple[str, ...]
    templates: tuple[str, ...]
    cost: Callable[[Workload, Any, Technology, float, float], NetworkCost]


BACKENDS: Registry[PeerBackend] = Registry("peer backend", "nn2hw list backends", builtins="nn2hw.peers",
                                           kind=PeerBackend)

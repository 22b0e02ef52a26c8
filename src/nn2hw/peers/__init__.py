"""Optional cross-checks against peer simulators nn2hw did not write (SCALE-Sim, ZigZag).

Each peer runs in its own virtual environment (``scripts/install_peers.sh``); the adapters
``nn2hw.peers.scalesim`` and ``nn2hw.peers.zigzag`` convert a ``Workload`` and a design to the
peer's input files, run it by subprocess with a timeout and parse its reports into nn2hw records.
"""

from nn2hw.peers._runner import PACKAGES, install_command, installed, peer_python, peer_version

PEERS = tuple(PACKAGES)

__all__ = ["PEERS", "install_command", "installed", "peer_python", "peer_version"]

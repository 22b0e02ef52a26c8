#!/usr/bin/env bash
# Install the peer cost models nn2hw cross-checks against (SCALE-Sim, ZigZag), each in its OWN
# virtual environment under .peers/ (git-ignored) or $NN2HW_PEERS: their pins conflict with
# nn2hw's (SCALE-Sim 3.0.0 needs numpy < 2.4; ZigZag imports `six` without declaring it).
# The package lists live with each backend (nn2hw.peers.BACKENDS); this script only calls the CLI.
#
# Usage: scripts/install_peers.sh [scalesim] [zigzag]     (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
NN2HW="${NN2HW:-.venv/bin/nn2hw}"
command -v "$NN2HW" >/dev/null 2>&1 || NN2HW=nn2hw
exec "$NN2HW" peers install "$@"

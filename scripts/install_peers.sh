#!/usr/bin/env bash
# Install the peer cost models nn2hw cross-checks against, each in its OWN virtual environment
# (their pins conflict with nn2hw's: SCALE-Sim 3.0.0 needs numpy < 2.4, ZigZag imports `six`
# without declaring it). The venvs live under .peers/ (git-ignored); nn2hw's adapters
# (nn2hw.peers.scalesim / nn2hw.peers.zigzag) find them there, or under $NN2HW_PEERS.
#
# Usage: scripts/install_peers.sh [scalesim] [zigzag]     (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${NN2HW_PEERS:-.peers}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(scalesim zigzag)

for peer in "${peers[@]}"; do
  case "$peer" in
    scalesim) pkgs=("scalesim==3.0.0" "numpy<2.4") ;;
    zigzag) pkgs=("zigzag-dse==3.9.1" "six") ;;
    *) echo "unknown peer '$peer' (use scalesim or zigzag)" >&2; exit 2 ;;
  esac
  echo "== installing $peer into $ROOT/$peer"
  "$PYTHON" -m venv "$ROOT/$peer"
  "$ROOT/$peer/bin/pip" install -q --upgrade pip
  "$ROOT/$peer/bin/pip" install -q "${pkgs[@]}"
  "$ROOT/$peer/bin/pip" freeze | grep -i -E "^(scalesim|zigzag-dse|numpy|six)=" || true
done

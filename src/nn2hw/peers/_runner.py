"""Finding a peer simulator's own virtual environment and running a driver script in it.

Each peer (SCALE-Sim, ZigZag) pins packages that conflict with nn2hw's (SCALE-Sim 3.0.0 needs
numpy < 2.4), so it lives in its own venv: ``$NN2HW_PEERS/<peer>`` or ``.peers/<peer>`` in the
current folder or the nn2hw checkout. nn2hw never imports a peer: it writes the peer's input
files, runs a small driver (``_<peer>_driver.py``, standard library + the peer only) with the
peer's Python under a timeout, and reads back JSON. Results are cached under
``$NN2HW_CACHE/peers`` keyed by the inputs, so repeated validation runs are free.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nn2hw.errors import ConfigError, HardwareError
from nn2hw.paths import cache_root

PEERS_ENV = "NN2HW_PEERS"


def packages(peer: str) -> tuple[str, ...]:
    """What ``peer``'s venv holds (its registered backend's pins); a ConfigError naming the peers otherwise."""
    from nn2hw.peers.base import BACKENDS

    return BACKENDS.get(peer).packages


def install_command(peer: str) -> str:
    """The command that creates ``peer``'s venv (shown in errors and docs)."""
    return f"nn2hw peers install {peer}   (or scripts/install_peers.sh {peer} in a checkout)"


def install_root() -> Path:
    """Where ``install`` puts the venvs: $NN2HW_PEERS, else .peers in the nn2hw checkout (git-ignored),
    else .peers in the current folder."""
    if os.environ.get(PEERS_ENV, "").strip():
        return Path(os.environ[PEERS_ENV]).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[3]
    return (checkout if (checkout / ".git").exists() else Path.cwd()) / ".peers"


def install(peer: str, python: str = sys.executable, timeout_s: float = 1800) -> Path:
    """Create ``peer``'s own venv under ``install_root()`` and pip-install its pinned packages
    (its backend's ``packages``); returns the venv's Python."""
    pins = packages(peer)
    target = install_root() / peer
    steps = [[python, "-m", "venv", str(target)],
             [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"],
             [str(target / "bin" / "python"), "-m", "pip", "install", "-q", *pins]]
    for step in steps:
        try:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise HardwareError(f"Installing {peer} timed out after {timeout_s:.0f} s.",
                                "Retry on a faster network.") from None
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
            raise HardwareError(f"Installing {peer} failed at `{' '.join(step)}`: {tail}",
                                "Check network access to PyPI, or install by hand: "
                                f"python -m venv {target} && {target}/bin/pip install {' '.join(pins)}")
    return target / "bin" / "python"


def candidate_roots() -> list[Path]:
    """Where peer venvs are looked for, in order."""
    roots = []
    if os.environ.get(PEERS_ENV, "").strip():
        roots.append(Path(os.environ[PEERS_ENV]).expanduser())
    roots.append(Path.cwd() / ".peers")
    checkout = Path(__file__).resolve().parents[3]  # src/nn2hw/peers/_runner.py -> the checkout
    roots.append(checkout / ".peers")
    return list(dict.fromkeys(r.resolve() for r in roots))


def peer_python(peer: str) -> Path:
    """The Python of ``peer``'s venv; a ConfigError with the install command when it is missing."""
    packages(peer)  # an unknown peer is an error naming the registered ones
    looked = []
    for root in candidate_roots():
        python = root / peer / "bin" / "python"
        looked.append(str(python))
        if python.exists():
            return python
    raise ConfigError(
        f"The {peer} peer simulator is not installed (no venv at {', '.join(looked)}). It is an optional "
        f"extra that runs in its own virtual environment because its pins conflict with nn2hw's.",
        f"Install it with {install_command(peer)}, or point ${PEERS_ENV} at a folder holding {peer}/bin/python.",
    )


def installed(peer: str) -> bool:
    try:
        peer_python(peer)
    except ConfigError:
        return False
    return True


def peer_version(peer: str) -> str:
    """The installed version of ``peer`` (from its venv's package metadata)."""
    python = peer_python(peer)
    dist = packages(peer)[0].split("==")[0]
    out = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or "unknown"


@dataclass(frozen=True)
class PeerRun:
    """Output of one driver run: the parsed JSON, the wall time and whether it came from the cache."""

    data: Any
    seconds: float
    cached: bool
    workdir: Path


def run_driver(peer: str, driver: str, inputs: dict[str, str], args: Sequence[str] = (), *, timeout_s: float = 900,
               use_cache: bool = True, nice: int = 10) -> PeerRun:
    """Write ``inputs`` (file name -> text) to a fresh folder, run ``driver`` with the peer's Python
    (lowered priority ``nice``) under ``timeout_s``, and return the JSON it writes to result.json.

    The folder is ``$NN2HW_CACHE/peers/<peer>/<key>`` where the key hashes the inputs, the
    arguments and the driver; an earlier successful result there is returned without running.
    """
    python = peer_python(peer)
    script = Path(__file__).with_name(driver)
    key = hashlib.sha256(json.dumps([sorted(inputs.items()), list(args), script.read_text()]).encode()).hexdigest()[:16]
    workdir = cache_root() / "peers" / peer / key
    result = workdir / "result.json"
    if use_cache and result.exists():
        data = json.loads(result.read_text())
        return PeerRun(data["result"], float(data["seconds"]), True, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in inputs.items():
        (workdir / name).write_text(text)
    command = [str(python), "-I", str(script), str(workdir), *args]  # -I: not its own folder on sys.path
    if nice and hasattr(os, "nice"):
        command = ["nice", "-n", str(nice), *command]
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise HardwareError(f"{peer} did not finish within {timeout_s:.0f} s (inputs in {workdir}).",
                            "Raise timeout_s, or cross-check fewer layers (a smaller workload).") from None
    seconds = time.perf_counter() - start
    out = workdir / "driver_output.json"
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        raise HardwareError(f"{peer} failed (exit {proc.returncode}) on the inputs in {workdir}: " + " | ".join(tail),
                            f"Check the inputs there; reinstall the peer with {install_command(peer)} if it is broken.")
    data = json.loads(out.read_text())
    result.write_text(json.dumps({"seconds": seconds, "result": data, "python": sys.version.split()[0]}))
    return PeerRun(data, seconds, False, workdir)

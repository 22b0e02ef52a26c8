"""``nn2hw peers``: install and list the optional peer simulators (SCALE-Sim, ZigZag).

    nn2hw peers status
    nn2hw peers install            # both, each in its own venv under .peers/ (or $NN2HW_PEERS)
    nn2hw peers install scalesim

A thin shell over ``nn2hw.peers``; see docs/asic-cost-models.md for what the peers validate.
"""

from __future__ import annotations

import argparse

from nn2hw.cli._common import console


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nn2hw peers``."""
    parser = subparsers.add_parser("peers", help="install or list the peer simulators (SCALE-Sim, ZigZag)",
                                   description="Peer simulators nn2hw cross-checks its ASIC cost models against. "
                                               "Each lives in its own virtual environment because its pinned "
                                               "packages conflict with nn2hw's.")
    sub = parser.add_subparsers(dest="peers_command", metavar="ACTION", required=True)
    status = sub.add_parser("status", help="which peers are installed, where, and their versions")
    status.set_defaults(handler=_status)
    install = sub.add_parser("install", help="create a peer's venv and pip-install it")
    install.add_argument("names", nargs="*", metavar="PEER", help="scalesim and/or zigzag (default: both)")
    install.set_defaults(handler=_install)


def _status(args: argparse.Namespace) -> int:
    from nn2hw.peers import PEERS, installed, peer_python, peer_version

    for name in PEERS:
        if installed(name):
            console.print(f"{name}: {peer_version(name)} in {peer_python(name).parent.parent}")
        else:
            console.print(f"{name}: not installed (nn2hw peers install {name})")
    return 0


def _install(args: argparse.Namespace) -> int:
    from nn2hw.peers import PEERS
    from nn2hw.peers._runner import PACKAGES, install, install_root

    for name in args.names or PEERS:
        if name not in PACKAGES:
            from nn2hw.errors import ConfigError

            raise ConfigError(f"Unknown peer {name!r}.", f"Use one of: {', '.join(PACKAGES)}.")
        console.print(f"installing {name} ({' '.join(PACKAGES[name])}) into {install_root() / name} ...")
        python = install(name)
        console.print(f"{name}: ready ({python})")
    return 0

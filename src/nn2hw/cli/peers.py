"""``nn2hw peers``: install and list the optional peer simulators (SCALE-Sim, ZigZag).

    nn2hw peers status
    nn2hw peers install            # both, each in its own venv under .peers/ (or $NN2HW_PEERS)
    nn2hw peers install scalesim

A thin shell over ``nn2hw.peers``; see docs/asic-cost-models.md for what the peers validate.
"""

from __future__ import annotations

import argparse

from rich.markup import escape

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
    install.add_argument("names", nargs="*", metavar="PEER",
                         help="peers to install (default: all; `nn2hw peers status`)")
    install.set_defaults(handler=_install)


def _status(args: argparse.Namespace) -> int:
    from nn2hw.peers import BACKENDS, installed, peer_python, peer_version

    for name, peer in BACKENDS.items():
        where = (f"{peer_version(name)} in {peer_python(name).parent.parent}" if installed(name)
                 else f"not installed (nn2hw peers install {name})")
        console.print(f"{name}: {escape(where)} [dim]- {escape(peer.description)}; costs "
                      f"{', '.join(peer.templates)} designs[/]")
    return 0


def _install(args: argparse.Namespace) -> int:
    from nn2hw.peers import BACKENDS
    from nn2hw.peers._runner import install, install_root

    for name in args.names or BACKENDS.names():
        peer = BACKENDS.get(name)
        console.print(f"installing {name} ({' '.join(peer.packages)}) into {install_root() / name} ...", markup=False)
        console.print(f"{name}: ready ({install(name)})", markup=False)
    return 0

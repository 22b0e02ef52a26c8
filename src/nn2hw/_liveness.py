"""Who holds a trial or an evaluation claim, whether that process still lives, and the beat that
shows it does: shared by the study (trials) and the accuracy store (claims)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def owner_id(tag: str = "") -> str:
    """'host:pid[:tag]': who runs a trial or holds an evaluation claim."""
    return f"{socket.gethostname()}:{os.getpid()}" + (f":{tag}" if tag else "")


def owner_dead(owner: str | None) -> bool:
    """True when ``owner`` is a process of this host that no longer exists (killed, crashed).

    Owners on other hosts are never declared dead here: their trials go stale by heartbeat."""
    parts = (owner or "").split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


@contextmanager
def every(interval_s: float, action: Callable[[], None], first: bool = False) -> Iterator[None]:
    """Run ``action`` every ``interval_s`` seconds in a background thread while the block runs
    (once at the start too when ``first``): heartbeats of trials and of evaluation claims."""
    stop = threading.Event()

    def beat() -> None:
        if first:
            action()
        while not stop.wait(interval_s):
            action()

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

"""Who holds a trial or an evaluation claim, whether that process still lives, and the beat that
shows it does: shared by the study (trials) and the accuracy store (claims); and holding signals
across steps that must not be cut apart."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def owner_id(tag: str = "") -> str:
    """'host:pid[:tag]': who runs a trial or holds an evaluation claim."""
    return f"{socket.gethostname()}:{os.getpid()}" + (f":{tag}" if tag else "")


def owner_dead(owner: str | None) -> bool:
    """True when ``owner`` is a process of this host that no longer exists (killed, crashed), or is
    a zombie (a killed worker its parent has not reaped yet).

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
    return _zombie(int(parts[1]))


def _zombie(pid: int) -> bool:
    """True when process ``pid`` has exited but is not reaped yet (Linux: state Z in /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux), or the process is gone by now
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


@contextmanager
def every(interval_s: float, action: Callable[[], None], first: bool = False) -> Iterator[None]:
    """Run ``action`` every ``interval_s`` seconds in a background thread while the block runs
    (once at the start too when ``first``): heartbeats of trials and of evaluation claims. A beat
    that fails (SQLite's "database is locked" on a loaded machine) is reported in one line and the
    next one is tried on time: a missed beat is within the grace period, a stopped beating is not."""
    stop = threading.Event()

    def attempt() -> None:
        try:
            action()
        except Exception as exc:  # any failure of one beat: the next one retries
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            print(f"nn2hw: a heartbeat failed ({type(exc).__name__}: {first_line}); the next one is in "
                  f"{interval_s:g} s", file=sys.stderr, flush=True)

    def beat() -> None:
        if first:
            attempt()
        while not stop.wait(interval_s):
            attempt()

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a SIGINT or SIGTERM that arrives inside the block and deliver it (to the handler that was
    in place) when the block ends, so that steps that belong together are not cut apart: create a
    trial and record its owner; fail an interrupted trial and queue it again. Only the main thread
    receives signals: elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if held:
            signal.raise_signal(held[0])

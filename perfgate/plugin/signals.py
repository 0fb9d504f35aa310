"""Stopping from outside: SIGTERM and SIGHUP act as Ctrl-C; cleanup cannot be interrupted.

``timeout``, ``docker stop`` and a cancelled CI job send SIGTERM; raising KeyboardInterrupt
for it lets pytest end the session as for Ctrl-C, so perfgate's cleanup runs. Cleanup itself
runs with those signals ignored: an interrupted cleanup would leave processes and databases.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Handlers", "restore", "stop_on_signals", "uninterrupted"]

STOP_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)
Handler = Callable[[int, FrameType | None], object] | int | None
Handlers = dict[int, Handler]


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def stop_on_signals() -> Handlers:
    """SIGTERM and SIGHUP raise KeyboardInterrupt (once); the handlers replaced, to restore."""
    if not _main_thread():
        return {}

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # Once: a second signal must not interrupt the cleanup the first one started.
        signal.signal(signum, signal.SIG_IGN)
        raise KeyboardInterrupt(f"perfgate: stopped by {signal.Signals(signum).name}")

    return {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}


def restore(handlers: Handlers) -> None:
    """Put back what ``stop_on_signals`` replaced."""
    for sig, previous in handlers.items():
        signal.signal(sig, previous)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP are ignored during the block (the run is ending anyway)."""
    if not _main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        restore(previous)

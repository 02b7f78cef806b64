"""Pausing Python's cyclic garbage collector while a journal is read back in bulk.

Reading and folding an execution of 10,000 calls makes tens of thousands of objects
that all live until the fold is done and form no cycles (events and records are
untracked; the rest are tuples of them). While they pile up, the collector would run
a hundred times or more and walk them again each time; paused, it sees them once,
afterwards. Only kitaru's own code runs inside the pause, and it is short.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["collector_paused"]


class _Pauses:
    """The pauses in progress, in every thread of the process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.resume = False
        """Whether the collector was enabled when the outermost pause began."""


_pauses = _Pauses()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause automatic collection for the block; pauses in several threads nest.

    The collector is enabled again when the last pause ends, and only if it was
    enabled when the first began (a program that disabled it keeps it disabled).
    """
    pauses = _pauses
    with pauses.lock:
        if pauses.depth == 0:
            pauses.resume = gc.isenabled()
            gc.disable()
        pauses.depth += 1
    try:
        yield
    finally:
        with pauses.lock:
            pauses.depth -= 1
            if pauses.depth == 0 and pauses.resume:
                gc.enable()

"""Lines printed by running checkpoint attempts, moved to the journal as they come.

A line printed inside a checkpoint is only appended to its attempt's list (the
printing thread never waits for the journal). One background thread of the process
looks at the attempts that printed every ``SHIP_EVERY`` seconds and queues their new
lines on the execution's ``JournalWriter`` as a ``LogsCaptured`` chunk, which its
flusher writes within ``FLUSH_AFTER``: a crash loses at most the last fraction of a
second, and followers of the journal see a line well within a second.

An attempt's lines may so be journaled as several ``LogsCaptured`` events with the
same call and attempt, each holding the lines after the previous one: readers join
them in order (journals written before hold one event per attempt). The chunks are
queued behind the attempt's ``CallStarted`` and before its outcome, so a resumed
execution sees the crashed attempt as started and runs the next attempt number:
lines of the two runs never mix.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from kitaru.journal.events import LogEntry, LogsCaptured

if TYPE_CHECKING:
    from kitaru.runtime.context import CallScope
    from kitaru.runtime.writer import JournalWriter

__all__ = ["SHIP_EVERY", "finish", "ship"]

SHIP_EVERY = 0.2
"""Seconds between looks for new lines: lines printed together go in one event."""

_lock = threading.Lock()
"""Guards the registry below; held only briefly, never while waiting for a writer (a
thread appending to the journal may log a record, and so call ``ship``)."""
_wake = threading.Condition(_lock)
_shipping: dict[int, tuple[CallScope, JournalWriter]] = {}
"""Attempts that printed and have not ended, by ``id`` of their scope."""
_thread: threading.Thread | None = None
_queueing = threading.Lock()
"""Held while lines are taken from an attempt and queued on its writer, so the lines an
attempt's end takes are queued after every chunk taken before them."""


def ship(scope: CallScope, writer: JournalWriter) -> None:
    """Have the lines ``scope`` prints from now on journaled while it runs."""
    global _thread  # noqa: PLW0603  (one shipper per process, started on first use)
    with _lock:
        if scope.shipping:
            return
        scope.shipping = True
        _shipping[id(scope)] = (scope, writer)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="kitaru-live-logs", daemon=True)
            _thread.start()
        else:
            _wake.notify()


def finish(scope: CallScope) -> list[LogEntry]:
    """End live shipping for the attempt; return its lines not journaled yet.

    A chunk the shipper is queueing is queued before this returns, and nothing of the
    attempt is queued after the lines it returns. The new lines of the execution's
    other running attempts are queued now too, ahead of the returned ones: an attempt's
    end is appended at once, and a line another attempt printed before it must not
    reach the journal (and a follower of it) a shipping interval later. Call it without
    holding the writer's lock (the shipper may be waiting for that lock).
    """
    with _queueing:
        with _lock:
            entry = _shipping.pop(id(scope), None)
            scope.shipping = True
            rest = scope.logs[scope.shipped :]
            scope.shipped = len(scope.logs)
            earlier = [] if entry is None else _take(writer=entry[1])
        for writer, event in earlier:
            writer.defer(event)
        return rest


def _take(writer: JournalWriter | None = None) -> list[tuple[JournalWriter, LogsCaptured]]:
    """The new lines of every attempt shipping (of ``writer``'s execution only, if
    given), as events for their writers. The caller holds ``_lock``."""
    taken = []
    for scope, owner in list(_shipping.values()):
        if writer is not None and owner is not writer:
            continue
        if owner.closed:
            # The attempt was interrupted (its outcome is not recorded either).
            _shipping.pop(id(scope), None)
            continue
        end = len(scope.logs)
        if end <= scope.shipped:
            continue
        chunk = tuple(scope.logs[scope.shipped : end])
        scope.shipped = end
        taken.append(
            (owner, LogsCaptured(call=scope.identity, attempt=scope.attempt, entries=chunk))
        )
    return taken


def _loop() -> None:
    while True:
        with _lock:
            while not _shipping:
                _wake.wait()
        time.sleep(SHIP_EVERY)
        with _queueing:
            with _lock:
                taken = _take()
            for writer, event in taken:
                # Only queued: the writer's flusher (or the attempt's own next append)
                # writes it, fenced by the execution's lease like every append.
                writer.defer(event)

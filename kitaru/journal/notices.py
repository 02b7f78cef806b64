"""One listening session per process, shared by every thread that waits for a notice.

A thread waiting for mail (a wait's input, a cancel) or for work (a worker's queue)
used to hold a ``LISTEN`` session of its own, so a process with a hundred flows
parked at waits held a hundred sessions. Here one thread at a time reads the shared
session on behalf of all; the others sleep until it reports.

No notice is lost between two waits of a thread: each notice read bumps a counter,
and a wait returns at once if the counter moved since the same thread's last wait
ended, as a session of its own would have held the notice for it. A failed read
also moves the counter, since notices sent while the session was down are gone:
every waiter looks again for itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["NoticeBoard"]

C = TypeVar("C")


class NoticeBoard(Generic[C]):
    """Waits on one shared listening session, opened on first use."""

    def __init__(
        self,
        listen: Callable[[], C],
        read: Callable[[C, float], bool | None],
        close: Callable[[C], None],
    ) -> None:
        self._listen = listen
        """Open a session that listens on the channel."""
        self._read = read
        """Block on the session for up to the given seconds: True when a notice came,
        False when the time ran out, None when the session failed (it is then closed)."""
        self._close = close
        self._session: C | None = None
        self._cond = threading.Condition(threading.Lock())
        self._count = 0
        """Notices read (and failed reads) so far."""
        self._reading = False
        self._seen = threading.local()

    def wait(self, timeout: float) -> None:
        """Return on a notice since this thread's last wait, or after ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            seen = getattr(self._seen, "count", self._count)
            try:
                if self._session is None and not self._reading:
                    # Listen first, even for a wait of no time: a notice sent from now on
                    # is kept for the next wait (a worker listens before it looks).
                    self._read_for_all(0.0)
                while self._count == seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    if self._reading:
                        self._cond.wait(remaining)
                    else:
                        self._read_for_all(remaining)
            finally:
                self._seen.count = self._count

    def _read_for_all(self, timeout: float) -> None:
        """Read the session for every waiter (called with the lock held; let go meanwhile)."""
        self._reading = True
        session = self._session
        self._cond.release()
        noticed = 0
        try:
            if session is None:
                session = self._listen()
            outcome = self._read(session, timeout)
            if outcome is None:
                self._close(session)
                session = None
                time.sleep(min(0.1, timeout))  # the next look reconnects; never spin
            noticed = 0 if outcome is False else 1
        except BaseException:
            noticed = 1
            raise
        finally:
            self._cond.acquire()
            self._session = session
            self._reading = False
            self._count += noticed
            self._cond.notify_all()

    def close(self) -> None:
        """Close the listening session unless a thread is reading it."""
        with self._cond:
            if self._reading or self._session is None:
                return
            session, self._session = self._session, None
        self._close(session)

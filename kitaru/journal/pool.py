"""A bounded pool of database connections shared by the threads of one process.

A thread borrows a connection for one operation and gives it back at once, so a
process with many threads (a worker running executions side by side, a dashboard
serving pages) holds at most ``size`` connections however many threads it has, and
a thread that ends leaves no connection behind.

The pool knows nothing of the database it pools: the store hands it how to open a
connection, whether an idle one is still alive, whether a returned one can be used
again, and how to close one. It starts no thread of its own, so a process that forks
has nothing half-done in the child; the store gives the child a fresh pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

__all__ = ["ConnectionPool"]

C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """At most ``size`` connections; a borrower waits up to ``timeout`` seconds for one."""

    def __init__(
        self,
        connect: Callable[[], C],
        *,
        size: int,
        timeout: float,
        alive: Callable[[C], bool],
        reusable: Callable[[C], bool],
        close: Callable[[C], None],
        exhausted: Callable[[int, float], Exception],
        max_idle: float = 300.0,
    ) -> None:
        self.size = size
        self.timeout = timeout
        self.max_idle = max_idle
        """Seconds an idle connection is kept: past that it is closed rather than used
        (a firewall or the server may have dropped it without a word)."""
        self._connect = connect
        self._alive = alive
        self._reusable = reusable
        self._close = close
        self._exhausted = exhausted
        self._idle: list[tuple[C, float]] = []
        """Idle connections with the time each came back; the newest is used first."""
        self._open = 0
        """Connections that exist: borrowed, idle, or being opened."""
        self._cond = threading.Condition(threading.Lock())
        self._held = threading.local()

    @property
    def open_count(self) -> int:
        with self._cond:
            return self._open

    @contextmanager
    def connection(self) -> Iterator[C]:
        """Borrow a connection for the block; a nested borrow on the same thread shares it."""
        held: C | None = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        conn = self._take()
        self._held.conn = conn
        try:
            yield conn
        finally:
            self._held.conn = None
            self._give_back(conn)

    def close(self) -> None:
        """Close the idle connections; borrowed ones are closed when they come back broken
        or are kept for the next borrower. The pool stays usable."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn, _ in idle:
            self._close(conn)

    def _take(self) -> C:
        dead: list[C] = []
        try:
            with self._cond:
                deadline: float | None = None
                while True:
                    now = time.monotonic()
                    while self._idle:
                        conn, since = self._idle.pop()
                        if now - since <= self.max_idle and self._alive(conn):
                            return conn
                        self._open -= 1
                        dead.append(conn)
                    if self._open < self.size:
                        self._open += 1
                        break
                    if deadline is None:
                        deadline = now + self.timeout
                    if now >= deadline:
                        raise self._exhausted(self.size, self.timeout)
                    self._cond.wait(deadline - now)
        finally:
            for conn in dead:
                self._close(conn)
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _give_back(self, conn: C) -> None:
        if self._reusable(conn):
            with self._cond:
                self._idle.append((conn, time.monotonic()))
                self._cond.notify()
            return
        with self._cond:
            self._open -= 1
            self._cond.notify()
        self._close(conn)

"""Dying at a chosen point, in the test process or for real in a child process.

A :class:`Mortal` stands for one process running an execution. Its :class:`CrashPoint`
says where it dies:

- ``append:k``: at the k-th journal append, before anything of it is written;
- ``torn:k``: half-way through the k-th append: ``BEGIN IMMEDIATE`` and every insert
  ran, ``COMMIT`` never does;
- ``body:k``: inside the k-th checkpoint body it enters, just after its side effect;
- ``llm:k``: while its k-th model request is in flight (the provider got it and
  answers, the process is gone before the answer is recorded).

In a child process death is real (``os._exit``, or SIGKILL from the fake provider).
The SQLite store (:class:`MortalStore`) and the PostgreSQL one
(:class:`MortalPostgresStore`) die the same way.
In the test process :meth:`Mortal.die` marks the process dead and raises
:class:`SimulatedDeath`; from then on its :class:`MortalStore` refuses every write
and its checkpoint bodies refuse to start, so the journal is left exactly as a killed
process leaves it: nothing written after the instant of death, and a lease whose
holder is gone (its kernel lock is dropped, as the kernel drops a dead process's).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kitaru._config import sqlite_file
from kitaru.journal.events import Event
from kitaru.journal.postgres import PostgresStore
from kitaru.journal.sqlite import SqliteStore
from kitaru.journal.store import Lease, MemoryRow, MemoryWrite

__all__ = [
    "CRASH_KINDS",
    "DEATH_EXIT_CODE",
    "CrashPoint",
    "Mortal",
    "MortalPostgresStore",
    "MortalStore",
    "SimulatedDeath",
    "current",
    "install",
]

CRASH_KINDS = ("append", "torn", "body", "llm")
DEATH_EXIT_CODE = 137
"""What a child process exits with when it dies on purpose (as after SIGKILL)."""


class SimulatedDeath(BaseException):
    """The simulated process died here; nothing after this point may touch the world.

    A BaseException, like the signal that would kill a real process: no
    ``except Exception`` in the runtime or in user code may catch it.
    """


@dataclass(frozen=True)
class CrashPoint:
    """Where a process dies: the ``nth`` event of ``kind`` (see the module docstring)."""

    kind: str
    nth: int

    def __post_init__(self) -> None:
        if self.kind not in CRASH_KINDS or self.nth < 1:
            raise ValueError(f"not a crash point: {self.kind}:{self.nth}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.nth}"

    @classmethod
    def parse(cls, text: str) -> CrashPoint:
        kind, _, nth = text.partition(":")
        return cls(kind, int(nth))


class Mortal:
    """One process that dies at ``point`` (or never, when it is None)."""

    def __init__(self, point: CrashPoint | None, *, real: bool = False):
        self.point = point
        self.real = real
        self.died_at: str | None = None
        self._dead = threading.Event()
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    @property
    def dead(self) -> bool:
        return self._dead.is_set()

    def check(self) -> None:
        """Raise ``SimulatedDeath`` if this process is already dead."""
        if self._dead.is_set():
            raise SimulatedDeath(self.died_at or "dead")

    def due(self, kind: str) -> bool:
        """Count one more event of ``kind``; True if the process dies at it.

        ``append`` events are also what ``torn`` points count.
        """
        with self._lock:
            self.check()
            self._counts[kind] += 1
            point = self.point
            if point is None:
                return False
            counted = "append" if point.kind == "torn" else point.kind
            return counted == kind and self._counts[kind] == point.nth

    def kill(self, where: str) -> None:
        """Mark the process dead without raising (for another thread that sees it die)."""
        with self._lock:
            if self.real:
                os._exit(DEATH_EXIT_CODE)
            if not self._dead.is_set():
                self.died_at = where
                self._dead.set()

    def die(self, where: str) -> None:
        """Die here: ``os._exit`` in a real process, else mark dead and raise."""
        self.kill(where)
        raise SimulatedDeath(where)


class _TearingConnection:
    """Stands in for the store's connection during a ``torn`` append.

    Statements pass through until ``COMMIT``, where the process dies with its
    transaction open. In the test process the real connection is closed first, which
    drops the transaction just as the operating system does for a dead process.
    """

    def __init__(self, conn: sqlite3.Connection, mortal: Mortal):
        self._conn = conn
        self._mortal = mortal

    def execute(self, sql: str, *params: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            if not self._mortal.real:
                self._conn.close()
            self._mortal.die("in the middle of an append, before COMMIT")
        return self._conn.execute(sql, *params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        return self._conn.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        # A dead process rolls nothing back: its transaction simply never commits.
        return False if self._mortal.dead else self._conn.in_transaction


class _Mortality:
    """What every backend's mortal store shares: each write goes through its Mortal.

    Mixed in before the real store class, whose methods it wraps.
    """

    mortal: Mortal
    torn_after_seq: int | None
    """For a torn append: the execution's last seq before it (what must remain)."""
    _tearing: threading.local

    def append(
        self,
        exec_id: str,
        first_seq: int,
        events: Sequence[tuple[Event, float]],
        payloads: Mapping[str, bytes] | None = None,
        *,
        owner: str,
        sync: bool = True,
    ) -> None:
        mortal = self.mortal
        real = super()
        if not mortal.due("append"):
            real.append(exec_id, first_seq, events, payloads, owner=owner, sync=sync)  # type: ignore[misc]
            return
        assert mortal.point is not None
        if mortal.point.kind == "append":
            mortal.die(f"before append {mortal.point.nth} (seq {first_seq})")
        self.torn_after_seq = first_seq - 1
        self._tearing.active = True
        try:
            real.append(exec_id, first_seq, events, payloads, owner=owner, sync=sync)  # type: ignore[misc]
        finally:
            self._tearing.active = False
        raise AssertionError("a torn append committed")

    # A dead process writes nothing more: every other write is refused too. Releasing
    # writes nothing either (a killed process releases nothing); only its liveness
    # tokens go, as the kernel or the server drops them when a process dies.

    def claim(self, lease: Lease) -> Lease | None:
        self.mortal.check()
        return super().claim(lease)  # type: ignore[misc, no-any-return]

    def renew(self, exec_id: str, owner: str, expires_at: float) -> bool:
        if self.mortal.dead:
            return False
        return super().renew(exec_id, owner, expires_at)  # type: ignore[misc, no-any-return]

    def release(self, exec_id: str, owner: str) -> None:
        if not self.mortal.dead:
            super().release(exec_id, owner)  # type: ignore[misc]
            return
        self._drop_liveness(exec_id, owner)

    def _drop_liveness(self, exec_id: str, owner: str) -> None:
        """A dead process's liveness token for this lease goes (the kernel's or server's doing)."""
        raise NotImplementedError

    def bury(self) -> None:
        """The process is gone: every liveness token it held goes with it."""
        raise NotImplementedError

    def post_wait_input(
        self, exec_id: str, wait: str, value: bytes | None, *, aborted: bool
    ) -> None:
        self.mortal.check()
        super().post_wait_input(exec_id, wait, value, aborted=aborted)  # type: ignore[misc]

    def clear_wait_input(self, exec_id: str, wait: str) -> None:
        self.mortal.check()
        super().clear_wait_input(exec_id, wait)  # type: ignore[misc]

    def request_cancel(self, exec_id: str, reason: str) -> None:
        self.mortal.check()
        super().request_cancel(exec_id, reason)  # type: ignore[misc]

    def clear_cancel(self, exec_id: str) -> None:
        self.mortal.check()
        super().clear_cancel(exec_id)  # type: ignore[misc]

    def write_memory(self, write: MemoryWrite, *, owner: str | None = None) -> MemoryRow | None:
        self.mortal.check()
        return super().write_memory(write, owner=owner)  # type: ignore[misc, no-any-return]

    def restore_memory(self, row: MemoryRow, *, owner: str | None = None) -> bool:
        self.mortal.check()
        return super().restore_memory(row, owner=owner)  # type: ignore[misc, no-any-return]

    def purge_memory(self, rows: Sequence[int]) -> int:
        self.mortal.check()
        return super().purge_memory(rows)  # type: ignore[misc, no-any-return]


class MortalStore(_Mortality, SqliteStore):
    """The SQLite store of a process that can die."""

    def __init__(self, path: str | os.PathLike[str], mortal: Mortal, **kwargs: Any):
        super().__init__(path, **kwargs)
        self.mortal = mortal
        self._tearing = threading.local()
        self.torn_after_seq = None

    def _conn(self, sync: bool = True) -> sqlite3.Connection:
        conn = super()._conn(sync)
        if getattr(self._tearing, "active", False):
            return _TearingConnection(conn, self.mortal)  # type: ignore[return-value]
        return conn

    def _drop_liveness(self, exec_id: str, owner: str) -> None:
        held = self._holds.pop((exec_id, owner), None)
        if held is not None:
            held.abandon()

    def bury(self) -> None:
        for held in self._holds.values():
            held.abandon()
        self._holds.clear()


class MortalPostgresStore(_Mortality, PostgresStore):
    """The PostgreSQL store of a process that can die.

    A torn append runs every statement of its transaction, then the process dies before
    COMMIT: in the test process the connection is cut, and the server rolls the open
    transaction back as it does for a session whose process is gone.
    """

    def __init__(self, url: str, mortal: Mortal, **kwargs: Any):
        super().__init__(url, **kwargs)
        self.mortal = mortal
        self._tearing = threading.local()
        self.torn_after_seq = None

    # The run queue and the workers table: a dead process writes none of them.
    def enqueue(self, *args: Any, **kwargs: Any) -> None:
        self.mortal.check()
        super().enqueue(*args, **kwargs)

    def claim_queued(self, *args: Any, **kwargs: Any) -> Any:
        self.mortal.check()
        return super().claim_queued(*args, **kwargs)

    def park(self, *args: Any, **kwargs: Any) -> None:
        self.mortal.check()
        super().park(*args, **kwargs)

    def requeue(self, *args: Any, **kwargs: Any) -> None:
        self.mortal.check()
        super().requeue(*args, **kwargs)

    def dequeue(self, *args: Any, **kwargs: Any) -> None:
        self.mortal.check()
        super().dequeue(*args, **kwargs)

    def register_worker(self, *args: Any, **kwargs: Any) -> Any:
        self.mortal.check()
        return super().register_worker(*args, **kwargs)

    def worker_heartbeat(self, *args: Any, **kwargs: Any) -> None:
        self.mortal.check()
        super().worker_heartbeat(*args, **kwargs)

    def unregister_worker(self, *args: Any, **kwargs: Any) -> None:
        self.mortal.check()
        super().unregister_worker(*args, **kwargs)

    def _commit_append(self, conn: Any, pipeline: Any) -> None:
        if not getattr(self._tearing, "active", False):
            super()._commit_append(conn, pipeline)
            return
        pipeline.sync()  # every statement of the append has run; COMMIT is never sent
        if not self.mortal.real:
            conn.close()  # the pool drops a closed session when it comes back
        self.mortal.die("in the middle of an append, before COMMIT")

    def _append_statement(self, conn: Any, sql: str, params: tuple[object, ...]) -> int:
        if not getattr(self._tearing, "active", False):
            return super()._append_statement(conn, sql, params)
        # The one statement runs inside a transaction that never commits: the server
        # has done all of the append's work when the process dies.
        conn.execute("BEGIN")
        conn.execute(sql, params)
        if not self.mortal.real:
            conn.close()  # the pool drops a closed session when it comes back
        self.mortal.die("in the middle of an append, before COMMIT")
        raise AssertionError("unreachable")

    def _drop_liveness(self, exec_id: str, owner: str) -> None:
        self.bury()

    def bury(self) -> None:
        # The server drops a dead session's advisory locks once it sees the socket close;
        # they are let go of first so that no reader sees the dead holder alive meanwhile.
        with self._lock_conn_guard:
            self._owned.clear()
            locker, self._lock_conn = self._lock_conn, None
            if locker is not None and not locker.closed:
                with contextlib.suppress(Exception):
                    locker.execute("SELECT pg_advisory_unlock_all()")
                locker.close()


current: Mortal | None = None
"""The Mortal the interpreter's checkpoint bodies and flow body answer to, if any."""


def mortal_store(url: str, mortal: Mortal) -> MortalStore | MortalPostgresStore:
    """The mortal store of the backend ``url`` names."""
    path = sqlite_file(url)
    if path is not None:
        return MortalStore(path, mortal)
    return MortalPostgresStore(url, mortal)


def install(url: str, mortal: Mortal) -> MortalStore | MortalPostgresStore:
    """Make ``mortal`` this process's fate: its store serves ``url`` from now on."""
    import kitaru._stores

    global current  # noqa: PLW0603  (one process, one fate)
    store = mortal_store(url, mortal)
    kitaru._stores._stores[store.url] = store
    current = mortal
    return store

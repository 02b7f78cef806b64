"""The store backends the backend-neutral tests run against, and how each plays a death.

A test takes the ``store_backend`` fixture (conftest.py) and opens stores through
``kitaru._stores.new_store(backend.location(folder))``, so a new backend is one entry in
``BACKENDS``: a location for a fresh, empty store, and what a process's death does to
the liveness tokens its store holds.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitaru.journal.events import Event
from kitaru.journal.store import Lease, Store
from kitaru.runtime.ownership import this_host


@dataclass(frozen=True)
class StoreBackend:
    name: str
    location: Callable[[Path], str]
    """The URL of a new, empty store kept under the given (empty, temporary) folder."""
    die: Callable[[Store], None]
    """The process that uses this store dies: the liveness tokens it holds go (as the
    kernel or the server drops them), the rows it wrote stay, and it is closed."""
    liveness: str = "kernel"
    """How a holder is known alive. ``kernel``: one lock per execution that dies with its
    process, and for a lease written under another kernel, its expiry. ``session``: a
    lock per lease token held by the holder's database session, and an unexpired lease."""
    server_clock: bool = False
    """Lease expiry is re-based onto the server's clock when written (so it matches the
    time asked for only up to the clocks' difference and the round trip)."""


def _sqlite_die(store: Store) -> None:
    from kitaru.journal.sqlite import SqliteStore

    assert isinstance(store, SqliteStore)
    for held in store._holds.values():
        held.abandon()  # the kernel drops a dead process's locks without a word to SQLite
    store._holds.clear()
    store.close()


SQLITE = StoreBackend(
    name="sqlite",
    location=lambda folder: f"sqlite:///{folder / 'journal.db'}",
    die=_sqlite_die,
)


def _postgres_die(store: Store) -> None:
    from kitaru.journal.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    locker = store._lock_conn
    if locker is not None and not locker.closed:
        # The server drops a dead session's locks once it sees the socket close; let go of
        # them first so the test need not wait for the server to notice.
        locker.execute("SELECT pg_advisory_unlock_all()")
        locker.close()
    store._lock_conn = None
    store._owned.clear()
    store.close()


_pg_database: dict[str, str] = {}


def postgres_backend(server: Any) -> StoreBackend:
    """The PostgreSQL backend on ``server`` (tests/pg_server.py): one database for the
    session, and a schema of its own for every store folder."""

    def location(folder: Path) -> str:
        base = _pg_database.get("url")
        if base is None:
            base = _pg_database["url"] = server.fresh_database()
        schema = "k_" + hashlib.blake2b(str(folder).encode(), digest_size=8).hexdigest()
        return f"{base}&kitaru_schema={schema}"

    return StoreBackend(
        name="postgresql",
        location=location,
        die=_postgres_die,
        liveness="session",
        server_clock=True,
    )


BACKENDS = [SQLITE, "postgresql"]
"""Backends by entry; ``postgresql`` is built by the fixture once its server runs."""


class Owned:
    """A store whose ``append`` takes the execution's lease first, as a runner would.

    For tests of a backend below the runtime: appends still go through the fenced path,
    and everything else is the wrapped store's own.
    """

    owner = "tests/1"

    def __init__(self, store: Store):
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def append(
        self,
        exec_id: str,
        first_seq: int,
        events: Sequence[tuple[Event, float]],
        payloads: Mapping[str, bytes] | None = None,
    ) -> None:
        lease = Lease(exec_id, self.owner, this_host(), os.getpid(), "", time.time() + 60)
        claimed = self.store.get_lease(exec_id) is None
        if claimed:
            assert self.store.claim(lease) is None
        try:
            self.store.append(exec_id, first_seq, events, payloads, owner=self.owner)
        finally:
            if claimed:
                self.store.release(exec_id, self.owner)

"""The store backends the backend-neutral tests run against, and how each plays a death.

A test takes the ``store_backend`` fixture (conftest.py) and opens stores through
``kitaru._stores.new_store(backend.location(folder))``, so a new backend is one entry in
``BACKENDS``: a location for a fresh, empty store, and what a process's death does to
the liveness tokens its store holds.
"""

from __future__ import annotations

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

BACKENDS = [SQLITE]


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

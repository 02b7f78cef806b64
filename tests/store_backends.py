"""The store backends the backend-neutral tests run against, and how each plays a death.

A test takes the ``store_backend`` fixture (conftest.py) and opens stores through
``kitaru.stores.new_store(backend.location(folder))``, so a new backend is one entry in
``BACKENDS``: a location for a fresh, empty store, and what a process's death does to
the liveness tokens its store holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kitaru.journal.store import Store


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

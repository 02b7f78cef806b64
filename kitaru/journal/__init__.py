"""The journal: typed events, the Store protocol and its SQLite implementation."""

from __future__ import annotations

import threading
from pathlib import Path

from kitaru.config import store_path
from kitaru.journal.events import Event, ValueRef
from kitaru.journal.payloads import content_hash, make_ref
from kitaru.journal.sqlite import SqliteStore
from kitaru.journal.store import ExecutionRow, JournalConflictError, Lease, Store, StoredEvent

__all__ = [
    "Event",
    "ExecutionRow",
    "JournalConflictError",
    "Lease",
    "SqliteStore",
    "Store",
    "StoredEvent",
    "ValueRef",
    "content_hash",
    "make_ref",
    "open_store",
]

_stores: dict[Path, SqliteStore] = {}
_stores_lock = threading.Lock()


def open_store(location: str | None = None) -> SqliteStore:
    """Return the process's store for ``location`` (default: ``$KITARU_STORE``, the config dir)."""
    path = store_path(location).absolute()
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = SqliteStore(path)
        return store

"""The journal: typed events, the Store protocol and its SQLite implementation."""

from __future__ import annotations

import threading
from pathlib import Path

from kitaru._config import store_path
from kitaru.errors import JournalNotFoundError
from kitaru.journal.events import Event, ValueRef
from kitaru.journal.payloads import content_hash, make_ref
from kitaru.journal.sqlite import SqliteStore
from kitaru.journal.store import ExecutionRow, JournalConflictError, Lease, Store, StoredEvent

__all__ = [
    "Event",
    "ExecutionRow",
    "JournalConflictError",
    "JournalNotFoundError",
    "Lease",
    "SqliteStore",
    "Store",
    "StoredEvent",
    "ValueRef",
    "content_hash",
    "forget_store",
    "make_ref",
    "open_store",
]

_stores: dict[Path, SqliteStore] = {}
_stores_lock = threading.Lock()


def open_store(location: str | None = None, *, create: bool = True) -> SqliteStore:
    """Return the process's store for ``location`` (default: the current stack's store).

    The current stack is the one ``kitaru.configure(stack=)`` or ``KITARU_STACK`` names,
    else the local stack when ``KITARU_STORE`` is set, else the active stack. With
    ``create=False`` (for what only reads), a missing journal file raises
    ``JournalNotFoundError`` instead of being created empty.
    """
    if location is None:
        from kitaru._stacks import default_stack_name, stack_store

        location = stack_store(default_stack_name())
    path = store_path(location).absolute()
    if not create and not path.exists():
        raise JournalNotFoundError(path)
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = SqliteStore(path)
        return store


def forget_store(location: str | None = None) -> None:
    """Close this thread's connections to ``location``'s store and drop it from the cache.

    For when the journal's files are removed: the next ``open_store`` starts afresh
    (and creates, migrates) instead of reusing what it knew of the old file.
    """
    path = store_path(location).absolute()
    with _stores_lock:
        store = _stores.pop(path, None)
    if store is not None:
        store.close()

"""Open the journal store a URL names: the one place that picks a backend.

The scheme decides: ``sqlite:///PATH`` (or a plain path, see ``config.store_url``) is
the SQLite store; ``postgresql://`` is reserved for the PostgreSQL store. Each backend's
module is imported only when a store of it is opened, so the runtime, replay and the
journal's shared modules never load a database driver they do not use. A new backend
is one opener in ``_OPENERS`` (see docs/architecture.md, "Where to add things").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from kitaru._config import STORE_ENV, sqlite_file, store_url
from kitaru.errors import JournalNotFoundError, KitaruUsageError
from kitaru.journal.store import Store

__all__ = ["JournalNotFoundError", "backend_of", "forget_store", "new_store", "open_store"]


def _open_sqlite(url: str) -> Store:
    from kitaru.journal.sqlite import SqliteStore

    path = sqlite_file(url)
    assert path is not None  # the scheme said sqlite
    return SqliteStore(path)


def _open_postgresql(url: str) -> Store:
    # Imported here: psycopg loads only for a PostgreSQL store.
    from kitaru.journal.postgres import PostgresStore

    return PostgresStore(url)


_OPENERS: dict[str, Callable[[str], Store]] = {
    "sqlite": _open_sqlite,
    "postgresql": _open_postgresql,
    "postgres": _open_postgresql,
    "postgresql+psycopg": _open_postgresql,
}


def backend_of(url: str) -> str:
    """The scheme of a store URL that has a backend; raise ``KitaruUsageError`` otherwise."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in _OPENERS:
        where = STORE_ENV if _named_by_environment(url) else f"The store URL {_shown(url)!r}"
        raise KitaruUsageError(
            f"{where} uses the '{scheme}' scheme, which this version does not support; "
            "give a file path, a sqlite:///PATH URL or a postgresql:// URL."
        )
    return scheme


def _shown(url: str) -> str:
    """``url`` as a message may show it: a password in it is replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not at or "/" in userinfo or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def _named_by_environment(url: str) -> bool:
    raw = os.environ.get(STORE_ENV)
    return bool(raw) and store_url(raw) == url


_stores: dict[str, Store] = {}
"""The process's open stores by URL: one per store, shared by all threads."""
_stores_lock = threading.Lock()


def open_store(location: str | None = None, *, create: bool = True) -> Store:
    """Return the process's store for ``location`` (default: the current stack's store).

    ``location`` is a store URL or a journal file path. The current stack is the one
    ``kitaru.configure(stack=)`` or ``KITARU_STACK`` names, else the local stack when
    ``KITARU_STORE`` is set, else the active stack. With ``create=False`` (for what only
    reads), a missing SQLite journal raises ``JournalNotFoundError`` instead of being
    created empty.
    """
    url = _resolve(location)
    opener = _OPENERS[backend_of(url)]
    path = sqlite_file(url)
    if not create and path is not None and not path.exists():
        raise JournalNotFoundError(path)
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = opener(url)
        return store


def new_store(location: str) -> Store:
    """A store of its own for ``location``, not the process's shared one.

    For what must act as another process would (tests of a backend, checks that must
    not disturb the shared store's connections); ``open_store`` is for everything else.
    Close it when done.
    """
    url = store_url(location)
    return _OPENERS[backend_of(url)](url)


def _resolve(location: str | None) -> str:
    if location is None:
        from kitaru._stacks import default_stack_name, stack_store

        location = stack_store(default_stack_name())
    return store_url(location)


def forget_store(location: str | None = None) -> None:
    """Close this thread's connections to ``location``'s store and drop it from the cache.

    For when the journal's files are removed: the next ``open_store`` starts afresh
    (and creates, migrates) instead of reusing what it knew of the old store.
    """
    url = _resolve(location)
    with _stores_lock:
        store = _stores.pop(url, None)
    if store is not None:
        store.close()

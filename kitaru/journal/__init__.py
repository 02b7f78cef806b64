"""The journal: typed events, the Store protocol and the backends that implement it.

Importing this package loads no backend: ``kitaru._stores.open_store`` imports the one a
store URL names (the SQLite store lives in ``kitaru.journal.sqlite``).
"""

from __future__ import annotations

from kitaru.journal.events import Event, ValueRef
from kitaru.journal.payloads import content_hash, make_ref
from kitaru.journal.store import (
    EventLog,
    ExecutionIndex,
    ExecutionRow,
    Inspection,
    JournalConflictError,
    Lease,
    Leases,
    Mailbox,
    Memories,
    StorageReport,
    Store,
    StoredEvent,
)

__all__ = [
    "Event",
    "EventLog",
    "ExecutionIndex",
    "ExecutionRow",
    "Inspection",
    "JournalConflictError",
    "Lease",
    "Leases",
    "Mailbox",
    "Memories",
    "StorageReport",
    "Store",
    "StoredEvent",
    "ValueRef",
    "content_hash",
    "make_ref",
]

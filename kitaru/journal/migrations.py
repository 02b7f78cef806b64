"""The journal's schema, and the steps that bring an older database up to date.

A database carries kitaru's ``application_id`` and its schema version in
``user_version``. Opening a current database costs one PRAGMA read; sqlite-utils is
only imported when a migration has to run.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, Final

from kitaru.journal.read_model import (
    TOTALS_EVENTS,
    add_totals,
    decodable_events,
    decodable_stored,
    index_calls,
)

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SchemaError", "migrate"]

APPLICATION_ID: Final = 0x4B697461  # "Kita"
SCHEMA_VERSION: Final = 8


class SchemaError(Exception):
    """The database is not a kitaru journal, or is newer than this version."""


_APPEND_ONLY_TRIGGERS = """
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'kitaru journal events are append-only: UPDATE refused'); END;
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'kitaru journal events are append-only: DELETE refused'); END;
CREATE TRIGGER payloads_refuse_update BEFORE UPDATE ON payloads
BEGIN SELECT RAISE(ABORT, 'kitaru payloads are immutable: UPDATE refused'); END;
CREATE TRIGGER payloads_refuse_delete BEFORE DELETE ON payloads
BEGIN SELECT RAISE(ABORT, 'kitaru payloads are immutable: DELETE refused'); END;
"""


def _v1(db: Any) -> None:
    """Events, payloads, the executions read model and execution leases."""
    db["events"].create(
        {"position": int, "exec_id": str, "seq": int, "type": str, "at": float, "body": bytes},
        pk="position",
        not_null={"exec_id", "seq", "type", "at", "body"},
    )
    db["events"].create_index(["exec_id", "seq"], index_name="events_exec_seq", unique=True)
    db["payloads"].create({"hash": str, "bytes": bytes}, pk="hash", not_null={"bytes"})
    db["executions"].create(
        {
            "exec_id": str,
            "flow_name": str,
            "status": str,
            "started_at": float,
            "ended_at": float,
            "original_exec_id": str,
            "failure": str,
        },
        pk="exec_id",
        not_null={"flow_name", "status", "started_at"},
    )
    db["executions"].create_index(["started_at"], index_name="executions_started")
    db["leases"].create(
        {
            "exec_id": str,
            "owner": str,
            "host": str,
            "pid": int,
            "pid_started": str,
            "expires_at": float,
        },
        pk="exec_id",
        not_null={"owner", "host", "pid", "pid_started", "expires_at"},
    )
    for statement in _APPEND_ONLY_TRIGGERS.strip().split(";\n"):
        db.execute(statement if statement.endswith(";") else statement + ";")


# INSERT OR REPLACE deletes the row it collides with without firing DELETE triggers,
# so overwriting is refused on INSERT. A payload inserted again with the same bytes is
# not an overwrite: the store's own INSERT OR IGNORE relies on that.
_NO_OVERWRITE_TRIGGERS = """
CREATE TRIGGER events_refuse_overwrite BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE position = NEW.position
             OR (exec_id = NEW.exec_id AND seq = NEW.seq))
BEGIN SELECT RAISE(ABORT, 'kitaru journal events are append-only: overwrite refused'); END;
CREATE TRIGGER payloads_refuse_overwrite BEFORE INSERT ON payloads
WHEN EXISTS (SELECT 1 FROM payloads WHERE hash = NEW.hash AND bytes IS NOT NEW.bytes)
BEGIN SELECT RAISE(ABORT, 'kitaru payloads are immutable: overwrite refused'); END;
"""


def _v2(db: Any) -> None:
    """Refuse INSERT OR REPLACE over stored events and payloads."""
    for statement in _NO_OVERWRITE_TRIGGERS.strip().split(";\n"):
        db.execute(statement if statement.endswith(";") else statement + ";")


def _v3(db: Any) -> None:
    """Mailboxes for other processes: wait input and cancel requests.

    A running execution has exactly one writer of its events. Another process that
    answers a wait or cancels leaves its request here; the owner turns it into events.
    """
    db["wait_inputs"].create(
        {"exec_id": str, "wait": str, "value": bytes, "aborted": int, "at": float},
        pk=("exec_id", "wait"),
        not_null={"aborted", "at"},
    )
    db["cancel_requests"].create(
        {"exec_id": str, "reason": str, "at": float}, pk="exec_id", not_null={"at"}
    )


def _v4(db: Any) -> None:
    """An index of cacheable checkpoint outputs: cache key -> the completion event."""
    db["call_cache"].create(
        {"key": str, "exec_id": str, "seq": int}, pk="key", not_null={"exec_id", "seq"}
    )


def _v5(db: Any) -> None:
    """A CRC-32 of each event body, so damage inside a row is caught, not mis-read.

    Events written before this version have none (NULL) and are read as before.
    """
    db.execute("ALTER TABLE events ADD COLUMN crc INTEGER")


_MEMORY_SCHEMA = """
CREATE TABLE memories (
    id INTEGER PRIMARY KEY,
    scope_type TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB,
    value_type TEXT NOT NULL,
    created_at REAL NOT NULL,
    exec_id TEXT,
    flow_name TEXT,
    call_key TEXT
);
CREATE UNIQUE INDEX memories_version ON memories(scope_type, scope, key, version);
CREATE UNIQUE INDEX memories_call ON memories(exec_id, call_key);
CREATE TRIGGER memories_refuse_update BEFORE UPDATE ON memories
BEGIN SELECT RAISE(ABORT, 'kitaru memory versions are append-only: UPDATE refused'); END;
"""


def _v6(db: Any) -> None:
    """Durable memory: versioned key-value entries in typed scopes.

    Every write adds a version (a delete adds a tombstone version), so a key's history
    is complete; rows are never updated. Purging is the one physical removal, which is
    why values live in the row itself rather than in the immutable payloads table.
    ``(exec_id, call_key)`` names the flow-body call that wrote a version, so a
    resumed execution finds its own earlier write instead of adding another.
    """
    for statement in _MEMORY_SCHEMA.strip().split(";\n"):
        db.execute(statement if statement.endswith(";") else statement + ";")


_TOTALS_ROWS = "SELECT type, body FROM events WHERE exec_id = ? AND type IN ({marks}) ORDER BY seq"


def _v7(db: Any) -> None:
    """Per-execution totals in the executions table: calls, tokens, estimated cost.

    A listing shows them for every row it lists; reading each execution's journal for
    them costs time in proportion to its calls. ``execution_calls`` holds the call
    identities already counted, so a call is counted once however many attempts it
    has: a trigger counts each identity inserted there (``INSERT OR IGNORE`` of one
    seen before inserts nothing), which saves the append a statement per call. The
    append that writes the events moves the totals in the same transaction; journals
    written before are summed here, once.
    """
    for statement in (
        "ALTER TABLE executions ADD COLUMN calls INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE executions ADD COLUMN tokens INTEGER",
        "ALTER TABLE executions ADD COLUMN cost REAL",
        "CREATE TABLE execution_calls (exec_id TEXT NOT NULL, identity TEXT NOT NULL, "
        "PRIMARY KEY (exec_id, identity)) WITHOUT ROWID",
    ):
        db.execute(statement)
    conn = db.conn
    exec_ids = [row[0] for row in conn.execute("SELECT exec_id FROM executions")]
    tags = sorted(TOTALS_EVENTS)
    marks = ", ".join("?" * len(tags))
    for exec_id in exec_ids:
        rows = conn.execute(_TOTALS_ROWS.format(marks=marks), (exec_id, *tags))
        totals = add_totals(decodable_events(rows))
        conn.executemany(
            "INSERT INTO execution_calls(exec_id, identity) VALUES (?, ?)",
            [(exec_id, identity) for identity in totals.calls],
        )
        conn.execute(
            "UPDATE executions SET calls = ?, tokens = ?, cost = ? WHERE exec_id = ?",
            (len(totals.calls), totals.tokens, totals.cost, exec_id),
        )
    # Created after the sums above, which set ``calls`` themselves.
    db.execute(
        "CREATE TRIGGER execution_calls_count AFTER INSERT ON execution_calls BEGIN "
        "UPDATE executions SET calls = calls + 1 WHERE exec_id = NEW.exec_id; END"
    )


def _v8_call_index(db: Any) -> None:
    """The call index: where each call's events lie in the journal, and when it ended.

    ``execution_calls`` gains, per call, its position, the seq of its first start, the
    seq of its latest event and its end, kept by the append that writes the events. A
    view of one page of a 10,000-call execution then reads the events of that page's
    calls instead of folding the whole journal. Journals written before are indexed
    here, once.
    """
    for statement in (
        "ALTER TABLE execution_calls ADD COLUMN position INTEGER",
        "ALTER TABLE execution_calls ADD COLUMN first_seq INTEGER",
        "ALTER TABLE execution_calls ADD COLUMN last_seq INTEGER",
        "ALTER TABLE execution_calls ADD COLUMN ended_at REAL",
        "CREATE INDEX execution_calls_position ON execution_calls(exec_id, position)",
    ):
        db.execute(statement)
    conn = db.conn
    exec_ids = [row[0] for row in conn.execute("SELECT exec_id FROM executions")]
    for exec_id in exec_ids:
        rows = conn.execute(
            "SELECT seq, at, type, body FROM events WHERE exec_id = ? ORDER BY seq", (exec_id,)
        )
        spans = index_calls(decodable_stored(rows))
        # The rows are there already (schema 7 noted every started call): updating them
        # leaves the call counts alone.
        conn.executemany(
            "UPDATE execution_calls SET position = ?, first_seq = ?, last_seq = ?, "
            "ended_at = ? WHERE exec_id = ? AND identity = ?",
            [
                (span.position, span.first_seq, span.last_seq, span.ended_at, exec_id, identity)
                for identity, span in spans.items()
            ],
        )


MIGRATIONS: Final[dict[int, Callable[[Any], None]]] = {
    1: _v1,
    2: _v2,
    3: _v3,
    4: _v4,
    5: _v5,
    6: _v6,
    7: _v7,
    8: _v8_call_index,
}


def _read_versions(conn: sqlite3.Connection) -> tuple[int, int]:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return int(app_id), int(version)


def _check(app_id: int, version: int, conn: sqlite3.Connection) -> None:
    if app_id not in (0, APPLICATION_ID):
        raise SchemaError("it is an SQLite database of another application")
    if app_id == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise SchemaError("it is an SQLite database that kitaru did not create")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"it was written by a newer kitaru (journal schema {version}; this version "
            f"reads up to {SCHEMA_VERSION}); upgrade kitaru to use it"
        )


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode, waiting for another process that holds a lock.

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once,
    without its busy handler, while another process holds one: typically one that is
    creating the same new journal right now. Wait for it as long as any other write
    would (the connection's busy timeout).
    """
    timeout_ms = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_lock_conflict(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _is_lock_conflict(exc: sqlite3.Error) -> bool:
    """Whether another connection's lock refused the statement (by SQLite's result code,
    ``SQLITE_BUSY`` or ``SQLITE_LOCKED`` and their extended codes, not its wording)."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database behind ``conn`` to ``SCHEMA_VERSION``, creating it if empty.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    app_id, version = _read_versions(conn)
    if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
        return
    _check(app_id, version, conn)
    # WAL can only be switched on outside a transaction; it persists in the file.
    _switch_to_wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id, version = _read_versions(conn)  # another process may have migrated meanwhile
        _check(app_id, version, conn)
        if version < SCHEMA_VERSION:
            import sqlite_utils

            db = sqlite_utils.Database(conn)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](db)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise

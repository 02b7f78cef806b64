"""The SQLite journal store: the only module that speaks SQL.

Durability: WAL, ``synchronous=FULL`` for appends that must survive power loss,
``NORMAL`` (survives a process crash, flushed by the next FULL commit) for
``sync=False``. Writes run in ``BEGIN IMMEDIATE`` transactions so a writer waits for
the lock up front instead of failing half-way; a busy timeout bounds that wait.
Each thread gets its own connections.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import Collection, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from zlib import crc32

from kitaru._config import SQLITE_URL_PREFIX
from kitaru.errors import (
    BackendFailure,
    JournalConflictError,
    KitaruBackendError,
    WaitAlreadyAnsweredError,
)
from kitaru.journal.events import (
    CallCompleted,
    CallStartedAndCompleted,
    Event,
    ExecutionStarted,
    UnknownEventError,
    decode_event,
    event_tag,
)
from kitaru.journal.events import encode_event as _encode
from kitaru.journal.locks import ExecutionLocks, HeldLock, kernel_id
from kitaru.journal.migrations import SchemaError, migrate
from kitaru.journal.read_model import (
    CallWrite,
    TotalsChange,
    call_writes,
    status_change,
    totals_change,
)
from kitaru.journal.rows import (
    cached_completion,
    decode_event_row,
    decode_event_rows,
    decode_sound_batch,
    decode_sound_rows,
    memory_row,
)
from kitaru.journal.store import (
    CallIndexRow,
    CallPage,
    ExecutionRow,
    Lease,
    MemoryRow,
    MemoryWrite,
    StorageReport,
    StoredEvent,
    lease_lost,
)
from kitaru.journal.wal import read_wal

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SqliteStore"]

DEFAULT_BUSY_TIMEOUT = 30.0
_SMALLEST_DATABASE = 512
_MAIL_LOOK_SECONDS = 0.02
"""How often ``wait_for_mail`` looks whether another connection has committed."""

_INSERT_EVENT = "INSERT INTO events(exec_id, seq, type, at, body, crc) VALUES (?, ?, ?, ?, ?, ?)"
_READ_EVENTS = (
    "SELECT seq, at, type, body, crc FROM events WHERE exec_id = ? AND seq > ? ORDER BY seq"
)
_READ_EVENT_BODIES = (
    "SELECT at, body, crc FROM events WHERE exec_id = ? AND seq > ? AND seq <= ? ORDER BY seq"
)
_STREAM_BATCH = 256
"""Events ``stream_events`` decodes at a time: small enough that a batch's rows, bodies
and events reuse the memory the last one freed (on these machines a page of fresh
memory costs as much as decoding an event), large enough to decode in one call."""
_COUNT_EVENTS = "SELECT count(*), max(seq) FROM events WHERE exec_id = ? AND seq > ?"
"""How many events follow a seq, and the last one: read from the index alone."""
_READ_SOME_EVENTS = (
    "SELECT seq, at, type, body, crc FROM events WHERE exec_id = ?1 AND seq > ?2 "
    "AND (type IN ({marks}) OR seq = (SELECT max(seq) FROM events WHERE exec_id = ?1)) "
    "ORDER BY seq"
)
"""The events of some types, and the last one (the scalar subquery runs once)."""
_INSERT_PAYLOAD = "INSERT OR IGNORE INTO payloads(hash, bytes) VALUES (?, ?)"
_INSERT_EXECUTION = (
    "INSERT INTO executions(exec_id, flow_name, status, started_at, original_exec_id) "
    "VALUES (?, ?, 'running', ?, ?)"
)
_INDEX_CACHE = "INSERT OR REPLACE INTO call_cache(key, exec_id, seq) VALUES (?, ?, ?)"
_UPDATE_STATUS = "UPDATE executions SET status = ?, ended_at = ?, failure = ? WHERE exec_id = ?"
_EXECUTION_COLUMNS = (
    "exec_id, flow_name, status, started_at, ended_at, original_exec_id, failure, calls, "
    "tokens, cost"
)
_INDEX_CALL = (
    "INSERT INTO execution_calls(exec_id, identity, position, first_seq, last_seq, ended_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(exec_id, identity) DO UPDATE SET "
    "last_seq = excluded.last_seq, ended_at = excluded.ended_at"
)
"""A call started in an append: an identity not seen before is inserted, which adds one
to ``executions.calls`` (a trigger of schema 7; the update of a known one does not)."""
_MOVE_CALL = "UPDATE execution_calls SET last_seq = ? WHERE exec_id = ? AND identity = ?"
_END_CALL = (
    "UPDATE execution_calls SET last_seq = ?, ended_at = ? WHERE exec_id = ? AND identity = ?"
)
_CALL_ROW_COLUMNS = "identity, position, first_seq, last_seq, ended_at"
_ADD_USAGE = {
    (True, False): "UPDATE executions SET tokens = coalesce(tokens, 0) + ? WHERE exec_id = ?",
    (False, True): "UPDATE executions SET cost = coalesce(cost, 0.0) + ? WHERE exec_id = ?",
    (True, True): "UPDATE executions SET tokens = coalesce(tokens, 0) + ?, "
    "cost = coalesce(cost, 0.0) + ? WHERE exec_id = ?",
}
"""By (tokens known, cost known): one request's usage, added in journal order."""
_LEASE_COLUMNS = "exec_id, owner, host, pid, pid_started, expires_at"
_LEASE_OWNER = "SELECT owner FROM leases WHERE exec_id = ?"
_MEMORY_COLUMNS = (
    "id, scope_type, scope, key, version, deleted, value, value_type, created_at, exec_id, "
    "flow_name, call_key"
)
_MEMORY_NEWEST = (
    f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE scope_type = ? AND scope = ? AND key = ? "
    "ORDER BY version DESC LIMIT 1"
)

_REASONS = {
    "SQLITE_READONLY": BackendFailure.READ_ONLY,
    "SQLITE_PERM": BackendFailure.READ_ONLY,
    "SQLITE_CANTOPEN": BackendFailure.CANNOT_OPEN,
    "SQLITE_NOTADB": BackendFailure.NOT_A_JOURNAL,
    "SQLITE_CORRUPT": BackendFailure.DAMAGED,
    "SQLITE_BUSY": BackendFailure.BUSY,
    "SQLITE_LOCKED": BackendFailure.BUSY,
    "SQLITE_FULL": BackendFailure.DISK_FULL,
}


def _primary_code(exc: sqlite3.Error) -> str:
    """``SQLITE_READONLY_DBMOVED`` -> ``SQLITE_READONLY``; "" when SQLite gave no code."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    for primary in _REASONS:
        if name == primary or name.startswith(primary + "_"):
            return primary
    return name


_stores: weakref.WeakSet[SqliteStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # SQLite connections must not cross a fork: the child opens its own. The parent's
    # are left alone (closing them here could disturb the parent's locks and WAL).
    for store in list(_stores):
        store._local = threading.local()
        store._holds = {}


os.register_at_fork(after_in_child=_after_fork_in_child)


class SqliteStore:
    """A journal in one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
        self.path = Path(path)
        self.location = str(self.path)
        self.url = SQLITE_URL_PREFIX + str(self.path.absolute())
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self._locks = ExecutionLocks(self.path.with_name(self.path.name + "-leases"))
        self._holds: dict[tuple[str, str], HeldLock] = {}
        """Kernel locks this process holds, by execution and lease owner token."""
        _stores.add(self)

    # -- connections -------------------------------------------------------------------

    def _open(self, synchronous: str) -> sqlite3.Connection:
        if self.path.is_dir():
            raise KitaruBackendError(
                f"The journal path {self.path} is a directory. Point KITARU_STORE at a "
                f"file inside it, e.g. {self.path / 'kitaru.db'}.",
                failure=BackendFailure.CANNOT_OPEN,
            )
        with contextlib.suppress(OSError):
            info = self.path.stat()
            # SQLite finds a database's -wal and -shm files by the name it was opened
            # under: two processes reaching one file through two hard links each keep
            # their own WAL and lock table, and overwrite each other's pages. A
            # symlink is fine (SQLite resolves it to the file's own name).
            if info.st_nlink > 1:
                raise KitaruBackendError(
                    f"The journal {self.path} has {info.st_nlink} hard links; processes "
                    "using it under different names would corrupt it. Remove the other "
                    f"links (`find / -xdev -samefile {self.path}` lists them), or use a "
                    "symlink instead.",
                    failure=BackendFailure.CANNOT_OPEN,
                    detail=f"{info.st_nlink} hard links",
                )
            size = info.st_size
            # SQLite writes whole pages (512 bytes at least), yet opens a 1-byte file as
            # an empty database: kitaru would then create a fresh journal over the
            # remains of a truncated one, and report it sound.
            if 0 < size < _SMALLEST_DATABASE:
                raise KitaruBackendError(
                    f"{self.path} is a damaged journal, or not one: it is {size} bytes long, "
                    "too short for an SQLite database. If it was a journal, restore it from "
                    "a backup; otherwise point KITARU_STORE at another file.",
                    failure=BackendFailure.NOT_A_JOURNAL,
                )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KitaruBackendError(
                f"Cannot create the journal's folder {self.path.parent}: {exc.strerror}. "
                "Set KITARU_STORE to a file in a writable folder.",
                failure=BackendFailure.CANNOT_OPEN,
            ) from None
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA synchronous={synchronous}")
            if not self._migrated:
                with self._migrate_lock:
                    if not self._migrated:
                        migrate(conn)
                        self._migrated = True
        except SchemaError as exc:
            conn.close()
            raise KitaruBackendError(
                f"{self.path} cannot be used as a kitaru journal: {exc}. Point KITARU_STORE "
                "at another file, or move this one away.",
                failure=BackendFailure.NOT_A_JOURNAL,
            ) from None
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from None
        return conn

    def _conn(self, sync: bool = True) -> sqlite3.Connection:
        attr = "full" if sync else "normal"
        conn: sqlite3.Connection | None = getattr(self._local, attr, None)
        if conn is None:
            conn = self._open("FULL" if sync else "NORMAL")
            setattr(self._local, attr, conn)
        return conn

    def close(self) -> None:
        """Close this thread's connections (other threads close theirs when they end)."""
        for attr in ("full", "normal"):
            conn = getattr(self._local, attr, None)
            if conn is not None:
                conn.close()
                setattr(self._local, attr, None)

    def _error(self, exc: sqlite3.Error, doing: str) -> KitaruBackendError:
        """Map an sqlite3 error to one clear message: the one place that knows them.

        Keyed on SQLite's result code name (``SQLITE_BUSY_SNAPSHOT`` is a kind of
        ``SQLITE_BUSY``), never on the wording of its message.
        """
        text = str(exc)
        reason = _REASONS.get(_primary_code(exc), BackendFailure.OTHER)
        where = self.path
        advice = {
            BackendFailure.READ_ONLY: (
                f"The journal {where} is read-only. Make the file and its folder writable, "
                "or point KITARU_STORE at a writable location."
            ),
            BackendFailure.CANNOT_OPEN: (
                f"Cannot open the journal {where}. Check that its folder exists and is "
                "writable, or point KITARU_STORE at a writable location."
            ),
            BackendFailure.NOT_A_JOURNAL: (
                f"{where} is not a kitaru journal (not an SQLite database). Point "
                "KITARU_STORE at another file, or move this one away."
            ),
            BackendFailure.DAMAGED: (
                f"The journal {where} is damaged ({text}). Run `kitaru store check` to "
                "see what is affected; restore the file from a backup if you have one."
            ),
            BackendFailure.BUSY: (
                f"The journal {where} stayed locked by another process for more than "
                f"{self.busy_timeout:g} s. Try again once that process has finished."
            ),
            BackendFailure.DISK_FULL: (
                f"The disk holding the journal {where} is full. Nothing was recorded by the "
                "failed write; free some space and resume the execution."
            ),
        }.get(reason, f"The journal {where} failed to {doing}: {text}.")
        return KitaruBackendError(advice, failure=reason, detail=text)

    # -- events --------------------------------------------------------------------------

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
        conn = self._conn(sync)
        try:
            with self._transaction(conn, "append events", conflicts=True):
                # Fencing: the lease is checked under the write lock the events are
                # written under, so no append can slip in between a takeover and it.
                self._fence(conn, exec_id, owner)
                if payloads:
                    conn.executemany(_INSERT_PAYLOAD, payloads.items())
                rows, derived = _rows_of(exec_id, first_seq, events)
                conn.executemany(_INSERT_EVENT, rows)
                for statement, params in derived:
                    conn.execute(statement, params)
        except sqlite3.IntegrityError as exc:
            raise JournalConflictError(
                f"Another writer appended to execution {exec_id} first (seq {first_seq} is "
                "taken). Only one process may run an execution at a time.",
                exec_id=exec_id,
            ) from exc

    @contextlib.contextmanager
    def _transaction(
        self, conn: sqlite3.Connection, doing: str, *, conflicts: bool = False
    ) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` write: committed when the block ends (also by a
        ``return``), rolled back if it raises. sqlite3 errors become the one clear
        ``KitaruBackendError``; with ``conflicts``, an ``IntegrityError`` is left to the
        caller, which gives it its meaning."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(exc, "start a write") from None
        try:
            yield
            if conn.in_transaction:  # the block may have rolled back itself
                conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and not (
                conflicts and isinstance(exc, sqlite3.IntegrityError)
            ):
                raise self._error(exc, doing) from None
            raise

    def _fence(self, conn: sqlite3.Connection, exec_id: str, owner: str | None) -> None:
        """Refuse a write for ``exec_id`` unless ``owner`` holds its lease (inside the
        write transaction, so no takeover can slip in between check and write)."""
        holder = conn.execute(_LEASE_OWNER, (exec_id,)).fetchone()
        if holder is None or holder[0] != owner:
            conn.execute("ROLLBACK")
            raise lease_lost(exec_id, owner, released=holder is None)

    def read_events(
        self, exec_id: str, after_seq: int = 0, *, only: Collection[str] | None = None
    ) -> list[StoredEvent]:
        conn = self._conn()
        try:
            if only is None:
                # Without the seq and type columns first: seqs are unique, so they have
                # no gap exactly when the rows after ``after_seq`` are as many as the
                # last seq says; the bodies carry their own tags, and only a damaged or
                # too-new journal needs the columns, to say what. Events appended
                # between the two reads come after ``last`` and are left for the next.
                count, last = conn.execute(_COUNT_EVENTS, (exec_id, after_seq)).fetchone()
                if not count:
                    return []
                if last == after_seq + count:
                    rows = conn.execute(_READ_EVENT_BODIES, (exec_id, after_seq, last)).fetchall()
                    sound = decode_sound_rows(after_seq, rows) if len(rows) == count else None
                    if sound is not None:
                        return sound
                rows = conn.execute(_READ_EVENTS, (exec_id, after_seq)).fetchall()
            else:
                tags = sorted(only)
                marks = ", ".join("?" * len(tags))
                rows = conn.execute(
                    _READ_SOME_EVENTS.format(marks=marks), (exec_id, after_seq, *tags)
                ).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, "read events") from None
        if not rows:
            return []
        if only is not None:
            return self._decode_some(exec_id, rows)
        return decode_event_rows(self.location, exec_id, after_seq, rows)

    def stream_events(self, exec_id: str) -> Generator[tuple[int, float, Event], None, None]:
        conn = self._conn()
        try:
            count, last = conn.execute(_COUNT_EVENTS, (exec_id, 0)).fetchone()
            cursor = conn.execute(_READ_EVENT_BODIES, (exec_id, 0, last)) if count else None
        except sqlite3.Error as exc:
            raise self._error(exc, "read events") from None
        if cursor is None:
            return
        if last != count:
            # A gap in the seqs: the whole read says where.
            cursor.close()
            yield from self.read_events(exec_id)
            return
        after = 0
        try:
            while True:
                try:
                    rows = cursor.fetchmany(_STREAM_BATCH)
                except sqlite3.Error as exc:
                    raise self._error(exc, "read events") from None
                if not rows:
                    break
                batch = decode_sound_batch(after, rows)
                first, after = after + 1, after + len(rows)
                if batch is None:
                    # A damaged or too-new event in this batch: read it again with its
                    # seqs and types, to say which and how.
                    yield from self.read_event_ranges(exec_id, [(first, after)])
                else:
                    ats, events = batch
                    yield from zip(range(first, after + 1), ats, events, strict=True)
        finally:
            # Finalized late (a reader that neither finished nor closed it), the
            # connection may be closed already: the read ended with it.
            with contextlib.suppress(sqlite3.Error):
                cursor.close()
        if after != count:
            raise KitaruBackendError(
                f"The journal {self.location} is missing events of execution {exec_id} "
                f"(expected {count}, read {after}). Run `kitaru store check`.",
                failure=BackendFailure.DAMAGED,
            )

    def _decode_some(
        self, exec_id: str, rows: list[tuple[int, float, str, bytes, int]]
    ) -> list[StoredEvent]:
        """Decode a selection of events (seqs with gaps), checking each one's checksum."""
        out = []
        for row in rows:
            seq = row[0]
            out.append(StoredEvent(seq, row[1], self._decode_one(exec_id, seq - 1, 0, row)))
        return out

    def _decode_one(
        self, exec_id: str, after_seq: int, index: int, row: tuple[int, float, str, bytes, int]
    ) -> Event:
        return decode_event_row(self.location, exec_id, after_seq + 1 + index, row)

    def read_event_ranges(
        self, exec_id: str, ranges: Sequence[tuple[int, int]]
    ) -> list[StoredEvent]:
        if not ranges:
            return []
        where = " OR ".join("seq BETWEEN ? AND ?" for _ in ranges)
        params = [bound for pair in ranges for bound in pair]
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT seq, at, type, body, crc FROM events WHERE exec_id = ? "
                    f"AND ({where}) ORDER BY seq",
                    (exec_id, *params),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "read events") from None
        return self._decode_some(exec_id, rows)

    # -- call index ----------------------------------------------------------------------

    def call_page(self, exec_id: str, *, through_seq: int, offset: int, limit: int) -> CallPage:
        conn = self._conn()
        try:
            total, last_ended = conn.execute(
                "SELECT count(*), max(ended_at) FROM execution_calls "
                "WHERE exec_id = ? AND first_seq <= ?",
                (exec_id, through_seq),
            ).fetchone()
            rows = conn.execute(
                f"SELECT {_CALL_ROW_COLUMNS} FROM execution_calls WHERE exec_id = ? "
                "AND first_seq <= ? ORDER BY position LIMIT ? OFFSET ?",
                (exec_id, through_seq, limit, offset),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, "read the call index") from None
        return CallPage(total, last_ended, [CallIndexRow(*row) for row in rows])

    def call_rows(
        self, exec_id: str, identities: Collection[str] | None = None
    ) -> list[CallIndexRow]:
        sql = f"SELECT {_CALL_ROW_COLUMNS} FROM execution_calls WHERE exec_id = ?"
        params: list[object] = [exec_id]
        if identities is not None:
            wanted = sorted(identities)
            if not wanted:
                return []
            sql += f" AND identity IN ({', '.join('?' * len(wanted))})"
            params += wanted
        try:
            rows = self._conn().execute(sql + " ORDER BY position", params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, "read the call index") from None
        return [CallIndexRow(*row) for row in rows]

    def read_payload(self, digest: str) -> bytes:
        try:
            row = (
                self._conn()
                .execute("SELECT bytes FROM payloads WHERE hash = ?", (digest,))
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "read a payload") from None
        if row is None:
            raise KitaruBackendError(
                f"The journal {self.path} lacks payload {digest}. Run `kitaru store check`.",
                failure=BackendFailure.DAMAGED,
            )
        return bytes(row[0])

    # -- executions ----------------------------------------------------------------------

    def get_execution(self, exec_id: str) -> ExecutionRow | None:
        try:
            row = (
                self._conn()
                .execute(
                    f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE exec_id = ?", (exec_id,)
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "read executions") from None
        return None if row is None else ExecutionRow(*row)

    def find_executions(self, prefix: str, limit: int = 2) -> list[str]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT exec_id FROM executions WHERE exec_id LIKE ? ESCAPE '\\' LIMIT ?",
                    (pattern, limit),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "read executions") from None
        return [r[0] for r in rows]

    def list_executions(
        self, *, flow: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[ExecutionRow]:
        where: list[str] = []
        params: list[object] = []
        if flow is not None:
            where.append("flow_name = ?")
            params.append(flow)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = f"SELECT {_EXECUTION_COLUMNS} FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        try:
            rows = self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, "read executions") from None
        return [ExecutionRow(*r) for r in rows]

    def find_cached(self, key: str) -> tuple[str, CallCompleted] | None:
        """The latest completion recorded under a checkpoint cache key, with its execution."""
        try:
            row = (
                self._conn()
                .execute(
                    "SELECT e.exec_id, e.type, e.body FROM call_cache c "
                    "JOIN events e ON e.exec_id = c.exec_id AND e.seq = c.seq WHERE c.key = ?",
                    (key,),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "read the checkpoint cache") from None
        if row is None:
            return None
        try:
            event = decode_event(row[1], row[2])
        except UnknownEventError:
            return None
        return cached_completion(row[0], event)

    # -- memory --------------------------------------------------------------------------

    def write_memory(self, write: MemoryWrite, *, owner: str | None = None) -> MemoryRow | None:
        conn = self._conn()
        with self._transaction(conn, "write memory"):
            if write.exec_id is not None:
                self._fence(conn, write.exec_id, owner)
            if write.exec_id is not None and write.call_key is not None:
                # The same call of the same execution wrote this before (and its process
                # died before journaling the call's completion): that version is the
                # call's outcome, and no second one is written.
                row = conn.execute(
                    f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE exec_id = ? AND call_key = ?",
                    (write.exec_id, write.call_key),
                ).fetchone()
                if row is not None:
                    return memory_row(row)
            newest = conn.execute(
                _MEMORY_NEWEST, (write.scope_type, write.scope, write.key)
            ).fetchone()
            if write.deleted and (newest is None or newest[5]):
                return None if newest is None else memory_row(newest)
            version = 1 if newest is None else int(newest[4]) + 1
            cursor = conn.execute(
                "INSERT INTO memories(scope_type, scope, key, version, deleted, value, "
                "value_type, created_at, exec_id, flow_name, call_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    write.scope_type,
                    write.scope,
                    write.key,
                    version,
                    int(write.deleted),
                    None if write.deleted else write.value,
                    write.value_type,
                    time.time(),
                    write.exec_id,
                    write.flow_name,
                    write.call_key,
                ),
            )
            row = conn.execute(
                f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
            return memory_row(row)

    def _memory_rows(self, sql: str, params: Sequence[object]) -> list[MemoryRow]:
        try:
            rows = self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, "read memory") from None
        return [memory_row(row) for row in rows]

    def read_memory(
        self, scope_type: str, scope: str, key: str, version: int | None = None
    ) -> MemoryRow | None:
        if version is None:
            found = self._memory_rows(_MEMORY_NEWEST, (scope_type, scope, key))
        else:
            found = self._memory_rows(
                f"SELECT {_MEMORY_COLUMNS} FROM memories "
                "WHERE scope_type = ? AND scope = ? AND key = ? AND version = ?",
                (scope_type, scope, key, version),
            )
        return found[0] if found else None

    def memory_row(self, row_id: int) -> MemoryRow | None:
        found = self._memory_rows(f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE id = ?", (row_id,))
        return found[0] if found else None

    def memory_history(self, scope_type: str, scope: str, key: str) -> list[MemoryRow]:
        return self._memory_rows(
            f"SELECT {_MEMORY_COLUMNS} FROM memories "
            "WHERE scope_type = ? AND scope = ? AND key = ? ORDER BY version DESC",
            (scope_type, scope, key),
        )

    def memory_latest(
        self, scope_type: str | None = None, scope: str | None = None
    ) -> list[MemoryRow]:
        sql = (
            f"SELECT {_MEMORY_COLUMNS} FROM memories AS m WHERE m.version = ("
            "SELECT max(n.version) FROM memories AS n WHERE n.scope_type = m.scope_type "
            "AND n.scope = m.scope AND n.key = m.key)"
        )
        params: list[object] = []
        if scope_type is not None and scope is not None:
            sql += " AND m.scope_type = ? AND m.scope = ?"
            params = [scope_type, scope]
        return self._memory_rows(sql + " ORDER BY m.scope, m.scope_type, m.key", params)

    def purge_memory(self, rows: Sequence[int]) -> int:
        if not rows:
            return 0
        conn = self._conn()
        deleted = 0
        with self._transaction(conn, "purge memory"):
            for row_id in rows:
                deleted += conn.execute("DELETE FROM memories WHERE id = ?", (row_id,)).rowcount
        return deleted

    def restore_memory(self, row: MemoryRow, *, owner: str | None = None) -> bool:
        conn = self._conn()
        with self._transaction(conn, "copy memory"):
            if row.exec_id is not None:
                self._fence(conn, row.exec_id, owner)
            there = conn.execute(
                f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE scope_type = ? AND scope = ? "
                "AND key = ? AND version = ?",
                (row.scope_type, row.scope, row.key, row.version),
            ).fetchone()
            if there is not None:
                if memory_row(there).same_version(row):
                    return False
                raise _memory_taken(self.location, row)
            try:
                conn.execute(
                    "INSERT INTO memories(scope_type, scope, key, version, deleted, value, "
                    "value_type, created_at, exec_id, flow_name, call_key) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.scope_type,
                        row.scope,
                        row.key,
                        row.version,
                        int(row.deleted),
                        row.value,
                        row.value_type,
                        row.created_at,
                        row.exec_id,
                        row.flow_name,
                        row.call_key,
                    ),
                )
            except sqlite3.IntegrityError:
                raise _memory_taken(self.location, row) from None
        return True

    # -- mailboxes: requests from other processes ----------------------------------------

    def post_wait_input(
        self, exec_id: str, wait: str, value: bytes | None, *, aborted: bool
    ) -> None:
        try:
            # A plain INSERT: of two answers racing for one wait, the second is refused.
            self._conn().execute(
                "INSERT INTO wait_inputs(exec_id, wait, value, aborted, at) VALUES (?, ?, ?, ?, ?)",
                (exec_id, wait, value, int(aborted), time.time()),
            )
        except sqlite3.IntegrityError:
            raise WaitAlreadyAnsweredError(exec_id, wait) from None
        except sqlite3.Error as exc:
            raise self._error(exc, "record wait input") from None

    def wait_inputs(self, exec_id: str) -> dict[str, tuple[bytes | None, bool]]:
        """Input posted for the execution's waits: wait identity -> (value, aborted)."""
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT wait, value, aborted FROM wait_inputs WHERE exec_id = ?", (exec_id,)
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "read wait input") from None
        return {
            wait: (None if value is None else bytes(value), bool(aborted))
            for wait, value, aborted in rows
        }

    def clear_wait_input(self, exec_id: str, wait: str) -> None:
        try:
            self._conn().execute(
                "DELETE FROM wait_inputs WHERE exec_id = ? AND wait = ?", (exec_id, wait)
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "clear wait input") from None

    def request_cancel(self, exec_id: str, reason: str) -> None:
        try:
            self._conn().execute(
                "INSERT OR REPLACE INTO cancel_requests(exec_id, reason, at) VALUES (?, ?, ?)",
                (exec_id, reason, time.time()),
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "request a cancel") from None

    def cancel_requested(self, exec_id: str) -> str | None:
        """The reason given if someone asked to cancel the execution, else None."""
        try:
            row = (
                self._conn()
                .execute("SELECT reason FROM cancel_requests WHERE exec_id = ?", (exec_id,))
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "read cancel requests") from None
        return None if row is None else str(row[0] or "")

    def clear_cancel(self, exec_id: str) -> None:
        try:
            self._conn().execute("DELETE FROM cancel_requests WHERE exec_id = ?", (exec_id,))
        except sqlite3.Error as exc:
            raise self._error(exc, "clear a cancel request") from None

    def wait_for_mail(self, exec_id: str, timeout: float) -> None:
        """Sleep until another connection commits to the file, or ``timeout`` passes.

        SQLite cannot notify another process, but ``PRAGMA data_version`` changes when
        another connection commits: a posted input or cancel request (or any other
        write, hence the early returns the protocol allows) ends the wait within
        ``_MAIL_LOOK_SECONDS`` instead of the caller's whole poll interval.
        """
        del exec_id  # any commit may be the mail: the caller looks for its own
        deadline = time.monotonic() + timeout
        conn = self._conn()
        try:
            seen = conn.execute("PRAGMA data_version").fetchone()[0]
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, _MAIL_LOOK_SECONDS))
                if conn.execute("PRAGMA data_version").fetchone()[0] != seen:
                    return
        except sqlite3.Error as exc:
            raise self._error(exc, "wait for requests") from None

    # -- integrity (``kitaru store check``) ----------------------------------------------

    def check_storage(self) -> StorageReport:
        """Check the -wal file before the database is opened, and keep a damaged one.

        Opening the database makes SQLite recover the log, and a later write or the last
        close reuses or deletes it, destroying the evidence: so this reads the log first
        and copies a damaged one aside.
        """
        wal = read_wal(self.path.resolve())
        report = StorageReport(problems=wal.problems(), notes=wal.notes())
        wal_path = Path(wal.path)
        for earlier in sorted(wal_path.parent.glob(wal_path.name + ".damaged*")):
            report.notes.append(
                f"wal: {earlier} holds a damaged log that an earlier check saved; remove it "
                "once its frames are dealt with"
            )
        saved = None
        if wal.damaged:
            saved = _keep_copy(wal_path)
            report.notes.append(
                f"wal: the damaged log was copied to {saved} before the database was "
                "opened (opening it makes SQLite discard the frames it cannot use)"
            )
        if wal.exists:
            broken = wal.broken_at
            lost = [] if broken is None else [broken, *wal.dropped]
            report.log = {
                "path": wal.path,
                "frames": wal.frames,
                "kept": wal.kept,
                "header_damaged": wal.header_damaged,
                "broken_frame": None if broken is None else broken.index,
                "dropped_frames": [frame.index for frame in lost],
                "dropped_pages": sorted({frame.page for frame in lost}),
                "lost_commits": wal.lost_commits,
                "saved_copy": saved,
            }
        return report

    def structural_problems(self) -> list[str]:
        """SQLite's own structural check of the file: empty when it is sound."""
        try:
            rows = self._conn().execute("PRAGMA integrity_check").fetchall()
        except sqlite3.Error as exc:
            return [f"sqlite: {exc}"]
        messages = [str(row[0]) for row in rows]
        return [] if messages == ["ok"] else [f"sqlite: {message}" for message in messages]

    def all_exec_ids(self) -> list[str]:
        """Every execution id that has events or a read-model row."""
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT exec_id FROM events UNION SELECT exec_id FROM executions ORDER BY 1"
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "list executions") from None
        return [row[0] for row in rows]

    def all_payloads(self) -> list[tuple[str, bytes]]:
        """Every stored payload with its key."""
        try:
            rows = self._conn().execute("SELECT hash, bytes FROM payloads").fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, "read payloads") from None
        return [(digest, bytes(data)) for digest, data in rows]

    # -- leases --------------------------------------------------------------------------

    def get_lease(self, exec_id: str) -> Lease | None:
        try:
            row = (
                self._conn()
                .execute(f"SELECT {_LEASE_COLUMNS} FROM leases WHERE exec_id = ?", (exec_id,))
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "read leases") from None
        return None if row is None else Lease(*row)

    def claim(self, lease: Lease) -> Lease | None:
        """Take the lease unless a live holder has it; return that holder, or None.

        Liveness on this kernel is the holder's kernel lock; a lease written under
        another kernel (see ``locks.kernel_id``) is alive until it expires.
        """
        key = (lease.exec_id, lease.owner)
        try:
            held = self._holds.get(key) or self._locks.try_acquire(lease.exec_id)
        except OSError as exc:
            raise KitaruBackendError(
                f"Cannot lock execution {lease.exec_id} in {self._locks.folder}: "
                f"{exc.strerror}. Make the journal's folder writable, or point KITARU_STORE "
                "at a writable location.",
                failure=BackendFailure.READ_ONLY,
            ) from None
        if held is None:
            holder = self.get_lease(lease.exec_id)
            return holder if holder is not None else _claiming(lease.exec_id)
        conn = self._conn()
        try:
            with self._transaction(conn, "claim an execution"):
                row = conn.execute(
                    f"SELECT {_LEASE_COLUMNS} FROM leases WHERE exec_id = ?", (lease.exec_id,)
                ).fetchone()
                holder = None if row is None else Lease(*row)
                if holder is None or holder.owner == lease.owner or not _alive_elsewhere(holder):
                    conn.execute(
                        f"INSERT OR REPLACE INTO leases({_LEASE_COLUMNS}) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            lease.exec_id,
                            lease.owner,
                            lease.host,
                            lease.pid,
                            lease.pid_started,
                            lease.expires_at,
                        ),
                    )
                    holder = None
        except BaseException:
            self._holds.pop(key, None)
            held.release()
            raise
        if holder is not None:
            self._holds.pop(key, None)
            held.release()
            return holder
        self._holds[key] = held
        return None

    def live_lease(self, exec_id: str) -> Lease | None:
        """The lease of ``exec_id`` if its holder is alive, else None."""
        if self._locks.is_held(exec_id):
            return self.get_lease(exec_id) or _claiming(exec_id)
        lease = self.get_lease(exec_id)
        return lease if lease is not None and _alive_elsewhere(lease) else None

    def renew(self, exec_id: str, owner: str, expires_at: float) -> bool:
        try:
            cursor = self._conn().execute(
                "UPDATE leases SET expires_at = ? WHERE exec_id = ? AND owner = ?",
                (expires_at, exec_id, owner),
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "renew a lease") from None
        return cursor.rowcount == 1

    def release(self, exec_id: str, owner: str) -> None:
        try:
            self._conn().execute(
                "DELETE FROM leases WHERE exec_id = ? AND owner = ?", (exec_id, owner)
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "release a lease") from None
        finally:
            # The row goes first: between the two, the execution looks ours and idle.
            held = self._holds.pop((exec_id, owner), None)
            if held is not None:
                held.release()


def _keep_copy(wal: Path) -> str:
    """Copy ``wal`` to a name no other copy has; the copy keeps every frame."""
    number = 1
    while True:
        target = wal.with_name(f"{wal.name}.damaged{'' if number == 1 else f'-{number}'}")
        if not target.exists():
            shutil.copyfile(wal, target)
            return str(target)
        number += 1


def _rows_of(
    exec_id: str, first_seq: int, events: Sequence[tuple[Event, float]]
) -> tuple[list[tuple[object, ...]], list[tuple[str, tuple[object, ...]]]]:
    """The events' rows, and the read-model and cache-index writes they imply, in order."""
    rows: list[tuple[object, ...]] = []
    derived: list[tuple[str, tuple[object, ...]]] = []
    seq = first_seq
    for event, at in events:
        body = _encode(event)
        rows.append((exec_id, seq, event_tag(event), at, body, crc32(body)))
        if isinstance(event, CallCompleted | CallStartedAndCompleted):
            if event.cache_key is not None:
                derived.append((_INDEX_CACHE, (event.cache_key, exec_id, seq)))
        elif isinstance(event, ExecutionStarted):
            derived.append(
                (_INSERT_EXECUTION, (exec_id, event.flow_name, at, event.original_exec_id))
            )
        else:
            change = status_change(event)
            if change is not None:
                ended = at if change.finished else None
                derived.append((_UPDATE_STATUS, (change.status, ended, change.failure, exec_id)))
        added = totals_change(event)
        # Calls are counted by the call index writes below, which note each identity.
        if added is not None and added.call is None:
            derived.extend(_totals_writes(exec_id, added))
        seq += 1
    # After the events: the executions row the count goes to exists by then.
    derived.extend(_call_index_write(exec_id, w) for w in call_writes(first_seq, events))
    return rows, derived


def _call_index_write(exec_id: str, write: CallWrite) -> tuple[str, tuple[object, ...]]:
    """The write that brings one call's row of the call index up to this append."""
    if write.start is not None:
        start = write.start
        params = (exec_id, write.identity, start.position, start.first_seq, write.last_seq)
        return _INDEX_CALL, (*params, write.ended_at)
    if write.ends:
        return _END_CALL, (write.last_seq, write.ended_at, exec_id, write.identity)
    return _MOVE_CALL, (write.last_seq, exec_id, write.identity)


def _totals_writes(exec_id: str, added: TotalsChange) -> list[tuple[str, tuple[object, ...]]]:
    """The writes that add one model request's usage to the execution's totals."""
    known = [value for value in (added.tokens, added.cost) if value is not None]
    statement = _ADD_USAGE[added.tokens is not None, added.cost is not None]
    return [(statement, (*known, exec_id))]


def _memory_taken(location: str, row: MemoryRow) -> JournalConflictError:
    return JournalConflictError(
        f"{location} already holds version {row.version} of memory {row.scope_type} "
        f"'{row.scope}' key '{row.key}' with other content; nothing of it was overwritten. "
        "Copy into a store without that memory, or delete it there first.",
        exec_id=row.exec_id,
    )


def _alive_elsewhere(lease: Lease) -> bool:
    """A holder whose kernel lock this process cannot see: alive until its lease expires.

    On this kernel the lock decides, and it is free (the caller holds it or saw it free),
    so the holder is gone.
    """
    if lease.host.rpartition("#")[2] == kernel_id():
        return False
    return lease.expires_at >= time.time()


def _claiming(exec_id: str) -> Lease:
    """A live holder that has locked the execution but not yet written its lease."""
    return Lease(exec_id=exec_id, owner="", host="", pid=0, pid_started="", expires_at=0.0)

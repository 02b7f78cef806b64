"""The PostgreSQL journal store: the only module that speaks PostgreSQL's SQL.

Many processes on many machines share one journal. The guarantees are the SQLite
store's:

- **Appends** are one transaction each: the owner check (fencing), the payloads, the
  events and the read model commit together, with ``synchronous_commit`` on (off for
  ``sync=False``: the write survives a crash of the process, not of the server).
- **Liveness** of a lease holder is a session-level advisory lock that the holder
  takes under a key derived from its owner token. PostgreSQL drops it the moment the
  holder's connection ends, so a killed process is seen dead at once, from any host.
  A holder that stops renewing (paused, or cut off from the server) is dead once its
  lease expires. Expiry is measured on the database server's clock, so hosts whose
  clocks disagree still agree on when a lease ran out.
- **Takeovers** and appends serialise on the lease row: an append holds it shared while
  it writes, a claim holds it exclusively. No append can land between a takeover and
  the check that would refuse it.

Threads borrow connections from one bounded pool per process (``journal/pool.py``;
``?kitaru_pool_size=N`` in the URL, 10 by default) for one operation at a time. Two
sessions stay outside the pool because they must live on: the one holding the owner
locks, and the one listening for notices, which every waiting thread shares
(``journal/notices.py``). psycopg is imported when a store is opened.
"""

from __future__ import annotations

import hashlib
import math
import os
import select
import threading
import time
import weakref
from collections.abc import Collection, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit
from zlib import crc32

from kitaru.errors import (
    BackendFailure,
    JournalConflictError,
    KitaruBackendError,
    KitaruFeatureNotAvailableError,
    KitaruUsageError,
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
from kitaru.journal.hosts import process_started, this_host
from kitaru.journal.notices import NoticeBoard
from kitaru.journal.pool import ConnectionPool
from kitaru.journal.postgres_schema import SchemaVersionError, migrate
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
    WorkerRow,
    lease_lost,
)

__all__ = ["PostgresStore", "check_url", "redact_url"]

_CALL_ROW_COLUMNS = "identity, position, first_seq, last_seq, ended_at"

_EXECUTION_COLUMNS = (
    "exec_id, flow_name, status, started_at, ended_at, original_exec_id, failure, calls, "
    "tokens, cost"
)
_LEASE_COLUMNS = "exec_id, owner, host, pid, pid_started, expires_at"
_MEMORY_COLUMNS = (
    "id, scope_type, scope, key, version, deleted, value, value_type, created_at, exec_id, "
    "flow_name, call_key"
)
_NOW = "extract(epoch from clock_timestamp())"
_DEATH_NOTICE = 3.0
"""Seconds the server is given to notice that a holder which died on this host is gone."""
_MAIL_CHANNEL = "kitaru_mail"
"""NOTIFY channel on which a posted wait input or cancel request names its execution."""

# SQLSTATE classes and codes, the one place that knows them.
_REASONS = {
    "25006": BackendFailure.READ_ONLY,  # read_only_sql_transaction
    "42501": BackendFailure.READ_ONLY,  # insufficient_privilege
    "53100": BackendFailure.DISK_FULL,  # disk_full
    "55P03": BackendFailure.BUSY,  # lock_not_available
    "40P01": BackendFailure.BUSY,  # deadlock_detected
    "40001": BackendFailure.BUSY,  # serialization_failure
    "57014": BackendFailure.BUSY,  # query_canceled (statement or lock timeout)
    "57P01": BackendFailure.CANNOT_OPEN,  # admin_shutdown (the server restarts)
    "57P02": BackendFailure.CANNOT_OPEN,  # crash_shutdown
    "57P03": BackendFailure.CANNOT_OPEN,  # cannot_connect_now (the server is starting)
    "XX001": BackendFailure.DAMAGED,  # data_corrupted
    "XX002": BackendFailure.DAMAGED,  # index_corrupted
}
_UNIQUE_VIOLATION = "23505"

_stores: weakref.WeakSet[PostgresStore] = weakref.WeakSet()
_inherited: list[Any] = []
"""Connections a forked child inherited. Kept referenced and never used: closing one
would end the parent's session (libpq says goodbye on the shared socket)."""


def _after_fork_in_child() -> None:
    for store in list(_stores):
        _inherited.append(store._pool)
        _inherited.append(store._notices)
        _inherited.append(store._lock_conn)
        store._pool = store._new_pool()
        store._notices = store._new_notices()
        store._lock_conn = None
        store._lock_conn_guard = threading.Lock()
        store._owned = {}


os.register_at_fork(after_in_child=_after_fork_in_child)


def check_url(url: str) -> None:
    """Refuse, in one line, a URL that cannot even be split into its parts."""
    try:
        urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 host
        # The URL is not echoed: a password in it could not be masked.
        raise KitaruUsageError(
            f"The store URL is not a valid PostgreSQL URL ({exc}). Write it as "
            "postgresql://USER@HOST:PORT/DB or postgresql://USER@/DB?host=/socket/dir "
            "(KITARU_STORE or the stack's store)."
        ) from None


def redact_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


_EXECUTION_ROW: frozenset[tuple[str, str]] = frozenset({("executions", "")})

_PAYLOADS_INSERT = (
    "INSERT INTO {s}.payloads(hash, bytes) SELECT u.hash, u.bytes "
    "FROM unnest(%s::text[], %s::bytea[]) AS u(hash, bytes), {source} "
    "ON CONFLICT (hash) DO NOTHING"
)


@dataclass(frozen=True)
class _EventRows:
    """The columns of an append's events, one list per column."""

    seqs: list[int]
    kinds: list[str]
    ats: list[float]
    bodies: list[bytes]
    crcs: list[int]

    def insert(
        self, s: str, exec_id: str, *, join_ok: bool = False, where: str = ""
    ) -> tuple[str, list[object]]:
        """The ``INSERT`` of these events, fenced by joining ``ok`` or by ``where``."""
        sql = f"INSERT INTO {s}.events(exec_id, seq, type, at, body, crc) SELECT "
        sources = []
        params: list[object]
        if len(self.seqs) == 1:
            # A checkpoint's usual append: plain values adapt several times faster
            # than one-element arrays.
            sql += "%s, %s, %s, %s, %s, %s"
            params = [exec_id, self.seqs[0], self.kinds[0], self.ats[0], self.bodies[0]]
            params.append(self.crcs[0])
        else:
            sql += "%s, u.seq, u.type, u.at, u.body, u.crc"
            sources.append(
                "unnest(%s::integer[], %s::text[], %s::float8[], %s::bytea[], "
                "%s::bigint[]) AS u(seq, type, at, body, crc)"
            )
            params = [exec_id, self.seqs, self.kinds, self.ats, self.bodies, self.crcs]
        if join_ok:
            sources.append("ok")
        if sources:
            sql += " FROM " + ", ".join(sources)
        if where:
            sql += " WHERE " + where
        return sql, params


@dataclass(frozen=True)
class _Write:
    """One read-model write of an append, as parts of a ``WITH``.

    Each part is a template: ``{s}`` stands for the schema, ``{0}``, ``{1}`` ... for
    the names of the write's earlier parts. Every part acts only if the CTE ``ok`` has
    a row, which it has when the appending owner holds the lease.
    """

    parts: tuple[str, ...]
    params: tuple[object, ...]
    rows: frozenset[tuple[str, str]]
    """The rows it may change: a statement may change a row only once, so writes
    that share one cannot share a statement."""

    def named(self, s: str, prefix: str) -> list[str]:
        names = [f"{prefix}_{n}" for n in range(len(self.parts))]
        return [
            f"{name} AS ({part.format(*names, s=s)})"
            for name, part in zip(names, self.parts, strict=True)
        ]


def _apart(writes: Sequence[_Write]) -> bool:
    """Whether no two of ``writes`` may change the same row."""
    seen: set[tuple[str, str]] = set()
    for write in writes:
        if not seen.isdisjoint(write.rows):
            return False
        seen |= write.rows
    return True


def _call_index_write(exec_id: str, write: CallWrite) -> _Write:
    """The write that brings one call's row of the call index up to this append."""
    row = frozenset({("execution_calls", write.identity)})
    if write.start is not None:
        # A call not indexed yet is inserted and counted once; one indexed already
        # (started again) keeps its first seq and position. The update cannot see the
        # row the insert adds (one snapshot), so only one of them acts.
        start = write.start
        return _Write(
            (
                "INSERT INTO {s}.execution_calls(exec_id, identity, position, first_seq, "
                "last_seq, ended_at) SELECT %s, %s, %s, %s, %s, %s FROM ok "
                "ON CONFLICT DO NOTHING RETURNING 1",
                "UPDATE {s}.execution_calls SET last_seq = %s, ended_at = %s "
                "WHERE exec_id = %s AND identity = %s AND EXISTS (SELECT 1 FROM ok)",
                "UPDATE {s}.executions SET calls = calls + 1 "
                "WHERE exec_id = %s AND EXISTS (SELECT 1 FROM {0})",
            ),
            (
                exec_id,
                write.identity,
                start.position,
                start.first_seq,
                write.last_seq,
                write.ended_at,
                write.last_seq,
                write.ended_at,
                exec_id,
                write.identity,
                exec_id,
            ),
            row | _EXECUTION_ROW,
        )
    if write.ends:
        return _Write(
            (
                "UPDATE {s}.execution_calls SET last_seq = %s, ended_at = %s "
                "WHERE exec_id = %s AND identity = %s AND EXISTS (SELECT 1 FROM ok)",
            ),
            (write.last_seq, write.ended_at, exec_id, write.identity),
            row,
        )
    return _Write(
        (
            "UPDATE {s}.execution_calls SET last_seq = %s "
            "WHERE exec_id = %s AND identity = %s AND EXISTS (SELECT 1 FROM ok)",
        ),
        (write.last_seq, exec_id, write.identity),
        row,
    )


def _totals_write(exec_id: str, added: TotalsChange) -> _Write:
    """The write that adds one model request's usage to the execution's totals."""
    sets = []
    params: list[object] = []
    if added.tokens is not None:
        sets.append("tokens = coalesce(tokens, 0) + %s")
        params.append(added.tokens)
    if added.cost is not None:
        sets.append("cost = coalesce(cost, 0.0) + %s")
        params.append(added.cost)
    return _Write(
        (
            "UPDATE {s}.executions SET "
            + ", ".join(sets)
            + " WHERE exec_id = %s AND EXISTS (SELECT 1 FROM ok)",
        ),
        (*params, exec_id),
        _EXECUTION_ROW,
    )


def _died_here(holder: Lease) -> bool:
    """Whether ``holder`` ran on this host and its process has ended (or its pid now
    names another process)."""
    if holder.host != this_host() or not holder.pid_started:
        return False
    now = process_started(holder.pid)
    return now is None or now not in ("", holder.pid_started)


def _owner_key(exec_id: str, owner: str) -> int:
    """The advisory-lock key (a signed 64-bit number) of one owner's lease of one execution."""
    digest = hashlib.blake2b(f"{exec_id}\0{owner}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _claim_key(exec_id: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(exec_id.encode(), digest_size=4).digest(), "big", signed=True
    )


_CLAIM_CLASS = 0x4B697462
"""First half of the two-part advisory-lock key that serialises claims of one execution."""


def _require_psycopg() -> None:
    """Refuse at once, in one line, when the extra is missing: every method imports
    psycopg (for its error types) before it connects."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise KitaruFeatureNotAvailableError(
            "The PostgreSQL journal store needs psycopg: pip install 'kitaru[postgres]'."
        ) from None


class PostgresStore:
    """A journal in a PostgreSQL database; safe to share between threads, processes, hosts."""

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: float = 10.0):
        _require_psycopg()
        check_url(url)
        query = parse_qs(urlsplit(url).query)
        self.url = url
        self.location = redact_url(url)
        self.schema = schema or query.get("kitaru_schema", ["kitaru"])[0]
        self._dsn = _without_kitaru_options(url)
        self._s = '"' + self.schema.replace('"', '""') + '"'
        self._channel = f"{_MAIL_CHANNEL}_{self.schema}"[:63]
        self.connect_timeout = connect_timeout
        self.pool_size = _option(query, "kitaru_pool_size", int, 10, minimum=1)
        self.pool_timeout = _option(query, "kitaru_pool_timeout", float, 30.0, minimum=0.0)
        self._application = None if "application_name" in query else "kitaru"
        self._pool = self._new_pool()
        self._notices = self._new_notices()
        self._migrated = False
        self.created_journal = False
        """Whether this store created the journal's tables (on its first connection)."""
        self._migrate_lock = threading.Lock()
        self._lock_conn: Any = None
        self._lock_conn_guard = threading.Lock()
        self._owned: dict[tuple[str, str], int] = {}
        """Owner locks this process holds, by execution and owner token."""
        _stores.add(self)

    # -- connections -------------------------------------------------------------------

    def _new_pool(self) -> ConnectionPool[Any]:
        return ConnectionPool(
            self._connect,
            size=self.pool_size,
            timeout=self.pool_timeout,
            alive=_idle_session_alive,
            reusable=_reusable,
            close=_close_quietly,
            exhausted=self._pool_exhausted,
        )

    def _pool_exhausted(self, size: int, waited: float) -> KitaruBackendError:
        return KitaruBackendError(
            f"All {size} connections this process may open to the PostgreSQL journal "
            f"{self.location} stayed busy for {waited:g} s. Allow more with "
            "?kitaru_pool_size=N in the store URL, or run fewer executions at once.",
            failure=BackendFailure.BUSY,
        )

    def _connect(self) -> Any:
        import psycopg

        extra: dict[str, Any] = {}
        if self._application is not None:
            extra["application_name"] = self._application
        try:
            conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=max(1, int(self.connect_timeout)),
                **extra,
            )
        except psycopg.Error as exc:
            raise KitaruBackendError(
                f"Cannot reach the PostgreSQL journal at {self.location}: "
                f"{_first_line(exc)}. Check that the server runs and the URL is right "
                "(KITARU_STORE or the stack's store).",
                failure=BackendFailure.CANNOT_OPEN,
                detail=str(exc),
            ) from None
        if not self._migrated:
            with self._migrate_lock:
                if not self._migrated:
                    try:
                        self.created_journal = migrate(conn, self.schema) == 0
                    except SchemaVersionError as exc:
                        conn.close()
                        raise KitaruBackendError(
                            f"{self.location} cannot be used as a kitaru journal: {exc}. "
                            "Point KITARU_STORE at another database or schema "
                            "(?kitaru_schema=NAME).",
                            failure=BackendFailure.NOT_A_JOURNAL,
                        ) from None
                    except psycopg.Error as exc:
                        conn.close()
                        raise self._error(exc, "create the journal's tables") from None
                    self._migrated = True
        return conn

    def _locker(self) -> Any:
        """The process's connection that holds owner locks (its session is the liveness).

        Called with ``_lock_conn_guard`` held. A lost session (the server restarted) is
        replaced and the locks of the leases still held here are taken again; a rival
        that claimed one meanwhile has fenced this process out of it.
        """
        if self._lock_conn is None or not _idle_session_alive(self._lock_conn):
            if self._lock_conn is not None:
                _close_quietly(self._lock_conn)
            self._lock_conn = self._connect()
            for lock in set(self._owned.values()):
                self._lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (lock,))
        return self._lock_conn

    def close(self) -> None:
        """Close the idle pooled connections and the listening session (the lock
        connection stays while leases are held). The store stays usable."""
        self._pool.close()
        self._notices.close()
        with self._lock_conn_guard:
            if not self._owned and self._lock_conn is not None:
                self._lock_conn.close()
                self._lock_conn = None

    def _error(self, exc: Exception, doing: str) -> KitaruBackendError:
        """Map a psycopg error to one clear message, keyed on its SQLSTATE."""
        code = getattr(exc, "sqlstate", None) or ""
        text = _first_line(exc)
        reason = _REASONS.get(code)
        if reason is None and code.startswith("08"):
            reason = BackendFailure.CANNOT_OPEN
        reason = reason or BackendFailure.OTHER
        where = self.location
        advice = {
            BackendFailure.READ_ONLY: (
                f"The PostgreSQL journal {where} refuses writes ({text}). Grant the user "
                "write access, or point KITARU_STORE at a writable database."
            ),
            BackendFailure.CANNOT_OPEN: (
                f"The connection to the PostgreSQL journal {where} failed while trying to "
                f"{doing} ({text}). Check that the server runs, then resume the execution."
            ),
            BackendFailure.BUSY: (
                f"The PostgreSQL journal {where} was too busy to {doing} ({text}). Try again."
            ),
            BackendFailure.DISK_FULL: (
                f"The PostgreSQL server of {where} is out of disk space; nothing of the "
                "failed write was recorded. Free some space and resume the execution."
            ),
            BackendFailure.DAMAGED: (
                f"The PostgreSQL journal {where} reports damaged data ({text}). Run "
                "`kitaru store check`; restore from a backup if you have one."
            ),
        }.get(reason, f"The PostgreSQL journal {where} failed to {doing}: {text}.")
        return KitaruBackendError(advice, failure=reason, detail=str(exc))

    @contextmanager
    def _reading(self, doing: str) -> Iterator[Any]:
        import psycopg

        with self._pool.connection() as conn:
            try:
                yield conn
            except psycopg.Error as exc:
                raise self._error(exc, doing) from None

    @contextmanager
    def _transaction(self, doing: str, *, sync: bool = True) -> Iterator[Any]:
        """One write transaction, committed when the block ends, rolled back if it raises.

        psycopg errors become the one clear ``KitaruBackendError``, except unique
        violations, which the caller gives their meaning.
        """
        import psycopg

        with self._pool.connection() as conn:
            try:
                with conn.transaction():
                    if not sync:
                        conn.execute("SET LOCAL synchronous_commit = off")
                    yield conn
            except (psycopg.errors.UniqueViolation, psycopg.errors.RestrictViolation):
                raise  # a taken seq, or an overwrite the triggers refused: the caller's to name
            except psycopg.Error as exc:
                raise self._error(exc, doing) from None

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
        """One transaction in one round trip; nothing is written unless ``owner`` holds
        the lease, checked inside the very statements that write.

        Usually the append is one statement: the fence, the events, the payloads and
        the read model as parts of one ``WITH``, which PostgreSQL runs atomically without
        ``BEGIN`` and ``COMMIT``. When two of its read-model writes would change the same
        row (a statement may change a row only once), or the commit need not wait for
        the disk (``sync=False``), the statements go out in pipeline mode instead,
        ``BEGIN`` to ``COMMIT`` before one sync, each carrying the same check.

        The check share-locks the lease row (see ``_fenced``), so a takeover waits for
        this append, and an append that waits for a takeover re-reads the row once it
        commits and writes nothing.
        """
        import psycopg

        fence = self._fenced(exec_id, owner)
        rows, writes = self._rows_of(exec_id, first_seq, events)
        try:
            with self._pool.connection() as conn:
                if sync and _apart(writes):
                    sql, params = self._one_statement(exec_id, rows, payloads, writes, fence)
                    written = self._append_statement(conn, sql, params)
                else:
                    written = self._pipelined(
                        conn,
                        exec_id,
                        rows=rows,
                        payloads=payloads,
                        writes=writes,
                        fence=fence,
                        sync=sync,
                    )
        except psycopg.errors.UniqueViolation as exc:
            raise JournalConflictError(
                f"Another writer appended to execution {exec_id} first (seq {first_seq} is "
                "taken). Only one process may run an execution at a time.",
                exec_id=exec_id,
            ) from exc
        except psycopg.errors.RestrictViolation as exc:
            raise JournalConflictError(
                f"The journal refused to overwrite what execution {exec_id} recorded "
                f"({_first_line(exc)}); nothing of this append was written.",
                exec_id=exec_id,
            ) from exc
        except psycopg.Error as exc:
            raise self._error(exc, "append events") from None
        if written != len(rows.seqs):
            # The fence held nothing back but the events: find out why, for the message.
            raise lease_lost(exec_id, owner, released=self.get_lease(exec_id) is None)

    def _one_statement(
        self,
        exec_id: str,
        rows: _EventRows,
        payloads: Mapping[str, bytes] | None,
        writes: Sequence[_Write],
        fence: tuple[str, tuple[str, str]],
    ) -> tuple[str, tuple[object, ...]]:
        """The whole append as one statement that returns how many events it wrote."""
        s = self._s
        parts = [f"ok AS (SELECT 1 WHERE {fence[0]})"]
        params: list[object] = [*fence[1]]
        events_sql, events_params = rows.insert(s, exec_id, join_ok=True)
        parts.append(f"written AS ({events_sql} RETURNING 1)")
        params += events_params
        if payloads:
            parts.append(f"kept AS ({_PAYLOADS_INSERT.format(s=s, source='ok')})")
            params += [list(payloads), list(payloads.values())]
        for n, write in enumerate(writes):
            parts += write.named(s, f"w{n}")
            params += write.params
        return "WITH " + ", ".join(parts) + " SELECT count(*) FROM written", tuple(params)

    def _append_statement(self, conn: Any, sql: str, params: tuple[object, ...]) -> int:
        """Run an append made one statement (it commits on its own); the events written."""
        row = conn.execute(sql, params).fetchone()
        return int(row[0])

    def _pipelined(
        self,
        conn: Any,
        exec_id: str,
        *,
        rows: _EventRows,
        payloads: Mapping[str, bytes] | None,
        writes: Sequence[_Write],
        fence: tuple[str, tuple[str, str]],
        sync: bool,
    ) -> int:
        """The append as a pipelined transaction, each statement fenced; the events written."""
        import psycopg

        s = self._s
        try:
            with conn.pipeline() as pipeline:
                conn.execute("BEGIN")
                if not sync:
                    conn.execute("SET LOCAL synchronous_commit = off")
                events_sql, events_params = rows.insert(s, exec_id, where=fence[0])
                written = conn.execute(events_sql, (*events_params, *fence[1]))
                if payloads:
                    conn.execute(
                        _PAYLOADS_INSERT.format(s=s, source=f"(SELECT 1 WHERE {fence[0]}) AS ok"),
                        (list(payloads), list(payloads.values()), *fence[1]),
                    )
                for write in writes:
                    conn.execute(
                        f"WITH ok AS (SELECT 1 WHERE {fence[0]}), "
                        + ", ".join(write.named(s, "w"))
                        + " SELECT 1",
                        (*fence[1], *write.params),
                    )
                self._commit_append(conn, pipeline)
        except psycopg.Error:
            self._roll_back(conn)
            raise
        return int(written.rowcount)

    def _commit_append(self, conn: Any, pipeline: Any) -> None:
        """Queue the ``COMMIT`` of an append's pipelined transaction: the step that makes
        it durable, which the pipeline's closing sync sends with every statement."""
        del pipeline  # the sync at the end of the pipeline block sends it
        conn.execute("COMMIT")

    def _fenced(self, exec_id: str, owner: str) -> tuple[str, tuple[str, str]]:
        """The condition (and its parameters) that ``owner`` holds ``exec_id``'s lease.

        ``FOR SHARE`` in the condition's own sub-select locks the lease row within the
        statement that writes. A takeover holds that row exclusively until it commits;
        a statement blocked on it re-checks the committed row (PostgreSQL re-evaluates
        the sub-select's condition on the newest version), so it either sees the
        current owner or finds none.
        """
        return (
            f"EXISTS (SELECT 1 FROM {self._s}.leases WHERE exec_id = %s AND owner = %s FOR SHARE)",
            (exec_id, owner),
        )

    def _roll_back(self, conn: Any) -> None:
        """End a pipelined transaction that an error left open, or drop a broken session."""
        import psycopg

        if conn.broken or conn.closed:
            return  # the pool closes it when it comes back
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                conn.close()

    def _fence(self, conn: Any, exec_id: str, owner: str | None) -> None:
        """Refuse a write for ``exec_id`` unless ``owner`` holds its lease.

        The lease row stays share-locked until the transaction ends, so a takeover
        (which updates that row) waits for this write, and this write cannot follow one.
        """
        row = conn.execute(
            f"SELECT {_LEASE_COLUMNS} FROM {self._s}.leases WHERE exec_id = %s FOR SHARE",
            (exec_id,),
        ).fetchone()
        if row is None or row[1] != owner:
            raise lease_lost(exec_id, owner, released=row is None)

    def _rows_of(
        self, exec_id: str, first_seq: int, events: Sequence[tuple[Event, float]]
    ) -> tuple[_EventRows, list[_Write]]:
        """The events' columns, and the read-model writes they imply (each acts only
        when the fence holds, so a refused append changes nothing)."""
        rows = _EventRows([], [], [], [], [])
        writes: list[_Write] = []
        seq = first_seq
        for event, at in events:
            body = _encode(event)
            rows.seqs.append(seq)
            rows.kinds.append(event_tag(event))
            rows.ats.append(at)
            rows.bodies.append(body)
            rows.crcs.append(crc32(body))
            if isinstance(event, CallCompleted | CallStartedAndCompleted):
                if event.cache_key is not None:
                    writes.append(
                        _Write(
                            (
                                "INSERT INTO {s}.call_cache(key, exec_id, seq) "
                                "SELECT %s, %s, %s FROM ok ON CONFLICT (key) DO UPDATE "
                                "SET exec_id = EXCLUDED.exec_id, seq = EXCLUDED.seq",
                            ),
                            (event.cache_key, exec_id, seq),
                            frozenset({("call_cache", event.cache_key)}),
                        )
                    )
            elif isinstance(event, ExecutionStarted):
                writes.append(
                    _Write(
                        (
                            "INSERT INTO {s}.executions(exec_id, flow_name, status, "
                            "started_at, original_exec_id) "
                            "SELECT %s, %s, 'running', %s, %s FROM ok",
                        ),
                        (exec_id, event.flow_name, at, event.original_exec_id),
                        _EXECUTION_ROW,
                    )
                )
            else:
                change = status_change(event)
                if change is not None:
                    ended = at if change.finished else None
                    writes.append(
                        _Write(
                            (
                                "UPDATE {s}.executions SET status = %s, ended_at = %s, "
                                "failure = %s WHERE exec_id = %s AND EXISTS (SELECT 1 FROM ok)",
                            ),
                            (change.status, ended, change.failure, exec_id),
                            _EXECUTION_ROW,
                        )
                    )
            added = totals_change(event)
            # Calls are counted by the call index writes below, which note each identity.
            if added is not None and added.call is None:
                writes.append(_totals_write(exec_id, added))
            seq += 1
        # After the events: the executions row the count goes to exists by then.
        writes.extend(_call_index_write(exec_id, w) for w in call_writes(first_seq, events))
        return rows, writes

    def read_events(
        self, exec_id: str, after_seq: int = 0, *, only: Collection[str] | None = None
    ) -> list[StoredEvent]:
        sql = (
            f"SELECT seq, at, type, body, crc FROM {self._s}.events WHERE exec_id = %s AND seq > %s"
        )
        params: list[object] = [exec_id, after_seq]
        if only is not None:
            # The events of some types, and the last one, whatever its type.
            sql += (
                f" AND (type = ANY(%s) OR seq = (SELECT max(seq) FROM {self._s}.events "
                "WHERE exec_id = %s))"
            )
            params += [sorted(only), exec_id]
        with self._reading("read events") as conn:
            rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
        if not rows:
            return []
        if only is None:
            return decode_event_rows(self.location, exec_id, after_seq, rows)
        # A selection has gaps between its seqs: each row is checked on its own.
        return [
            StoredEvent(row[0], row[1], decode_event_row(self.location, exec_id, None, row))
            for row in rows
        ]

    def stream_events(self, exec_id: str) -> Generator[tuple[int, float, Event], None, None]:
        # One read: a server-side cursor's round trip per batch costs more here than
        # the memory a batch at a time saves.
        yield from self.read_events(exec_id)

    def read_event_ranges(
        self, exec_id: str, ranges: Sequence[tuple[int, int]]
    ) -> list[StoredEvent]:
        if not ranges:
            return []
        where = " OR ".join("seq BETWEEN %s AND %s" for _ in ranges)
        params = [exec_id, *(bound for pair in ranges for bound in pair)]
        with self._reading("read events") as conn:
            rows = conn.execute(
                f"SELECT seq, at, type, body, crc FROM {self._s}.events WHERE exec_id = %s "
                f"AND ({where}) ORDER BY seq",
                params,
            ).fetchall()
        return [
            StoredEvent(row[0], row[1], decode_event_row(self.location, exec_id, None, row))
            for row in rows
        ]

    # -- call index ----------------------------------------------------------------------

    def call_page(self, exec_id: str, *, through_seq: int, offset: int, limit: int) -> CallPage:
        s = self._s
        with self._reading("read the call index") as conn:
            total, last_ended = conn.execute(
                f"SELECT count(*), max(ended_at) FROM {s}.execution_calls "
                "WHERE exec_id = %s AND first_seq <= %s",
                (exec_id, through_seq),
            ).fetchone()
            rows = conn.execute(
                f"SELECT {_CALL_ROW_COLUMNS} FROM {s}.execution_calls WHERE exec_id = %s "
                "AND first_seq <= %s ORDER BY position LIMIT %s OFFSET %s",
                (exec_id, through_seq, limit, offset),
            ).fetchall()
        return CallPage(total, last_ended, [CallIndexRow(*row) for row in rows])

    def call_rows(
        self, exec_id: str, identities: Collection[str] | None = None
    ) -> list[CallIndexRow]:
        sql = f"SELECT {_CALL_ROW_COLUMNS} FROM {self._s}.execution_calls WHERE exec_id = %s"
        params: list[object] = [exec_id]
        if identities is not None:
            sql += " AND identity = ANY(%s)"
            params.append(sorted(identities))
        with self._reading("read the call index") as conn:
            rows = conn.execute(sql + " ORDER BY position", params).fetchall()
        return [CallIndexRow(*row) for row in rows]

    def read_payload(self, digest: str) -> bytes:
        with self._reading("read a payload") as conn:
            row = conn.execute(
                f"SELECT bytes FROM {self._s}.payloads WHERE hash = %s", (digest,)
            ).fetchone()
        if row is None:
            raise KitaruBackendError(
                f"The journal {self.location} lacks payload {digest}. Run `kitaru store check`.",
                failure=BackendFailure.DAMAGED,
            )
        return bytes(row[0])

    # -- executions ----------------------------------------------------------------------

    def get_execution(self, exec_id: str) -> ExecutionRow | None:
        with self._reading("read executions") as conn:
            row = conn.execute(
                f"SELECT {_EXECUTION_COLUMNS} FROM {self._s}.executions WHERE exec_id = %s",
                (exec_id,),
            ).fetchone()
        return None if row is None else ExecutionRow(*row)

    def find_executions(self, prefix: str, limit: int = 2) -> list[str]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._reading("read executions") as conn:
            rows = conn.execute(
                f"SELECT exec_id FROM {self._s}.executions WHERE exec_id LIKE %s "
                "ORDER BY exec_id LIMIT %s",
                (pattern, limit),
            ).fetchall()
        return [r[0] for r in rows]

    def list_executions(
        self, *, flow: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[ExecutionRow]:
        where: list[str] = []
        params: list[object] = []
        if flow is not None:
            where.append("flow_name = %s")
            params.append(flow)
        if status is not None:
            where.append("status = %s")
            params.append(status)
        sql = f"SELECT {_EXECUTION_COLUMNS} FROM {self._s}.executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        with self._reading("read executions") as conn:
            rows = conn.execute(sql, params).fetchall()
        return [ExecutionRow(*r) for r in rows]

    def find_cached(self, key: str) -> tuple[str, CallCompleted] | None:
        with self._reading("read the checkpoint cache") as conn:
            row = conn.execute(
                f"SELECT e.exec_id, e.type, e.body FROM {self._s}.call_cache c JOIN "
                f"{self._s}.events e ON e.exec_id = c.exec_id AND e.seq = c.seq WHERE c.key = %s",
                (key,),
            ).fetchone()
        if row is None:
            return None
        try:
            event = decode_event(row[1], bytes(row[2]))
        except UnknownEventError:
            return None
        return cached_completion(row[0], event)

    # -- leases --------------------------------------------------------------------------

    def get_lease(self, exec_id: str) -> Lease | None:
        with self._reading("read leases") as conn:
            row = conn.execute(
                f"SELECT {_LEASE_COLUMNS} FROM {self._s}.leases WHERE exec_id = %s", (exec_id,)
            ).fetchone()
        return None if row is None else Lease(*row)

    def _holder_alive(self, conn: Any, holder: Lease) -> bool:
        """Whether the holder's session still holds its owner lock and its lease runs."""
        expired = conn.execute(f"SELECT %s < {_NOW}", (holder.expires_at,)).fetchone()[0]
        if expired:
            return False
        # Taking the holder's own lock succeeds only if its session is gone; a
        # transaction-level lock is let go of when this transaction (or statement) ends.
        key = _owner_key(holder.exec_id, holder.owner)
        free = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()[0]
        if free or not _died_here(holder):
            return not free
        # The holder ran on this host and its process is gone, but the server drops a
        # dead session's locks only once it notices the closed socket: give it a moment
        # rather than report a dead process as the holder. Waiting never takes over.
        deadline = time.monotonic() + _DEATH_NOTICE
        while time.monotonic() < deadline:
            time.sleep(0.01)
            if conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()[0]:
                return False
        return True

    def claim(self, lease: Lease) -> Lease | None:
        """Take the lease unless a live holder has it; return that holder, or None."""
        key = (lease.exec_id, lease.owner)
        ttl = lease.expires_at - time.time()
        lock = _owner_key(lease.exec_id, lease.owner)
        with self._lock_conn_guard:
            locker = self._locker()
            if key not in self._owned:
                got = locker.execute("SELECT pg_try_advisory_lock(%s)", (lock,)).fetchone()[0]
                if not got:
                    # Another session holds this very lease token: that process is alive.
                    return self.get_lease(lease.exec_id) or _claiming(lease.exec_id)
                self._owned[key] = lock
        try:
            with self._transaction("claim an execution") as conn:
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)",
                    (_CLAIM_CLASS, _claim_key(lease.exec_id)),
                )
                row = conn.execute(
                    f"SELECT {_LEASE_COLUMNS} FROM {self._s}.leases WHERE exec_id = %s FOR UPDATE",
                    (lease.exec_id,),
                ).fetchone()
                holder = None if row is None else Lease(*row)
                if (
                    holder is not None
                    and holder.owner != lease.owner
                    and self._holder_alive(conn, holder)
                ):
                    self._let_go(key)
                    return holder
                conn.execute(
                    f"INSERT INTO {self._s}.leases({_LEASE_COLUMNS}) "
                    f"VALUES (%s, %s, %s, %s, %s, {_NOW} + %s) ON CONFLICT (exec_id) DO UPDATE "
                    "SET owner = EXCLUDED.owner, host = EXCLUDED.host, pid = EXCLUDED.pid, "
                    "pid_started = EXCLUDED.pid_started, expires_at = EXCLUDED.expires_at",
                    (lease.exec_id, lease.owner, lease.host, lease.pid, lease.pid_started, ttl),
                )
        except BaseException:
            self._let_go(key)
            raise
        return None

    def _let_go(self, key: tuple[str, str]) -> None:
        with self._lock_conn_guard:
            lock = self._owned.pop(key, None)
            if lock is None or self._lock_conn is None or self._lock_conn.closed:
                return
            try:
                self._lock_conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))
            except Exception:  # a broken session has let go of its locks already
                self._lock_conn = None

    def live_lease(self, exec_id: str) -> Lease | None:
        with self._reading("read leases") as conn:
            row = conn.execute(
                f"SELECT {_LEASE_COLUMNS} FROM {self._s}.leases WHERE exec_id = %s", (exec_id,)
            ).fetchone()
            if row is None:
                return None
            lease = Lease(*row)
            return lease if self._holder_alive(conn, lease) else None

    def renew(self, exec_id: str, owner: str, expires_at: float) -> bool:
        ttl = expires_at - time.time()
        with self._lock_conn_guard:
            if (exec_id, owner) in self._owned:
                self._locker()  # a lost lock session is replaced before the lease runs on
        with self._reading("renew a lease") as conn:
            cursor = conn.execute(
                f"UPDATE {self._s}.leases SET expires_at = {_NOW} + %s "
                "WHERE exec_id = %s AND owner = %s",
                (ttl, exec_id, owner),
            )
        return bool(cursor.rowcount == 1)

    def release(self, exec_id: str, owner: str) -> None:
        try:
            with self._reading("release a lease") as conn:
                conn.execute(
                    f"DELETE FROM {self._s}.leases WHERE exec_id = %s AND owner = %s",
                    (exec_id, owner),
                )
        finally:
            self._let_go((exec_id, owner))

    # -- mailboxes -----------------------------------------------------------------------

    def post_wait_input(
        self, exec_id: str, wait: str, value: bytes | None, *, aborted: bool
    ) -> None:
        import psycopg

        try:
            with self._transaction("record wait input") as conn:
                self._lock_queue_entry(conn, exec_id)
                conn.execute(
                    f"INSERT INTO {self._s}.wait_inputs(exec_id, wait, value, aborted, at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (exec_id, wait, value, aborted, time.time()),
                )
                self._unpark(conn, exec_id)
                conn.execute("SELECT pg_notify(%s, %s)", (self._channel, exec_id))
        except psycopg.errors.UniqueViolation:
            raise WaitAlreadyAnsweredError(exec_id, wait) from None

    def wait_for_mail(self, exec_id: str, timeout: float) -> None:
        """Return once a request for ``exec_id`` is posted (LISTEN/NOTIFY), or after
        ``timeout`` seconds; a notice for another execution also wakes it early."""
        self._listen(timeout)

    def _listen(self, timeout: float) -> None:
        self._notices.wait(timeout)

    def _new_notices(self) -> NoticeBoard[Any]:
        return NoticeBoard(self._open_listener, _read_notice, _close_quietly)

    def _open_listener(self) -> Any:
        listener = self._connect()
        try:
            listener.execute(f'LISTEN "{self._channel}"')
        except Exception:
            _close_quietly(listener)
            raise
        return listener

    def wait_inputs(self, exec_id: str) -> dict[str, tuple[bytes | None, bool]]:
        with self._reading("read wait input") as conn:
            rows = conn.execute(
                f"SELECT wait, value, aborted FROM {self._s}.wait_inputs WHERE exec_id = %s",
                (exec_id,),
            ).fetchall()
        return {
            wait: (None if value is None else bytes(value), bool(aborted))
            for wait, value, aborted in rows
        }

    def clear_wait_input(self, exec_id: str, wait: str) -> None:
        with self._reading("clear wait input") as conn:
            conn.execute(
                f"DELETE FROM {self._s}.wait_inputs WHERE exec_id = %s AND wait = %s",
                (exec_id, wait),
            )

    def request_cancel(self, exec_id: str, reason: str) -> None:
        with self._transaction("request a cancel") as conn:
            self._lock_queue_entry(conn, exec_id)
            conn.execute("SELECT pg_notify(%s, %s)", (self._channel, exec_id))
            conn.execute(
                f"INSERT INTO {self._s}.cancel_requests(exec_id, reason, at) VALUES (%s, %s, %s) "
                "ON CONFLICT (exec_id) DO UPDATE SET reason = EXCLUDED.reason, at = EXCLUDED.at",
                (exec_id, reason, time.time()),
            )
            self._unpark(conn, exec_id)

    def cancel_requested(self, exec_id: str) -> str | None:
        with self._reading("read cancel requests") as conn:
            row = conn.execute(
                f"SELECT reason FROM {self._s}.cancel_requests WHERE exec_id = %s", (exec_id,)
            ).fetchone()
        return None if row is None else str(row[0] or "")

    def clear_cancel(self, exec_id: str) -> None:
        with self._reading("clear a cancel request") as conn:
            conn.execute(f"DELETE FROM {self._s}.cancel_requests WHERE exec_id = %s", (exec_id,))

    # -- the run queue (``kitaru worker``) ----------------------------------------------

    def _lock_queue_entry(self, conn: Any, exec_id: str) -> None:
        """Hold the execution's queue entry (if any) until the transaction ends.

        Posting mail and parking both take it first, so one of them always sees the
        other: mail posted while a worker parks is found by the park, or finds the
        entry parked and makes it runnable.
        """
        conn.execute(f"SELECT 1 FROM {self._s}.run_queue WHERE exec_id = %s FOR UPDATE", (exec_id,))

    def _unpark(self, conn: Any, exec_id: str) -> None:
        """Mail for a parked execution makes it runnable; the NOTIFY wakes the workers."""
        conn.execute(
            f"UPDATE {self._s}.run_queue SET state = 'queued', worker = NULL "
            "WHERE exec_id = %s AND state = 'parked'",
            (exec_id,),
        )

    def _notify(self, conn: Any, exec_id: str) -> None:
        conn.execute("SELECT pg_notify(%s, %s)", (self._channel, exec_id))

    def enqueue(self, exec_id: str, queue: str = "default", priority: int = 0) -> None:
        with self._transaction("enqueue an execution") as conn:
            conn.execute(
                f"INSERT INTO {self._s}.run_queue(exec_id, queue, priority, enqueued_at, state) "
                f"VALUES (%s, %s, %s, {_NOW}, 'queued') ON CONFLICT (exec_id) DO UPDATE "
                "SET state = 'queued', worker = NULL",
                (exec_id, queue, priority),
            )
            self._notify(conn, exec_id)

    def claim_queued(
        self,
        worker: str,
        queues: Sequence[str],
        concurrency: int,
        stale_after: float,
        *,
        skip: Sequence[str] = (),
    ) -> list[str]:
        s = self._s
        with self._transaction("claim queued executions") as conn:
            held = conn.execute(
                f"SELECT count(*) FROM {s}.run_queue WHERE worker = %s AND state = 'claimed'",
                (worker,),
            ).fetchone()[0]
            room = concurrency - int(held)
            if room <= 0:
                return []
            # A claimed entry is free again once its worker's session lock can be taken
            # (the session ended: the process died) or its heartbeats stopped (another
            # host that is paused or cut off). The lock try lasts this transaction only.
            rows = conn.execute(
                f"SELECT q.exec_id FROM {s}.run_queue AS q "
                f"LEFT JOIN {s}.workers AS w ON w.id = q.worker "
                "WHERE q.queue = ANY(%s) AND (q.state = 'queued' OR (q.state = 'claimed' "
                "AND q.worker <> %s AND (w.id IS NULL "
                f"OR w.heartbeat_at < {_NOW} - %s OR pg_try_advisory_xact_lock(w.lock_key)))) "
                "AND NOT q.exec_id = ANY(%s) "
                "ORDER BY q.priority DESC, q.enqueued_at, q.exec_id LIMIT %s "
                "FOR UPDATE OF q SKIP LOCKED",
                (list(queues), worker, stale_after, list(skip), room),
            ).fetchall()
            claimed = [row[0] for row in rows]
            if claimed:
                conn.execute(
                    f"UPDATE {s}.run_queue SET state = 'claimed', worker = %s, "
                    f"claimed_at = {_NOW} WHERE exec_id = ANY(%s)",
                    (worker, claimed),
                )
        return claimed

    def park(self, exec_id: str, worker: str) -> None:
        # Input (or a cancel) posted before this commits is seen here; one posted after
        # finds the entry parked and makes it runnable itself (``_unpark``). The row
        # lock comes first, so the check below is a statement that sees the other's
        # commit.
        with self._transaction("park an execution") as conn:
            self._lock_queue_entry(conn, exec_id)
            conn.execute(
                f"UPDATE {self._s}.run_queue SET worker = NULL, state = CASE WHEN EXISTS "
                f"(SELECT 1 FROM {self._s}.wait_inputs WHERE exec_id = %s) OR EXISTS "
                f"(SELECT 1 FROM {self._s}.cancel_requests WHERE exec_id = %s) "
                "THEN 'queued' ELSE 'parked' END WHERE exec_id = %s AND worker = %s",
                (exec_id, exec_id, exec_id, worker),
            )
            self._notify(conn, exec_id)

    def requeue(self, exec_id: str, worker: str) -> None:
        with self._transaction("hand an execution back to the queue") as conn:
            conn.execute(
                f"UPDATE {self._s}.run_queue SET state = 'queued', worker = NULL "
                "WHERE exec_id = %s AND worker = %s",
                (exec_id, worker),
            )
            self._notify(conn, exec_id)

    def will_run(self, exec_id: str) -> bool:
        with self._transaction("read a queue entry") as conn:
            row = conn.execute(
                f"SELECT state FROM {self._s}.run_queue WHERE exec_id = %s", (exec_id,)
            ).fetchone()
        return row is not None and row[0] in ("queued", "claimed")

    def dequeue(self, exec_id: str) -> None:
        with self._transaction("take an execution out of the queue") as conn:
            # No notice: nothing became runnable (the worker fills the freed slot itself).
            conn.execute(f"DELETE FROM {self._s}.run_queue WHERE exec_id = %s", (exec_id,))

    def register_worker(
        self, worker: str, host: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        key = ("\0worker", worker)
        lock = _owner_key(*key)
        with self._lock_conn_guard:
            # The worker's liveness, as for a lease: a session lock that dies with it.
            self._locker().execute("SELECT pg_advisory_lock(%s)", (lock,))
            self._owned[key] = lock
        with self._transaction("register a worker") as conn:
            conn.execute(
                f"INSERT INTO {self._s}.workers(id, host, pid, queues, concurrency, lock_key, "
                f"started_at, heartbeat_at) VALUES (%s, %s, %s, %s, %s, %s, {_NOW}, {_NOW})",
                (worker, host, pid, ",".join(queues), concurrency, lock),
            )

    def worker_heartbeat(self, worker: str, running: Sequence[str]) -> None:
        with self._lock_conn_guard:
            self._locker()  # a lost session is replaced and the worker's lock taken again
        with self._reading("record a worker heartbeat") as conn:
            conn.execute(
                f"UPDATE {self._s}.workers SET heartbeat_at = {_NOW}, running = %s WHERE id = %s",
                (",".join(running), worker),
            )

    def unregister_worker(self, worker: str) -> None:
        try:
            with self._reading("unregister a worker") as conn:
                conn.execute(f"DELETE FROM {self._s}.workers WHERE id = %s", (worker,))
        finally:
            self._let_go(("\0worker", worker))

    def list_workers(self, ttl: float) -> list[WorkerRow]:
        with self._reading("list workers") as conn, conn.transaction():
            rows = conn.execute(
                "SELECT id, host, pid, queues, concurrency, started_at, heartbeat_at, running, "
                f"heartbeat_at >= {_NOW} - %s AND NOT pg_try_advisory_xact_lock(lock_key) "
                f"FROM {self._s}.workers ORDER BY started_at",
                (ttl,),
            ).fetchall()
        return [
            WorkerRow(
                id=str(wid),
                host=str(host),
                pid=int(pid),
                queues=[q for q in str(queues).split(",") if q],
                concurrency=int(concurrency),
                started_at=float(started),
                heartbeat_at=float(beat),
                running=[r for r in str(running).split(",") if r],
                alive=bool(alive),
            )
            for wid, host, pid, queues, concurrency, started, beat, running, alive in rows
        ]

    def wait_for_work(self, timeout: float) -> None:
        """Return on any notice of this journal's channel (enqueue, input, cancel, a
        worker letting go of an execution), or after ``timeout`` seconds."""
        self._listen(timeout)

    # -- memory --------------------------------------------------------------------------

    def write_memory(self, write: MemoryWrite, *, owner: str | None = None) -> MemoryRow | None:
        s = self._s
        with self._transaction("write memory") as conn:
            if write.exec_id is not None:
                self._fence(conn, write.exec_id, owner)
            # Versions of one key are numbered in turn: writers of the same key queue here.
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s)",
                (_owner_key("memory", f"{write.scope_type}\0{write.scope}\0{write.key}"),),
            )
            if write.exec_id is not None and write.call_key is not None:
                row = conn.execute(
                    f"SELECT {_MEMORY_COLUMNS} FROM {s}.memories "
                    "WHERE exec_id = %s AND call_key = %s",
                    (write.exec_id, write.call_key),
                ).fetchone()
                if row is not None:
                    return memory_row(row)
            newest = conn.execute(
                f"SELECT {_MEMORY_COLUMNS} FROM {s}.memories WHERE scope_type = %s AND "
                "scope = %s AND key = %s ORDER BY version DESC LIMIT 1",
                (write.scope_type, write.scope, write.key),
            ).fetchone()
            if write.deleted and (newest is None or newest[5]):
                return None if newest is None else memory_row(newest)
            version = 1 if newest is None else int(newest[4]) + 1
            row = conn.execute(
                f"INSERT INTO {s}.memories(scope_type, scope, key, version, deleted, value, "
                "value_type, created_at, exec_id, flow_name, call_key) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_MEMORY_COLUMNS}",
                (
                    write.scope_type,
                    write.scope,
                    write.key,
                    version,
                    write.deleted,
                    None if write.deleted else write.value,
                    write.value_type,
                    time.time(),
                    write.exec_id,
                    write.flow_name,
                    write.call_key,
                ),
            ).fetchone()
            return memory_row(row)

    def _memory_rows(self, sql: str, params: Sequence[object]) -> list[MemoryRow]:
        with self._reading("read memory") as conn:
            rows = conn.execute(sql, params).fetchall()
        return [memory_row(row) for row in rows]

    def read_memory(
        self, scope_type: str, scope: str, key: str, version: int | None = None
    ) -> MemoryRow | None:
        sql = (
            f"SELECT {_MEMORY_COLUMNS} FROM {self._s}.memories "
            "WHERE scope_type = %s AND scope = %s AND key = %s"
        )
        if version is None:
            found = self._memory_rows(
                sql + " ORDER BY version DESC LIMIT 1", (scope_type, scope, key)
            )
        else:
            found = self._memory_rows(sql + " AND version = %s", (scope_type, scope, key, version))
        return found[0] if found else None

    def memory_row(self, row_id: int) -> MemoryRow | None:
        found = self._memory_rows(
            f"SELECT {_MEMORY_COLUMNS} FROM {self._s}.memories WHERE id = %s", (row_id,)
        )
        return found[0] if found else None

    def memory_history(self, scope_type: str, scope: str, key: str) -> list[MemoryRow]:
        return self._memory_rows(
            f"SELECT {_MEMORY_COLUMNS} FROM {self._s}.memories "
            "WHERE scope_type = %s AND scope = %s AND key = %s ORDER BY version DESC",
            (scope_type, scope, key),
        )

    def memory_latest(
        self, scope_type: str | None = None, scope: str | None = None
    ) -> list[MemoryRow]:
        sql = (
            f"SELECT {_MEMORY_COLUMNS} FROM {self._s}.memories AS m WHERE m.version = ("
            f"SELECT max(n.version) FROM {self._s}.memories AS n WHERE n.scope_type = "
            "m.scope_type AND n.scope = m.scope AND n.key = m.key)"
        )
        params: list[object] = []
        if scope_type is not None and scope is not None:
            sql += " AND m.scope_type = %s AND m.scope = %s"
            params = [scope_type, scope]
        return self._memory_rows(sql + " ORDER BY m.scope, m.scope_type, m.key", params)

    def purge_memory(self, rows: Sequence[int]) -> int:
        if not rows:
            return 0
        with self._transaction("purge memory") as conn:
            cursor = conn.execute(
                f"DELETE FROM {self._s}.memories WHERE id = ANY(%s)", (list(rows),)
            )
            return int(cursor.rowcount)

    def restore_memory(self, row: MemoryRow, *, owner: str | None = None) -> bool:
        import psycopg

        s = self._s
        try:
            with self._transaction("copy memory") as conn:
                if row.exec_id is not None:
                    self._fence(conn, row.exec_id, owner)
                there = conn.execute(
                    f"SELECT {_MEMORY_COLUMNS} FROM {s}.memories WHERE scope_type = %s AND "
                    "scope = %s AND key = %s AND version = %s",
                    (row.scope_type, row.scope, row.key, row.version),
                ).fetchone()
                if there is not None:
                    if memory_row(there).same_version(row):
                        return False
                    raise _memory_taken(self.location, row)
                conn.execute(
                    f"INSERT INTO {s}.memories(scope_type, scope, key, version, deleted, value, "
                    "value_type, created_at, exec_id, flow_name, call_key) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        row.scope_type,
                        row.scope,
                        row.key,
                        row.version,
                        row.deleted,
                        row.value,
                        row.value_type,
                        row.created_at,
                        row.exec_id,
                        row.flow_name,
                        row.call_key,
                    ),
                )
        except psycopg.errors.UniqueViolation:
            raise _memory_taken(self.location, row) from None
        return True

    # -- integrity (``kitaru store check``) ----------------------------------------------

    def check_storage(self) -> StorageReport:
        """PostgreSQL keeps its write-ahead log and pages to itself: name the server."""
        with self._reading("read the server version") as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return StorageReport(notes=[f"PostgreSQL {version}, schema {self.schema}"])

    def structural_problems(self) -> list[str]:
        """The server keeps its own structures sound; kitaru checks the rows themselves."""
        return []

    def all_exec_ids(self) -> list[str]:
        with self._reading("list executions") as conn:
            rows = conn.execute(
                f"SELECT exec_id FROM {self._s}.events UNION "
                f"SELECT exec_id FROM {self._s}.executions ORDER BY 1"
            ).fetchall()
        return [row[0] for row in rows]

    def all_payloads(self) -> list[tuple[str, bytes]]:
        with self._reading("read payloads") as conn:
            rows = conn.execute(f"SELECT hash, bytes FROM {self._s}.payloads").fetchall()
        return [(digest, bytes(data)) for digest, data in rows]


def _without_kitaru_options(url: str) -> str:
    """The URL libpq is given: kitaru's own query options (``kitaru_*``) removed, and
    SQLAlchemy's ``postgresql+psycopg://`` scheme (which libpq does not know) spelled as
    libpq's own."""
    if url.startswith("postgresql+psycopg://"):
        url = "postgresql://" + url.removeprefix("postgresql+psycopg://")
    # Cut at the text rather than rebuild with urlunsplit, which turns libpq's
    # ``postgresql:///DB?host=...`` (an empty host) into ``postgresql:/DB?...``.
    base, mark, query = url.partition("?")
    if not mark:
        return url
    kept = "&".join(
        pair for pair in query.split("&") if not pair.split("=", 1)[0].startswith("kitaru_")
    )
    return f"{base}?{kept}" if kept else base


_N = TypeVar("_N", int, float)


def _option(
    query: Mapping[str, list[str]], name: str, kind: type[_N], default: _N, *, minimum: _N
) -> _N:
    """A kitaru option of the store URL (``?NAME=VALUE``), checked."""
    if name not in query:
        return default
    text = query[name][-1]
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        raise KitaruUsageError(
            f"{name}={text!r} in the PostgreSQL store URL is not valid: give a "
            f"{'whole number' if kind is int else 'number of seconds'} >= {minimum}."
        )
    return value


def _idle_session_alive(conn: Any) -> bool:
    """Whether an idle pooled session can still be used, without a round trip.

    An idle session in autocommit with nothing pending receives nothing unless the
    server ends it (a restart sends a last error, then closes the socket) or, rarely,
    reports a changed setting. Only a socket with something to read is asked with a
    round trip which of the two it was.
    """
    import psycopg

    if conn.closed or conn.broken:
        return False
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if not poller.poll(0):
        return True
    try:
        conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _read_notice(listener: Any, timeout: float) -> bool | None:
    """Block on a listening session: True on a notice, False after ``timeout``, None if
    the session failed."""
    import psycopg

    try:
        for _ in listener.notifies(timeout=max(0.0, timeout), stop_after=1):
            return True  # whose mail it is, each waiter reads for itself
    except psycopg.Error:
        return None
    return False


def _reusable(conn: Any) -> bool:
    """Whether a session coming back to the pool is whole and outside any transaction."""
    import psycopg

    return bool(
        not conn.closed
        and not conn.broken
        and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )


def _close_quietly(conn: Any) -> None:
    with suppress(Exception):  # a session the server already ended has nothing to close
        conn.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _memory_taken(location: str, row: MemoryRow) -> JournalConflictError:
    return JournalConflictError(
        f"{location} already holds version {row.version} of memory {row.scope_type} "
        f"'{row.scope}' key '{row.key}' with other content; nothing of it was overwritten. "
        "Copy into a store without that memory, or delete it there first.",
        exec_id=row.exec_id,
    )


def _claiming(exec_id: str) -> Lease:
    """A live holder that holds the execution's lock but whose lease row is not there."""
    return Lease(exec_id=exec_id, owner="", host="", pid=0, pid_started="", expires_at=0.0)

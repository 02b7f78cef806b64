"""The PostgreSQL journal's schema, and the steps that bring an older one up to date.

Everything lives in its own PostgreSQL schema (``kitaru`` by default), so a database
that holds other applications' tables can hold a journal too. The ``meta`` table
carries the schema version. Append-only is the database's rule, not only the
store's: triggers refuse to update or delete events, payloads and memory versions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from kitaru.journal.read_model import (
    TOTALS_EVENTS,
    add_totals,
    decodable_events,
    decodable_stored,
    index_calls,
)

__all__ = ["SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION: Final = 4

_MIGRATION_LOCK: Final = (0x4B697461, 0)
"""Advisory-lock key that serialises migrations across processes."""

_V1 = """
CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE {s}.events (
    exec_id text NOT NULL,
    seq integer NOT NULL,
    type text NOT NULL,
    at double precision NOT NULL,
    body bytea NOT NULL,
    crc bigint,
    PRIMARY KEY (exec_id, seq)
);
CREATE TABLE {s}.payloads (hash text PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE {s}.executions (
    id bigserial UNIQUE,
    exec_id text PRIMARY KEY,
    flow_name text NOT NULL,
    status text NOT NULL,
    started_at double precision NOT NULL,
    ended_at double precision,
    original_exec_id text,
    failure text
);
CREATE INDEX executions_started ON {s}.executions (started_at DESC, id DESC);
CREATE INDEX executions_status ON {s}.executions (status);
CREATE TABLE {s}.leases (
    exec_id text PRIMARY KEY,
    owner text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    pid_started text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE TABLE {s}.wait_inputs (
    exec_id text NOT NULL,
    wait text NOT NULL,
    value bytea,
    aborted boolean NOT NULL,
    at double precision NOT NULL,
    PRIMARY KEY (exec_id, wait)
);
CREATE TABLE {s}.cancel_requests (
    exec_id text PRIMARY KEY,
    reason text,
    at double precision NOT NULL
);
CREATE TABLE {s}.call_cache (
    key text PRIMARY KEY,
    exec_id text NOT NULL,
    seq integer NOT NULL
);
CREATE TABLE {s}.memories (
    id bigserial PRIMARY KEY,
    scope_type text NOT NULL,
    scope text NOT NULL,
    key text NOT NULL,
    version integer NOT NULL,
    deleted boolean NOT NULL,
    value bytea,
    value_type text NOT NULL,
    created_at double precision NOT NULL,
    exec_id text,
    flow_name text,
    call_key text
);
CREATE UNIQUE INDEX memories_version ON {s}.memories (scope_type, scope, key, version);
CREATE UNIQUE INDEX memories_call ON {s}.memories (exec_id, call_key);

CREATE FUNCTION {s}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'kitaru % are append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE FUNCTION {s}.refuse_payload_overwrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {s}.payloads WHERE hash = NEW.hash AND bytes <> NEW.bytes) THEN
        RAISE EXCEPTION 'kitaru payloads are immutable: overwrite of % refused', NEW.hash
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER payloads_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.payloads
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER payloads_no_overwrite BEFORE INSERT ON {s}.payloads
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_payload_overwrite();
CREATE TRIGGER memories_append_only BEFORE UPDATE ON {s}.memories
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
"""

_V2 = """
CREATE TABLE {s}.run_queue (
    exec_id text PRIMARY KEY,
    queue text NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    enqueued_at double precision NOT NULL,
    state text NOT NULL CHECK (state IN ('queued', 'claimed', 'parked')),
    worker text,
    claimed_at double precision
);
CREATE INDEX run_queue_next ON {s}.run_queue (queue, state, priority DESC, enqueued_at);
CREATE TABLE {s}.workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    queues text NOT NULL,
    concurrency integer NOT NULL,
    lock_key bigint NOT NULL,
    started_at double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    running text NOT NULL DEFAULT ''
);
"""
"""Version 2: the run queue that ``kitaru worker`` processes claim from, and the
workers themselves with their heartbeats (both on the server's clock)."""

_V3 = """
ALTER TABLE {s}.executions ADD COLUMN calls integer NOT NULL DEFAULT 0;
ALTER TABLE {s}.executions ADD COLUMN tokens bigint;
ALTER TABLE {s}.executions ADD COLUMN cost double precision;
CREATE TABLE {s}.execution_calls (
    exec_id text NOT NULL,
    identity text NOT NULL,
    PRIMARY KEY (exec_id, identity)
);
"""
"""Version 3: per-execution totals (calls, tokens, estimated cost) kept by the append
that writes the events, so a listing reads no events; ``execution_calls`` holds the
call identities already counted. Journals written before are summed once, below."""

_V4_CALL_INDEX = """
ALTER TABLE {s}.execution_calls ADD COLUMN position integer;
ALTER TABLE {s}.execution_calls ADD COLUMN first_seq integer;
ALTER TABLE {s}.execution_calls ADD COLUMN last_seq integer;
ALTER TABLE {s}.execution_calls ADD COLUMN ended_at double precision;
CREATE INDEX execution_calls_position ON {s}.execution_calls (exec_id, position);
"""
"""Version 4, the call index: per call, its position, the seq of its first start, the
seq of its latest event and its end, kept by the append that writes the events, so a
view of one page of a 10,000-call execution reads the events of that page's calls
instead of folding the whole journal. Journals written before are indexed once, below."""

MIGRATIONS: Final[dict[int, str]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4_CALL_INDEX}


def _sum_totals(conn: Any, s: str) -> None:
    """Fill the totals of the executions recorded before version 3."""
    tags = sorted(TOTALS_EVENTS)
    exec_ids = [row[0] for row in conn.execute(f"SELECT exec_id FROM {s}.executions")]
    for exec_id in exec_ids:
        rows = conn.execute(
            f"SELECT type, body FROM {s}.events WHERE exec_id = %s AND type = ANY(%s) ORDER BY seq",
            (exec_id, tags),
        ).fetchall()
        totals = add_totals(decodable_events(rows))
        if totals.calls:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {s}.execution_calls(exec_id, identity) VALUES (%s, %s)",
                    [(exec_id, identity) for identity in totals.calls],
                )
        conn.execute(
            f"UPDATE {s}.executions SET calls = %s, tokens = %s, cost = %s WHERE exec_id = %s",
            (len(totals.calls), totals.tokens, totals.cost, exec_id),
        )


def _index_calls(conn: Any, s: str) -> None:
    """Fill the call index of the executions recorded before version 4 (their rows are
    there already, noted by version 3: updating them leaves the call counts alone)."""
    exec_ids = [row[0] for row in conn.execute(f"SELECT exec_id FROM {s}.executions")]
    for exec_id in exec_ids:
        rows = conn.execute(
            f"SELECT seq, at, type, body FROM {s}.events WHERE exec_id = %s ORDER BY seq",
            (exec_id,),
        ).fetchall()
        spans = index_calls(decodable_stored(rows))
        if not spans:
            continue
        with conn.cursor() as cur:
            cur.executemany(
                f"UPDATE {s}.execution_calls SET position = %s, first_seq = %s, "
                "last_seq = %s, ended_at = %s WHERE exec_id = %s AND identity = %s",
                [
                    (span.position, span.first_seq, span.last_seq, span.ended_at, exec_id, i)
                    for i, span in spans.items()
                ],
            )


_AFTER: Final[dict[int, Callable[[Any, str], None]]] = {3: _sum_totals, 4: _index_calls}
"""Steps that fill new columns from what the journal already holds."""


class SchemaVersionError(Exception):
    """The schema was written by a newer kitaru, or is not a kitaru journal."""


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def migrate(conn: Any, schema: str) -> int:
    """Create or upgrade the journal in ``schema`` on ``conn`` (an autocommit connection);
    return the schema version found (0: this call created the journal).

    Concurrent callers queue on an advisory lock; the first creates, the rest find it
    done. A schema newer than this kitaru raises ``SchemaVersionError``.
    """
    s = _quoted(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _MIGRATION_LOCK)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        has_meta = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{s}.meta",)).fetchone()[0]
        version = 0
        if has_meta:
            row = conn.execute(
                f"SELECT value FROM {s}.meta WHERE key = 'schema_version'"
            ).fetchone()
            version = int(row[0]) if row else 0
        else:
            others = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)
            ).fetchone()[0]
            if others:
                raise SchemaVersionError(
                    f"the PostgreSQL schema {schema!r} holds tables kitaru did not create"
                )
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"it was written by a newer kitaru (journal schema {version}; this version "
                f"reads up to {SCHEMA_VERSION}); upgrade kitaru to use it"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[step].format(s=s))
            if step in _AFTER and version > 0:
                _AFTER[step](conn, s)
        if version < SCHEMA_VERSION:
            conn.execute(
                f"INSERT INTO {s}.meta(key, value) VALUES ('application', 'kitaru'), "
                "('schema_version', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(SCHEMA_VERSION),),
            )
    return version

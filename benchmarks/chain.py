"""Target 1: overhead per checkpoint of a chain of trivial checkpoints.

kitaru's figure is the wall time from ``chain.run(n)`` to ``handle.wait()`` divided by
``n``. Its baseline is one bare durable SQLite commit with the same durability settings
(WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` + INSERT + ``COMMIT``) of a row as big
as the completion row kitaru writes per checkpoint, into a table with the events
table's own DDL (copied from kitaru's database), in a file next to kitaru's journal.

The two are measured alternately, repeat after repeat, so disk hiccups and cache
warm-up hit both alike. Each repeat of the baseline also makes ``n`` commits and is
divided by ``n``, exactly like kitaru's figure.

For the breakdown, a second baseline commits kitaru's actual transaction per
checkpoint (its deferred start row plus its completion row); kitaru's figure minus
that one is the cost of kitaru's Python code per checkpoint.
"""

from __future__ import annotations

import cProfile
import pathlib
import pstats
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field

from benchmarks.common import BenchmarkError, format_profile, median

TARGET_RATIO = 1.5
WARMUP_STEPS = 50


@dataclass(frozen=True)
class ChainResult:
    n: int
    kitaru: tuple[float, ...]
    """Seconds per checkpoint, one per repeat."""
    bare: tuple[float, ...]
    """Seconds per bare one-row commit, one per repeat."""
    bare_txn: tuple[float, ...]
    """Seconds per bare commit of the row kitaru writes per checkpoint, one per repeat."""
    row_bytes: int
    txn_bytes: int
    """Bytes of the row kitaru writes per checkpoint (its start and completion)."""
    settings: dict[str, str]
    profile: str | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def kitaru_s(self) -> float:
        return median(self.kitaru)

    @property
    def bare_s(self) -> float:
        return median(self.bare)

    @property
    def bare_txn_s(self) -> float:
        return median(self.bare_txn)

    @property
    def ratio(self) -> float:
        return self.kitaru_s / self.bare_s

    @property
    def paired_ratios(self) -> list[float]:
        """kitaru / baseline of each repeat: the two ran back to back, on the same disk state."""
        return sorted(k / b for k, b in zip(self.kitaru, self.bare, strict=True))

    @property
    def python_s(self) -> float:
        """kitaru's own code per checkpoint: the median excess over its bare transaction."""
        return median([k - t for k, t in zip(self.kitaru, self.bare_txn, strict=True)])


def _run_chain(n: int) -> float:
    """Seconds per checkpoint of one ``n``-step execution, end to end."""
    # Imported late, like kitaru itself: nothing of kitaru runs before the driver has
    # pointed KITARU_STORE and KITARU_CONFIG_PATH into the temporary directory.
    from benchmarks import workloads

    t0 = time.perf_counter()
    handle = workloads.chain.run(n)
    result = handle.wait()
    elapsed = time.perf_counter() - t0
    if result != n:
        raise BenchmarkError(f"kitaru chain of {n} returned {result!r}")
    return elapsed / n


def _kitaru_rows(db: pathlib.Path) -> tuple[bytes, bytes, list[str]]:
    """The body of a completion and the body of the one row kitaru wrote for a call
    (its start and completion together), and the events table's DDL."""
    from kitaru.journal.events import CallStartedAndCompleted, decode_event, encode_event

    with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
        # The newest call of the newest run: its identity is as long as they get.
        row = conn.execute(
            "SELECT type, body FROM events WHERE type = 'call_started_and_completed' "
            "ORDER BY position DESC LIMIT 1"
        ).fetchone()
        if row is None:
            raise BenchmarkError(f"kitaru's journal {db} has no call_started_and_completed event")
        ddl = [
            sql
            for (sql,) in conn.execute(
                # Table first; its indexes and append-only triggers after it.
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL "
                "ORDER BY type = 'table' DESC, name"
            )
        ]
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if journal_mode != "wal":
        raise BenchmarkError(f"kitaru's journal is in {journal_mode} mode, not WAL")
    call = decode_event(row[0], bytes(row[1]))
    assert isinstance(call, CallStartedAndCompleted)
    return encode_event(call.completed), bytes(row[1]), ddl


def _kitaru_settings() -> dict[str, str]:
    """The durability settings of the connection kitaru appends with, read back from it."""
    from kitaru._stores import open_store

    # A private method, but it is the code path appends go through; if it changes, the
    # benchmark smoke test fails rather than the check silently reading something else.
    conn = open_store()._conn(sync=True)
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return {"journal_mode": str(mode), "synchronous": str(sync)}


class _BareJournal:
    """A plain SQLite file with kitaru's events table, written the way kitaru writes."""

    def __init__(self, path: pathlib.Path, ddl: list[str]):
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        for statement in ddl:
            self.conn.execute(statement)
        self.settings = {
            "journal_mode": str(self.conn.execute("PRAGMA journal_mode").fetchone()[0]),
            "synchronous": str(self.conn.execute("PRAGMA synchronous").fetchone()[0]),
        }

    def commits(self, n: int, rows: tuple[tuple[str, bytes], ...]) -> float:
        """Seconds per transaction of ``n`` transactions, each inserting ``rows`` (type, body)."""
        conn = self.conn
        insert = "INSERT INTO events(exec_id, seq, type, at, body) VALUES (?, ?, ?, ?, ?)"
        exec_id = str(uuid.uuid4())  # same length as kitaru's execution ids
        seq = 0
        t0 = time.perf_counter()
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            for kind, body in rows:
                seq += 1
                conn.execute(insert, (exec_id, seq, kind, time.time(), body))
            conn.execute("COMMIT")
        return (time.perf_counter() - t0) / n

    def close(self) -> None:
        self.conn.close()


def measure(n: int, repeats: int, workdir: pathlib.Path, *, profile: bool = False) -> ChainResult:
    """Median kitaru per-checkpoint time and bare commit time, measured alternately.

    ``KITARU_STORE`` must already point into ``workdir``.
    """
    from kitaru._config import sqlite_file, store_url

    journal = sqlite_file(store_url())
    if journal is None:
        raise BenchmarkError(f"KITARU_STORE ({store_url()}) is not an SQLite journal")
    if workdir.resolve() not in journal.resolve().parents:
        raise BenchmarkError(f"KITARU_STORE ({journal}) is not inside {workdir}")
    # Unmeasured warm-up: creates the journal, opens connections, starts threads once.
    _run_chain(min(n, WARMUP_STEPS))
    _run_chain(n)
    completed, call, ddl = _kitaru_rows(journal)
    bare = _BareJournal(journal.parent / "bare-commit.db", ddl)
    try:
        one_row = (("call_completed", completed),)
        kitaru_txn = (("call_started_and_completed", call),)
        bare.commits(min(n, WARMUP_STEPS), one_row)
        kitaru_s, bare_s, txn_s = [], [], []
        for _ in range(repeats):
            kitaru_s.append(_run_chain(n))
            bare_s.append(bare.commits(n, one_row))
            txn_s.append(bare.commits(n, kitaru_txn))
        bare_settings = bare.settings
    finally:
        bare.close()
    kitaru_settings = _kitaru_settings()
    if kitaru_settings != bare_settings:
        raise BenchmarkError(
            f"durability settings differ: kitaru {kitaru_settings}, baseline {bare_settings}"
        )
    profile_text = _profile(n) if profile else None
    return ChainResult(
        n=n,
        kitaru=tuple(kitaru_s),
        bare=tuple(bare_s),
        bare_txn=tuple(txn_s),
        row_bytes=len(completed),
        txn_bytes=len(call),
        settings=kitaru_settings,
        profile=profile_text,
    )


def _profile(n: int) -> str:
    """Own time per checkpoint of the functions the flow body's thread spends it in."""
    from benchmarks import workloads

    profiler = cProfile.Profile()
    workloads.profiler = profiler
    try:
        _run_chain(n)
    finally:
        workloads.profiler = None
    return format_profile(pstats.Stats(profiler), per=n)

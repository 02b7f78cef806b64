"""The journal store: appends, reads, payloads and the read model on every backend;
SQLite's schema checks."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import OwnedStore
from store_backends import Owned, StoreBackend

from kitaru import KitaruBackendError
from kitaru._stores import new_store
from kitaru.errors import BackendFailure
from kitaru.journal import JournalConflictError
from kitaru.journal.events import (
    CallCompleted,
    CallStarted,
    ErrorInfo,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    FlowRef,
    ValueRef,
    decode_event,
    encode_event,
)
from kitaru.journal.migrations import SCHEMA_VERSION
from kitaru.journal.payloads import INLINE_LIMIT, content_hash, make_ref
from kitaru.journal.sqlite import SqliteStore
from kitaru.replay.state import JournalShapeError
from kitaru.runtime.loading import read_state


def started(flow: str = "f") -> ExecutionStarted:
    return ExecutionStarted(
        flow_name=flow,
        flow=FlowRef(module="m", qualname=flow),
        inputs=ValueRef(inline=b"\x90"),
        kitaru_version="test",
    )


def checkpoint_events(position: int, output: ValueRef) -> list[tuple[object, float]]:
    return [
        (
            CallStarted(
                position=position, identity=f"s{position}", kind="checkpoint", name="s", call_id="c"
            ),
            1.0,
        ),
        (
            CallCompleted(position=position, identity=f"s{position}", call_id="c", output=output),
            2.0,
        ),
    ]


@pytest.fixture
def store(tmp_path: Path, store_backend: StoreBackend) -> Iterator[Owned]:
    """A fresh store of each backend in turn, taking leases for its appends."""
    opened = new_store(store_backend.location(tmp_path))
    yield Owned(opened)
    opened.close()


class TestAppendAndRead:
    def test_round_trip(self, store: Owned) -> None:
        """Appended events read back in order with their sequence numbers and types."""
        store.append("e1", 1, [(started(), 1.0)])
        store.append("e1", 2, checkpoint_events(0, ValueRef(inline=b"\x07")))  # type: ignore[arg-type]
        events = store.read_events("e1")
        assert [e.seq for e in events] == [1, 2, 3]
        assert isinstance(events[2].event, CallCompleted)
        assert events[2].event.output.inline == b"\x07"
        assert store.read_events("e1", after_seq=2)[0].seq == 3

    def test_taken_sequence_number_is_a_conflict(self, store: Owned) -> None:
        """A second writer of the same (execution, seq) gets a conflict, not an overwrite."""
        store.append("e1", 1, [(started(), 1.0)])
        with pytest.raises(JournalConflictError):
            store.append("e1", 1, [(started(), 2.0)])
        assert len(store.read_events("e1")) == 1

    def test_batch_is_all_or_nothing(self, store: Owned) -> None:
        """A batch whose second event conflicts leaves none of its events behind."""
        store.append("e1", 1, [(started(), 1.0)])
        store.append("e1", 3, checkpoint_events(5, ValueRef(inline=b"\x01"))[:1])  # type: ignore[arg-type]
        with pytest.raises(JournalConflictError):
            store.append("e1", 2, checkpoint_events(0, ValueRef(inline=b"\x02")))  # type: ignore[arg-type]
        assert [e.seq for e in store.read_events("e1", after_seq=2)] == [3]
        with pytest.raises(KitaruBackendError, match="missing events"):
            store.read_events("e1")  # seq 2 was never written

    def test_concurrent_writers_from_threads(self, store: Owned) -> None:
        """Threads appending to their own executions all succeed, each in order."""

        def write(n: int) -> None:
            store.append(f"e{n}", 1, [(started(), 1.0)])
            for i in range(20):
                store.append(f"e{n}", 2 + 2 * i, checkpoint_events(i, ValueRef(inline=b"\x01")))  # type: ignore[arg-type]

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for n in range(4):
            assert len(store.read_events(f"e{n}")) == 41


def long_journal(store: Owned, exec_id: str, calls: int) -> None:
    """An execution with ``calls`` checkpoint calls: 1 + 2 * calls events."""
    store.append(exec_id, 1, [(started(), 1.0)])
    for i in range(calls):
        store.append(exec_id, 2 + 2 * i, checkpoint_events(i, ValueRef(inline=bytes([i % 100]))))  # type: ignore[arg-type]


class TestStreamedRead:
    """``stream_events``: what a resume folds, a batch at a time."""

    @pytest.mark.parametrize("calls", [0, 1, 127, 128, 300])
    def test_streams_what_a_whole_read_gives(self, store: Owned, calls: int) -> None:
        """Across batch boundaries (one batch is 256 events), the same events in order."""
        long_journal(store, "e1", calls)
        long_journal(store, "e2", 3)  # another execution in between changes nothing
        streamed = list(store.stream_events("e1"))
        assert streamed == [tuple(stored) for stored in store.read_events("e1")]
        assert [seq for seq, _, _ in streamed] == list(range(1, 2 + 2 * calls))

    def test_an_unknown_execution_streams_nothing(self, store: Owned) -> None:
        assert list(store.stream_events("nobody")) == []


class TestStreamedReadOfADamagedJournal:
    @pytest.fixture
    def store(self, tmp_path: Path) -> SqliteStore:
        return OwnedStore(tmp_path / "j.db")

    def _tamper(self, store: SqliteStore, sql: str) -> None:
        conn = sqlite3.connect(store.path)
        conn.execute("DROP TRIGGER events_refuse_update")
        conn.execute("DROP TRIGGER events_refuse_delete")
        conn.execute(sql)
        conn.commit()
        conn.close()

    def test_a_damaged_event_in_a_later_batch_is_named(self, store: SqliteStore) -> None:
        """Bytes flipped in event 400 raise when the reader reaches it, naming it."""
        long_journal(store, "e1", 300)  # type: ignore[arg-type]
        self._tamper(store, "UPDATE events SET body = x'81a474797065' WHERE seq = 400")
        events = store.stream_events("e1")
        assert [next(events)[0] for _ in range(256)] == list(range(1, 257))
        with pytest.raises(KitaruBackendError, match="Event 400 of execution e1") as raised:
            list(events)
        assert raised.value.failure is BackendFailure.DAMAGED

    def test_a_missing_event_is_a_gap_not_a_shorter_journal(self, store: SqliteStore) -> None:
        """An event deleted from the middle is reported, never streamed around."""
        long_journal(store, "e1", 300)  # type: ignore[arg-type]
        self._tamper(store, "DELETE FROM events WHERE seq = 300")
        with pytest.raises(KitaruBackendError, match="missing events") as raised:
            list(store.stream_events("e1"))
        assert raised.value.failure is BackendFailure.DAMAGED

    def test_a_reader_that_stops_early_lets_go_of_the_journal(self, store: SqliteStore) -> None:
        """Closing the stream ends its read: nothing pins the journal's old pages."""
        long_journal(store, "e1", 300)  # type: ignore[arg-type]
        other = sqlite3.connect(store.path)
        events = store.stream_events("e1")
        next(events)
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 1  # the open read holds its snapshot
        events.close()
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
        other.close()

    def test_a_fold_that_fails_lets_go_of_the_journal(self, store: SqliteStore) -> None:
        """A resume that meets a badly shaped journal ends its read as it raises."""
        long_journal(store, "e1", 300)  # type: ignore[arg-type]
        never_started = checkpoint_events(5000, ValueRef(inline=b"\x01"))[1:]
        store.append("e1", 602, never_started)  # type: ignore[arg-type]
        # More events after it, so the fold stops with the stream still open.
        store.append("e1", 603, checkpoint_events(300, ValueRef(inline=b"\x01")) * 200)  # type: ignore[arg-type]
        other = sqlite3.connect(store.path)
        with pytest.raises(JournalShapeError) as caught:
            read_state(store, "e1")
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, caught.value  # the traceback is alive; the read is not
        other.close()

    def test_events_appended_while_streaming_are_left_for_the_next_read(
        self, store: SqliteStore
    ) -> None:
        """The stream is one snapshot: it ends where the journal ended when it began."""
        long_journal(store, "e1", 300)  # type: ignore[arg-type]
        events = store.stream_events("e1")
        first = next(events)
        writer = OwnedStore(store.path)
        writer.append("e1", 602, checkpoint_events(300, ValueRef(inline=b"\x01")))  # type: ignore[arg-type]
        rest = list(events)
        assert [first[0], *(seq for seq, _, _ in rest)] == list(range(1, 602))
        assert len(store.read_events("e1")) == 603
        writer.close()


class TestPayloads:
    def test_large_values_are_stored_once(self, store: Owned) -> None:
        """The same large value appended twice is stored once, under its content hash."""
        data = b"x" * (INLINE_LIMIT + 1)
        payloads: dict[str, bytes] = {}
        ref = make_ref(data, payloads)
        assert ref.hash == content_hash(data)
        store.append("e1", 1, [(started(), 1.0)])
        store.append("e1", 2, checkpoint_events(0, ref), payloads)  # type: ignore[arg-type]
        store.append("e1", 4, checkpoint_events(1, ref), payloads)  # type: ignore[arg-type]
        assert store.read_payload(ref.hash or "") == data
        assert store.all_payloads() == [(ref.hash, data)]

    def test_small_values_stay_inline(self) -> None:
        """Values up to the inline limit live inside their event."""
        payloads: dict[str, bytes] = {}
        assert make_ref(b"abc", payloads) == ValueRef(inline=b"abc")
        assert payloads == {}

    def test_missing_payload_is_reported(self, store: Owned) -> None:
        """Asking for a payload the journal lacks is a clear backend error."""
        store.append("e1", 1, [(started(), 1.0)])
        with pytest.raises(KitaruBackendError, match="store check"):
            store.read_payload("0" * 32)


class TestReadModel:
    def test_status_follows_events(self, store: Owned) -> None:
        """The executions table tracks status, end time and failure from the events."""
        store.append("ok", 1, [(started("a"), 10.0), (ExecutionCompleted(result=ValueRef()), 11.0)])
        store.append("bad", 1, [(started("b"), 12.0)])
        store.append(
            "bad", 2, [(ExecutionFailed(error=ErrorInfo(type="ValueError", message="no")), 13.0)]
        )
        ok, bad = store.get_execution("ok"), store.get_execution("bad")
        assert ok is not None
        assert (ok.status, ok.ended_at) == ("completed", 11.0)
        assert bad is not None
        assert (bad.status, bad.failure) == ("failed", "ValueError: no")
        assert [r.exec_id for r in store.list_executions()] == ["bad", "ok"]
        assert [r.exec_id for r in store.list_executions(status="completed")] == ["ok"]
        assert [r.exec_id for r in store.list_executions(flow="b")] == ["bad"]
        assert [r.exec_id for r in store.list_executions(limit=1)] == ["bad"]

    def test_prefix_lookup_escapes_wildcards(self, store: Owned) -> None:
        """Id prefixes match literally; LIKE wildcards in them match nothing extra."""
        store.append("abc-1", 1, [(started(), 1.0)])
        store.append("abd-2", 1, [(started(), 1.0)])
        assert store.find_executions("ab") == ["abc-1", "abd-2"]
        assert store.find_executions("abc") == ["abc-1"]
        assert store.find_executions("a_c") == []
        assert store.find_executions("%") == []


class TestSchema:
    @pytest.fixture
    def store(self, tmp_path: Path) -> SqliteStore:
        """The SQLite store itself: these tests read its file with SQL."""
        return OwnedStore(tmp_path / "j.db")

    def test_append_only_is_enforced_by_the_database(self, store: SqliteStore) -> None:
        """UPDATE and DELETE on events and payloads are refused by triggers."""
        store.append("e1", 1, [(started(), 1.0)])
        payloads: dict[str, bytes] = {}
        store.append("e1", 2, checkpoint_events(0, make_ref(b"y" * 1000, payloads)), payloads)  # type: ignore[arg-type]
        conn = sqlite3.connect(store.path)
        for sql in (
            "UPDATE events SET body = x'00'",
            "DELETE FROM events",
            "UPDATE payloads SET bytes = x'00'",
            "DELETE FROM payloads",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="refused"):
                conn.execute(sql)
        assert len(store.read_events("e1")) == 3

    def test_wal_and_versions_are_set(self, store: SqliteStore) -> None:
        """A new journal is in WAL mode and carries kitaru's schema version."""
        store.append("e1", 1, [(started(), 1.0)])
        conn = sqlite3.connect(store.path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    def test_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A journal from a newer kitaru is refused with advice to upgrade."""
        OwnedStore(tmp_path / "j.db").append("e1", 1, [(started(), 1.0)])
        conn = sqlite3.connect(tmp_path / "j.db")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        conn.close()
        with pytest.raises(KitaruBackendError, match="newer kitaru"):
            SqliteStore(tmp_path / "j.db").read_events("e1")

    def test_foreign_sqlite_database_is_refused(self, tmp_path: Path) -> None:
        """An SQLite file kitaru did not create is not taken over."""
        conn = sqlite3.connect(tmp_path / "other.db")
        conn.execute("CREATE TABLE notes(x)")
        conn.commit()
        conn.close()
        with pytest.raises(KitaruBackendError, match="did not create"):
            SqliteStore(tmp_path / "other.db").list_executions()
        tables = (
            sqlite3.connect(tmp_path / "other.db")
            .execute("SELECT name FROM sqlite_master")
            .fetchall()
        )
        assert tables == [("notes",)]

    def test_unknown_event_type_is_reported(self, store: SqliteStore) -> None:
        """An event type this version does not know is reported, never mis-read."""
        store.append("e1", 1, [(started(), 1.0)])
        conn = sqlite3.connect(store.path)
        conn.execute(
            "INSERT INTO events(exec_id, seq, type, at, body) "
            "VALUES ('e1', 2, 'teleported', 2.0, x'80')"
        )
        conn.commit()
        with pytest.raises(KitaruBackendError, match="newer kitaru wrote it"):
            store.read_events("e1")


def test_event_encoding_round_trips() -> None:
    """Every event encodes and decodes to an equal value by its tag."""
    event = CallStarted(
        position=3,
        identity="x_2",
        kind="checkpoint",
        name="x",
        call_id="c",
        attempt=2,
        checkpoint_type="tool_call",
        inputs_from=("a", "b"),
    )
    assert decode_event("call_started", encode_event(event)) == event

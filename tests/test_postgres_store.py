"""The PostgreSQL journal store against a real PostgreSQL 15 server the tests start.

What the database itself must guarantee: appends fenced by the lease, a holder seen
dead the moment its process dies (from any host) or once its lease runs out when it
stops renewing, lease expiry on the server's clock, append-only tables, conflicts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from kitaru.errors import (
    JournalConflictError,
    KitaruLeaseLostError,
    WaitAlreadyAnsweredError,
)
from kitaru.journal.events import (
    CallStarted,
    ErrorInfo,
    ExecutionFailed,
    ExecutionStarted,
    FlowRef,
    ValueRef,
)
from kitaru.journal.postgres import PostgresStore, redact_url
from kitaru.journal.store import Lease
from tests.helpers import REPO, child_env


def _lease(exec_id: str, ttl: float = 30.0, owner: str | None = None) -> Lease:
    return Lease(
        exec_id=exec_id,
        owner=owner or uuid.uuid4().hex,
        host="test-host",
        pid=os.getpid(),
        pid_started="",
        expires_at=time.time() + ttl,
    )


def _failed(message: str) -> ExecutionFailed:
    return ExecutionFailed(error=ErrorInfo(type="ValueError", message=message, traceback=""))


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(pg_url)
    yield opened
    opened.close()


_HOLDER = textwrap.dedent(
    """
    import sys, time, uuid, os
    from kitaru.journal.postgres import PostgresStore
    from kitaru.journal.store import Lease
    store = PostgresStore(sys.argv[1])
    lease = Lease(exec_id=sys.argv[2], owner=sys.argv[3], host="other-host", pid=os.getpid(),
                  pid_started="", expires_at=time.time() + float(sys.argv[4]))
    assert store.claim(lease) is None
    print("claimed", flush=True)
    time.sleep(600)
    """
)


_LINGERING_HOLDER = textwrap.dedent(
    """
    import os, sys, threading, time
    from kitaru.journal.hosts import process_started, this_host
    from kitaru.journal.postgres import PostgresStore
    from kitaru.journal.store import Lease
    store = PostgresStore(sys.argv[1])
    lease = Lease(exec_id=sys.argv[2], owner=sys.argv[3], host=this_host(), pid=os.getpid(),
                  pid_started=process_started(os.getpid()) or "", expires_at=time.time() + 3600)
    assert store.claim(lease) is None
    locker = store._lock_conn
    # The server reads from a session only between statements: while this one runs, it
    # does not notice that the process died.
    threading.Thread(target=locker.execute, args=("SELECT pg_sleep(2)",), daemon=True).start()
    print("claimed", flush=True)
    time.sleep(600)
    """
)


def _start_holder(url: str, exec_id: str, owner: str, ttl: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, exec_id, owner, str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "claimed"
    return proc


class TestAppendAndRead:
    def test_events_round_trip_with_payloads_and_read_model(self, store: PostgresStore) -> None:
        """Appended events come back in order, and the failure reaches the executions row."""
        lease = _lease("e1")
        assert store.claim(lease) is None
        store.append("e1", 1, [(_failed("boom"), 1.0)], {"h1": b"payload"}, owner=lease.owner)
        events = store.read_events("e1")
        assert [(e.seq, type(e.event).__name__) for e in events] == [(1, "ExecutionFailed")]
        assert store.read_payload("h1") == b"payload"

    def test_a_taken_seq_is_a_conflict(self, store: PostgresStore) -> None:
        """Appending at a seq that is already written raises JournalConflictError."""
        lease = _lease("e2")
        store.claim(lease)
        store.append("e2", 1, [(_failed("a"), 1.0)], owner=lease.owner)
        with pytest.raises(JournalConflictError):
            store.append("e2", 1, [(_failed("b"), 2.0)], owner=lease.owner)
        assert len(store.read_events("e2")) == 1

    def test_events_are_append_only_in_the_database(
        self, store: PostgresStore, pg_url: str
    ) -> None:
        """UPDATE and DELETE of events are refused by the database's own triggers."""
        lease = _lease("e3")
        store.claim(lease)
        store.append("e3", 1, [(_failed("a"), 1.0)], {"h": b"x"}, owner=lease.owner)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for sql in (
                "UPDATE kitaru.events SET at = 0",
                "DELETE FROM kitaru.events",
                "DELETE FROM kitaru.payloads",
                "INSERT INTO kitaru.payloads(hash, bytes) VALUES ('h', 'y')",
            ):
                with pytest.raises(psycopg.Error, match=r"append-only|immutable"):
                    conn.execute(sql)
        assert len(store.read_events("e3")) == 1
        assert store.read_payload("h") == b"x"

    def test_a_second_answer_to_a_wait_is_refused(self, store: PostgresStore) -> None:
        """Two inputs for one wait: the second raises WaitAlreadyAnsweredError."""
        store.post_wait_input("e4", "gate", b"1", aborted=False)
        with pytest.raises(WaitAlreadyAnsweredError):
            store.post_wait_input("e4", "gate", b"2", aborted=False)
        assert store.wait_inputs("e4") == {"gate": (b"1", False)}


class TestFencing:
    def test_an_owner_whose_lease_was_taken_records_nothing(self, store: PostgresStore) -> None:
        """After an expired lease is taken over, its old owner's append is refused."""
        old = _lease("f1", ttl=0.2)
        assert store.claim(old) is None
        time.sleep(0.5)  # the lease runs out: nothing renewed it
        new = _lease("f1")
        assert store.claim(new) is None
        with pytest.raises(KitaruLeaseLostError):
            store.append("f1", 1, [(_failed("late"), 1.0)], owner=old.owner)
        assert store.read_events("f1") == []
        store.append("f1", 1, [(_failed("ok"), 1.0)], owner=new.owner)

    def test_a_live_unexpired_holder_keeps_its_lease(self, store: PostgresStore) -> None:
        """A claim against a live holder whose lease runs returns that holder."""
        first = _lease("f2")
        assert store.claim(first) is None
        rival = PostgresStore(store.url)
        try:
            holder = rival.claim(_lease("f2"))
            assert holder is not None
            assert holder.owner == first.owner
        finally:
            rival.close()


class TestAppendDuringTakeover:
    def test_an_append_waiting_on_a_takeover_records_nothing_once_it_commits(
        self, store: PostgresStore
    ) -> None:
        """An append that starts while a takeover holds the lease row is refused after it."""
        old = _lease("t1")
        assert store.claim(old) is None
        store.append("t1", 1, [(_failed("before"), 1.0)], owner=old.owner)
        outcome: list[BaseException | None] = []
        with psycopg.connect(store._dsn, autocommit=True) as rival:
            with rival.transaction():
                # What a takeover does: hold the lease row exclusively, then rewrite it.
                rival.execute(
                    "SELECT owner FROM kitaru.leases WHERE exec_id = 't1' FOR UPDATE"
                ).fetchone()

                def late_append() -> None:
                    try:
                        store.append("t1", 2, [(_failed("late"), 2.0)], owner=old.owner)
                    except BaseException as exc:  # handed to the test thread below
                        outcome.append(exc)
                    else:
                        outcome.append(None)

                writer = threading.Thread(target=late_append)
                writer.start()
                _wait_for_lock_wait(store._dsn)
                rival.execute("UPDATE kitaru.leases SET owner = 'rival' WHERE exec_id = 't1'")
            writer.join(30)
        assert not writer.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], KitaruLeaseLostError)
        assert [e.seq for e in store.read_events("t1")] == [1]

    def test_a_refused_append_adds_nothing_to_the_kept_totals(self, store: PostgresStore) -> None:
        """An owner fenced out by a takeover changes neither the events nor the totals."""
        old = _lease("t2")
        assert store.claim(old) is None
        started = ExecutionStarted(
            flow_name="f",
            flow=FlowRef(module="m", qualname="f"),
            inputs=ValueRef(inline=b"\x90"),
            kitaru_version="test",
        )
        store.append("t2", 1, [(started, 1.0)], owner=old.owner)
        with psycopg.connect(store._dsn, autocommit=True) as rival:
            rival.execute("UPDATE kitaru.leases SET owner = 'rival' WHERE exec_id = 't2'")
        call = CallStarted(
            position=0, identity="step", kind="checkpoint", name="step", call_id="c1"
        )
        with pytest.raises(KitaruLeaseLostError):
            store.append("t2", 2, [(call, 2.0)], owner=old.owner)
        row = store.get_execution("t2")
        assert row is not None
        assert row.calls == 0
        assert [e.seq for e in store.read_events("t2")] == [1]
        with psycopg.connect(store._dsn, autocommit=True) as reader:
            noted = reader.execute("SELECT count(*) FROM kitaru.execution_calls").fetchone()
        assert noted == (0,)


def _wait_for_lock_wait(dsn: str) -> None:
    """Return once a session of this database waits for a lock."""
    deadline = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting is not None and waiting[0] > 0:
                return
            time.sleep(0.01)
    raise AssertionError("the append never waited for the lease row")


@pytest.mark.slow
class TestLivenessAcrossProcesses:
    def test_a_killed_holder_is_dead_at_once(self, pg_url: str) -> None:
        """SIGKILL of the holding process frees the execution immediately, TTL or not."""
        owner = uuid.uuid4().hex
        proc = _start_holder(pg_url, "k1", owner, ttl=3600)
        store = PostgresStore(pg_url)
        try:
            assert store.live_lease("k1") is not None
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            deadline = time.monotonic() + 5
            while store.live_lease("k1") is not None and time.monotonic() < deadline:
                time.sleep(0.02)  # the server notices the closed socket
            assert store.live_lease("k1") is None
            assert store.claim(_lease("k1")) is None
        finally:
            proc.kill()
            store.close()

    def test_a_holder_killed_on_this_host_is_dead_before_the_server_notices(
        self, pg_url: str
    ) -> None:
        """A holder on this host whose process is gone is not reported alive while its
        session lingers on the server (here: busy in a statement for two seconds)."""
        owner = uuid.uuid4().hex
        proc = subprocess.Popen(
            [sys.executable, "-c", _LINGERING_HOLDER, pg_url, "d1", owner],
            stdout=subprocess.PIPE,
            text=True,
            env={**child_env(), "PYTHONPATH": str(REPO)},
        )
        store = PostgresStore(pg_url)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "claimed"
            time.sleep(0.2)  # let the holder's session start its long statement
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert store.live_lease("d1") is None
            assert store.claim(_lease("d1")) is None
        finally:
            proc.kill()
            proc.wait(timeout=10)
            store.close()

    def test_a_paused_holder_loses_its_lease_when_it_runs_out(self, pg_url: str) -> None:
        """A SIGSTOPped holder stays alive until its lease expires, then is taken over
        and, woken again, can no longer write."""
        owner = uuid.uuid4().hex
        proc = _start_holder(pg_url, "p1", owner, ttl=1.0)
        store = PostgresStore(pg_url)
        try:
            proc.send_signal(signal.SIGSTOP)
            assert store.claim(_lease("p1")) is not None  # alive: its lease runs
            time.sleep(1.3)
            new = _lease("p1")
            assert store.claim(new) is None
            proc.send_signal(signal.SIGCONT)
            with pytest.raises(KitaruLeaseLostError):
                store.append("p1", 1, [(_failed("x"), 1.0)], owner=owner)
        finally:
            proc.kill()
            proc.wait(timeout=10)
            store.close()


class TestServerClock:
    def test_expiry_is_measured_on_the_server(
        self, store: PostgresStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A claimant whose clock runs an hour ahead still gets a lease of its TTL, not
        one that others see as running an extra hour."""
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600)
        lease = _lease("c1", ttl=0.3)
        assert store.claim(lease) is None
        monkeypatch.setattr(time, "time", real)
        time.sleep(0.6)
        assert store.live_lease("c1") is None


class TestUrls:
    def test_passwords_are_not_shown(self) -> None:
        """The store's location, used in messages, never carries the password."""
        assert redact_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"

    def test_an_unreachable_server_is_one_clear_error(self, tmp_path: object) -> None:
        """A URL naming no running server gives a KitaruBackendError that names it."""
        from kitaru.errors import BackendFailure, KitaruBackendError

        store = PostgresStore(f"postgresql://nobody@/db?host={tmp_path}", connect_timeout=2)
        with pytest.raises(KitaruBackendError, match="Cannot reach") as caught:
            store.get_execution("x")
        assert caught.value.failure == BackendFailure.CANNOT_OPEN

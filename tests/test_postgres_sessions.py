"""How a process uses its PostgreSQL sessions, against the tests' real server.

Many threads share at most ``kitaru_pool_size`` pooled sessions and one listening
session; a borrower that finds them all busy gets one clear error; sessions a server
restart ended are replaced instead of failing; a forked child never touches its
parent's sessions; no notice is lost to a thread because another thread read it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from kitaru.errors import BackendFailure, KitaruBackendError, KitaruUsageError
from kitaru.journal.events import ExecutionStarted, FlowRef, ValueRef
from kitaru.journal.pool import ConnectionPool
from kitaru.journal.postgres import PostgresStore
from kitaru.journal.store import Lease
from tests.helpers import child_env
from tests.pg_server import PgServer


def _with(url: str, **options: object) -> str:
    joined = "&".join(f"{name}={value}" for name, value in options.items())
    return f"{url}{'&' if '?' in url else '?'}{joined}"


def _sessions(url: str, application: str) -> int:
    """Sessions open on ``url``'s database under ``application`` (seen from a session of
    its own; other tests' stores use other databases of the same server)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            (application,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _sessions_end(url: str, application: str) -> int:
    """The sessions left under ``application`` once closed ones have had time to go (a
    server process leaves ``pg_stat_activity`` a moment after its client hangs up)."""
    deadline = time.monotonic() + 10
    while (left := _sessions(url, application)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _start(store: PostgresStore, exec_id: str) -> Lease:
    lease = Lease(
        exec_id=exec_id,
        owner=uuid.uuid4().hex,
        host="test-host",
        pid=os.getpid(),
        pid_started="",
        expires_at=time.time() + 60,
    )
    assert store.claim(lease) is None
    started = ExecutionStarted(
        flow_name="f",
        flow=FlowRef(module="m", qualname="f"),
        inputs=ValueRef(inline=b"\x90"),
        kitaru_version="test",
    )
    store.append(exec_id, 1, [(started, time.time())], owner=lease.owner)
    return lease


@pytest.fixture
def app() -> str:
    return f"pooltest_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pooled(pg_url: str, app: str) -> Iterator[PostgresStore]:
    store = PostgresStore(_with(pg_url, kitaru_pool_size=3, application_name=app))
    yield store
    store.close()


class TestBoundedConnections:
    def test_many_threads_share_at_most_the_pool_size(
        self, pooled: PostgresStore, pg_url: str, app: str
    ) -> None:
        """24 threads that each used the store leave the server at most 3 sessions, not 24."""
        _start(pooled, "bounded")
        gate = threading.Barrier(25)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20):
                    assert pooled.get_execution("bounded") is not None
                    pooled.read_events("bounded")
                gate.wait(timeout=60)  # every thread has used the store and is still alive
                gate.wait(timeout=60)
            except BaseException as exc:  # reported below, with the thread's own failure
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(24)]
        for thread in threads:
            thread.start()
        gate.wait(timeout=60)
        try:
            # The pool's sessions, plus the one that holds the owner lock of the lease.
            assert _sessions(pg_url, app) <= 3 + 1
            assert pooled._pool.open_count <= 3
        finally:
            gate.wait(timeout=60)
            for thread in threads:
                thread.join(timeout=60)
        assert errors == []

    def test_sessions_are_named_kitaru_unless_the_url_names_them(self, pg_url: str) -> None:
        """The server lists kitaru's sessions as ``kitaru``; a URL's application_name wins."""
        store = PostgresStore(pg_url)
        try:
            store.list_executions()
            assert _sessions(pg_url, "kitaru") >= 1
        finally:
            store.close()
        assert _sessions_end(pg_url, "kitaru") == 0


class TestAllBusy:
    def test_a_borrower_that_finds_every_session_busy_gets_one_clear_error(
        self, pg_url: str, app: str
    ) -> None:
        """With the one session held by a blocked write, a read fails after the pool's
        timeout with a busy error that names ``kitaru_pool_size``; then all recovers."""
        store = PostgresStore(
            _with(pg_url, kitaru_pool_size=1, kitaru_pool_timeout=0.5, application_name=app)
        )
        try:
            lease = _start(store, "busy")
            with psycopg.connect(pg_url, autocommit=True) as blocker:
                blocker.execute("BEGIN")
                blocker.execute(
                    "SELECT * FROM kitaru.leases WHERE exec_id = 'busy' FOR UPDATE"
                ).fetchall()
                renewed: list[bool] = []
                renewing = threading.Thread(
                    target=lambda: renewed.append(
                        store.renew("busy", lease.owner, time.time() + 60)
                    )
                )
                renewing.start()
                deadline = time.monotonic() + 30
                while store._pool._idle and time.monotonic() < deadline:
                    time.sleep(0.01)  # the renewal has taken the only session
                started = time.monotonic()
                with pytest.raises(KitaruBackendError) as caught:
                    store.get_execution("busy")
                waited = time.monotonic() - started
                blocker.execute("COMMIT")
            renewing.join(timeout=30)
            assert renewed == [True]
            assert caught.value.failure is BackendFailure.BUSY
            message = str(caught.value)
            assert "\n" not in message
            assert "kitaru_pool_size" in message
            assert 0.4 <= waited < 10
            assert store.get_execution("busy") is not None
        finally:
            store.close()


class TestServerRestart:
    def test_sessions_a_restart_ended_are_replaced_without_an_error(
        self, pooled: PostgresStore, pg_server: PgServer, pg_url: str
    ) -> None:
        """After the server restarts, the next reads and writes succeed at once: the pool
        sees its idle sessions were ended and opens new ones, and the holder's owner
        lock is taken again before its lease is renewed."""
        lease = _start(pooled, "restarted")
        assert pooled.get_execution("restarted") is not None
        pg_server.stop()
        pg_server.start()
        assert pooled.get_execution("restarted") is not None
        assert len(pooled.read_events("restarted")) == 1
        assert pooled.renew("restarted", lease.owner, time.time() + 60)
        # The renewal took the owner lock again on a new session: to another process
        # the holder is alive, so no rival takes the execution over.
        rival = PostgresStore(pg_url)
        try:
            assert rival.live_lease("restarted") is not None
        finally:
            rival.close()


def _waiting(store: PostgresStore, exec_id: str, seconds: float, woke: list[float]) -> None:
    started = time.monotonic()
    store.wait_for_mail(exec_id, seconds)
    woke.append(time.monotonic() - started)


class TestSharedListening:
    def test_waiting_threads_share_one_session_and_all_wake_on_a_notice(
        self, pooled: PostgresStore, pg_url: str, app: str
    ) -> None:
        """20 threads waiting for mail hold one listening session, not 20, and a
        single cancel request wakes every one of them long before their timeout."""
        _start(pooled, "waited")
        woke: list[float] = []
        threads = [
            threading.Thread(target=_waiting, args=(pooled, "waited", 60.0, woke))
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # every thread is inside its wait
        try:
            assert woke == []
            # Pooled sessions, the one holding the owner lock, and the listening one.
            assert _sessions(pg_url, app) <= 3 + 1 + 1
        finally:
            other = PostgresStore(pg_url)
            try:
                other.request_cancel("waited", "wake up")
            finally:
                other.close()
            for thread in threads:
                thread.join(timeout=60)
        assert len(woke) == 20
        assert max(woke) < 30

    def test_a_notice_another_thread_read_still_wakes_the_next_wait(
        self, pooled: PostgresStore, pg_url: str
    ) -> None:
        """A notice sent between two waits of one thread, and read meanwhile by another
        waiting thread, ends that thread's next wait at once, as its own session would."""
        _start(pooled, "between")
        stop = threading.Event()

        def keep_waiting() -> None:
            while not stop.is_set():
                pooled.wait_for_mail("between", 0.2)

        reader = threading.Thread(target=keep_waiting)
        reader.start()
        try:
            pooled.wait_for_mail("between", 0.05)  # this thread's wait before the notice
            other = PostgresStore(pg_url)
            try:
                other.request_cancel("between", "in between")
            finally:
                other.close()
            time.sleep(0.5)  # the other thread has read the notice by now
            started = time.monotonic()
            pooled.wait_for_mail("between", 30.0)
            assert time.monotonic() - started < 10
        finally:
            stop.set()
            reader.join(timeout=30)

    def test_a_wait_of_no_time_listens_so_the_next_wait_hears_what_came_between(
        self, pooled: PostgresStore, pg_url: str
    ) -> None:
        """A process's first wait, of no time, already listens: a request posted before
        the next wait (as between a worker's look at the queue and its wait) ends it."""
        _start(pooled, "first")
        pooled.wait_for_mail("first", 0.0)
        other = PostgresStore(pg_url)
        try:
            other.request_cancel("first", "between the look and the wait")
        finally:
            other.close()
        started = time.monotonic()
        pooled.wait_for_mail("first", 30.0)
        assert time.monotonic() - started < 10

    def test_waiters_see_a_request_posted_after_a_server_restart(
        self, pooled: PostgresStore, pg_server: PgServer, pg_url: str
    ) -> None:
        """A thread waiting for a cancel while the server restarts listens again and sees
        the request posted afterwards, long before its waits would time out."""
        _start(pooled, "restart-wait")
        seen: list[str] = []

        def wait_for_cancel() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    reason = pooled.cancel_requested("restart-wait")
                except KitaruBackendError:
                    reason = None  # the server is down for a moment
                if reason is not None:
                    seen.append(reason)
                    return
                with contextlib.suppress(KitaruBackendError):
                    pooled.wait_for_mail("restart-wait", 30.0)

        waiter = threading.Thread(target=wait_for_cancel)
        waiter.start()
        time.sleep(0.5)
        pg_server.stop()
        pg_server.start()
        time.sleep(0.5)
        other = PostgresStore(pg_url)
        try:
            posted = time.monotonic()
            other.request_cancel("restart-wait", "after the restart")
        finally:
            other.close()
        waiter.join(timeout=60)
        assert seen == ["after the restart"]
        assert time.monotonic() - posted < 25


_CHILD_READS = """
import os, sys
from kitaru.journal.postgres import PostgresStore

store = PostgresStore(sys.argv[1])
assert store.get_execution("forked") is not None  # the parent's pool is warm now
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        for _ in range(50):
            assert store.get_execution("forked") is not None
        os.write(write, b"ok")
    finally:
        os._exit(0)
for _ in range(50):
    assert store.get_execution("forked") is not None
os.waitpid(pid, 0)
assert os.read(read, 2) == b"ok"
assert store.get_execution("forked") is not None
print("both read", flush=True)
"""


_BOTH_HEAR = """
import os, sys, time
from kitaru.journal.postgres import PostgresStore

store = PostgresStore(sys.argv[1])
store.wait_for_mail("forked", 0.0)  # the parent listens before it forks
ready_r, ready_w = os.pipe()
heard_r, heard_w = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        store.wait_for_mail("forked", 0.0)
        os.write(ready_w, b"r")
        started = time.monotonic()
        store.wait_for_mail("forked", 30.0)
        os.write(heard_w, b"%.1f" % (time.monotonic() - started))
    finally:
        os._exit(0)
assert os.read(ready_r, 1) == b"r"
other = PostgresStore(sys.argv[1])
other.request_cancel("forked", "both should hear this")
other.close()
started = time.monotonic()
store.wait_for_mail("forked", 30.0)
parent = time.monotonic() - started
os.waitpid(pid, 0)
child = float(os.read(heard_r, 16))
print(f"{parent:.1f} {child:.1f}", flush=True)
"""


class TestFork:
    def test_a_forked_child_opens_its_own_sessions(
        self, pooled: PostgresStore, pg_url: str
    ) -> None:
        """Parent and child both read at once after a fork: neither uses the other's
        session, so neither sees a garbled reply."""
        _start(pooled, "forked")
        done = subprocess.run(
            [sys.executable, "-c", _CHILD_READS, pg_url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=child_env(),
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "both read"

    def test_a_forked_child_listens_on_a_session_of_its_own(
        self, pooled: PostgresStore, pg_url: str
    ) -> None:
        """Parent and child, both waiting after a fork, each hear the one notice: had the
        child read the parent's listening session, only one of them would."""
        _start(pooled, "forked")
        done = subprocess.run(
            [sys.executable, "-c", _BOTH_HEAR, pg_url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=child_env(),
        )
        assert done.returncode == 0, done.stderr
        parent, child = (float(seconds) for seconds in done.stdout.split())
        assert parent < 10
        assert child < 10


class TestOptions:
    @pytest.mark.parametrize(
        "option",
        [
            "kitaru_pool_size=0",
            "kitaru_pool_size=many",
            "kitaru_pool_size=2.5",
            "kitaru_pool_timeout=-1",
            "kitaru_pool_timeout=nan",
            "kitaru_pool_timeout=inf",
        ],
    )
    def test_a_bad_pool_option_is_refused_in_one_line(self, pg_url: str, option: str) -> None:
        """A pool option that is not a usable number is refused before anything connects."""
        with pytest.raises(KitaruUsageError) as caught:
            PostgresStore(f"{pg_url}&{option}")
        assert option.split("=", maxsplit=1)[0] in str(caught.value)
        assert "\n" not in str(caught.value)

    def test_the_cli_refuses_a_bad_pool_option_with_exit_1(self, pg_url: str) -> None:
        """``kitaru executions list`` on such a URL exits 1 with one line and no traceback."""
        done = subprocess.run(
            [sys.executable, "-m", "kitaru", "executions", "list"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=child_env(KITARU_STORE=f"{pg_url}&kitaru_pool_size=0"),
        )
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, done.stderr
        assert "kitaru_pool_size" in lines[0]


class _Session:
    """A stand-in for a database session: the pool needs only these answers from one."""

    def __init__(self) -> None:
        self.closed = False
        self.broken = False


def _pool(size: int, timeout: float = 0.2, **given: object) -> ConnectionPool[_Session]:
    opened: list[_Session] = []

    def connect() -> _Session:
        session = _Session()
        opened.append(session)
        return session

    pool: ConnectionPool[_Session] = ConnectionPool(
        given.pop("connect", connect),  # type: ignore[arg-type]
        size=size,
        timeout=timeout,
        alive=lambda s: not s.closed,
        reusable=lambda s: not s.broken,
        close=lambda s: setattr(s, "closed", True),
        exhausted=lambda n, t: KitaruBackendError(f"all {n} busy after {t}"),
        **given,  # type: ignore[arg-type]
    )
    pool.opened = opened  # type: ignore[attr-defined]
    return pool


class TestPoolRules:
    def test_a_nested_borrow_on_one_thread_shares_its_session(self) -> None:
        """A thread that borrows again inside a borrow gets the same session, not a wait."""
        pool = _pool(1)
        with pool.connection() as outer, pool.connection() as inner:
            assert inner is outer
        assert pool.open_count == 1

    def test_a_broken_session_is_closed_and_its_place_freed(self) -> None:
        """A session that comes back broken is closed; the next borrower gets a new one."""
        pool = _pool(1)
        with pool.connection() as first:
            first.broken = True
        assert first.closed
        with pool.connection() as second:
            assert second is not first
        assert pool.open_count == 1

    def test_a_failed_connect_frees_its_place(self) -> None:
        """A connect that raises does not use up the pool."""
        attempts: list[int] = []

        def flaky() -> _Session:
            attempts.append(1)
            if len(attempts) == 1:
                raise KitaruBackendError("server not up")
            return _Session()

        pool = _pool(1, connect=flaky)
        with pytest.raises(KitaruBackendError), pool.connection():
            pass
        with pool.connection() as session:
            assert not session.closed
        assert pool.open_count == 1

    def test_a_session_idle_too_long_is_replaced(self) -> None:
        """An idle session older than ``max_idle`` is closed rather than handed out."""
        pool = _pool(1, max_idle=0.05)
        with pool.connection() as first:
            pass
        time.sleep(0.1)
        with pool.connection() as second:
            assert second is not first
        assert first.closed

    def test_a_waiting_borrower_gets_the_session_given_back(self) -> None:
        """A borrower that finds the pool full takes the session as soon as it returns."""
        pool = _pool(1, timeout=30)
        got: list[_Session] = []
        with pool.connection() as first:
            waiter = threading.Thread(target=lambda: got.extend(_borrow(pool)))
            waiter.start()
            time.sleep(0.1)
            assert got == []
        waiter.join(timeout=30)
        assert got == [first]


def _borrow(pool: ConnectionPool[_Session]) -> list[_Session]:
    with pool.connection() as session:
        return [session]

"""``kitaru worker`` processes on a real PostgreSQL server: claiming, crashes, draining,
waits, cancels and the worker list."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kitaru import FlowHandle, KitaruClient
from kitaru._stacks import create_stack
from kitaru.errors import KitaruExecutionError, KitaruTimeoutError, KitaruUsageError
from kitaru.journal.events import CallCompleted, CallStartedAndCompleted
from kitaru.journal.postgres import PostgresStore
from kitaru.journal.store import WorkerRow
from tests.helpers import REPO, child_env, kitaru_command
from tests.worker_flows.steps import ask, chain


def _wait_until(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or check}")


class Workers:
    """Worker processes of one test, each stopped (by pid) when the test ends."""

    def __init__(self, url: str, tmp: Path):
        self.url = url
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        known = {row.id for row in self.alive()}
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [*prefix, *kitaru_command("worker", "--store", self.url, *args)],
            env=env or child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: a worker inside `unshare` is the wrapper's child,
            # and the group reaches both.
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        # A new worker id, not a count: a worker killed just before may still be
        # listed until the server has seen its session end.
        _wait_until(lambda: {row.id for row in self.alive()} - known, what="the worker to register")
        return proc

    def alive(self) -> list[WorkerRow]:
        return KitaruClient(self.url).workers.list()

    def stop_all(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@pytest.fixture
def workers(pg_url: str, tmp_path: Path) -> Iterator[Workers]:
    create_stack("team", store=pg_url, workers=True, activate=False)
    started = Workers(pg_url, tmp_path)
    yield started
    started.stop_all()


def _parked_at_its_wait(workers: Workers, log: Path) -> FlowHandle:
    """Run ``ask`` on a worker until it waits and the worker has parked it."""
    workers.start()
    handle = ask.run("w", str(log), stack="team")
    _wait_until(lambda: handle.status == "waiting", what="the wait")
    _wait_until(
        lambda: not any(w.running for w in KitaruClient(workers.url).workers.list()),
        what="the execution to be parked",
    )
    return handle


def _answer_from_the_command(
    workers: Workers, handle: FlowHandle
) -> subprocess.CompletedProcess[str]:
    """Answer ``ask``'s wait with `kitaru executions input` from another process."""
    done = subprocess.run(  # noqa: PLW1510  (the exit code is asserted)
        kitaru_command("executions", "input", handle.exec_id, "--value", '"yes"'),
        env=child_env(KITARU_STORE=workers.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def _lines(log: Path, kind: str) -> Counter[str]:
    if not log.exists():
        return Counter()
    return Counter(
        line.split()[1] for line in log.read_text().splitlines() if line.startswith(kind + " ")
    )


def _completions(url: str, exec_id: str) -> Counter[str]:
    store = PostgresStore(url)
    try:
        return Counter(
            stored.event.identity
            for stored in store.read_events(exec_id)
            if isinstance(stored.event, CallCompleted | CallStartedAndCompleted)
        )
    finally:
        store.close()


@pytest.mark.slow
class TestEachExecutionOnce:
    def test_n_workers_m_executions_each_claimed_and_completed_once(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """Three workers share twelve queued executions; every checkpoint body runs once."""
        log = tmp_path / "calls.log"
        for _ in range(3):
            workers.start("--concurrency", "2")
        handles = [chain.run(f"e{n}", 3, str(log), stack="team") for n in range(12)]
        assert [h.wait(timeout=120) for h in handles] == [3] * 12
        done = _lines(log, "done")
        assert done == Counter({f"e{n}:{i}": 1 for n in range(12) for i in range(3)})
        for handle in handles:
            assert set(_completions(workers.url, handle.exec_id).values()) == {1}

    def test_run_returns_at_once_and_the_submitter_can_wait(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """`.run()` on a workers stack queues the execution; a worker started later runs it."""
        log = tmp_path / "calls.log"
        handle = chain.run("late", 2, str(log), stack="team")
        assert handle.status == "running"
        assert not log.exists()
        queued = KitaruClient(workers.url).executions.get(handle.exec_id)
        assert not queued.interrupted  # waiting for a worker, not abandoned
        assert queued.status_reason is not None
        assert queued.status_reason.startswith("queued")
        workers.start()
        assert handle.wait(timeout=60) == 1


@pytest.mark.slow
class TestCrashedWorker:
    def test_sigkill_mid_checkpoint_another_worker_continues(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """A worker killed inside a checkpoint: another finishes it, completed calls not rerun."""
        log, hold = tmp_path / "calls.log", tmp_path / "hold"
        hold.touch()
        first = workers.start()
        handle = chain.run("k", 4, str(log), 0.0, str(hold), stack="team")
        _wait_until(lambda: _lines(log, "start")["k:1"], what="step 1 to start")
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        hold.unlink()
        workers.start()
        assert handle.wait(timeout=60) == 6
        done = _lines(log, "done")
        assert done["k:0"] == 1  # completed before the kill: replayed, not run again
        assert all(done[f"k:{i}"] == 1 for i in range(4))
        assert set(_completions(workers.url, handle.exec_id).values()) == {1}

    def test_a_worker_in_its_own_namespaces_continues_after_sigkill(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """A worker in its own UTS and PID namespaces (another host) takes over at once."""
        log, hold = tmp_path / "calls.log", tmp_path / "hold"
        hold.touch()
        first = workers.start()
        handle = chain.run("ns", 3, str(log), 0.0, str(hold), stack="team")
        _wait_until(lambda: _lines(log, "start")["ns:1"], what="step 1 to start")
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        hold.unlink()
        env = child_env(PYTHONPATH=child_env()["PYTHONPATH"])
        workers.start(env=env, prefix=("unshare", "-u", "-p", "-f", "--mount-proc"))
        assert handle.wait(timeout=60) == 3
        assert all(_lines(log, "done")[f"ns:{i}"] == 1 for i in range(3))


def _held_at_step_1(
    workers: Workers, tmp_path: Path, tag: str, *worker_args: str
) -> tuple[subprocess.Popen[bytes], FlowHandle[Any], Path, Path]:
    """A worker running a three-step chain whose step 1 is held until ``hold`` goes:
    the worker, the execution's handle, the calls log and the hold file."""
    log, hold = tmp_path / "calls.log", tmp_path / "hold"
    hold.touch()
    first = workers.start(*worker_args)
    handle = chain.run(tag, 3, str(log), 0.0, str(hold), stack="team")
    _wait_until(lambda: _lines(log, "start")[f"{tag}:1"], what="step 1 to start")
    return first, handle, log, hold


def _finished_by_another_worker(
    workers: Workers, handle: FlowHandle[Any], log: Path, hold: Path, tag: str
) -> None:
    """Release the held step; a new worker finishes the chain without redoing step 0."""
    hold.unlink()
    workers.start()
    assert handle.wait(timeout=60) == 3
    assert _lines(log, "done")[f"{tag}:0"] == 1


@pytest.mark.slow
class TestDrain:
    @pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["term", "ctrl-c"])
    def test_sigterm_lets_the_running_call_finish_and_hands_the_rest_back(
        self, workers: Workers, tmp_path: Path, stop: signal.Signals
    ) -> None:
        """SIGTERM or Ctrl-C: the running checkpoint completes, the worker exits 0,
        another finishes."""
        log = tmp_path / "calls.log"
        first = workers.start()
        handle = chain.run("t", 4, str(log), 0.5, stack="team")
        _wait_until(lambda: _lines(log, "start")["t:1"], what="step 1 to start")
        first.send_signal(stop)
        assert first.wait(30) == 0
        assert _lines(log, "done")["t:1"] == 1
        assert _completions(workers.url, handle.exec_id)["step_2"] == 1
        assert handle.status == "running"
        workers.start()
        assert handle.wait(timeout=60) == 6
        assert all(_lines(log, "done")[f"t:{i}"] == 1 for i in range(4))

    def test_a_call_longer_than_the_grace_period_is_handed_back(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """After --grace seconds the worker exits 0 and the execution is queued again."""
        first, handle, log, hold = _held_at_step_1(workers, tmp_path, "g", "--grace", "0.5")
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        _finished_by_another_worker(workers, handle, log, hold, "g")

    def test_a_second_sigterm_exits_at_once_and_another_worker_continues(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """Asked twice, the worker goes without waiting; its claim is free for the next."""
        first, handle, log, hold = _held_at_step_1(workers, tmp_path, "s", "--grace", "60")
        first.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert first.poll() is None, "the first SIGTERM did not wait for the running call"
        first.send_signal(signal.SIGTERM)
        assert first.wait(10) == 0
        _finished_by_another_worker(workers, handle, log, hold, "s")
        assert set(_completions(workers.url, handle.exec_id).values()) == {1}


@pytest.mark.slow
class TestWaitsAndCancel:
    def test_an_answered_wait_is_picked_up_by_a_worker(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """A waiting execution is parked; `executions input` makes a worker continue it."""
        log = tmp_path / "calls.log"
        handle = _parked_at_its_wait(workers, log)
        done = _answer_from_the_command(workers, handle)
        assert "resume" not in done.stdout  # a worker continues it: nothing to do by hand
        _wait_until(lambda: handle.status == "completed", what="the flow to finish")
        assert handle.get() == "got yes"
        assert _lines(log, "done")["w:0"] == 1

    def test_wait_blocks_once_answered_until_a_worker_continues(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """Input posted with no worker up: the command says a worker continues it, and
        handle.wait() blocks until one does rather than raise."""
        log = tmp_path / "calls.log"
        handle = _parked_at_its_wait(workers, log)
        workers.stop_all()
        done = _answer_from_the_command(workers, handle)
        assert "a worker continues it" in done.stdout  # not "resume it yourself"
        with pytest.raises(KitaruTimeoutError):
            handle.wait(timeout=1)  # answered, queued again, no worker yet: still going on
        workers.start()
        assert handle.wait(timeout=60) == "got yes"

    def test_cancel_reaches_a_running_execution_on_a_worker(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """Cancelling from this process stops the execution a worker runs."""
        log = tmp_path / "calls.log"
        workers.start()
        handle = chain.run("c", 200, str(log), 0.05, stack="team")
        _wait_until(lambda: _lines(log, "done")["c:2"], what="a few steps")
        KitaruClient(workers.url).executions.cancel(handle.exec_id)
        with pytest.raises(KitaruExecutionError, match="cancelled"):
            handle.wait(timeout=30)
        assert sum(_lines(log, "done").values()) < 200

    def test_cancel_of_a_parked_execution_ends_it_and_empties_the_queue(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """Cancelling an execution parked at a wait cancels it and leaves no queue entry."""
        log = tmp_path / "calls.log"
        workers.start()
        handle = ask.run("pc", str(log), stack="team")
        _wait_until(lambda: handle.status == "waiting", what="the wait")
        store = PostgresStore(workers.url)
        try:
            _wait_until(lambda: _state(store, handle.exec_id) == "parked", what="the park")
            KitaruClient(workers.url).executions.cancel(handle.exec_id)
            assert handle.status == "cancelled"
            assert _state(store, handle.exec_id) == "gone"
        finally:
            store.close()


_LONG_POLL = "30"
"""A fallback look at the queue far beyond every bound below: only a notice is in time."""


@pytest.mark.slow
class TestNotificationWakesTheWorker:
    def test_an_execution_queued_later_is_claimed_long_before_the_poll(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """A worker that polls every 30 s starts an execution queued after its last look."""
        log = tmp_path / "calls.log"
        workers.start("--poll", _LONG_POLL)
        time.sleep(1.0)  # its first look at the (empty) queue is over
        handle = chain.run("n", 2, str(log), stack="team")
        assert handle.wait(timeout=10) == 1

    def test_an_answered_wait_is_continued_long_before_the_poll(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """`executions input` for a parked execution wakes a worker that polls every 30 s."""
        log = tmp_path / "calls.log"
        handle = ask.run("a", str(log), stack="team")  # queued first: its first look takes it
        workers.start("--poll", _LONG_POLL)
        store = PostgresStore(workers.url)
        try:
            _wait_until(lambda: _state(store, handle.exec_id) == "parked", what="the park")
        finally:
            store.close()
        _answer_from_the_command(workers, handle)
        assert handle.wait(timeout=10) == "got yes"

    def test_cancel_reaches_a_running_execution_long_before_the_poll(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """Cancel stops an execution running on a worker that polls every 30 s within seconds."""
        log = tmp_path / "calls.log"
        workers.start("--poll", _LONG_POLL)
        handle = chain.run("c", 200, str(log), 0.05, stack="team")
        _wait_until(lambda: _lines(log, "done")["c:2"], timeout=10, what="a few steps")
        KitaruClient(workers.url).executions.cancel(handle.exec_id)
        with pytest.raises(KitaruExecutionError, match="cancelled"):
            handle.wait(timeout=10)


class TestPollOption:
    @pytest.mark.parametrize("value", ["0", "-1", "nan"])
    def test_a_poll_that_is_not_positive_seconds_is_refused(
        self, tmp_path: Path, value: str
    ) -> None:
        """`kitaru worker --poll` of no positive seconds exits 1 with one line naming it."""
        done = subprocess.run(  # noqa: PLW1510  (the exit code is asserted)
            kitaru_command("worker", "--store", f"sqlite:///{tmp_path}/j.db", "--poll", value),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1
        assert "--poll must be seconds > 0" in done.stderr
        assert "Traceback" not in done.stderr

    def test_the_documented_fallback_poll_is_the_workers_own(self) -> None:
        """`kitaru worker --help` and the README state the poll the worker uses by default."""
        from kitaru._worker import WorkerSettings

        shown = subprocess.run(
            kitaru_command("worker", "--help"),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert f"default {WorkerSettings.poll:g})" in " ".join(shown.stdout.split())
        readme = " ".join((REPO / "README.md").read_text().split())
        assert f"look at the queue (every {WorkerSettings.poll:g} s;" in readme


@pytest.mark.slow
class TestLostLease:
    def test_a_paused_worker_that_lost_its_lease_records_nothing(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """A worker paused past its lease is taken over; after it resumes its appends fail."""
        log, hold = tmp_path / "calls.log", tmp_path / "hold"
        hold.touch()
        env = child_env(KITARU_LEASE_TTL="1")
        first = workers.start(env=env)
        handle = chain.run("p", 3, str(log), 0.0, str(hold), stack="team")
        _wait_until(lambda: _lines(log, "start")["p:1"], what="step 1 to start")
        first.send_signal(signal.SIGSTOP)
        try:
            # While it is paused its connection stays open, so only expiry frees it.
            hold.unlink()
            workers.procs.append(
                subprocess.Popen(
                    kitaru_command("worker", "--store", workers.url),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            assert handle.wait(timeout=60) == 3
        finally:
            first.send_signal(signal.SIGCONT)
        time.sleep(1.0)  # the first worker finishes its step and tries to record it
        assert set(_completions(workers.url, handle.exec_id).values()) == {1}
        assert handle.status == "completed"


@pytest.mark.slow
class TestServerRestart:
    def test_a_server_restart_under_a_running_worker_loses_nothing(
        self, workers: Workers, tmp_path: Path, pg_server: object
    ) -> None:
        """The server restarts mid-run: every execution completes, every call recorded once."""
        log = tmp_path / "calls.log"
        workers.start("--concurrency", "3")
        handles = [chain.run(f"r{n}", 6, str(log), 0.1, stack="team") for n in range(3)]
        _wait_until(lambda: sum(_lines(log, "done").values()) >= 3, what="some progress")
        pg_server.stop()  # type: ignore[attr-defined]
        time.sleep(0.5)
        pg_server.start()  # type: ignore[attr-defined]
        assert [h.wait(timeout=120) for h in handles] == [15] * 3
        for handle in handles:
            assert set(_completions(workers.url, handle.exec_id).values()) == {1}


@pytest.mark.slow
class TestWorkerList:
    def test_list_shows_alive_workers_with_what_they_run(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """`kitaru worker list -o json` names each alive worker's host, pid and executions."""
        log, hold = tmp_path / "calls.log", tmp_path / "hold"
        hold.touch()
        proc = workers.start()
        handle = chain.run("l", 2, str(log), 0.0, str(hold), stack="team")
        _wait_until(lambda: _lines(log, "start")["l:1"], what="step 1 to start")

        def listed() -> list[dict[str, object]]:
            done = subprocess.run(  # noqa: PLW1510  (the exit code is asserted)
                kitaru_command("worker", "list", "--store", workers.url, "-o", "json"),
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            rows: list[dict[str, object]] = json.loads(done.stdout)
            return rows

        rows = _wait_until(lambda: [r for r in listed() if r["running"]], what="a heartbeat")
        assert isinstance(rows, list)
        assert rows[0]["pid"] == proc.pid
        assert rows[0]["running"] == [handle.exec_id]
        assert str(rows[0]["host"]).startswith(os.uname().nodename)
        hold.unlink()
        handle.wait(timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert listed() == []


@pytest.mark.slow
class TestQueuesAndPriority:
    def test_an_execution_queued_on_a_named_queue_runs_only_on_its_workers(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """`.run(queue="gpu")` is taken by the `--queue gpu` worker, never the default one."""
        log = tmp_path / "calls.log"
        default = workers.start()
        gpu = workers.start("--queue", "gpu")
        on_gpu = [chain.run(f"g{n}", 2, str(log), stack="team", queue="gpu") for n in range(3)]
        plain = [chain.run(f"p{n}", 2, str(log), stack="team") for n in range(3)]
        assert [h.wait(timeout=60) for h in on_gpu + plain] == [1] * 6
        ran_by = {line.split()[1]: int(line.split()[2]) for line in log.read_text().splitlines()}
        assert {ran_by[f"g{n}:{i}"] for n in range(3) for i in range(2)} == {gpu.pid}
        assert {ran_by[f"p{n}:{i}"] for n in range(3) for i in range(2)} == {default.pid}

    def test_a_higher_priority_is_claimed_first(self, workers: Workers, tmp_path: Path) -> None:
        """Of two queued executions, a worker of concurrency 1 starts the higher priority."""
        log = tmp_path / "calls.log"
        low = chain.run("low", 1, str(log), stack="team", priority=1)
        high = chain.run("high", 1, str(log), stack="team", priority=5)
        workers.start("--concurrency", "1")
        assert high.wait(timeout=60) == 0
        assert low.wait(timeout=60) == 0
        starts = [line.split()[1] for line in log.read_text().splitlines() if "start" in line]
        assert starts == ["high:0", "low:0"]

    def test_queue_options_are_refused_on_a_stack_without_workers(self, tmp_path: Path) -> None:
        """queue= on an in-process stack is one KitaruUsageError and starts nothing."""
        with pytest.raises(KitaruUsageError) as raised:
            chain.run("x", 1, str(tmp_path / "calls.log"), queue="gpu")
        assert "\n" not in str(raised.value)
        assert "--workers" in str(raised.value)
        assert KitaruClient().executions.list() == []
        with pytest.raises(KitaruUsageError, match="priority"):
            chain.run("x", 1, str(tmp_path / "calls.log"), stack="team", priority="high")


_HIDDEN_FLOW = """
from kitaru import checkpoint, flow


@checkpoint
def double(x: int) -> int:
    return 2 * x


@flow
def doubled(x: int) -> int:
    return double(x)
"""


@pytest.mark.slow
class TestUnimportableFlow:
    def test_a_worker_that_cannot_import_backs_off_and_another_runs_it(
        self, workers: Workers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A worker without the flow's module says so once, backs off, and leaves it to one
        started with --import-path."""
        name = f"hidden_{uuid.uuid4().hex[:8]}"
        first, second = tmp_path / "first", tmp_path / "second"
        first.mkdir()
        second.mkdir()
        (first / f"{name}.py").write_text(_HIDDEN_FLOW)
        monkeypatch.syspath_prepend(str(first))
        try:
            module = importlib.import_module(name)
            handle = module.doubled.run(21, stack="team")
        finally:
            sys.modules.pop(name, None)
        # Only the second folder has the module now.
        (first / f"{name}.py").rename(second / f"{name}.py")
        shutil.rmtree(first / "__pycache__", ignore_errors=True)
        workers.start()
        worker_log = tmp_path / "worker-0.log"
        _wait_until(lambda: name in worker_log.read_text(), what="the import failure")
        time.sleep(3.0)  # a worker spinning on it would say so again many times meanwhile
        said = [line for line in worker_log.read_text().splitlines() if name in line]
        assert len(said) == 1
        assert "--import-path" in said[0]
        assert handle.status == "running"
        workers.start("--import-path", str(second))
        assert handle.wait(timeout=60) == 42


class TestStackWithWorkers:
    def test_workers_on_a_sqlite_store_is_refused(self, tmp_path: Path) -> None:
        """`stack create --workers` on a SQLite store exits 1 with one line naming the fix."""
        done = subprocess.run(  # noqa: PLW1510  (the exit code is asserted)
            kitaru_command(
                "stack", "create", "solo", "--store", f"sqlite:///{tmp_path}/j.db", "--workers"
            ),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1
        assert "PostgreSQL" in done.stderr
        assert "Traceback" not in done.stderr

    def test_worker_on_a_sqlite_store_is_refused(self, tmp_path: Path) -> None:
        """`kitaru worker` on a SQLite store exits 1 saying it needs PostgreSQL."""
        done = subprocess.run(  # noqa: PLW1510  (the exit code is asserted)
            kitaru_command("worker", "--store", f"sqlite:///{tmp_path}/j.db"),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert "PostgreSQL" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.fixture
def queue(pg_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(pg_url)
    yield opened
    opened.close()


def _state(store: PostgresStore, exec_id: str) -> str:
    with store._reading("test") as conn:
        row = conn.execute(
            f"SELECT state FROM {store._s}.run_queue WHERE exec_id = %s", (exec_id,)
        ).fetchone()
    return "gone" if row is None else str(row[0])


class TestClaiming:
    def test_claims_follow_priority_then_enqueue_order_within_the_limit(
        self, queue: PostgresStore
    ) -> None:
        """Higher priority first, then oldest; a worker never holds more than its limit."""
        queue.register_worker("w1", "h", 1, ["default"], 2)
        queue.enqueue("old")
        queue.enqueue("newer")
        queue.enqueue("urgent", priority=5)
        queue.enqueue("elsewhere", queue="other")
        assert queue.claim_queued("w1", ["default"], 2, 30.0) == ["urgent", "old"]
        assert queue.claim_queued("w1", ["default"], 2, 30.0) == []
        queue.dequeue("urgent")
        assert queue.claim_queued("w1", ["default"], 2, 30.0) == ["newer"]

    def test_a_live_workers_claims_are_not_taken_a_dead_ones_are(
        self, queue: PostgresStore, pg_url: str
    ) -> None:
        """Entries of a worker whose session ended are claimable; a live worker's are not."""
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\n"
                "from kitaru.journal.postgres import PostgresStore\n"
                "s = PostgresStore(sys.argv[1])\n"
                "s.register_worker('gone', 'h', 2, ['default'], 1)\n"
                "s.enqueue('e1')\n"
                "assert s.claim_queued('gone', ['default'], 1, 30.0) == ['e1']\n"
                "print('claimed', flush=True)\n"
                "time.sleep(600)\n",
                pg_url,
            ],
            env=child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "claimed"
            queue.register_worker("w2", "h", 3, ["default"], 1)
            assert queue.claim_queued("w2", ["default"], 1, 30.0) == []
            assert [w.alive for w in queue.list_workers(30.0) if w.id == "gone"] == [True]
        finally:
            child.kill()
            child.wait(30)
        _wait_until(
            lambda: queue.claim_queued("w2", ["default"], 1, 30.0) == ["e1"],
            timeout=10,
            what="the dead worker's entry",
        )
        assert [w.alive for w in queue.list_workers(30.0) if w.id == "gone"] == [False]


class TestParking:
    def test_input_posted_while_the_worker_still_holds_it_is_seen_when_it_parks(
        self, queue: PostgresStore
    ) -> None:
        """Mail that arrives before the park makes the entry runnable, not parked."""
        queue.register_worker("w1", "h", 1, ["default"], 1)
        queue.enqueue("e1")
        assert queue.claim_queued("w1", ["default"], 1, 30.0) == ["e1"]
        queue.post_wait_input("e1", "answer", b"1", aborted=False)
        queue.park("e1", "w1")
        assert _state(queue, "e1") == "queued"

    def test_input_or_cancel_posted_after_the_park_makes_it_runnable(
        self, queue: PostgresStore
    ) -> None:
        """A parked entry stays parked until input or a cancel is posted for it."""
        queue.register_worker("w1", "h", 1, ["default"], 1)
        for exec_id in ("e1", "e2"):
            queue.enqueue(exec_id)
        assert queue.claim_queued("w1", ["default"], 1, 30.0) == ["e1"]
        queue.park("e1", "w1")
        assert _state(queue, "e1") == "parked"
        assert queue.claim_queued("w1", ["default"], 1, 30.0) == ["e2"]
        queue.park("e2", "w1")
        queue.post_wait_input("e1", "answer", b"1", aborted=False)
        queue.request_cancel("e2", "stop")
        assert (_state(queue, "e1"), _state(queue, "e2")) == ("queued", "queued")

"""Cancelling executions: at once when no process runs them, else at the next durable call.

In-process flows pin the rules; ``tests/mgmt_flows/ticker.py`` and ``approval.py`` run
in their own processes to be cancelled by the installed ``kitaru`` command and by the
client in this process, while running, while waiting, and after being killed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import (
    REPO,
    TIMEOUT,
    assert_clean_error,
    background,
    child_env,
    journal_rows,
    kitaru,
    side_effects,
    started,
)

import kitaru as kt
from kitaru import (
    KitaruExecutionError,
    KitaruStateError,
    KitaruUserCodeError,
    checkpoint,
    flow,
)
from kitaru._flow_handle import FlowHandle
from kitaru._stores import open_store
from kitaru.cli import main
from kitaru.client import KitaruClient

pytestmark = pytest.mark.usefixtures("cancel_leftover_executions")

CONTROL_INTERVAL = 0.5
"""How often a running execution looks for a cancel request, at most."""

_ticks: Counter[str] = Counter()
_gate = threading.Event()
_inside = threading.Event()


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    _ticks.clear()
    _gate.clear()
    _inside.clear()
    _service_up.clear()
    yield
    _gate.set()  # never leave a flow thread blocked


@checkpoint
def tick(i: int) -> int:
    _ticks["tick"] += 1
    time.sleep(0.01)
    return i


@flow
def ticking(n: int) -> int:
    return sum(tick(i).load() for i in range(n))


@checkpoint
def long_step() -> str:
    _inside.set()
    assert _gate.wait(TIMEOUT), "the test never opened the gate"
    return "done"


@checkpoint
def after_long_step(value: str) -> str:
    _ticks["after"] += 1
    return value + "!"


@flow
def one_long_step() -> str:
    return after_long_step(long_step())  # type: ignore[return-value]


@flow
def waits(timeout: float) -> Any:
    return kt.wait(schema=bool, name="go", timeout=timeout)


@checkpoint
def explode() -> None:
    raise ValueError("boom")


@flow
def failing() -> None:
    explode()


_service_up = threading.Event()


@checkpoint
def last_call() -> str:
    _inside.set()
    assert _gate.wait(TIMEOUT), "the test never opened the gate"
    if not _service_up.is_set():
        raise ConnectionError("service unavailable")
    return "done"


@flow
def fails_at_its_last_call() -> str:
    return last_call().load()


def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


class TestCancelARunningExecutionHere:
    def test_the_running_flow_stops_at_its_next_durable_call(self) -> None:
        """A cancel request stops the flow body within the control interval; it ends cancelled."""
        handle = ticking.run(10_000, background=True)
        until(lambda: _ticks["tick"] >= 3, "three ticks")

        requested = time.monotonic()
        execution = KitaruClient().executions.cancel(handle.exec_id)
        # The owner is this process: cancel() waits for its run to stop, so that a
        # replay may follow at once (Kitaru's documented order).
        assert execution.status == "cancelled"

        with pytest.raises(KitaruExecutionError) as caught:
            handle.wait(timeout=TIMEOUT)
        assert time.monotonic() - requested < CONTROL_INTERVAL + 2.5
        assert caught.value.status == "cancelled"
        assert caught.value.exec_id == handle.exec_id
        assert "was cancelled (cancelled on request)" in str(caught.value)
        stopped_at = _ticks["tick"]
        time.sleep(0.1)
        assert _ticks["tick"] == stopped_at < 10_000
        final = KitaruClient().executions.get(handle.exec_id)
        assert final.status == "cancelled"
        assert final.ended_at is not None
        assert all(call.status == "completed" for call in final.checkpoints)
        assert len(final.checkpoints) == stopped_at

    def test_every_handle_reports_the_cancellation(self) -> None:
        """``get()`` and a fresh handle raise KitaruExecutionError with status cancelled."""
        handle = ticking.run(10_000, background=True)
        until(lambda: _ticks["tick"] >= 1, "a tick")
        KitaruClient().executions.cancel(handle.exec_id)
        with pytest.raises(KitaruExecutionError):
            handle.wait(timeout=TIMEOUT)
        for raising in (
            handle.get,
            FlowHandle(handle.exec_id).wait,
            FlowHandle(handle.exec_id).get,
        ):
            with pytest.raises(KitaruExecutionError) as caught:
                raising()
            assert caught.value.status == "cancelled"
        assert FlowHandle(handle.exec_id).status == "cancelled"

    @pytest.mark.usefixtures("short_cancel_wait")
    def test_a_checkpoint_in_progress_finishes_then_the_flow_stops(self) -> None:
        """The running checkpoint is not interrupted; the call after it is never made."""
        handle = one_long_step.run(background=True)
        assert _inside.wait(TIMEOUT)
        KitaruClient().executions.cancel(handle.exec_id)
        time.sleep(CONTROL_INTERVAL + 0.2)
        assert handle.status == "running"
        _gate.set()
        with pytest.raises(KitaruExecutionError):
            handle.wait(timeout=TIMEOUT)
        calls = {
            c.invocation_id: c.status
            for c in KitaruClient().executions.get(handle.exec_id).checkpoints
        }
        assert calls == {"long_step": "completed"}
        assert _ticks["after"] == 0

    def test_a_live_wait_is_cancelled(self) -> None:
        """An execution waiting in this process for input is cancelled within the interval."""
        handle = waits.run(TIMEOUT)
        until(lambda: handle.status == "waiting", "the wait")
        requested = time.monotonic()
        KitaruClient().executions.cancel(handle.exec_id)
        with pytest.raises(KitaruExecutionError) as caught:
            handle.wait(timeout=TIMEOUT)
        assert caught.value.status == "cancelled"
        assert time.monotonic() - requested < CONTROL_INTERVAL + 2.5
        assert KitaruClient().executions.get(handle.exec_id).pending_wait is None


class TestCancelWithNoLiveProcess:
    def test_a_parked_wait_is_cancelled_at_once(self) -> None:
        """A waiting execution that no process holds is cancelled by the request itself."""
        handle = waits.run(0)
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        execution = KitaruClient().executions.cancel(handle.exec_id)
        assert execution.status == "cancelled"
        assert execution.pending_wait is None
        with pytest.raises(KitaruExecutionError) as caught:
            handle.wait(timeout=TIMEOUT)
        assert caught.value.status == "cancelled"

    def test_a_cancelled_execution_cannot_be_resumed_or_retried(self) -> None:
        """Cancelled is final: resume and retry are refused, saying why."""
        handle = waits.run(0)
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        KitaruClient().executions.cancel(handle.exec_id)
        before = journal_rows(handle.exec_id)
        with pytest.raises(KitaruStateError, match="cannot be resumed: it was cancelled"):
            KitaruClient().executions.resume(handle.exec_id)
        with pytest.raises(KitaruStateError, match="cannot be retried: it was cancelled"):
            KitaruClient().executions.retry(handle.exec_id)
        assert journal_rows(handle.exec_id) == before

    def test_the_command_says_it_cancelled(self) -> None:
        """``kitaru executions cancel`` on a parked execution prints that it is cancelled."""
        handle = waits.run(0)
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        result = cli("executions", "cancel", handle.exec_id)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == f"Cancelled {handle.exec_id}."
        data = json.loads(cli("executions", "get", handle.exec_id, "-o", "json").stdout)
        assert data["status"] == "cancelled"
        assert data["ended_at"] is not None


class TestCancelOfAFinishedExecution:
    @pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
    def test_it_is_refused_and_nothing_is_recorded(self, status: str) -> None:
        """Cancelling a finished execution raises KitaruStateError and appends nothing."""
        exec_id = finished(status)
        before = journal_rows(exec_id)
        with pytest.raises(KitaruStateError) as caught:
            KitaruClient().executions.cancel(exec_id)
        assert f"already {status}; there is nothing to cancel" in str(caught.value)
        assert (caught.value.exec_id, caught.value.status) == (exec_id, status)
        assert journal_rows(exec_id) == before

    @pytest.mark.parametrize("status", ["completed", "failed"])
    def test_the_command_exits_1(self, status: str) -> None:
        """The command prints one error line and exits 1."""
        exec_id = finished(status)
        before = journal_rows(exec_id)
        result = cli("executions", "cancel", exec_id)
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            f"Error: Execution {exec_id} already {status}; there is nothing to cancel."
        )
        assert journal_rows(exec_id) == before

    def test_an_unknown_execution(self) -> None:
        """Cancelling an id the journal does not hold says how to find executions."""
        with pytest.raises(KitaruStateError, match="kitaru executions list"):
            KitaruClient().executions.cancel("no-such-execution")
        result = cli("executions", "cancel", "no-such-execution")
        assert result.exit_code == 1
        assert "No execution no-such-execution" in result.stderr


@pytest.fixture
def short_cancel_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """cancel() waits at most 0.5 s for a run of this process: these tests hold the
    running call until after cancel() returns, so the full wait would only add time."""
    monkeypatch.setattr("kitaru.client._CANCEL_HERE_SECONDS", 0.5)


@pytest.mark.usefixtures("short_cancel_wait")
class TestACancelEndsWithItsExecution:
    def _fail_with_a_cancel_pending(self) -> str:
        handle = fails_at_its_last_call.run(background=True)
        assert _inside.wait(TIMEOUT)
        assert KitaruClient().executions.cancel(handle.exec_id).status == "running"
        _gate.set()
        with pytest.raises(KitaruUserCodeError):
            handle.wait(timeout=TIMEOUT)
        return handle.exec_id

    def test_a_retry_after_fixing_the_cause_completes(self) -> None:
        """A cancel requested during a last call that then failed does not cancel the retry."""
        exec_id = self._fail_with_a_cancel_pending()
        _service_up.set()
        assert KitaruClient().executions.retry(exec_id).wait(timeout=TIMEOUT) == "done"
        assert KitaruClient().executions.get(exec_id).status == "completed"

    def test_the_request_is_cleared_when_the_execution_fails(self) -> None:
        """Once the execution has failed, no cancel request is left stored for it."""
        exec_id = self._fail_with_a_cancel_pending()
        assert open_store().cancel_requested(exec_id) is None

    def test_a_request_left_over_from_the_failed_run_is_ignored_by_retry(self) -> None:
        """A request the failed run left behind (its process died first) spares the retry."""
        handle = failing.run()
        with pytest.raises(KitaruUserCodeError):
            handle.wait(timeout=TIMEOUT)
        open_store().request_cancel(handle.exec_id, "cancelled on request")
        with pytest.raises(KitaruUserCodeError, match="boom"):
            KitaruClient().executions.retry(handle.exec_id).wait(timeout=TIMEOUT)
        assert KitaruClient().executions.get(handle.exec_id).status == "failed"
        assert open_store().cancel_requested(handle.exec_id) is None

    def test_the_request_is_cleared_when_the_execution_completes(self) -> None:
        """A cancel that arrives too late to stop anything is not left behind."""
        _service_up.set()
        handle = fails_at_its_last_call.run(background=True)
        assert _inside.wait(TIMEOUT)
        KitaruClient().executions.cancel(handle.exec_id)
        _gate.set()
        assert handle.wait(timeout=TIMEOUT) == "done"
        assert open_store().cancel_requested(handle.exec_id) is None


def finished(status: str) -> str:
    if status == "completed":
        handle = ticking.run(1)
        handle.wait(timeout=TIMEOUT)
    elif status == "failed":
        handle = failing.run()
        with pytest.raises(KitaruUserCodeError):
            handle.wait(timeout=TIMEOUT)
    else:
        handle = waits.run(0)
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        KitaruClient().executions.cancel(handle.exec_id)
    return handle.exec_id


# -- in another process ---------------------------------------------------------------


@pytest.fixture
def side(tmp_path: Path) -> Path:
    return tmp_path / "side.txt"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def flow_process(module: str, *args: str, side: Path, **env: str) -> Any:
    return background(
        [sys.executable, "-m", f"tests.mgmt_flows.{module}", *args],
        cwd=REPO,
        env=child_env(MGMT_SIDE=str(side), **env),
    )


def wait_for_ticks(side: Path, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while sum(side_effects(side).values()) < count:
        if proc.poll() is not None:
            pytest.fail(f"the flow process ended ({proc.returncode}) too early")
        assert time.monotonic() < deadline, "the flow made no progress"
        time.sleep(0.02)


def ended(proc: subprocess.Popen[str]) -> Any:
    out, err = proc.communicate(timeout=TIMEOUT)
    assert "Traceback" not in err, err
    return json.loads(out.splitlines()[-1])


class TestCancelAnExecutionOfAnotherProcess:
    @pytest.mark.slow
    def test_the_command_stops_a_flow_running_in_another_process(
        self, side: Path, elsewhere: Path
    ) -> None:
        """``kitaru executions cancel`` asks the owner to stop; it ends cancelled and exits."""
        with flow_process("ticker", "10000", side=side) as proc:
            exec_id = started(proc)
            wait_for_ticks(side, proc, 3)
            result = kitaru("executions", "cancel", exec_id, cwd=elsewhere)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == (
                f"Cancel requested: {exec_id} stops at its next durable call."
            )
            requested = time.monotonic()
            outcome = ended(proc)
            assert time.monotonic() - requested < CONTROL_INTERVAL + 5
            assert proc.returncode == 1
        assert outcome["status"] == "cancelled"
        execution = KitaruClient().executions.get(exec_id)
        assert execution.status == "cancelled"
        ticks = sum(side_effects(side).values())
        assert ticks < 10_000
        assert len(execution.checkpoints) in (ticks, ticks - 1)

    @pytest.mark.slow
    def test_the_client_stops_a_flow_running_in_another_process(self, side: Path) -> None:
        """``KitaruClient().executions.cancel`` here stops a flow running in a child process."""
        with flow_process("ticker", "10000", side=side) as proc:
            exec_id = started(proc)
            wait_for_ticks(side, proc, 1)
            assert KitaruClient().executions.cancel(exec_id).status == "running"
            assert ended(proc)["status"] == "cancelled"
        with pytest.raises(KitaruExecutionError) as caught:
            FlowHandle(exec_id).wait(timeout=TIMEOUT)
        assert caught.value.status == "cancelled"

    @pytest.mark.slow
    def test_a_flow_waiting_in_another_process_is_cancelled(
        self, side: Path, elsewhere: Path
    ) -> None:
        """A flow process waiting for input stops cancelled; the step after the wait never runs."""
        with flow_process("approval", side=side) as proc:
            exec_id = started(proc)
            until(lambda: KitaruClient().executions.get(exec_id).status == "waiting", "the wait")
            result = kitaru("executions", "cancel", exec_id, "-o", "json", cwd=elsewhere)
            assert result.returncode == 0, result.stderr
            assert ended(proc)["status"] == "cancelled"
        assert KitaruClient().executions.get(exec_id).status == "cancelled"
        assert side_effects(side) == Counter({"prepare": 1})

    @pytest.mark.slow
    def test_a_killed_flow_is_cancelled_at_once(self, side: Path, elsewhere: Path) -> None:
        """An execution whose process was killed has no live owner: it is cancelled at once."""
        with flow_process("ticker", "10000", side=side) as proc:
            exec_id = started(proc)
            wait_for_ticks(side, proc, 2)
            proc.kill()
            proc.wait(timeout=TIMEOUT)
        assert KitaruClient().executions.get(exec_id).interrupted
        result = kitaru("executions", "cancel", exec_id, cwd=elsewhere)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"Cancelled {exec_id}."
        assert KitaruClient().executions.get(exec_id).status == "cancelled"
        resumed = kitaru("executions", "resume", exec_id, cwd=elsewhere)
        assert_clean_error(resumed, "cannot be resumed: it was cancelled")

    @pytest.mark.slow
    def test_cancel_of_a_finished_execution_from_the_command(
        self, side: Path, elsewhere: Path
    ) -> None:
        """The installed command refuses to cancel a completed execution: exit 1, no traceback."""
        with flow_process("ticker", "2", side=side) as proc:
            exec_id = started(proc)
            assert ended(proc)["status"] == "completed"
        before = journal_rows(exec_id)
        result = kitaru("executions", "cancel", exec_id, cwd=elsewhere)
        assert_clean_error(result, "already completed; there is nothing to cancel")
        assert journal_rows(exec_id) == before

"""A retried execution's completed checkpoints return their recorded outputs at once,
and still only when the call is the recorded one made with the recorded arguments.

The flows run in this process; a planned failure at the last call makes the execution
retryable, and the plan is changed before the retry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import TIMEOUT, reset_plan

from kitaru import KitaruDivergenceError, KitaruUserCodeError, checkpoint, flow
from kitaru._stores import open_store
from kitaru.client import KitaruClient
from kitaru.journal.read_model import ExecutionStatus
from kitaru.runtime import context
from kitaru.runtime.runner import resume_execution


@dataclass
class Plan:
    """What the flows below do; a test changes it between a run and its retry."""

    fail: bool = True
    swap: bool = False
    """Pass the last ``add_one`` the output of the first call instead of the previous one."""
    offset: int = 0
    """Added to the plain argument of ``scaled``."""
    cancel: tuple[str, int] | None = None
    """(execution, i): the body of ``chained`` asks to cancel that execution before its
    ``i``-th ``add_one``, as `kitaru executions cancel` from elsewhere would."""
    runs: list[str] = field(default_factory=list)


PLAN = Plan()


@pytest.fixture
def plan() -> Plan:
    return reset_plan(PLAN)


@checkpoint
def add_one(value: int) -> int:
    PLAN.runs.append(f"add_one({value})")
    return value + 1


@checkpoint
def scaled(value: int, factor: int) -> int:
    PLAN.runs.append(f"scaled({value}, {factor})")
    return value * factor


@checkpoint
def finish(value: int) -> int:
    PLAN.runs.append(f"finish({value})")
    if PLAN.fail:
        raise RuntimeError("planned failure")
    return value


@flow
def chained(n: int) -> Any:
    first = value = add_one(0)
    for i in range(1, n):
        if PLAN.cancel is not None and PLAN.cancel[1] == i:
            open_store().request_cancel(PLAN.cancel[0], "stop now")
        value = add_one(first if PLAN.swap and i == n - 1 else value)
    return finish(value)


@flow
def with_plain_arguments() -> Any:
    value = scaled(2, 3 + PLAN.offset)
    return finish(scaled(value, 2))


def _failed_then_retried(flow_run: Any) -> Any:
    with pytest.raises(KitaruUserCodeError):
        flow_run.wait(timeout=TIMEOUT)
    PLAN.fail = False
    PLAN.runs.clear()
    return KitaruClient().executions.retry(flow_run.exec_id, background=True)


class TestRecordedCallsReplay:
    def test_a_retry_runs_only_the_failed_call(self, plan: Plan) -> None:
        """Every completed call returns its recorded output; only the failed one runs."""
        retried = _failed_then_retried(chained.run(5))
        assert retried.wait(timeout=TIMEOUT) == 5
        assert plan.runs == ["finish(5)"]

    def test_calls_of_one_checkpoint_replay_to_their_own_records(self, plan: Plan) -> None:
        """``add_one``, ``add_one_2``, ... each get the output recorded under their identity."""
        retried = _failed_then_retried(chained.run(3))
        assert retried.wait(timeout=TIMEOUT) == 3
        execution = KitaruClient().executions.get(retried.exec_id)
        identities = [call.invocation_id for call in execution.checkpoints]
        assert identities[:3] == ["add_one", "add_one_2", "add_one_3"]

    def test_equal_plain_arguments_replay(self, plan: Plan) -> None:
        """Calls given plain values are checked by their digests and replay when equal."""
        retried = _failed_then_retried(with_plain_arguments.run())
        assert retried.wait(timeout=TIMEOUT) == 12
        assert plan.runs == ["finish(12)"]


def _retried_after_failing(first: Any, plan: Plan, **changes: Any) -> KitaruDivergenceError:
    """Let ``first`` fail, change the flow body's calls by ``changes``, retry: the
    divergence the retry ends with (nothing may have run)."""
    with pytest.raises(KitaruUserCodeError):
        first.wait(timeout=TIMEOUT)
    plan.fail = False
    for name, value in changes.items():
        setattr(plan, name, value)
    plan.runs.clear()
    retried = KitaruClient().executions.retry(first.exec_id, background=True)
    with pytest.raises(KitaruDivergenceError) as caught:
        retried.wait(timeout=TIMEOUT)
    return caught.value


class TestDriftStillDiverges:
    def test_another_call_s_output_passed_in_diverges(self, plan: Plan) -> None:
        """A call given the output of another call than recorded is a divergence naming
        the argument, and its recorded output is not returned."""
        first = chained.run(3)
        error = _retried_after_failing(first, plan, swap=True)
        assert (error.position, error.argument) == (2, "value")
        assert "'add_one_2'" in (error.recorded_argument or "")
        assert "'add_one'" in (error.current_argument or "")
        assert plan.runs == []

    def test_a_changed_plain_argument_diverges(self, plan: Plan) -> None:
        """A completed call made with another plain value diverges, naming both values."""
        first = with_plain_arguments.run()
        error = _retried_after_failing(first, plan, offset=1)
        assert (error.position, error.argument) == (0, "factor")
        assert (error.recorded_argument, error.current_argument) == ("3", "4")
        assert plan.runs == []
        status = KitaruClient().executions.get(first.exec_id).status
        assert status is ExecutionStatus.FAILED


def _retry_cancelled_from(position: int, plan: Plan) -> tuple[ExecutionStatus, int]:
    """Retry a failed ``chained(300)`` with a cancel requested once the body reaches
    ``position`` (0: before the retry starts its body): the status it ends with and
    how far the body had got."""
    first = chained.run(300)
    with pytest.raises(KitaruUserCodeError):
        first.wait(timeout=TIMEOUT)
    plan.fail = False
    plan.runs.clear()
    run = resume_execution(first.exec_id, mode="retry", background=False)
    if position == 0:
        open_store().request_cancel(first.exec_id, "stop now")
    else:
        plan.cancel = (first.exec_id, position)
    run.drive()
    return KitaruClient().executions.get(first.exec_id).status, run.ctx.next_position


class TestAReplayStillLooksForACancel:
    """Recorded calls replay in microseconds, so they look for a pending cancel by
    count as well as by the clock (at most every 0.5 s): the first one does, then
    every 64th once the interval has passed."""

    def test_a_cancel_pending_when_the_replay_starts_stops_it_at_once(self, plan: Plan) -> None:
        status, reached = _retry_cancelled_from(0, plan)
        assert status is ExecutionStatus.CANCELLED
        assert reached == 0
        assert plan.runs == []

    def test_a_cancel_during_the_replay_stops_it_within_64_calls(
        self, plan: Plan, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(context, "_CONTROL_INTERVAL", 0.0)
        status, reached = _retry_cancelled_from(100, plan)
        assert status is ExecutionStatus.CANCELLED
        assert 100 <= reached <= 100 + 64
        assert plan.runs == []

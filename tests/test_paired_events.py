"""A call's start and completion appended together are one event
(``CallStartedAndCompleted``): everything that reads a journal sees what the two
events it stands for say."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from test_call_index import journals

import kitaru
from kitaru._store_check import check_store
from kitaru._stores import open_store
from kitaru.client import KitaruClient
from kitaru.journal.events import (
    ArgumentDigest,
    CallCompleted,
    CallFailed,
    CallStarted,
    CallStartedAndCompleted,
    ErrorInfo,
    Event,
    ExecutionCompleted,
    ExecutionStarted,
    FlowRef,
    LogEntry,
    LogsCaptured,
    ValueRef,
    decode_events,
    encode_event,
    pair_starts,
)
from kitaru.journal.read_model import index_calls, totals_change
from kitaru.replay.state import ExecutionState, JournalShapeError, fold
from kitaru.runtime.writer import FLUSH_AFTER


def _start(identity: str = "step", position: int = 0, attempt: int = 1) -> CallStarted:
    return CallStarted(
        position=position,
        identity=identity,
        kind="checkpoint",
        name="step",
        call_id=f"c-{identity}",
        attempt=attempt,
        inputs_from=("earlier",),
        target="flows:step",
        arguments=(ArgumentDigest("x", "d1", "1"),),
    )


def _completion(identity: str = "step", position: int = 0, attempt: int = 1) -> CallCompleted:
    return CallCompleted(
        position=position,
        identity=identity,
        call_id=f"c-{identity}",
        output=ValueRef(inline=b"\x01"),
        attempt=attempt,
        duration_ms=2.5,
        cache_key="key-1",
    )


class TestPairing:
    def test_a_start_right_before_its_completion_becomes_one_event(self) -> None:
        [(both, at)] = pair_starts([(_start(), 10.0), (_completion(), 11.0)])
        assert isinstance(both, CallStartedAndCompleted)
        assert at == 11.0
        assert both.started_at == 10.0
        assert both.started == _start()
        assert both.completed == _completion()

    def test_the_pair_has_every_field_of_both_events(self) -> None:
        """A field added to either event and not to the pair would be dropped from
        every paired call: the pair's fields are exactly both events' and the start time."""
        both = set(CallStarted.__struct_fields__) | set(CallCompleted.__struct_fields__)
        assert set(CallStartedAndCompleted.__struct_fields__) == both | {"started_at"}

    def test_no_field_set_away_from_its_default_is_lost(self) -> None:
        start = CallStarted(
            position=3,
            identity="step_4",
            kind="llm",
            name="step",
            call_id="c9",
            attempt=2,
            checkpoint_type="tool",
            inputs_from=("a", "b"),
            target="m:step",
            arguments=(ArgumentDigest("x", None, "<socket>", "socket"),),
        )
        completion = CallCompleted(
            position=3,
            identity="step_4",
            call_id="c9",
            output=ValueRef(hash="h1"),
            attempt=2,
            duration_ms=7.5,
            reused_from="e0",
            overridden=True,
            cache_key="k",
            cached_from="e1",
        )
        [(both, _)] = pair_starts([(start, 1.0), (completion, 2.0)])
        assert isinstance(both, CallStartedAndCompleted)
        assert (both.started, both.completed) == (start, completion)
        assert decode_events([encode_event(both)]) == [both]

    def test_it_round_trips_through_the_journal_encoding(self) -> None:
        [(both, _)] = pair_starts([(_start(), 10.0), (_completion(), 11.0)])
        assert decode_events([encode_event(both)]) == [both]

    @pytest.mark.parametrize(
        "completion",
        [
            _completion(identity="other"),
            _completion(position=1),
            _completion(attempt=2),
            CallCompleted(position=0, identity="step", call_id="else", output=ValueRef()),
        ],
        ids=["identity", "position", "attempt", "call id"],
    )
    def test_a_completion_of_something_else_leaves_both(self, completion: CallCompleted) -> None:
        batch: list[tuple[Event, float]] = [(_start(), 1.0), (completion, 2.0)]
        assert pair_starts(batch) == batch

    def test_only_neighbours_pair(self) -> None:
        """A log line of the call between its start and completion keeps the two apart,
        so the line still follows the start it belongs to; a parallel call's start
        before a completion does not stop that completion pairing with its own start."""
        logs = LogsCaptured(
            "step", 1, (LogEntry(at=1.0, level="INFO", source="stdout", message="hi"),)
        )
        apart: list[tuple[Event, float]] = [(_start(), 1.0), (logs, 2.0), (_completion(), 3.0)]
        assert pair_starts(apart) == apart
        parallel: list[tuple[Event, float]] = [
            (_start("a", 0), 1.0),
            (_start("b", 1), 2.0),
            (_completion("b", 1), 3.0),
            (_completion("a", 0), 4.0),
        ]
        paired = pair_starts(parallel)
        assert [type(event) for event, _ in paired] == [
            CallStarted,
            CallStartedAndCompleted,
            CallCompleted,
        ]


def _comparable(state: ExecutionState) -> dict[str, Any]:
    """What a state says, leaving out seqs (pairing renumbers the events)."""
    calls = {
        identity: (
            msgspec.structs.replace(call, artifacts=()),
            [event for _, event in call.artifacts],
        )
        for identity, call in state.calls.items()
    }
    return {
        "status": state.status,
        "ended_at": state.ended_at,
        "calls": calls,
        "positions": {p: c.identity for p, c in state.by_position.items()},
        "result": state.result,
        "failure": state.failure,
        "cancelled": state.cancelled,
        "metadata": state.metadata,
        "llm_calls": state.llm_calls,
        "resumes": state.resumes,
        "pending_waits": state.pending_waits,
        "artifacts": [event for _, event in state.artifacts],
        "retry_epoch": state.retry_epoch,
        "body_retries": state.body_retries,
    }


class TestEverythingReadsThePairAsTheTwoEvents:
    @settings(max_examples=150, deadline=None)
    @given(events=journals())
    def test_fold_index_and_totals_agree(self, events: list[Event]) -> None:
        """A generated journal folds, indexes its calls and counts its totals the same
        with each neighbouring start and completion written as one event."""
        timed = [(event, 1000.0 + i) for i, event in enumerate(events)]
        paired = pair_starts(timed)
        two = fold("e", [(seq, at, event) for seq, (event, at) in enumerate(timed, 1)])
        one = fold("e", [(seq, at, event) for seq, (event, at) in enumerate(paired, 1)])
        assert _comparable(one) == _comparable(two)

        def spans(batch: list[tuple[Event, float]]) -> dict[str, tuple[int, float | None]]:
            indexed = index_calls((seq, at, event) for seq, (event, at) in enumerate(batch, 1))
            return {i: (span.position, span.ended_at) for i, span in indexed.items()}

        assert spans(paired) == spans(timed)

        def counted(batch: list[tuple[Event, float]]) -> set[str | None]:
            changes = (totals_change(event) for event, _ in batch)
            return {change.call for change in changes if change is not None}

        assert counted(paired) == counted(timed)


@kitaru.checkpoint
def quick(i: int) -> int:
    return i + 1


@kitaru.checkpoint
def lingering(i: int) -> int:
    time.sleep(FLUSH_AFTER * 4)
    return i + 1


@kitaru.flow
def mixed(n: int) -> int:
    value = 0
    for _ in range(n):
        value = quick(value).load()
    return lingering(value).load()


def _tags(exec_id: str) -> list[str]:
    return [type(stored.event).__name__ for stored in open_store().read_events(exec_id)]


class TestAFlowWritesOneEventPerQuickCall:
    def test_quick_calls_are_one_event_and_a_long_one_two(self) -> None:
        """The journal of a real run: each quick checkpoint is one row; a call slower
        than the flusher's interval had its start written while it ran."""
        handle = mixed.run(3)
        assert handle.wait(timeout=60) == 4
        assert _tags(handle.exec_id) == [
            "ExecutionStarted",
            "CallStartedAndCompleted",
            "CallStartedAndCompleted",
            "CallStartedAndCompleted",
            "CallStarted",
            "CallCompleted",
            "ExecutionCompleted",
        ]
        execution = KitaruClient().executions.get(handle.exec_id)
        calls = execution.checkpoints
        assert [call.name for call in calls] == ["quick", "quick", "quick", "lingering"]
        for call in calls:
            assert call.status == "completed"
            assert call.started_at is not None
            assert call.ended_at is not None
            assert call.started_at <= call.ended_at
        assert execution.call_count == 4
        assert check_store(open_store()).problems == []

    def test_the_lifecycle_shows_a_start_and_a_completion_at_their_own_times(self) -> None:
        handle = mixed.run(1)
        handle.wait(timeout=60)
        lines = KitaruClient().executions.lifecycle(handle.exec_id)
        messages = [line.message for line in lines]
        started = messages.index("checkpoint quick started (attempt 1)")
        assert messages[started + 1].startswith("quick completed")
        [both] = [
            stored
            for stored in open_store().read_events(handle.exec_id)
            if isinstance(stored.event, CallStartedAndCompleted)
        ]
        assert isinstance(both.event, CallStartedAndCompleted)
        assert lines[started].timestamp.timestamp() == pytest.approx(both.event.started_at)
        assert lines[started + 1].timestamp.timestamp() == pytest.approx(both.at)


class TestAPairedEventIsCheckedAsTheTwo:
    def _journal(self, *events: Event) -> list[tuple[int, float, Event]]:
        opening = ExecutionStarted(
            flow_name="f",
            flow=FlowRef(module="m", qualname="f"),
            inputs=ValueRef(inline=b"\x90"),
            kitaru_version="test",
        )
        return [(seq, float(seq), event) for seq, event in enumerate((opening, *events), 1)]

    def test_a_taken_position_is_refused(self) -> None:
        [(both, _)] = pair_starts([(_start("b", 0), 1.0), (_completion("b", 0), 2.0)])
        with pytest.raises(JournalShapeError, match="position 0 holds both"):
            fold("e", self._journal(_start("a", 0), both))

    def test_nothing_follows_the_end(self) -> None:
        [(both, _)] = pair_starts([(_start(), 1.0), (_completion(), 2.0)])
        ended = ExecutionCompleted(result=ValueRef(inline=b"\x01"))
        with pytest.raises(JournalShapeError, match="after the execution ended"):
            fold("e", self._journal(ended, both))

    def test_a_later_attempt_of_a_failed_call_is_added_to_it(self) -> None:
        failed = CallFailed(
            position=0,
            identity="step",
            call_id="c-step",
            error=ErrorInfo(type="ValueError", message="no"),
            final=False,
        )
        [(both, _)] = pair_starts([(_start(attempt=2), 5.0), (_completion(attempt=2), 6.0)])
        state = fold("e", self._journal(_start(), failed, both))
        call = state.calls["step"]
        assert [attempt.attempt for attempt in call.attempts] == [1, 2]
        assert call.status == "completed"
        assert call.attempts[1].started_at == 5.0

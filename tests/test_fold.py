"""The fold's fast path for a call started and completed in a row, against folding one by one."""

from __future__ import annotations

import gc

import pytest

from kitaru.journal.events import (
    ArgumentDigest,
    ArtifactSaved,
    CallCompleted,
    CallFailed,
    CallStarted,
    ErrorInfo,
    Event,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    FlowRef,
    LogEntry,
    LogsCaptured,
    MetadataLogged,
    ValueRef,
    WaitRequested,
    WaitResolved,
)
from kitaru.journal.store import StoredEvent
from kitaru.replay import JournalShapeError, fold
from kitaru.replay.state import ExecutionState

OUT = ValueRef(inline=b"\x01")
BOOM = ErrorInfo(type="ValueError", message="boom")
DIGESTS = (ArgumentDigest("x", "d1", "1"),)


def started() -> ExecutionStarted:
    return ExecutionStarted(
        flow_name="f",
        flow=FlowRef(module="m", qualname="f"),
        inputs=ValueRef(inline=b"\x90"),
        kitaru_version="test",
    )


def call(position: int, identity: str, attempt: int = 1) -> CallStarted:
    return CallStarted(
        position=position,
        identity=identity,
        kind="checkpoint",
        name=identity,
        call_id=f"c{position}",
        attempt=attempt,
        inputs_from=("a",) if position else (),
        target=f"m:{identity}",
        arguments=DIGESTS,
    )


def done(position: int, identity: str, attempt: int = 1, **fields: object) -> CallCompleted:
    return CallCompleted(
        position=position,
        identity=identity,
        call_id=f"c{position}",
        output=OUT,
        attempt=attempt,
        duration_ms=1.5,
        **fields,  # type: ignore[arg-type]
    )


def failed(position: int, identity: str, attempt: int = 1, *, final: bool = True) -> CallFailed:
    return CallFailed(
        position=position,
        identity=identity,
        call_id=f"c{position}",
        error=BOOM,
        attempt=attempt,
        final=final,
    )


def stored(*events: Event) -> list[StoredEvent]:
    return [StoredEvent(seq, 100.0 + seq, event) for seq, event in enumerate(events, 1)]


def one_by_one(events: list[StoredEvent]) -> ExecutionState:
    """The state ``apply`` builds, one event at a time (no fast path)."""
    state = ExecutionState("e")
    for event in events:
        state.apply(event)
    return state


JOURNALS = {
    "calls completed in a row": [
        started(),
        call(0, "a"),
        done(0, "a"),
        call(1, "b"),
        done(1, "b", reused_from="other", cached_from="older"),
        ExecutionCompleted(result=OUT),
    ],
    "calls started together, completed out of order": [
        started(),
        call(0, "a"),
        call(1, "b"),
        done(1, "b"),
        done(0, "a"),
    ],
    "a call that fails, is retried and completes": [
        started(),
        call(0, "a"),
        failed(0, "a", final=False),
        call(0, "a", attempt=2),
        done(0, "a", attempt=2),
    ],
    "a retried execution": [
        started(),
        call(0, "a"),
        done(0, "a"),
        call(1, "b"),
        failed(1, "b"),
        ExecutionFailed(error=BOOM, call="b"),
        ExecutionResumed(mode="retry", owner="o"),
        call(1, "b", attempt=2),
        done(1, "b", attempt=2),
    ],
    "a completion whose attempt is not the one started": [
        started(),
        call(0, "a"),
        done(0, "a", attempt=2),
    ],
    "logs, artifacts and metadata of calls": [
        started(),
        call(0, "a"),
        MetadataLogged(values={"k": {"x": 1}}, call="a"),
        MetadataLogged(values={"k": {"y": 2}}, call="a"),
        ArtifactSaved(call="a", attempt=1, name="n", kind="context", value=OUT),
        LogsCaptured(call="a", attempt=1, entries=(LogEntry(1.0, "info", "stdout", "hi"),)),
        done(0, "a"),
        call(1, "b"),
        done(1, "b"),
        LogsCaptured(call="b", attempt=1, entries=(LogEntry(2.0, "info", "stdout", "late"),)),
    ],
    "a wait among calls": [
        started(),
        call(0, "a"),
        done(0, "a"),
        WaitRequested(position=1, identity="w", name="w", call_id="c1"),
        WaitResolved(position=1, identity="w", call_id="c1", value=OUT),
        call(2, "b"),
        done(2, "b"),
    ],
    "a call started last, never completed": [
        started(),
        call(0, "a"),
        done(0, "a"),
        call(1, "b"),
    ],
}


class TestFoldMatchesFoldingOneByOne:
    """``fold`` builds the state ``apply`` builds event by event, on every shape of journal."""

    @pytest.mark.parametrize("name", list(JOURNALS))
    def test_the_same_state(self, name: str) -> None:
        """Calls, attempts, outputs, logs, metadata, times and the last seq all agree."""
        events = stored(*JOURNALS[name])
        assert fold("e", events) == one_by_one(events)

    def test_a_call_of_a_taken_position_is_still_refused(self) -> None:
        """A new identity at a position another call holds is a shape error, not a new call."""
        events = stored(started(), call(0, "a"), done(0, "a"), call(0, "b"), done(0, "b"))
        with pytest.raises(JournalShapeError, match="position 0 holds both"):
            fold("e", events)

    def test_nothing_after_the_end(self) -> None:
        """A call started after the execution completed is a shape error on the fast path too."""
        events = stored(started(), ExecutionCompleted(result=OUT), call(0, "a"), done(0, "a"))
        with pytest.raises(JournalShapeError, match="after the execution ended"):
            fold("e", events)

    def test_a_gap_in_the_seqs_is_refused(self) -> None:
        """Seqs must follow one another, whichever path the event takes."""
        events = stored(started(), call(0, "a"), done(0, "a"))
        events[2] = StoredEvent(4, 0.0, events[2].event)
        with pytest.raises(JournalShapeError, match="event seq 4 follows 2"):
            fold("e", events)

    def test_calls_share_no_lists(self) -> None:
        """A model call, log or artifact of one call never shows up on another call."""
        state = fold("e", stored(*JOURNALS["logs, artifacts and metadata of calls"]))
        a, b = state.calls["a"], state.calls["b"]
        assert (len(a.logs), len(a.artifacts), len(b.logs), len(b.artifacts)) == (1, 1, 1, 0)
        assert a.metadata == {"k": {"x": 1, "y": 2}}
        assert b.metadata == {}
        assert b.llm_calls == ()


class TestEventsAreNotTrackedByTheCollector:
    """Decoded events hold no references back, so the cycle collector never walks them."""

    def test_events_and_their_parts_are_untracked(self) -> None:
        """Events, value references and argument digests are left out of collections."""
        completed = done(0, "a")
        assert not gc.is_tracked(completed)
        assert not gc.is_tracked(completed.output)
        assert not gc.is_tracked(DIGESTS[0])
        assert not gc.is_tracked(call(0, "a"))

    def test_folded_call_records_are_untracked(self) -> None:
        """The records a resume folds for every call, and their attempts, are left out too."""
        state = fold("e", stored(*JOURNALS["a call that fails, is retried and completes"]))
        for record in state.calls.values():
            assert not gc.is_tracked(record)
            assert all(not gc.is_tracked(attempt) for attempt in record.attempts)
        completed = fold("e", stored(started(), call(0, "a"), done(0, "a"))).calls["a"]
        gc.collect()  # the collector drops a tuple of untracked attempts once it sees it
        assert not gc.is_tracked(completed.attempts)
        assert not gc.is_tracked(state.calls)


class TestAttemptsOfARecordGrow:
    """A call's attempts are a tuple until a second attempt starts; then a list of its own."""

    def test_a_second_attempt_is_added_to_the_right_call(self) -> None:
        """Attempts added to one call never show up on another, folded either way."""
        events = stored(
            started(),
            call(0, "a"),
            done(0, "a"),
            call(1, "b"),
            failed(1, "b", final=False),
            call(1, "b", attempt=2),
            done(1, "b", attempt=2),
        )
        for state in (fold("e", events), one_by_one(events)):
            a, b = state.calls["a"], state.calls["b"]
            assert [x.attempt for x in a.attempts] == [1]
            assert [x.attempt for x in b.attempts] == [1, 2]
            assert b.last_attempt == 2

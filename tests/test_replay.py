"""The pure replay logic, driven by plain lists of events (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from kitaru.journal.events import (
    CallCompleted,
    CallFailed,
    CallStarted,
    ErrorInfo,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    FlowRef,
    MetadataLogged,
    ValueRef,
)
from kitaru.journal.store import StoredEvent
from kitaru.replay import (
    Divergence,
    JournalShapeError,
    Verdict,
    fold,
    match_call,
    merge_metadata,
    unmade_calls,
    verdict,
)

OUT = ValueRef(inline=b"\x01")
BOOM = ErrorInfo(type="ValueError", message="boom")


def started() -> ExecutionStarted:
    return ExecutionStarted(
        flow_name="f",
        flow=FlowRef(module="m", qualname="f"),
        inputs=ValueRef(inline=b"\x90"),
        kitaru_version="test",
    )


def call(position: int, identity: str, kind: str = "checkpoint", attempt: int = 1) -> CallStarted:
    return CallStarted(
        position=position,
        identity=identity,
        kind=kind,
        name=identity,
        call_id=f"c{position}",
        attempt=attempt,
    )


def done(position: int, identity: str, attempt: int = 1) -> CallCompleted:
    return CallCompleted(
        position=position, identity=identity, call_id=f"c{position}", output=OUT, attempt=attempt
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


def journal(*events: Any) -> list[StoredEvent]:
    return [StoredEvent(seq, float(seq), event) for seq, event in enumerate(events, start=1)]


class TestFold:
    def test_completed_and_running_calls(self) -> None:
        """A completed call keeps its output; a started-only call is running."""
        state = fold("e", journal(started(), call(0, "a"), done(0, "a"), call(1, "b")))
        assert state.calls["a"].status == "completed"
        assert state.calls["a"].output == OUT
        assert state.calls["b"].status == "running"
        assert state.by_position[1].identity == "b"
        assert state.status == "running"

    def test_retries_are_attempts(self) -> None:
        """Every attempt of a retried call is kept, in order, with its outcome."""
        state = fold(
            "e",
            journal(
                started(),
                call(0, "a"),
                failed(0, "a", final=False),
                call(0, "a", attempt=2),
                done(0, "a", attempt=2),
            ),
        )
        record = state.calls["a"]
        assert [(a.attempt, a.status) for a in record.attempts] == [(1, "failed"), (2, "completed")]
        assert record.status == "completed"

    def test_a_completion_without_start_is_rejected(self) -> None:
        """A completion for a call that never started means the journal is malformed."""
        with pytest.raises(JournalShapeError):
            fold("e", journal(started(), done(0, "a")))

    def test_gaps_in_sequence_are_rejected(self) -> None:
        """Sequence numbers must be contiguous."""
        events = [StoredEvent(1, 1.0, started()), StoredEvent(3, 3.0, call(0, "a"))]
        with pytest.raises(JournalShapeError):
            fold("e", events)

    def test_events_before_start_are_rejected(self) -> None:
        """Nothing may precede the execution's start."""
        with pytest.raises(JournalShapeError):
            fold("e", journal(call(0, "a")))

    def test_one_position_cannot_hold_two_calls(self) -> None:
        """Two identities recorded at one position is a malformed journal."""
        with pytest.raises(JournalShapeError):
            fold("e", journal(started(), call(0, "a"), call(0, "b")))

    def test_metadata_merges_dicts_and_replaces_scalars(self) -> None:
        """Repeated log keys: dicts merge key by key, scalars are replaced."""
        state = fold(
            "e",
            journal(
                started(),
                call(0, "a"),
                MetadataLogged(values={"cost": {"in": 1}, "note": "x"}, call="a"),
                MetadataLogged(values={"cost": {"out": 2}, "note": "y"}, call="a"),
                MetadataLogged(values={"run": 1}),
            ),
        )
        assert state.calls["a"].metadata == {"cost": {"in": 1, "out": 2}, "note": "y"}
        assert state.metadata == {"run": 1}


class TestVerdict:
    def test_completed_replays_and_unrecorded_runs(self) -> None:
        """Completed calls replay; calls the journal lacks run live."""
        state = fold("e", journal(started(), call(0, "a"), done(0, "a")))
        assert verdict(state, match_call(state, 0, "a", "checkpoint")) is Verdict.REPLAY
        assert verdict(state, match_call(state, 1, "b", "checkpoint")) is Verdict.RUN

    def test_interrupted_call_runs_again(self) -> None:
        """A call that started but never finished runs again."""
        state = fold("e", journal(started(), call(0, "a")))
        assert verdict(state, match_call(state, 0, "a", "checkpoint")) is Verdict.RUN

    def test_final_failure_raises_until_a_retry(self) -> None:
        """A call that failed for good re-raises on resume, and runs again after a retry."""
        events = [started(), call(0, "a"), failed(0, "a"), ExecutionFailed(error=BOOM, call="a")]
        state = fold("e", journal(*events))
        assert verdict(state, state.calls["a"]) is Verdict.RAISE
        retried = fold("e", journal(*events, ExecutionResumed(mode="retry", owner="o")))
        assert retried.status == "running"
        assert verdict(retried, retried.calls["a"]) is Verdict.RUN

    def test_retry_budget_resets_per_retry_epoch(self) -> None:
        """Failed attempts count against retries= only within the current retry epoch."""
        state = fold(
            "e",
            journal(
                started(),
                call(0, "a"),
                failed(0, "a", final=False),
                call(0, "a", attempt=2),
                failed(0, "a", attempt=2),
                ExecutionResumed(mode="retry", owner="o"),
            ),
        )
        assert state.calls["a"].failures_in_epoch(state.retry_epoch) == 0
        assert state.calls["a"].failures_in_epoch(state.retry_epoch - 1) == 2
        assert state.calls["a"].last_attempt == 2


class TestDivergence:
    @pytest.fixture
    def state(self) -> Any:
        return fold(
            "e",
            journal(
                started(),
                call(0, "fetch"),
                done(0, "fetch"),
                call(1, "rank"),
                done(1, "rank"),
            ),
        )

    def test_renamed_call(self, state: Any) -> None:
        """A different identity at a recorded position diverges, naming both."""
        with pytest.raises(Divergence) as caught:
            match_call(state, 1, "rank_v2", "checkpoint")
        assert caught.value.position == 1
        assert caught.value.expected == "checkpoint 'rank'"
        assert caught.value.actual == "checkpoint 'rank_v2'"

    def test_added_call_before_resume_point(self, state: Any) -> None:
        """A new call inserted before recorded ones diverges at its position."""
        with pytest.raises(Divergence) as caught:
            match_call(state, 0, "validate", "checkpoint")
        assert caught.value.expected == "checkpoint 'fetch'"

    def test_reordered_calls(self, state: Any) -> None:
        """Swapping two recorded calls diverges at the first of them."""
        with pytest.raises(Divergence):
            match_call(state, 0, "rank", "checkpoint")

    def test_kind_change(self, state: Any) -> None:
        """The same identity made as another kind of call diverges."""
        with pytest.raises(Divergence) as caught:
            match_call(state, 0, "fetch", "llm")
        assert caught.value.actual == "llm 'fetch'"

    def test_recorded_identity_moved_to_a_new_position(self, state: Any) -> None:
        """A recorded identity made at an unrecorded position diverges."""
        with pytest.raises(Divergence) as caught:
            match_call(state, 2, "fetch", "checkpoint")
        assert caught.value.expected is None

    def test_removed_trailing_calls_are_reported(self, state: Any) -> None:
        """Recorded calls the code never reached are listed as unmade."""
        assert [c.identity for c in unmade_calls(state, 1)] == ["rank"]
        assert list(unmade_calls(state, 2)) == []


def test_merge_metadata_is_deep() -> None:
    """Nested dicts merge at every level."""
    target: dict[str, Any] = {"a": {"b": {"c": 1}}}
    merge_metadata(target, {"a": {"b": {"d": 2}}})
    assert target == {"a": {"b": {"c": 1, "d": 2}}}

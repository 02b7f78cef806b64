"""Fold an execution's events into its state. Pure: no I/O, testable with plain lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from kitaru.journal.events import (
    ArgumentDigest,
    ArtifactSaved,
    CallCompleted,
    CallFailed,
    CallKind,
    CallStarted,
    CallStartedAndCompleted,
    ErrorInfo,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    FlowRef,
    LlmCallRecorded,
    LogsCaptured,
    MetadataLogged,
    ValueRef,
    WaitRequested,
    WaitResolved,
)
from kitaru.journal.read_model import FINISHED_STATUSES, ExecutionStatus, status_change
from kitaru.journal.store import StoredEvent

__all__ = [
    "SUMMARY_EVENTS",
    "AttemptRecord",
    "CallRecord",
    "ExecutionState",
    "JournalShapeError",
    "fold",
    "fold_summary",
    "merge_metadata",
]


class JournalShapeError(ValueError):
    """The events do not form a valid execution (e.g. a completion with no call)."""


_T = TypeVar("_T")


# The records are Structs the cyclic garbage collector does not track (``gc=False``;
# they hold events, values and lists of each other, never a way back): a resume folds
# one per call of the journal, and as tracked objects they were traversed again and
# again by collections while the journal was read and the flow body replayed.


class AttemptRecord(msgspec.Struct, gc=False):
    attempt: int
    started_at: float | None
    ended_at: float | None = None
    status: ExecutionStatus = ExecutionStatus.RUNNING
    error: ErrorInfo | None = None
    duration_ms: float | None = None


class CallRecord(msgspec.Struct, gc=False):
    """One durable call of the flow body, with every attempt it took."""

    position: int
    identity: str
    kind: str
    name: str
    call_id: str
    checkpoint_type: str | None = None
    inputs_from: tuple[str, ...] = ()
    target: str | None = None
    """``module:QualName`` of the function called, when the journal recorded it."""
    arguments: tuple[ArgumentDigest, ...] | None = None
    """Argument digests of the latest attempt, when the journal recorded them."""
    status: ExecutionStatus = ExecutionStatus.RUNNING
    """``running`` (started, not ended), ``waiting``, ``completed`` or ``failed``."""
    attempts: Sequence[AttemptRecord] = ()
    """A tuple while the call has had one attempt (nearly every call): unlike a list,
    the collector stops tracking it once it has seen it."""
    output: ValueRef | None = None
    error: ErrorInfo | None = None
    failed_epoch: int = -1
    """Retry epoch in which the call failed for good; a later ``retry`` runs it again."""
    epoch_failures: int = 0
    """Failed attempts in the current retry epoch (what its ``retries=`` budget has used)."""
    epoch_of_failures: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    # Most calls have no model calls, logs or artifacts of their own: they hold an
    # empty tuple until the fold gives them a list (a resume builds a record for every
    # call of the journal).
    llm_calls: Sequence[LlmCallRecorded] = ()
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    logs: Sequence[LogsCaptured] = ()
    artifacts: Sequence[tuple[int, ArtifactSaved]] = ()
    """Saved artifacts with the seq of the event that saved them."""
    wait: WaitRequested | None = None
    reused_from: str | None = None
    overridden: bool = False
    cached_from: str | None = None

    def attempt(self, number: int) -> AttemptRecord:
        for record in reversed(self.attempts):
            if record.attempt == number:
                return record
        record = AttemptRecord(number, None)
        self.attempts = _grown(self.attempts, record)
        return record

    def failures_in_epoch(self, epoch: int) -> int:
        """Failed attempts that count against ``retries=`` in retry epoch ``epoch``."""
        return self.epoch_failures if self.epoch_of_failures == epoch else 0

    @property
    def last_attempt(self) -> int:
        return max((a.attempt for a in self.attempts), default=0)


@dataclass
class ExecutionState:
    """Everything the journal says about one execution, folded in order."""

    exec_id: str
    started: ExecutionStarted | None = None
    status: ExecutionStatus = ExecutionStatus.RUNNING
    started_at: float | None = None
    ended_at: float | None = None
    calls: dict[str, CallRecord] = field(default_factory=dict)
    by_position: dict[int, CallRecord] = field(default_factory=dict)
    result: ValueRef | None = None
    failure: ExecutionFailed | None = None
    cancelled: ExecutionCancelled | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    llm_calls: list[LlmCallRecorded] = field(default_factory=list)
    resumes: list[ExecutionResumed] = field(default_factory=list)
    pending_waits: dict[str, WaitRequested] = field(default_factory=dict)
    artifacts: list[tuple[int, ArtifactSaved]] = field(default_factory=list)
    retry_epoch: int = 0
    """How many times a failed execution was retried; failures of older epochs re-run."""
    body_retries: int = 0
    """Retries of the flow body (``@flow(retries=)``) since the execution started or was
    last retried by hand: what its retry budget has used, whichever process ran them."""
    last_seq: int = 0
    complete: bool = True
    """False for a summary (``fold_summary``): the calls, model calls, logs and
    artifacts were left out; everything else is as a full fold has it."""

    @property
    def flow_name(self) -> str:
        return self.started.flow_name if self.started else ""

    @property
    def flow(self) -> FlowRef | None:
        return self.started.flow if self.started else None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def apply(self, stored: tuple[int, float, Event]) -> None:
        """Fold one more event into the state."""
        seq, at, event = stored
        if seq != self.last_seq + 1:
            raise JournalShapeError(f"event seq {seq} follows {self.last_seq}")
        self._fold_one(seq, at, event)

    def _fold_one(self, seq: int, at: float, event: Event) -> None:
        self.last_seq = seq
        if self.started is None:
            if type(event) is not ExecutionStarted:
                raise JournalShapeError(f"{type(event).__name__} before the execution started")
            self.started, self.started_at = event, at
            return
        if self.status in FINISHED_STATUSES:
            self._check_still_open(event)
        # One dict lookup per event instead of a chain of isinstance checks: folding is
        # on the path of every read and every resume (events are final Structs).
        _HANDLERS[type(event)](self, event, at, seq)

    def _check_still_open(self, event: Event) -> None:
        """Nothing follows a terminal event, except a retry of a failed execution."""
        retry = isinstance(event, ExecutionResumed) and event.mode == "retry"
        if not (self.status is ExecutionStatus.FAILED and retry):
            raise JournalShapeError(
                f"{type(event).__name__} after the execution ended ({self.status})"
            )

    def _started_twice(self, event: ExecutionStarted, at: float, seq: int) -> None:
        raise JournalShapeError("execution started twice")

    def _logs(self, event: LogsCaptured, at: float, seq: int) -> None:
        call = self.calls.get(event.call)
        if call is not None:
            call.logs = _grown(call.logs, event)

    def _artifact(self, event: ArtifactSaved, at: float, seq: int) -> None:
        self.artifacts.append((seq, event))
        call = self.calls.get(event.call)
        if call is not None:
            call.artifacts = _grown(call.artifacts, (seq, event))

    def _llm_call(self, event: LlmCallRecorded, at: float, seq: int) -> None:
        self.llm_calls.append(event)
        owner = self.calls.get(event.parent if event.parent is not None else event.name)
        if owner is not None:
            owner.llm_calls = _grown(owner.llm_calls, event)

    def _metadata(self, event: MetadataLogged, at: float, seq: int) -> None:
        target = self.metadata
        if event.call is not None and event.call in self.calls:
            target = self.calls[event.call].metadata
        merge_metadata(target, event.values)

    def _move(self, event: Event, at: float) -> None:
        """Take the execution's status from the one rule the executions table uses too."""
        change = status_change(event)
        assert change is not None
        self.status = change.status
        self.ended_at = at if change.finished else None

    def _resumed(self, event: ExecutionResumed, at: float, seq: int) -> None:
        self.resumes.append(event)
        if event.mode == "retry":
            self.retry_epoch += 1
            # Retrying a failed execution by hand grants a fresh budget; a retry while
            # it runs is the runner's own retry of the flow body.
            failed = self.status is ExecutionStatus.FAILED
            self.body_retries = 0 if failed else self.body_retries + 1
        self._move(event, at)
        self.failure = None

    def _completed(self, event: ExecutionCompleted, at: float, seq: int) -> None:
        self._move(event, at)
        self.result = event.result

    def _failed(self, event: ExecutionFailed, at: float, seq: int) -> None:
        self._move(event, at)
        self.failure = event

    def _cancelled(self, event: ExecutionCancelled, at: float, seq: int) -> None:
        self._move(event, at)
        self.cancelled = event
        self.pending_waits.clear()  # a cancelled execution waits for nothing more

    def _call_started(self, event: CallStarted, at: float, seq: int = 0) -> None:
        call = self.calls.get(event.identity)
        if call is None:
            if event.position in self.by_position:
                other = self.by_position[event.position].identity
                raise JournalShapeError(
                    f"position {event.position} holds both '{other}' and '{event.identity}'"
                )
            # A call's first start (nearly every CallStarted): built with its one attempt
            # in place, without the search ``attempt()`` does for a call seen before.
            call = CallRecord(
                event.position,
                event.identity,
                event.kind,
                event.name,
                event.call_id,
                event.checkpoint_type,
                event.inputs_from,
                event.target,
                event.arguments,
                started_at=at,
                attempts=(AttemptRecord(event.attempt, at),),
            )
            self.calls[event.identity] = call
            self.by_position[event.position] = call
            return
        # The latest attempt's record wins: an interrupted or failed call may run again
        # with other arguments, and what it completes with is what a resume checks.
        if event.target is not None:
            call.target = event.target
        if event.arguments is not None:
            call.arguments = event.arguments
        attempt = call.attempt(event.attempt)
        attempt.started_at, attempt.status = at, ExecutionStatus.RUNNING
        call.status, call.ended_at = ExecutionStatus.RUNNING, None

    def _call_started_and_completed(
        self, event: CallStartedAndCompleted, at: float, seq: int
    ) -> None:
        if event.identity not in self.calls and event.position not in self.by_position:
            _add_completed(self, event, event.started_at, event, at)
            return
        # A call seen before (an attempt after a failed one): the same steps as for
        # the two events it stands for.
        self._call_started(event.started, event.started_at)
        self._call_completed(event.completed, at, seq)

    def _wait_requested(self, event: WaitRequested, at: float, seq: int) -> None:
        self._call_started(
            CallStarted(
                position=event.position,
                identity=event.identity,
                kind=CallKind.WAIT,
                name=event.name,
                call_id=event.call_id,
            ),
            at,
        )
        call = self.calls[event.identity]
        call.status, call.wait = ExecutionStatus.WAITING, event
        self.pending_waits[event.identity] = event
        self._move(event, at)

    def _wait_resolved(self, event: WaitResolved, at: float, seq: int) -> None:
        waited = self.calls.get(event.identity)
        if waited is None or waited.kind != CallKind.WAIT:
            raise JournalShapeError(f"input for '{event.identity}', which is not a wait")
        self.pending_waits.pop(event.identity, None)
        attempt = waited.attempt(1)
        attempt.ended_at = at
        if event.aborted:
            error = ErrorInfo(type="WaitAborted", message=f"wait '{event.identity}' was aborted")
            attempt.status = waited.status = ExecutionStatus.FAILED
            waited.error, waited.ended_at = error, at
        else:
            attempt.status = waited.status = ExecutionStatus.COMPLETED
            waited.output, waited.ended_at = event.value or ValueRef(), at
        # Parallel waits: the body goes on only once the last of them is answered.
        if not self.pending_waits:
            self._move(event, at)

    def _call_completed(self, event: CallCompleted, at: float, seq: int) -> None:
        call = self.calls.get(event.identity)
        if call is None:
            call = self._call_for(event.identity, event)
        attempts = call.attempts
        # Nearly always the attempt that started last: no search needed.
        attempt = attempts[-1] if attempts else None
        if attempt is None or attempt.attempt != event.attempt:
            attempt = call.attempt(event.attempt)
        attempt.status, attempt.ended_at = ExecutionStatus.COMPLETED, at
        attempt.duration_ms = event.duration_ms
        call.status, call.output, call.ended_at, call.error = (
            ExecutionStatus.COMPLETED,
            event.output,
            at,
            None,
        )
        call.reused_from, call.overridden = event.reused_from, event.overridden
        call.cached_from = event.cached_from

    def _call_failed(self, event: CallFailed, at: float, seq: int) -> None:
        call = self._call_for(event.identity, event)
        attempt = call.attempt(event.attempt)
        attempt.status, attempt.ended_at = ExecutionStatus.FAILED, at
        attempt.error, attempt.duration_ms = event.error, event.duration_ms
        if call.epoch_of_failures != self.retry_epoch:
            call.epoch_of_failures, call.epoch_failures = self.retry_epoch, 0
        call.epoch_failures += 1
        if event.final:
            call.status, call.error, call.ended_at = ExecutionStatus.FAILED, event.error, at
            call.failed_epoch = self.retry_epoch

    def _call_for(self, identity: str, event: CallCompleted | CallFailed) -> CallRecord:
        call = self.calls.get(identity)
        if call is None:
            raise JournalShapeError(f"{type(event).__name__} for '{identity}', which never started")
        return call


def _grown(items: Sequence[_T], item: _T) -> list[_T]:
    """``items`` with ``item`` appended: in place once the call has a list of its own."""
    if type(items) is list:
        items.append(item)
        return items
    return [*items, item]


_HANDLERS: dict[type, Any] = {
    ExecutionStarted: ExecutionState._started_twice,
    CallStarted: ExecutionState._call_started,
    CallCompleted: ExecutionState._call_completed,
    CallStartedAndCompleted: ExecutionState._call_started_and_completed,
    CallFailed: ExecutionState._call_failed,
    WaitRequested: ExecutionState._wait_requested,
    WaitResolved: ExecutionState._wait_resolved,
    LogsCaptured: ExecutionState._logs,
    ArtifactSaved: ExecutionState._artifact,
    LlmCallRecorded: ExecutionState._llm_call,
    MetadataLogged: ExecutionState._metadata,
    ExecutionResumed: ExecutionState._resumed,
    ExecutionCompleted: ExecutionState._completed,
    ExecutionFailed: ExecutionState._failed,
    ExecutionCancelled: ExecutionState._cancelled,
}
"""The fold step of each event type."""

_COMPLETED = ExecutionStatus.COMPLETED

_SUMMARY_TYPES = frozenset(
    {
        ExecutionStarted,
        ExecutionResumed,
        ExecutionCompleted,
        ExecutionFailed,
        ExecutionCancelled,
        WaitRequested,
        WaitResolved,
        MetadataLogged,
    }
)


def merge_metadata(target: dict[str, Any], values: dict[str, Any]) -> None:
    """Merge ``kitaru.log`` values: dicts merge key by key, everything else replaces."""
    for key, value in values.items():
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged = dict(current)
            merge_metadata(merged, value)
            target[key] = merged
        else:
            target[key] = value


SUMMARY_EVENTS: frozenset[str] = frozenset(str(cls.__struct_config__.tag) for cls in _SUMMARY_TYPES)
"""Tags of the events a summary folds: what decides an execution's status, result,
failure, pending waits and own metadata. An execution with 10,000 calls has a few."""


def fold_summary(exec_id: str, events: Iterable[StoredEvent]) -> ExecutionState:
    """Fold only the events of ``SUMMARY_EVENTS`` (in seq order, with gaps between).

    Events of other types only move ``last_seq``, so a reader given the journal's last
    event knows how far the summary goes. Metadata logged inside a call belongs to
    that call, so it is left out with the calls.
    """
    state = ExecutionState(exec_id, complete=False)
    for seq, at, event in events:
        if type(event) not in _SUMMARY_TYPES or (
            type(event) is MetadataLogged and event.call is not None
        ):
            state.last_seq = seq
            continue
        state._fold_one(seq, at, event)
    return state


def fold(exec_id: str, events: Iterable[tuple[int, float, Event]]) -> ExecutionState:
    """Fold ``events`` (``StoredEvent``s or plain ``(seq, at, event)`` tuples, in seq
    order) into the state of execution ``exec_id``."""
    state = ExecutionState(exec_id)
    iterator = iter(events)
    # The first event starts the execution; ``apply`` checks the rest of the shape.
    for stored in iterator:
        state.apply(stored)
        if state.started is not None:
            break
    # The same steps as ``apply``, inlined: a resume folds every event of the journal.
    handlers, finished = _HANDLERS, FINISHED_STATUSES
    calls, by_position = state.calls, state.by_position
    last = state.last_seq
    opened: CallStarted | None = None
    """A call's first start, not folded yet: nearly always its completion comes next."""
    opened_at = 0.0
    try:
        for seq, at, event in iterator:
            if seq != last + 1:
                raise JournalShapeError(f"event seq {seq} follows {last}")
            last = seq
            if opened is not None:
                if (
                    type(event) is CallCompleted
                    and event.identity == opened.identity
                    and event.attempt == opened.attempt
                ):
                    _add_completed(state, opened, opened_at, event, at)
                    opened = None
                    continue
                state._call_started(opened, opened_at)
                opened = None
            if state.status in finished:
                state._check_still_open(event)
            if (
                type(event) is CallStartedAndCompleted
                and event.identity not in calls
                and event.position not in by_position
            ):
                _add_completed(state, event, event.started_at, event, at)
                continue
            if (
                type(event) is CallStarted
                and event.identity not in calls
                and event.position not in by_position
            ):
                opened, opened_at = event, at
                continue
            handlers[type(event)](state, event, at, seq)
        if opened is not None:
            state._call_started(opened, opened_at)
    finally:
        state.last_seq = last
    return state


def _add_completed(
    state: ExecutionState,
    started: CallStarted | CallStartedAndCompleted,
    at: float,
    completed: CallCompleted | CallStartedAndCompleted,
    ended: float,
) -> None:
    """Fold a new call's start and its completion at once (the bulk of every journal):
    two events, or the one ``CallStartedAndCompleted`` passed as both."""
    # One positional construction, in C (a test checks that this record equals the one
    # ``_call_started`` and ``_call_completed`` build).
    call = CallRecord(
        started.position,
        started.identity,
        started.kind,
        started.name,
        started.call_id,
        started.checkpoint_type,
        started.inputs_from,
        started.target,
        started.arguments,
        _COMPLETED,
        (AttemptRecord(started.attempt, at, ended, _COMPLETED, None, completed.duration_ms),),
        completed.output,
        None,
        -1,
        0,
        0,
        at,
        ended,
        reused_from=completed.reused_from,
        overridden=completed.overridden,
        cached_from=completed.cached_from,
    )
    state.calls[started.identity] = call
    state.by_position[started.position] = call

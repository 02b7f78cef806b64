"""Fold an execution's events into its state. Pure: no I/O, testable with plain lists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kitaru.journal.events import (
    ArgumentDigest,
    ArtifactSaved,
    CallCompleted,
    CallFailed,
    CallStarted,
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
from kitaru.journal.store import StoredEvent

__all__ = [
    "AttemptRecord",
    "CallRecord",
    "ExecutionState",
    "JournalShapeError",
    "fold",
    "merge_metadata",
]


class JournalShapeError(ValueError):
    """The events do not form a valid execution (e.g. a completion with no call)."""


@dataclass
class AttemptRecord:
    attempt: int
    started_at: float | None
    ended_at: float | None = None
    status: str = "running"
    error: ErrorInfo | None = None
    duration_ms: float | None = None


@dataclass
class CallRecord:
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
    status: str = "running"
    """``running`` (started, not ended), ``completed`` or ``failed``."""
    attempts: list[AttemptRecord] = field(default_factory=list)
    output: ValueRef | None = None
    error: ErrorInfo | None = None
    failed_epoch: int = -1
    """Retry epoch in which the call failed for good; a later ``retry`` runs it again."""
    epoch_failures: int = 0
    """Failed attempts in the current retry epoch (what its ``retries=`` budget has used)."""
    epoch_of_failures: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    llm_calls: list[LlmCallRecorded] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    logs: list[LogsCaptured] = field(default_factory=list)
    artifacts: list[tuple[int, ArtifactSaved]] = field(default_factory=list)
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
        self.attempts.append(record)
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
    status: str = "running"
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

    @property
    def flow_name(self) -> str:
        return self.started.flow_name if self.started else ""

    @property
    def flow(self) -> FlowRef | None:
        return self.started.flow if self.started else None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def apply(self, stored: StoredEvent) -> None:  # noqa: PLR0912  (one branch per event type)
        """Fold one more event into the state."""
        event, at = stored.event, stored.at
        if stored.seq != self.last_seq + 1:
            raise JournalShapeError(f"event seq {stored.seq} follows {self.last_seq}")
        self.last_seq = stored.seq
        if isinstance(event, ExecutionStarted):
            if self.started is not None:
                raise JournalShapeError("execution started twice")
            self.started, self.started_at = event, at
            return
        if self.started is None:
            raise JournalShapeError(f"{type(event).__name__} before the execution started")
        self._check_still_open(event)
        if isinstance(event, CallStarted):
            self._call_started(event, at)
        elif isinstance(event, CallCompleted):
            self._call_completed(event, at)
        elif isinstance(event, CallFailed):
            self._call_failed(event, at)
        elif isinstance(event, WaitRequested | WaitResolved):
            self._wait_event(event, at)
        elif isinstance(event, LogsCaptured):
            if event.call in self.calls:
                self.calls[event.call].logs.append(event)
        elif isinstance(event, ArtifactSaved):
            self.artifacts.append((stored.seq, event))
            if event.call in self.calls:
                self.calls[event.call].artifacts.append((stored.seq, event))
        elif isinstance(event, LlmCallRecorded):
            self.llm_calls.append(event)
            owner = self.calls.get(event.parent if event.parent is not None else event.name)
            if owner is not None:
                owner.llm_calls.append(event)
        elif isinstance(event, MetadataLogged):
            target = self.metadata
            if event.call is not None and event.call in self.calls:
                target = self.calls[event.call].metadata
            merge_metadata(target, event.values)
        elif isinstance(event, ExecutionResumed):
            self.resumes.append(event)
            if event.mode == "retry":
                self.retry_epoch += 1
                # Retrying a failed execution by hand grants a fresh budget; a retry while
                # it runs is the runner's own retry of the flow body.
                self.body_retries = 0 if self.status == "failed" else self.body_retries + 1
            self.status, self.ended_at, self.failure = "running", None, None
        elif isinstance(event, ExecutionCompleted):
            self.status, self.ended_at, self.result = "completed", at, event.result
        elif isinstance(event, ExecutionFailed):
            self.status, self.ended_at, self.failure = "failed", at, event
        elif isinstance(event, ExecutionCancelled):
            self.status, self.ended_at, self.cancelled = "cancelled", at, event
            self.pending_waits.clear()  # a cancelled execution waits for nothing more

    def _check_still_open(self, event: Event) -> None:
        """Nothing follows a terminal event, except a retry of a failed execution."""
        retry = isinstance(event, ExecutionResumed) and event.mode == "retry"
        if self.finished and not (self.status == "failed" and retry):
            raise JournalShapeError(
                f"{type(event).__name__} after the execution ended ({self.status})"
            )

    def _call_started(self, event: CallStarted, at: float) -> None:
        call = self.calls.get(event.identity)
        if call is None:
            if event.position in self.by_position:
                other = self.by_position[event.position].identity
                raise JournalShapeError(
                    f"position {event.position} holds both '{other}' and '{event.identity}'"
                )
            call = CallRecord(
                position=event.position,
                identity=event.identity,
                kind=event.kind,
                name=event.name,
                call_id=event.call_id,
                checkpoint_type=event.checkpoint_type,
                inputs_from=event.inputs_from,
                started_at=at,
            )
            self.calls[event.identity] = call
            self.by_position[event.position] = call
        # The latest attempt's record wins: an interrupted or failed call may run again
        # with other arguments, and what it completes with is what a resume checks.
        if event.target is not None:
            call.target = event.target
        if event.arguments is not None:
            call.arguments = event.arguments
        attempt = call.attempt(event.attempt)
        attempt.started_at, attempt.status = at, "running"
        call.status, call.ended_at = "running", None

    def _wait_event(self, event: WaitRequested | WaitResolved, at: float) -> None:
        if isinstance(event, WaitRequested):
            self._call_started(
                CallStarted(
                    position=event.position,
                    identity=event.identity,
                    kind="wait",
                    name=event.name,
                    call_id=event.call_id,
                ),
                at,
            )
            call = self.calls[event.identity]
            call.status, call.wait = "waiting", event
            self.pending_waits[event.identity] = event
            self.status = "waiting"
            return
        waited = self.calls.get(event.identity)
        if waited is None or waited.kind != "wait":
            raise JournalShapeError(f"input for '{event.identity}', which is not a wait")
        self.pending_waits.pop(event.identity, None)
        attempt = waited.attempt(1)
        attempt.ended_at = at
        if event.aborted:
            error = ErrorInfo(type="WaitAborted", message=f"wait '{event.identity}' was aborted")
            attempt.status = waited.status = "failed"
            waited.error, waited.ended_at = error, at
        else:
            attempt.status = waited.status = "completed"
            waited.output, waited.ended_at = event.value or ValueRef(), at
        if not self.pending_waits:
            self.status = "running"

    def _call_completed(self, event: CallCompleted, at: float) -> None:
        call = self._call_for(event.identity, event)
        attempt = call.attempt(event.attempt)
        attempt.status, attempt.ended_at, attempt.duration_ms = "completed", at, event.duration_ms
        call.status, call.output, call.ended_at, call.error = "completed", event.output, at, None
        call.reused_from, call.overridden = event.reused_from, event.overridden
        call.cached_from = event.cached_from

    def _call_failed(self, event: CallFailed, at: float) -> None:
        call = self._call_for(event.identity, event)
        attempt = call.attempt(event.attempt)
        attempt.status, attempt.ended_at = "failed", at
        attempt.error, attempt.duration_ms = event.error, event.duration_ms
        if call.epoch_of_failures != self.retry_epoch:
            call.epoch_of_failures, call.epoch_failures = self.retry_epoch, 0
        call.epoch_failures += 1
        if event.final:
            call.status, call.error, call.ended_at = "failed", event.error, at
            call.failed_epoch = self.retry_epoch

    def _call_for(self, identity: str, event: CallCompleted | CallFailed) -> CallRecord:
        call = self.calls.get(identity)
        if call is None:
            raise JournalShapeError(f"{type(event).__name__} for '{identity}', which never started")
        return call


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


def fold(exec_id: str, events: Iterable[StoredEvent]) -> ExecutionState:
    """Fold ``events`` (in seq order) into the state of execution ``exec_id``."""
    state = ExecutionState(exec_id)
    for stored in events:
        state.apply(stored)
    return state

"""The status vocabulary, how events move an execution's status, and what they add
to its totals.

These are the only status rules: the executions table (``journal.sqlite``) and the
folded state (``replay.state``) both take an execution's status from ``status_change``.
The executions table also keeps the totals a listing shows (calls, tokens, estimated
cost), moved by ``totals_change`` in the transaction that appends the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from kitaru.journal.events import (
    ArtifactSaved,
    CallCompleted,
    CallFailed,
    CallStarted,
    CallStartedAndCompleted,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    LlmCallRecorded,
    LogsCaptured,
    MetadataLogged,
    WaitRequested,
    WaitResolved,
    decode_event,
)

__all__ = [
    "FINISHED_STATUSES",
    "TOTALS_EVENTS",
    "CallSpan",
    "CallTouch",
    "CallWrite",
    "ExecutionStatus",
    "StatusChange",
    "Totals",
    "TotalsChange",
    "add_totals",
    "call_touch",
    "call_writes",
    "decodable_events",
    "decodable_stored",
    "index_calls",
    "status_change",
    "totals_change",
]


class ExecutionStatus(StrEnum):
    """The status of an execution, a call or an attempt; compares equal to its text."""

    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    """Calls and attempts only: started, and the process running them is gone. (An
    execution in that state stays ``running``, with ``Execution.interrupted`` set.)"""

    @property
    def is_finished(self) -> bool:
        """The status is final: completed, failed or cancelled."""
        return self in FINISHED_STATUSES

    @property
    def is_successful(self) -> bool:
        """The execution (or call) completed."""
        return self is ExecutionStatus.COMPLETED


FINISHED_STATUSES = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)
EXECUTION_STATUSES = tuple(s for s in ExecutionStatus if s is not ExecutionStatus.INTERRUPTED)
"""The statuses an execution (not a call) can be in."""


class StatusChange(NamedTuple):
    status: ExecutionStatus
    finished: bool
    failure: str | None = None


_RUNNING = StatusChange(ExecutionStatus.RUNNING, finished=False)
_WAITING = StatusChange(ExecutionStatus.WAITING, finished=False)
_COMPLETED = StatusChange(ExecutionStatus.COMPLETED, finished=True)
_CANCELLED = StatusChange(ExecutionStatus.CANCELLED, finished=True)


_FIXED: dict[type, StatusChange] = {
    ExecutionResumed: _RUNNING,
    WaitResolved: _RUNNING,
    WaitRequested: _WAITING,
    ExecutionCompleted: _COMPLETED,
    ExecutionCancelled: _CANCELLED,
}
"""Event types that always move the status the same way (events are final Structs)."""


def status_change(event: Event) -> StatusChange | None:
    """Return the status ``event`` puts its execution in, or None if it changes nothing.

    ``ExecutionStarted`` is not here: it creates the row rather than changing it.
    """
    change = _FIXED.get(type(event))
    if change is not None:
        return change
    if isinstance(event, ExecutionFailed):
        return StatusChange(
            ExecutionStatus.FAILED, True, f"{event.error.type}: {event.error.message}"
        )
    return None


class TotalsChange(NamedTuple):
    """What one event adds to its execution's totals."""

    call: str | None = None
    """The identity of a durable call it starts or waits in: a call counts once, however
    many attempts (or requests of a wait after a resume) it has."""
    tokens: int | None = None
    """Tokens of a model request whose usage is known."""
    cost: float | None = None
    """Estimated US dollars of a model request this execution made (not one a replay
    reused: the execution that made it paid)."""


def totals_change(event: Event) -> TotalsChange | None:
    """Return what ``event`` adds to the calls, tokens and cost of its execution.

    The same sums the client makes from a folded journal: calls are the distinct call
    identities; tokens add up the known ``total_tokens`` (None while none is known);
    cost adds up, in journal order, the known estimates of requests not reused (None
    while none is known).
    """
    if isinstance(event, CallStarted | CallStartedAndCompleted | WaitRequested):
        return TotalsChange(call=event.identity)
    if isinstance(event, LlmCallRecorded):
        cost = None if event.cost_reused else event.estimated_cost
        if event.usage.total_tokens is None and cost is None:
            return None
        return TotalsChange(tokens=event.usage.total_tokens, cost=cost)
    return None


TOTALS_EVENTS: frozenset[str] = frozenset(
    str(cls.__struct_config__.tag)
    for cls in (CallStarted, CallStartedAndCompleted, WaitRequested, LlmCallRecorded)
)
"""Tags of the events ``totals_change`` counts: what rebuilding the totals reads."""


class Totals(NamedTuple):
    """An execution's totals, as the executions table keeps them."""

    calls: list[str]
    """The identities of its calls, each once, in the order they first started."""
    tokens: int | None
    cost: float | None


def add_totals(events: Iterable[Event]) -> Totals:
    """Sum ``events`` (in journal order) the way appending them moves the table's totals.

    Used to fill the totals of journals written before the table kept them; the sums
    are made in the same order with the same arithmetic, so they agree to the last bit.
    """
    seen: dict[str, None] = {}
    tokens: int | None = None
    cost: float | None = None
    for event in events:
        added = totals_change(event)
        if added is None:
            continue
        if added.call is not None:
            seen.setdefault(added.call)
        if added.tokens is not None:
            tokens = (tokens or 0) + added.tokens
        if added.cost is not None:
            cost = (cost if cost is not None else 0.0) + added.cost
    return Totals(list(seen), tokens, cost)


def decodable_events(rows: Iterable[Sequence[Any]]) -> Iterator[Event]:
    """The events of ``(type, body)`` rows, leaving out any that cannot be decoded.

    For summing a journal's totals once, when a migration adds them: a damaged event
    is ``kitaru store check``'s to report, and must not keep the store from opening.
    """
    for tag, raw in rows:
        try:
            yield decode_event(tag, bytes(raw))
        except Exception:  # noqa: S112  (damage is reported by the check, not here)
            continue


class CallTouch(NamedTuple):
    """What one event does to the call index (``execution_calls``) of its execution."""

    identity: str
    """The call it belongs to."""
    position: int | None = None
    """Set when the event starts an attempt of the call (or requests a wait), even if
    it ends the call as well."""
    ended: bool | None = None
    """True: the call ends at this event; False: it starts (again), so it has not
    ended; None: its end stays as it was."""


def call_touch(event: Event) -> CallTouch | None:  # noqa: PLR0911  (one per event type)
    """Return what ``event`` does to the row of the call it belongs to, or None.

    The same attachments the fold makes: logs, artifacts and metadata by their
    ``call``, a model request by its parent (or, in the flow body, by its own name).
    """
    if isinstance(event, CallStarted | WaitRequested):
        return CallTouch(event.identity, event.position, ended=False)
    if isinstance(event, CallStartedAndCompleted):
        return CallTouch(event.identity, event.position, ended=True)
    if isinstance(event, CallCompleted | WaitResolved):
        return CallTouch(event.identity, ended=True)
    if isinstance(event, CallFailed):
        return CallTouch(event.identity, ended=True if event.final else None)
    if isinstance(event, LogsCaptured | ArtifactSaved):
        return CallTouch(event.call)
    if isinstance(event, LlmCallRecorded):
        return CallTouch(event.parent if event.parent is not None else event.name)
    if isinstance(event, MetadataLogged) and event.call is not None:
        return CallTouch(event.call)
    return None


class CallSpan(NamedTuple):
    """One row of the call index: where a call's events lie in its execution's journal.

    Every event of the call has a seq between ``first_seq`` and ``last_seq``, so one
    page of calls is folded from the events of those seqs, not from the whole journal.
    """

    identity: str
    position: int
    first_seq: int
    """The seq of the call's first start (or wait request)."""
    last_seq: int
    """The seq of the latest event that belongs to the call."""
    ended_at: float | None
    """When the call ended, as the fold has it (None while it has not, or when it was
    started again)."""


def index_calls(events: Iterable[tuple[int, float, Event]]) -> dict[str, CallSpan]:
    """The call index of an execution from its events ``(seq, at, event)`` in order.

    What appending the events keeps in ``execution_calls``; used to fill it for
    journals written before it was kept, and by ``kitaru store check`` to prove it.
    An event of a call that has not started yet belongs to no row, as in the fold.
    """
    spans: dict[str, CallSpan] = {}
    for seq, at, event in events:
        touch = call_touch(event)
        if touch is None:
            continue
        span = spans.get(touch.identity)
        if span is None:
            if touch.position is None:
                continue
            # A start that is also the call's end (``CallStartedAndCompleted``) ends it.
            ended_at = at if touch.ended else None
            spans[touch.identity] = CallSpan(touch.identity, touch.position, seq, seq, ended_at)
            continue
        ended_at = span.ended_at
        if touch.ended is not None:
            ended_at = at if touch.ended else None
        spans[touch.identity] = span._replace(last_seq=seq, ended_at=ended_at)
    return spans


def decodable_stored(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[int, float, Event]]:
    """``(seq, at, event)`` of ``(seq, at, type, body)`` rows, leaving out any event
    that cannot be decoded (as :func:`decodable_events`, for filling the call index)."""
    for seq, at, tag, raw in rows:
        try:
            yield int(seq), float(at), decode_event(tag, bytes(raw))
        except Exception:  # noqa: S112  (damage is reported by the check, not here)
            continue


class CallWrite(NamedTuple):
    """What one append does to one row of the call index (one write per call)."""

    identity: str
    last_seq: int
    ended_at: float | None
    """The call's end after the append; written when ``ends`` says it changed."""
    ends: bool
    start: CallSpan | None
    """The row as a new call's, when the append starts the call: a call not indexed
    yet gets this row (and counts), one indexed already keeps its first seq and
    position and takes the rest."""


def call_writes(first_seq: int, events: Sequence[tuple[Event, float]]) -> list[CallWrite]:
    """The call index writes of appending ``events`` as seq ``first_seq``, ... : what
    :func:`index_calls` would make of them, coalesced to one write per call."""
    found: dict[str, CallWrite] = {}
    seq = first_seq
    for event, at in events:
        touch = call_touch(event)
        if touch is not None:
            write = found.get(touch.identity)
            if touch.position is not None and (write is None or write.start is None):
                ended_at = at if touch.ended else None
                span = CallSpan(touch.identity, touch.position, seq, seq, ended_at)
                found[touch.identity] = CallWrite(touch.identity, seq, ended_at, True, span)
            elif write is None:
                ended_at = at if touch.ended else None
                found[touch.identity] = CallWrite(
                    touch.identity, seq, ended_at, touch.ended is not None, None
                )
            elif touch.ended is None:
                found[touch.identity] = write._replace(last_seq=seq)
            else:
                ended_at = at if touch.ended else None
                found[touch.identity] = write._replace(last_seq=seq, ended_at=ended_at, ends=True)
        seq += 1
    return list(found.values())

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
    CallStarted,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    LlmCallRecorded,
    WaitRequested,
    WaitResolved,
    decode_event,
)

__all__ = [
    "FINISHED_STATUSES",
    "TOTALS_EVENTS",
    "ExecutionStatus",
    "StatusChange",
    "Totals",
    "TotalsChange",
    "add_totals",
    "decodable_events",
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
    if isinstance(event, CallStarted | WaitRequested):
        return TotalsChange(call=event.identity)
    if isinstance(event, LlmCallRecorded):
        cost = None if event.cost_reused else event.estimated_cost
        if event.usage.total_tokens is None and cost is None:
            return None
        return TotalsChange(tokens=event.usage.total_tokens, cost=cost)
    return None


TOTALS_EVENTS: frozenset[str] = frozenset(
    str(cls.__struct_config__.tag) for cls in (CallStarted, WaitRequested, LlmCallRecorded)
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

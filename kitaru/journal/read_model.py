"""How events move an execution's status: the rules behind the executions table."""

from __future__ import annotations

from typing import NamedTuple

from kitaru.journal.events import (
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    WaitRequested,
    WaitResolved,
)

__all__ = ["FINISHED_STATUSES", "StatusChange", "status_change"]

FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled"})


class StatusChange(NamedTuple):
    status: str
    finished: bool
    failure: str | None = None


_RUNNING = StatusChange("running", finished=False)
_WAITING = StatusChange("waiting", finished=False)
_COMPLETED = StatusChange("completed", finished=True)
_CANCELLED = StatusChange("cancelled", finished=True)


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
        return StatusChange("failed", True, f"{event.error.type}: {event.error.message}")
    return None

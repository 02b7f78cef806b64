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


def status_change(event: Event) -> StatusChange | None:
    """Return the status ``event`` puts its execution in, or None if it changes nothing.

    ``ExecutionStarted`` is not here: it creates the row rather than changing it.
    """
    if isinstance(event, ExecutionResumed | WaitResolved):
        return _RUNNING
    if isinstance(event, WaitRequested):
        return _WAITING
    if isinstance(event, ExecutionCompleted):
        return _COMPLETED
    if isinstance(event, ExecutionFailed):
        return StatusChange("failed", True, f"{event.error.type}: {event.error.message}")
    if isinstance(event, ExecutionCancelled):
        return _CANCELLED
    return None

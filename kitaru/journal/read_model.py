"""The status vocabulary, and how events move an execution's status.

These are the only status rules: the executions table (``journal.sqlite``) and the
folded state (``replay.state``) both take an execution's status from ``status_change``.
"""

from __future__ import annotations

from enum import StrEnum
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

__all__ = ["FINISHED_STATUSES", "ExecutionStatus", "StatusChange", "status_change"]


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

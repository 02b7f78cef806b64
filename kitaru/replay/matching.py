"""Match the flow body's next durable call against the record. Pure logic."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from kitaru.replay.state import CallRecord, ExecutionState

__all__ = ["Divergence", "Verdict", "describe", "match_call", "unmade_calls", "verdict"]


class Divergence(Exception):  # noqa: N818  (a finding of the matcher, not a failure of it)
    """The code made a different durable call than the journal holds at ``position``."""

    def __init__(self, position: int, expected: str | None, actual: str | None):
        if expected is None:
            text = f"the code made {actual} at position {position}, which the journal has elsewhere"
        elif actual is None:
            text = f"the journal has {expected} at position {position}, but the code never made it"
        else:
            text = f"at position {position} the journal has {expected}, but the code made {actual}"
        super().__init__(text)
        self.position = position
        self.expected = expected
        self.actual = actual


def describe(kind: str, identity: str) -> str:
    """Name a call for messages, e.g. ``checkpoint 'research'``."""
    return f"{kind} '{identity}'"


def match_call(state: ExecutionState, position: int, identity: str, kind: str) -> CallRecord | None:
    """Return the recorded call the code's call at ``position`` corresponds to.

    None means the journal has nothing there yet (the call runs live). A recorded call
    of another identity or kind there, or this identity recorded at another position,
    raises ``Divergence``.
    """
    recorded = state.by_position.get(position)
    if recorded is None:
        elsewhere = state.calls.get(identity)
        if elsewhere is not None:
            raise Divergence(position, None, describe(kind, identity))
        return None
    if recorded.identity != identity or recorded.kind != kind:
        raise Divergence(
            position, describe(recorded.kind, recorded.identity), describe(kind, identity)
        )
    return recorded


class Verdict(Enum):
    """What the boundary does with a matched call."""

    REPLAY = "replay"
    """Completed: return the recorded output."""
    RAISE = "raise"
    """Failed for good in this retry epoch: raise the recorded error."""
    RUN = "run"
    """Never recorded, started but never finished, failed before a retry, or a failed
    model call (provider failures are transient: a continued execution calls again)."""


def verdict(state: ExecutionState, recorded: CallRecord | None) -> Verdict:
    if recorded is None:
        return Verdict.RUN
    if recorded.status == "completed":
        return Verdict.REPLAY
    if (
        recorded.status == "failed"
        and recorded.failed_epoch == state.retry_epoch
        and recorded.kind != "llm"
    ):
        return Verdict.RAISE
    return Verdict.RUN


def unmade_calls(state: ExecutionState, made: int) -> Iterable[CallRecord]:
    """Recorded calls at positions the code did not reach (``made`` calls were made)."""
    return (call for pos, call in sorted(state.by_position.items()) if pos >= made)

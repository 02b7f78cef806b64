"""Match the flow body's next durable call against the record. Pure logic."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import Enum

from kitaru.journal.events import ArgumentDigest, CallKind
from kitaru.journal.read_model import ExecutionStatus
from kitaru.replay.state import CallRecord, ExecutionState

__all__ = [
    "ArgumentDrift",
    "Divergence",
    "Verdict",
    "argument_drift",
    "describe",
    "match_call",
    "unmade_calls",
    "verdict",
]


class ArgumentDrift:
    """One argument whose recorded digest differs from the current call's."""

    __slots__ = ("name", "now", "recorded")

    def __init__(self, name: str, recorded: str, now: str):
        self.name = name
        self.recorded = recorded
        """Short description of the recorded value (a preview, or its type)."""
        self.now = now

    def __repr__(self) -> str:
        return f"ArgumentDrift({self.name!r}, recorded={self.recorded!r}, now={self.now!r})"


class Divergence(Exception):  # noqa: N818  (a finding of the matcher, not a failure of it)
    """The code made a different durable call than the journal holds at ``position``."""

    def __init__(
        self,
        position: int,
        expected: str | None,
        actual: str | None,
        argument: ArgumentDrift | None = None,
    ):
        if argument is not None:
            text = (
                f"at position {position} the journal has {expected} called with "
                f"{argument.name}={argument.recorded}, but the code called it with "
                f"{argument.name}={argument.now}"
            )
        elif expected is None:
            text = f"the code made {actual} at position {position}, which the journal has elsewhere"
        elif actual is None:
            text = f"the journal has {expected} at position {position}, but the code never made it"
        else:
            text = f"at position {position} the journal has {expected}, but the code made {actual}"
        super().__init__(text)
        self.position = position
        self.expected = expected
        self.actual = actual
        self.argument = argument


def describe(kind: str, identity: str, target: str | None = None) -> str:
    """Name a call for messages, e.g. ``checkpoint 'research'``.

    With ``target`` (``module:QualName``) the function is named too, for calls whose
    short names agree but whose functions do not.
    """
    if target is None:
        return f"{kind} '{identity}'"
    return f"{kind} '{identity}' ({target.replace(':', '.')})"


def _shown(digest: ArgumentDigest | None, other: ArgumentDigest | None) -> str:
    if digest is None:
        return "(no such argument)"
    if digest.digest is None:
        return f"<{digest.type_name}, not encodable>"
    same_preview = other is not None and other.preview == digest.preview
    if digest.preview and not same_preview:
        return digest.preview
    # Previews that agree (or are missing) cannot show the difference; the digest can.
    return f"{digest.preview or '<value>'} (digest {digest.digest})"


def argument_drift(
    recorded: Iterable[ArgumentDigest],
    current: Iterable[ArgumentDigest],
    ignored: Collection[str] = (),
) -> ArgumentDrift | None:
    """The first argument whose recorded and current digests differ, or None.

    Arguments named in ``ignored`` are not compared. An argument the record does not
    hold (a parameter added since, with a default) is not compared either; one the
    record holds that the call no longer passes is a difference. Arguments that
    cannot be encoded are compared by type.
    """
    if not ignored and recorded == current:
        return None  # the common case on replay: compared field by field, in C
    now = {digest.name: digest for digest in current}
    before = {digest.name: digest for digest in recorded}
    for name, old in before.items():
        if name in ignored:
            continue
        new = now.get(name)
        if new is None or new.digest != old.digest or new.type_name != old.type_name:
            return ArgumentDrift(name, _shown(old, new), _shown(new, old))
    return None


def match_call(
    state: ExecutionState,
    position: int,
    identity: str,
    kind: str,
    *,
    target: str | None = None,
    arguments: tuple[ArgumentDigest, ...] | None = None,
    ignored: Collection[str] = (),
) -> CallRecord | None:
    """Return the recorded call the code's call at ``position`` corresponds to.

    None means the journal has nothing there yet (the call runs live). A recorded call
    of another identity, kind or function (``target``) there, or this identity
    recorded at another position, raises ``Divergence``. So does a recorded outcome
    (completed, or failed for good) whose arguments differ from ``arguments``: it was
    computed from other inputs. A call that runs again anyway (interrupted, or failed
    and retried) may take new arguments. Records written before targets or argument
    digests were journaled match on the short name alone.
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
    if recorded.target is not None and target is not None and recorded.target != target:
        raise Divergence(
            position,
            describe(recorded.kind, recorded.identity, recorded.target),
            describe(kind, identity, target),
        )
    recorded_arguments = recorded.arguments
    if (
        recorded_arguments is not None
        and arguments is not None
        # Equal digests (nearly every call of a resume) cannot drift: compared in C,
        # before anything else is looked at.
        and (ignored or recorded_arguments != arguments)
        and verdict(state, recorded) is not Verdict.RUN
    ):
        drift = argument_drift(recorded_arguments, arguments, ignored)
        if drift is not None:
            called = describe(kind, identity)
            raise Divergence(position, called, called, drift)
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
    if recorded.status is ExecutionStatus.COMPLETED:
        return Verdict.REPLAY
    if (
        recorded.status is ExecutionStatus.FAILED
        and recorded.failed_epoch == state.retry_epoch
        and recorded.kind != CallKind.LLM
    ):
        return Verdict.RAISE
    return Verdict.RUN


def unmade_calls(state: ExecutionState, made: int) -> Iterable[CallRecord]:
    """Recorded calls at positions the code did not reach (``made`` calls were made)."""
    positions = state.by_position
    # After a whole resume the code made every recorded call: found out without a walk
    # through the 10,000 records in Python.
    if not positions or max(positions) < made:
        return []
    unmade = [call for position, call in positions.items() if position >= made]
    return sorted(unmade, key=_position)


def _position(call: CallRecord) -> int:
    return call.position

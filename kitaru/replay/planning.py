"""Choosing what a replay reuses: selectors for calls, and the replay's starting point."""

from __future__ import annotations

from kitaru.replay.state import CallRecord, ExecutionState

__all__ = ["SelectorError", "select_calls", "selectable_calls"]

_SELECTABLE_KINDS = ("checkpoint", "llm")


class SelectorError(LookupError):
    """A selector matched no call, or calls it cannot choose between."""

    def __init__(self, message: str, choices: list[str]):
        super().__init__(message)
        self.choices = choices


def selectable_calls(state: ExecutionState) -> list[CallRecord]:
    """Checkpoint and flow-body llm calls, in flow-body order."""
    return [c for _, c in sorted(state.by_position.items()) if c.kind in _SELECTABLE_KINDS]


def _choices(calls: list[CallRecord]) -> list[str]:
    return [f"{c.identity} (name {c.name}, call id {c.call_id}, {c.kind})" for c in calls]


def select_calls(state: ExecutionState, selector: str) -> list[CallRecord]:
    """The calls ``selector`` names, earliest first.

    A selector is a call id, a call identity (``id=`` or ``name_2``), or a checkpoint
    name, which names every call of that checkpoint. A selector that is the ``id=`` of
    a call of another checkpoint and also the name of a checkpoint is ambiguous.
    """
    calls = selectable_calls(state)
    by_id = [c for c in calls if c.call_id == selector]
    if by_id:
        return by_id
    by_identity = [c for c in calls if c.identity == selector]
    by_name = [c for c in calls if c.name == selector]
    # The first call of a checkpoint has its name as identity: that is not ambiguous.
    if by_identity and by_name and any(c.name != selector for c in by_identity):
        both = by_identity + [c for c in by_name if c not in by_identity]
        raise SelectorError(
            f"'{selector}' is ambiguous: it is the id of one call and the name of others. "
            "Use a call id or a unique call identity.",
            _choices(both),
        )
    found = by_name or by_identity
    if not found:
        raise SelectorError(
            f"No checkpoint or llm call matches '{selector}' in execution {state.exec_id}.",
            _choices(calls),
        )
    return found

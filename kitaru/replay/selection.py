"""Fold a selection of an execution's events: what a view of some of its calls needs.

A view of one page of a 10,000-call execution folds the events that decide the
execution's status and retries (``state.SUMMARY_EVENTS``) with the events of that
page's calls, not the whole journal. Each call's record comes out as the full fold
makes it: a call's record depends only on its own events and the execution's retries.
"""

from __future__ import annotations

from collections.abc import Iterable

from kitaru.journal.store import StoredEvent
from kitaru.replay.state import ExecutionState

__all__ = ["fold_selection"]


def fold_selection(exec_id: str, events: Iterable[StoredEvent]) -> ExecutionState:
    """Fold ``events`` (in seq order, with gaps between) into a partial state.

    The selection must start with the execution's first event and hold every event of
    the calls it holds from their first start on; the state's ``complete`` is False.
    """
    state = ExecutionState(exec_id, complete=False)
    for seq, at, event in events:
        state._fold_one(seq, at, event)
    return state

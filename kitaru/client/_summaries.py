"""Cheap listings of executions: what the executions table holds, without their events.

Reading an execution's journal costs time in proportion to its events; a listing of
thousands of executions (a dashboard's first page, a count per flow) needs only each
execution's row, which also keeps its totals (calls, tokens, estimated cost).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from kitaru.client._views import ExecutionStatus
from kitaru.journal.events import ExecutionStarted
from kitaru.journal.store import ExecutionRow, Store
from kitaru.runtime.loading import load_state
from kitaru.runtime.values import decode_value

__all__ = ["ExecutionSummary", "flow_inputs", "summaries", "summary_of"]


_STATUSES = {str(status): status for status in ExecutionStatus}


def _time(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    """One execution as the executions table records it: its totals, but no calls and
    no payloads.

    Times are kept as the table's timestamps and made datetimes when asked for: a
    listing of 10,000 executions shows a page of them.
    """

    exec_id: str
    flow_name: str
    status: ExecutionStatus
    started_ts: float | None
    """Seconds since the epoch; ``started_at`` is the same as a datetime."""
    ended_ts: float | None
    original_exec_id: str | None
    failure: str | None
    """``Type: message`` of the failure that ended it, as recorded."""
    calls: int = 0
    """Its durable calls (checkpoints, flow-body model calls, waits, memory calls)."""
    tokens: int | None = None
    """Tokens of its model requests; None when no request's usage is known."""
    cost: float | None = None
    """Estimated US dollars of the model requests it made (``CostTotal.estimated_usd``
    of its model calls: requests a replay reused are not counted)."""

    @property
    def started_at(self) -> dt.datetime | None:
        return _time(self.started_ts)

    @property
    def ended_at(self) -> dt.datetime | None:
        return _time(self.ended_ts)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end; None while it has not ended."""
        if self.started_ts is None or self.ended_ts is None:
            return None
        return self.ended_ts - self.started_ts


def summaries(
    store: Store,
    *,
    flow: str | None = None,
    status: str | None = None,
    id_prefix: str | None = None,
) -> list[ExecutionSummary]:
    """Every execution matching the filters, newest first."""
    rows = store.list_executions(flow=flow, status=status)
    if id_prefix:
        rows = [row for row in rows if row.exec_id.startswith(id_prefix)]
    return [summary_of(row) for row in rows]


def summary_of(row: ExecutionRow) -> ExecutionSummary:
    """The summary of one executions-table row."""
    return ExecutionSummary(
        row.exec_id,
        row.flow_name,
        _STATUSES[row.status],
        row.started_at,
        row.ended_at,
        row.original_exec_id,
        row.failure,
        row.calls,
        row.tokens,
        row.cost,
    )


_STARTED = str(ExecutionStarted.__struct_config__.tag)


def flow_inputs(store: Store, exec_id: str) -> dict[str, Any]:
    """The flow call's arguments: ``{"args": [...], "kwargs": {...}}``.

    Read from the journal's first event alone: an execution with 10,000 calls is not
    folded for them.
    """
    events = store.read_events(exec_id, only={_STARTED})
    started = events[0].event if events else None
    if not isinstance(started, ExecutionStarted):
        # Unknown or damaged: the fold says which, in its own words.
        state = load_state(store, exec_id)
        assert state.started is not None
        started = state.started
    ref = started.inputs
    data = ref.inline if ref.inline is not None else store.read_payload(ref.hash or "")
    args, kwargs = decode_value(data)
    return {"args": list(args), "kwargs": dict(kwargs)}

"""What the dashboard shows, as JSON-ready dicts read through ``KitaruClient`` only.

Pages and the JSON API render the same dicts, and every string in them passes through
``redact_shown`` on the way out (:func:`shown`): text from a journal can hold a key
that was not known as secret when it was written, and no secret value may reach a
browser. Snapshots of finished executions are kept (:class:`Snapshots`), checked
against the execution's cheap status read: a finished execution changes only when it
is retried or resumed, which changes that status.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec

from kitaru._redaction import Redactor, shown_redactor
from kitaru.client import (
    CheckpointCall,
    Execution,
    ExecutionStatus,
    ExecutionSummary,
    FailureInfo,
    KitaruClient,
    LlmCall,
    LogEntry,
)
from kitaru.errors import KitaruError, KitaruUsageError

__all__ = [
    "CALLS_PER_PAGE",
    "EXECUTIONS_PER_PAGE",
    "STATUSES",
    "Snapshots",
    "call_detail",
    "execution_detail",
    "execution_rows",
    "flow_stats",
    "log_rows",
    "shown",
]

STATUSES = ("running", "waiting", "completed", "failed", "cancelled")
EXECUTIONS_PER_PAGE = 25
CALLS_PER_PAGE = 200
"""A 10,000-call execution is shown a page of calls at a time: the timeline and its
rows stay a few hundred elements whatever the execution's size."""
_VALUE_CHARS = 20_000
"""Longer values are cut for display; the whole value is an artifact to load."""
_TOKENS_HISTORY = 200
"""Tokens and cost over time chart this many of a flow's latest executions (the
totals count every execution)."""


def shown(data: Any) -> Any:
    """``data`` with every string blanked of secret values (keys of dicts too)."""
    return _blanked(data, shown_redactor())


def _blanked(data: Any, redactor: Redactor) -> Any:
    if isinstance(data, str):
        return redactor(data)
    if isinstance(data, dict):
        return {redactor(str(k)): _blanked(v, redactor) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_blanked(v, redactor) for v in data]
    return data


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _ms(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() * 1e3


def plain_value(value: Any) -> Any:
    """A value as JSON builtins; what cannot be is shown by its repr, cut to length."""
    try:
        data = msgspec.to_builtins(value, str_keys=True)
        text = msgspec.json.encode(data)
    except (TypeError, ValueError, msgspec.EncodeError):
        text_repr = repr(value)
        return text_repr[:_VALUE_CHARS]
    if len(text) > _VALUE_CHARS:
        return text[:_VALUE_CHARS].decode(errors="replace") + " ... (cut)"
    return data


def _failure(failure: FailureInfo | None) -> dict[str, Any] | None:
    if failure is None:
        return None
    return {
        "type": failure.exception_type,
        "message": failure.message,
        "traceback": failure.traceback,
        "origin": str(failure.origin.value),
        "call": failure.call,
    }


def _cost(llm_call: LlmCall) -> float | None:
    """The estimated cost of one model request in US dollars (None when unknown)."""
    return llm_call.estimated_cost


def _tokens(llm_calls: list[LlmCall]) -> int | None:
    counted = [c.total_tokens for c in llm_calls if c.total_tokens is not None]
    return sum(counted) if counted else None


@dataclass(frozen=True)
class _RowFacts:
    """What a list row shows beyond the executions table's own columns."""

    status: str
    calls: int
    tokens: int | None
    cost: float | None
    interrupted: bool


class Snapshots:
    """Reads through the client, keeping what finished executions will not change."""

    def __init__(self, client: KitaruClient, size: int = 16) -> None:
        self.client = client
        self._size = size
        self._lock = threading.Lock()
        self._executions: OrderedDict[str, Execution] = OrderedDict()
        self._inputs: dict[str, Any] = {}
        self._logs: OrderedDict[str, tuple[str, list[LogEntry]]] = OrderedDict()

    def execution(self, exec_id: str) -> Execution:
        executions = self.client.executions
        exec_id = executions.resolve_id(exec_id)
        status = executions.status(exec_id)
        with self._lock:
            kept = self._executions.get(exec_id)
            if kept is not None and kept.status == status and status.is_finished:
                self._executions.move_to_end(exec_id)
                return kept
        execution = executions.get(exec_id)
        if execution.status.is_finished:
            with self._lock:
                self._executions[exec_id] = execution
                while len(self._executions) > self._size:
                    self._executions.popitem(last=False)
        return execution

    def logs(self, exec_id: str) -> tuple[ExecutionStatus, list[LogEntry]]:
        """Every captured line of the execution, in order, and its status when read."""
        executions = self.client.executions
        status = executions.status(exec_id)
        with self._lock:
            kept = self._logs.get(exec_id)
            if kept is not None and kept[0] == status and status.is_finished:
                return status, kept[1]
        lines = executions.logs(exec_id)
        if status.is_finished:
            with self._lock:
                self._logs[exec_id] = (str(status), lines)
                while len(self._logs) > self._size:
                    self._logs.popitem(last=False)
        return status, lines

    def inputs(self, exec_id: str) -> Any:
        with self._lock:
            if exec_id in self._inputs:
                return self._inputs[exec_id]
        try:
            value = plain_value(self.client.executions.inputs(exec_id))
        except KitaruError as exc:
            value = {"error": str(exc)}
        with self._lock:
            self._inputs[exec_id] = value
        return value

    def row_facts(self, summary: ExecutionSummary) -> _RowFacts:
        """A row's totals, as the executions table keeps them (no journal is read), and
        for a running execution whether the process running it is gone."""
        interrupted = False
        if summary.status is ExecutionStatus.RUNNING:
            interrupted = self.client.executions.live_owner(summary.exec_id) is None
        return _RowFacts(
            status=str(summary.status),
            calls=summary.calls,
            tokens=summary.tokens,
            cost=summary.cost,
            interrupted=interrupted,
        )


def _summary_row(summary: ExecutionSummary, facts: _RowFacts | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "exec_id": summary.exec_id,
        "flow_name": summary.flow_name,
        "status": str(summary.status),
        "started_at": _iso(summary.started_at),
        "ended_at": _iso(summary.ended_at),
        "duration_ms": _ms(summary.started_at, summary.ended_at),
        "original_exec_id": summary.original_exec_id,
        "failure": summary.failure,
    }
    if facts is not None:
        row.update(
            calls=facts.calls,
            tokens=facts.tokens,
            cost=facts.cost,
            interrupted=facts.interrupted,
        )
    return row


def execution_rows(
    snapshots: Snapshots,
    *,
    flow: str | None,
    status: str | None,
    id_prefix: str | None,
    page: int,
) -> dict[str, Any]:
    """One page of the executions list, newest first, with the filters that made it.

    The table is read once (its flows fill the filter's choices) and filtered here:
    a second read of 10,000 rows would cost as much as the whole page.
    """
    if status is not None and status not in STATUSES:
        raise KitaruUsageError(
            f"status={status!r} is not an execution status; use one of {', '.join(STATUSES)}."
        )
    every = snapshots.client.executions.summaries()
    flows = sorted({s.flow_name for s in every})
    found = [
        s
        for s in every
        if (flow is None or s.flow_name == flow)
        and (status is None or s.status == status)
        and (id_prefix is None or s.exec_id.startswith(id_prefix))
    ]
    pages = max(1, math.ceil(len(found) / EXECUTIONS_PER_PAGE))
    page = min(max(page, 1), pages)
    start = (page - 1) * EXECUTIONS_PER_PAGE
    items = [
        _summary_row(s, snapshots.row_facts(s)) for s in found[start : start + EXECUTIONS_PER_PAGE]
    ]
    return dict(
        shown(
            {
                "items": items,
                "total": len(found),
                "page": page,
                "pages": pages,
                "per_page": EXECUTIONS_PER_PAGE,
                "filters": {"flow": flow, "status": status, "q": id_prefix},
                "flows": flows,
                "show_cost": any(row.get("cost") is not None for row in items),
            }
        )
    )


def _attempts(call: CheckpointCall) -> list[dict[str, Any]]:
    return [
        {
            "attempt": a.attempt,
            "status": str(a.status),
            "started_at": _iso(a.started_at),
            "ended_at": _iso(a.ended_at),
            "duration_ms": a.duration_ms,
            "failure": _failure(a.failure),
        }
        for a in call.attempts
    ]


def _call_row(call: CheckpointCall, origin: dt.datetime | None, span_ms: float) -> dict[str, Any]:
    """A call as the timeline draws it: offsets in percent of the execution's span."""
    duration = _ms(call.started_at, call.ended_at)
    start = _ms(origin, call.started_at)
    row: dict[str, Any] = {
        "call_id": call.call_id,
        "identity": call.invocation_id,
        "name": call.name,
        "kind": call.kind,
        "status": str(call.status),
        "position": call.position,
        "started_at": _iso(call.started_at),
        "ended_at": _iso(call.ended_at),
        "duration_ms": duration,
        "attempts": _attempts(call),
        "tokens": _tokens(call.llm_calls),
        "reused_from": call.reused_from,
        "cached_from": call.cached_from,
    }
    if start is not None and span_ms > 0:
        left = min(100.0, max(0.0, start / span_ms * 100))
        width = (duration if duration is not None else span_ms - start) / span_ms * 100
        row["bar"] = {"left": round(left, 3), "width": round(max(0.2, min(width, 100 - left)), 3)}
        row["attempt_bars"] = []
        for attempt in call.attempts:
            a_start = _ms(origin, attempt.started_at)
            if a_start is None:
                continue
            a_end = _ms(origin, attempt.ended_at)
            a_width = ((a_end if a_end is not None else span_ms) - a_start) / span_ms * 100
            row["attempt_bars"].append(
                {
                    "attempt": attempt.attempt,
                    "status": str(attempt.status),
                    "left": round(min(100.0, max(0.0, a_start / span_ms * 100)), 3),
                    "width": round(max(0.2, a_width), 3),
                }
            )
    return row


def _span(execution: Execution) -> tuple[dt.datetime | None, float]:
    origin = execution.started_at
    end = execution.ended_at or dt.datetime.now(dt.UTC)
    last = execution.last_call_ended_at
    if last is not None:
        end = max(end, last)
    span = _ms(origin, end) or 0.0
    return origin, max(span, 1.0)


def execution_detail(snapshots: Snapshots, exec_id: str, *, call_page: int) -> dict[str, Any]:
    """An execution with one page of its calls (positions in order)."""
    execution = snapshots.execution(exec_id)
    # Views of one page of calls only: a 10,000-call execution is not built whole.
    total = execution.call_count
    totals = snapshots.client.executions.summary(execution.exec_id)
    pages = max(1, math.ceil(total / CALLS_PER_PAGE))
    call_page = min(max(call_page, 1), pages)
    start = (call_page - 1) * CALLS_PER_PAGE
    origin, span = _span(execution)
    result: Any = None
    result_error = None
    if execution.has_result:
        try:
            result = plain_value(execution.result())
        except Exception as exc:  # a value whose type is gone here is still shown as missing
            result_error = f"{type(exc).__name__}: {exc}"
    data = {
        "exec_id": execution.exec_id,
        "flow_name": execution.flow_name,
        "flow_id": execution.flow_id,
        "status": str(execution.status),
        "status_reason": execution.status_reason,
        "interrupted": execution.interrupted,
        "started_at": _iso(execution.started_at),
        "ended_at": _iso(execution.ended_at),
        "duration_ms": _ms(execution.started_at, execution.ended_at),
        "original_exec_id": execution.original_exec_id,
        "stack_name": execution.stack_name,
        "metadata": plain_value(execution.metadata),
        "inputs": snapshots.inputs(execution.exec_id),
        "has_result": execution.has_result,
        "result": result,
        "result_error": result_error,
        "failure": _failure(execution.failure),
        "tokens": totals.tokens,
        "cost": totals.cost,
        "pending_waits": [
            {
                "wait_id": w.wait_id,
                "name": w.name,
                "question": w.question,
                "schema": w.schema,
                "schema_type": w.schema_type,
                "metadata": plain_value(w.metadata),
                "input_received": w.input_received,
            }
            for w in execution.pending_waits
        ],
        "artifacts": [
            {
                "artifact_id": a.artifact_id,
                "name": a.name,
                "kind": a.kind,
                "origin": a.origin,
                "producing_call": a.producing_call,
                "attempt": a.attempt,
            }
            for a in execution.saved_artifacts
        ],
        "calls": {
            "total": total,
            "page": call_page,
            "pages": pages,
            "per_page": CALLS_PER_PAGE,
            "span_ms": span,
            "items": [
                _call_row(c, origin, span)
                for c in execution.checkpoints_between(start, start + CALLS_PER_PAGE)
            ],
        },
    }
    detail: dict[str, Any] = shown(data)
    return detail


def _find_call(execution: Execution, identity: str) -> CheckpointCall:
    call = execution.find_checkpoint(identity)
    if call is not None:
        return call
    from kitaru.errors import KitaruStateError

    raise KitaruStateError(
        f"Execution {execution.exec_id} has no call '{identity}'; its calls are listed "
        f"at /api/executions/{execution.exec_id}."
    )


def _llm(llm_call: LlmCall) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": llm_call.name,
        "parent": llm_call.parent,
        "requested_model": llm_call.requested_model,
        "alias": llm_call.alias,
        "resolved_model": llm_call.resolved_model,
        "credential_source": llm_call.credential_source,
        "latency_ms": llm_call.latency_ms,
        "input_tokens": llm_call.input_tokens,
        "output_tokens": llm_call.output_tokens,
        "total_tokens": llm_call.total_tokens,
        "attempt": llm_call.attempt,
        "provider_attempt": llm_call.provider_attempt,
        "cost": _cost(llm_call),
        "cost_reused": llm_call.cost_reused,
        "failure": _failure(llm_call.failure),
        "prompt": [],
        "response": None,
    }
    try:
        data["prompt"] = plain_value(llm_call.prompt())
        if llm_call.failure is None:
            data["response"] = llm_call.response()
    except Exception as exc:  # a missing payload must not hide the call's other facts
        data["artifact_error"] = f"{type(exc).__name__}: {exc}"
    return data


def call_detail(snapshots: Snapshots, exec_id: str, identity: str) -> dict[str, Any]:
    """One call: its attempts, output, model calls (prompt as chat) and captured logs."""
    execution = snapshots.execution(exec_id)
    call = _find_call(execution, identity)
    origin, span = _span(execution)
    data = _call_row(call, origin, span)
    output: Any = None
    output_error = None
    for artifact in call.artifacts:
        if artifact.origin == "checkpoint_output":
            try:
                output = plain_value(artifact.load())
            except Exception as exc:
                output_error = f"{type(exc).__name__}: {exc}"
            break
    try:
        # The call's own lines, read from its events (not every line of the execution).
        logs = execution.call_logs(call.invocation_id)
    except KitaruError:
        logs = []
    data.update(
        checkpoint_type=call.checkpoint_type,
        failure=_failure(call.failure),
        metadata=plain_value(call.metadata),
        parents=list(call.parent_identities),
        # Each argument as recorded: its name and a short preview (blanked by shown()
        # below like every other string, so a key passed as an argument never shows).
        arguments=[
            {"name": a.name, "preview": a.preview, "type_name": a.type_name} for a in call.arguments
        ],
        overridden=call.overridden,
        output=output,
        output_error=output_error,
        artifacts=[
            {"artifact_id": a.artifact_id, "name": a.name, "kind": a.kind, "origin": a.origin}
            for a in call.artifacts
        ],
        llm_calls=[_llm(c) for c in call.llm_calls],
        logs=[_log(line) for line in logs],
    )
    return dict(shown(data))


def _log(line: LogEntry) -> dict[str, Any]:
    return {
        "timestamp": line.timestamp.isoformat(),
        "level": line.level,
        "source": line.source,
        "checkpoint": line.checkpoint,
        "checkpoint_name": line.checkpoint_name,
        "attempt": line.attempt,
        "message": line.message,
    }


def log_rows(snapshots: Snapshots, exec_id: str, checkpoint: str | None) -> dict[str, Any]:
    """The execution's captured logs in order, optionally one checkpoint's."""
    executions = snapshots.client.executions
    exec_id = executions.resolve_id(exec_id)
    status, every = snapshots.logs(exec_id)
    names = sorted({line.checkpoint for line in every} | {line.checkpoint_name for line in every})
    lines = every
    if checkpoint:
        lines = [e for e in every if checkpoint in (e.checkpoint, e.checkpoint_name)]
    return dict(
        shown(
            {
                "exec_id": exec_id,
                "status": str(status),
                "following": not status.is_finished,
                "checkpoint": checkpoint,
                "checkpoints": names,
                "items": [_log(line) for line in lines],
            }
        )
    )


def _sum_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = max(0, math.ceil(fraction * len(sorted_values)) - 1)
    return sorted_values[index]


def flow_stats(snapshots: Snapshots) -> dict[str, Any]:
    """Per flow: executions by status, success rate, p50/p95 duration, tokens and cost
    (totals of every execution, from the executions table's per-execution totals) and
    both over its latest executions."""
    every = snapshots.client.executions.summaries()
    by_flow: dict[str, list[ExecutionSummary]] = {}
    for summary in every:
        by_flow.setdefault(summary.flow_name, []).append(summary)
    flows = []
    for name, found in sorted(by_flow.items()):
        finished = [s for s in found if s.status.is_finished]
        succeeded = [s for s in finished if s.status.is_successful]
        durations = sorted(s.duration_s * 1e3 for s in finished if s.duration_s is not None)
        counts: dict[str, int] = {}
        for s in found:
            counts[str(s.status)] = counts.get(str(s.status), 0) + 1
        history: list[dict[str, Any]] = []
        for s in reversed(found[:_TOKENS_HISTORY]):  # oldest first, for a chart
            facts = snapshots.row_facts(s)
            history.append(
                {
                    "exec_id": s.exec_id,
                    "started_at": _iso(s.started_at),
                    "tokens": facts.tokens,
                    "cost": facts.cost,
                }
            )
        flows.append(
            {
                "flow_name": name,
                "executions": len(found),
                "by_status": counts,
                "success_rate": len(succeeded) / len(finished) if finished else None,
                "p50_duration_ms": _percentile(durations, 0.5),
                "p95_duration_ms": _percentile(durations, 0.95),
                "tokens": sum(s.tokens or 0 for s in found),
                "cost": _sum_known([s.cost for s in found]),
                "tokens_over_time": history,
                "show_cost": any(s.cost is not None for s in found),
            }
        )
    return dict(shown({"flows": flows}))

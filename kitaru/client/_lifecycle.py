"""An execution's lifecycle as lines: what ``kitaru executions logs --source runner`` shows.

One line per journaled lifecycle event (started, each call started/completed/failed,
model calls, waits, artifacts, the end), in journal order, with secrets blanked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kitaru._redaction import redact_shown
from kitaru.journal import events as ev
from kitaru.journal.store import Store

__all__ = ["LifecycleLine", "lifecycle_lines"]


@dataclass(frozen=True)
class LifecycleLine:
    """One lifecycle event of an execution, written out."""

    timestamp: dt.datetime
    level: str
    message: str


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def _describe(event: ev.Event) -> tuple[str, str] | None:  # noqa: PLR0911, PLR0912  (one per event)
    """(level, message) for a lifecycle event; None for events that are not lifecycle."""
    if isinstance(event, ev.ExecutionStarted):
        replay = f" (replay of {event.original_exec_id})" if event.original_exec_id else ""
        return "INFO", f"execution started: flow {event.flow_name}{replay}"
    if isinstance(event, ev.ExecutionResumed):
        return "INFO", f"execution continued ({event.mode}) by {event.owner}"
    if isinstance(event, ev.CallStarted):
        return "INFO", f"{event.kind} {event.identity} started (attempt {event.attempt})"
    if isinstance(event, ev.CallCompleted):
        how = (
            " (output from a replay override)"
            if event.overridden
            else f" (reused from {event.reused_from})"
            if event.reused_from
            else f" (cached from {event.cached_from})"
            if event.cached_from
            else ""
        )
        return "INFO", f"{event.identity} completed in {_ms(event.duration_ms)}{how}"
    if isinstance(event, ev.CallFailed):
        then = "" if event.final else "; it will be retried"
        return "ERROR", (
            f"{event.identity} failed (attempt {event.attempt}): "
            f"{event.error.type}: {event.error.message}{then}"
        )
    if isinstance(event, ev.LlmCallRecorded):
        if event.error is not None:
            return (
                "ERROR",
                f"llm {event.name} -> {event.resolved_model} failed: {event.error.message}",
            )
        return "INFO", (
            f"llm {event.name} -> {event.resolved_model}: {event.usage.total_tokens} tokens "
            f"in {_ms(event.latency_ms)}"
        )
    if isinstance(event, ev.WaitRequested):
        question = f": {event.question}" if event.question else ""
        return "INFO", f"waiting at {event.identity}{question}"
    if isinstance(event, ev.WaitResolved):
        return "INFO", f"wait {event.identity} {'aborted' if event.aborted else 'answered'}"
    if isinstance(event, ev.ArtifactSaved):
        return "INFO", f"artifact {event.name} saved by {event.call}"
    if isinstance(event, ev.ExecutionCompleted):
        return "INFO", "execution completed"
    if isinstance(event, ev.ExecutionFailed):
        where = f" in {event.call}" if event.call else ""
        return "ERROR", f"execution failed{where}: {event.error.type}: {event.error.message}"
    if isinstance(event, ev.ExecutionCancelled):
        return "WARNING", f"execution cancelled{': ' + event.reason if event.reason else ''}"
    return None


def lifecycle_lines(store: Store, exec_id: str) -> list[LifecycleLine]:
    """The execution's lifecycle, one line per journaled event, in journal order."""
    lines = []
    for stored in store.read_events(exec_id):
        event = stored.event
        # A start and completion written as one event are two lines, each at its time.
        timed: list[tuple[ev.Event, float]] = (
            [(event.started, event.started_at), (event.completed, stored.at)]
            if isinstance(event, ev.CallStartedAndCompleted)
            else [(event, stored.at)]
        )
        for part, at in timed:
            described = _describe(part)
            if described is None:
                continue
            level, message = described
            lines.append(
                LifecycleLine(
                    timestamp=dt.datetime.fromtimestamp(at, dt.UTC),
                    level=level,
                    message=redact_shown(message),
                )
            )
    return lines

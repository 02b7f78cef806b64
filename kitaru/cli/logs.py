"""What ``kitaru executions logs`` shows: checkpoint lines, or the runner's lifecycle.

``step`` lines are what checkpoint bodies printed and logged (journaled per attempt).
``runner`` lines are execution-level: the journal's lifecycle events (started, each
call started/completed/failed, waits, the end), written out one line each.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from kitaru.journal import events as ev
from kitaru.journal.store import Store
from kitaru.records import LogLine
from kitaru.redaction import redact_shown

__all__ = ["Line", "render", "runner_lines", "step_lines"]


@dataclass(frozen=True)
class Line:
    """One line of output, from a checkpoint (``step``) or the runner."""

    timestamp: dt.datetime
    level: str
    source: str
    checkpoint: str | None
    attempt: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp.isoformat(),
            "level": self.level,
            "source": self.source,
            "checkpoint": self.checkpoint,
            "attempt": self.attempt,
            "message": self.message,
        }


def step_lines(lines: list[LogLine]) -> list[Line]:
    return [
        Line(line.timestamp, line.level, line.source, line.checkpoint, line.attempt, line.message)
        for line in lines
    ]


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


def runner_lines(store: Store, exec_id: str) -> list[Line]:
    """The execution's lifecycle, one line per journaled event, in journal order."""
    lines = []
    for stored in store.read_events(exec_id):
        described = _describe(stored.event)
        if described is None:
            continue
        level, message = described
        lines.append(
            Line(
                timestamp=dt.datetime.fromtimestamp(stored.at, dt.UTC),
                level=level,
                source="runner",
                checkpoint=None,
                attempt=None,
                message=redact_shown(message),
            )
        )
    return lines


def _when(value: dt.datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def render(line: Line, verbosity: int) -> str:
    """0: the message; 1: with time and level; 2 and more: also where it came from."""
    if verbosity <= 0:
        return line.message
    if verbosity == 1:
        return f"{_when(line.timestamp)} {line.level:<7} {line.message}"
    where = f"{line.checkpoint}#{line.attempt}" if line.checkpoint else "-"
    return f"{_when(line.timestamp)} {where} {line.level:<7} {line.source}: {line.message}"

"""What ``kitaru executions logs`` shows: checkpoint lines, or the runner's lifecycle.

``step`` lines are what checkpoint bodies printed and logged (journaled per attempt).
``runner`` lines are execution-level: the journal's lifecycle events (started, each
call started/completed/failed, waits, the end), written out one line each.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from kitaru.client import LifecycleLine, LogEntry

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


def step_lines(lines: list[LogEntry]) -> list[Line]:
    return [
        Line(line.timestamp, line.level, line.source, line.checkpoint, line.attempt, line.message)
        for line in lines
    ]


def runner_lines(lines: list[LifecycleLine]) -> list[Line]:
    """The execution's lifecycle lines as ``runner`` lines."""
    return [Line(line.timestamp, line.level, "runner", None, None, line.message) for line in lines]


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

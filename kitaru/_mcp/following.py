"""Following an execution: its lines past a cursor, or a wait for its status to change.

Checkpoint lines come back in time order, and a checkpoint running beside others
journals its lines when its attempt ends, so a line can arrive older than lines
already shown. A position in that list is therefore no cursor. Each attempt's lines
are journaled together and keep their order, so the cursor counts the lines seen of
each attempt (``{"fetch#1": 3}``): what lies past those counts is new, wherever it
sorts. Runner lines (the journal's lifecycle events) only grow, under the key
``runner``.
"""

from __future__ import annotations

import time
from typing import Any

from kitaru.client import KitaruClient
from kitaru.errors import KitaruUsageError

__all__ = ["FINISHED", "follow"]

FINISHED = ("completed", "failed", "cancelled")
_POLL_SECONDS = 0.2
_RUNNER = "runner"


def _lines(
    client: KitaruClient, exec_id: str, source: str, checkpoint: str | None
) -> list[tuple[str, dict[str, Any]]]:
    """(cursor key, line) for every line of ``source``, as ``kitaru executions logs -o json``."""
    if source == _RUNNER:
        return [
            (
                _RUNNER,
                {
                    "timestamp": line.timestamp.isoformat(),
                    "level": line.level,
                    "source": _RUNNER,
                    "checkpoint": None,
                    "attempt": None,
                    "message": line.message,
                },
            )
            for line in client.executions.lifecycle(exec_id)
        ]
    return [
        (
            f"{entry.checkpoint}#{entry.attempt}",
            {
                "timestamp": entry.timestamp.isoformat(),
                "level": entry.level,
                "source": entry.source,
                "checkpoint": entry.checkpoint,
                "attempt": entry.attempt,
                "message": entry.message,
            },
        )
        for entry in client.executions.logs(exec_id, checkpoint=checkpoint)
    ]


def _past(
    lines: list[tuple[str, dict[str, Any]]], cursor: dict[str, int]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The lines past ``cursor``, and the cursor past them."""
    seen: dict[str, int] = {}
    fresh = []
    for key, line in lines:
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > cursor.get(key, 0):
            fresh.append(line)
    return fresh, {**cursor, **seen}


def follow(
    client: KitaruClient,
    exec_id: str,
    *,
    cursor: dict[str, int],
    source: str,
    checkpoint: str | None,
    wait_seconds: float,
    seen_status: str | None,
) -> dict[str, Any]:
    """The execution's status and its lines past ``cursor``.

    With ``wait_seconds`` it waits, up to that long, for a new line, a status other
    than ``seen_status`` (default: the status when the call began), or the end.
    """
    if source == _RUNNER and checkpoint is not None:
        raise KitaruUsageError(
            "checkpoint cannot go with source 'runner': runner lines belong to the "
            "execution, not to one checkpoint. Leave checkpoint out."
        )
    exec_id = client.executions.resolve_id(exec_id)
    deadline = time.monotonic() + wait_seconds
    while True:
        # Status first: once it has ended, the lines read next are all there will be.
        status = str(client.executions.status(exec_id))
        fresh, next_cursor = _past(_lines(client, exec_id, source, checkpoint), cursor)
        finished = status in FINISHED
        changed = seen_status is not None and status != seen_status
        remaining = deadline - time.monotonic()
        if fresh or finished or changed or remaining <= 0:
            return {
                "exec_id": exec_id,
                "status": status,
                "finished": finished,
                "lines": fresh,
                "next_cursor": next_cursor,
                "timed_out": wait_seconds > 0 and not (fresh or finished or changed),
            }
        if seen_status is None:
            seen_status = status
        time.sleep(min(_POLL_SECONDS, remaining))

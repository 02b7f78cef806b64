"""Flows whose calls drift between a run and its resume, killed on purpose.

Environment, read at call time:

- ``DRIFT_KILL_AFTER``: the flow body SIGKILLs its process once this many durable
  calls have completed (it loads each output first).
- ``DRIFT_SWAP``: ``swapped`` calls ``db.fetch`` before ``web.fetch``.

``python -m tests.flows.drift FLOW [ARG ...]`` runs one flow to its end (or its death)
and prints the result as JSON. Flows:

- ``swapped KEY``: ``web.fetch(KEY)`` then ``db.fetch(KEY)`` (two checkpoints both
  named ``fetch``, in different modules).
- ``lookups NAME ...``: ``lookup(name)`` for each name of a ``set`` of the names, so
  the order follows ``PYTHONHASHSEED``.
- ``tagged NAME ...``: ``count_tags`` given the ``set`` of the names (equal sets, in
  whatever order this process's hash seed iterates them).
- ``notes``: a checkpoint appends to the dataclass "agent state" it is given; the flow
  returns what the flow body then sees of that state, and what the calls returned.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from kitaru import checkpoint, flow

try:
    from . import drift_db as db
    from . import drift_web as web
except ImportError:  # run as a script rather than as a package module
    import drift_db as db  # type: ignore[import-not-found, no-redef]
    import drift_web as web  # type: ignore[import-not-found, no-redef]


class _Completed:
    count = 0


def _completed(handle: Any) -> Any:
    """Load a call's output; die here if the configured number of calls is reached."""
    value = handle.load()
    _Completed.count += 1
    if str(_Completed.count) == os.environ.get("DRIFT_KILL_AFTER"):
        os.kill(os.getpid(), signal.SIGKILL)
    return value


@flow
def swapped(key: str) -> list[str]:
    swap = bool(os.environ.get("DRIFT_SWAP"))
    first, second = (db.fetch, web.fetch) if swap else (web.fetch, db.fetch)
    return [_completed(first(key)), _completed(second(key))]


@checkpoint
def lookup(name: str) -> str:
    return f"record of {name}"


@flow
def lookups(names: list[str]) -> dict[str, str]:
    found = {}
    for name in set(names):
        found[name] = _completed(lookup(name))
    return found


@checkpoint
def count_tags(tags: set[str]) -> int:
    return len(tags)


@flow
def tagged(names: list[str]) -> list[int]:
    tags = set(names)
    return [_completed(count_tags(tags)), _completed(count_tags(tags | {"extra"}))]


@dataclass
class AgentState:
    notes: list[str] = field(default_factory=list)


@checkpoint
def add_note(state: AgentState, note: str) -> int:
    state.notes.append(note)
    return len(state.notes)


@flow
def notes() -> dict[str, Any]:
    state = AgentState()
    counts = [_completed(add_note(state, "first")), _completed(add_note(state, "second"))]
    return {"seen": state.notes, "counts": counts}


FLOWS = {"swapped": swapped, "lookups": lookups, "tagged": tagged, "notes": notes}


def main(argv: list[str]) -> int:
    name, *args = argv
    chosen = FLOWS[name]
    handle = chosen.run(args) if name in ("lookups", "tagged") else chosen.run(*args)
    print(json.dumps(handle.wait()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

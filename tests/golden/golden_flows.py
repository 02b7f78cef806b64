"""Flows whose recorded journals are committed beside this file as golden files.

Changing what these flows do changes what the golden journals must replay against:
edit them only together with ``make_golden.py``, and only on purpose.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import time
from pathlib import Path

from kitaru import KitaruClient, checkpoint, current_execution_id, flow


@dataclasses.dataclass(frozen=True)
class Finding:
    source: str
    score: float
    seen: dt.date


def _count(step: str) -> None:
    """Record that a step's body ran (the golden tests count these)."""
    log = os.environ.get("GOLDEN_SIDE_EFFECTS")
    if log:
        with open(log, "a") as fh:
            fh.write(step + "\n")


def _await_start_in_journal(name: str) -> None:
    """Wait until the journal records this execution's call of ``name`` as running.

    The journal's flusher writes a long call's start on its own; once it is there, a kill
    leaves an interrupted call behind, which is what the interrupted golden journal holds.
    """
    exec_id = current_execution_id()
    assert exec_id is not None, "only a checkpoint body waits for its own start"
    client = KitaruClient()
    deadline = time.monotonic() + 30
    while not any(
        call.name == name and call.status == "running"
        for call in client.executions.get(exec_id).checkpoints
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the start of {name} did not reach the journal within 30 s")
        time.sleep(0.01)


@checkpoint(type="tool_call")
def gather(topic: str) -> list[Finding]:
    _count("gather")
    return [
        Finding(f"{topic}/a", 0.5, dt.date(2026, 1, 2)),
        Finding(f"{topic}/b", 0.75, dt.date(2026, 1, 3)),
    ]


@checkpoint
def rank(findings: list[Finding]) -> tuple[str, ...]:
    _count("rank")
    return tuple(f.source for f in sorted(findings, key=lambda f: -f.score))


@checkpoint(retries=1)
def publish(order: tuple[str, ...]) -> dict[str, object]:
    _count("publish")
    if os.environ.get("GOLDEN_CRASH") == "publish":
        _await_start_in_journal("publish")
        os.kill(os.getpid(), signal.SIGKILL)
    marker = os.environ.get("GOLDEN_PUBLISH_OK")
    if marker is not None and not Path(marker).exists():
        raise ConnectionError("publisher unreachable")
    return {"order": list(order), "count": len(order), "tags": {"golden"}}


@checkpoint
def rank_v2(findings: list[Finding]) -> tuple[str, ...]:
    """A renamed ``rank``: resuming the golden journals with it must diverge."""
    _count("rank_v2")
    return tuple(f.source for f in findings)


@flow
def report(topic: str) -> dict[str, object]:
    findings = gather(topic)
    renamed = os.environ.get("GOLDEN_RENAMED") == "1"
    order = rank_v2(findings) if renamed else rank(findings)
    return publish(order).load()

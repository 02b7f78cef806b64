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

from kitaru import checkpoint, flow


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
        time.sleep(0.2)  # long enough for the call's start to reach the journal
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

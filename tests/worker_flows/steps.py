"""Flows that worker processes run in the tests: each checkpoint notes its start and
end in a log file, so a test can count how often each body ran."""

from __future__ import annotations

import os
import time
from pathlib import Path

import kitaru
from kitaru import checkpoint, flow


def _note(log: str, line: str) -> None:
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{line} {os.getpid()}\n")
        out.flush()
        os.fsync(out.fileno())


@checkpoint
def step(tag: str, index: int, log: str, pause: float, hold: str) -> int:
    """Note the start, pause (or hold while the ``hold`` file exists), note the end."""
    _note(log, f"start {tag}:{index}")
    if hold and index == 1:
        while Path(hold).exists():
            time.sleep(0.02)
    time.sleep(pause)
    _note(log, f"done {tag}:{index}")
    return index


@flow
def chain(tag: str, steps: int, log: str, pause: float = 0.0, hold: str = "") -> int:
    """``steps`` checkpoints in a row; the result is the sum of their indexes."""
    return sum(step(tag, i, log, pause, hold) for i in range(steps))


@flow
def ask(tag: str, log: str) -> str:
    """A checkpoint, a wait for input, then a checkpoint that notes the answer."""
    step(tag, 0, log, 0.0, "")
    answer = kitaru.wait(name="answer", timeout=None)
    _note(log, f"answered {tag}:{answer}")
    step(tag, 2, log, 0.0, "")
    return f"got {answer}"

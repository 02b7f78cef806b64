"""A pipeline whose checkpoints leave a trace and can kill their own process.

Environment, read at call time:

- ``PIPELINE_SIDE``: a file every checkpoint body appends one line to (its tag:
  ``load_numbers``, ``square:<x>``, ``offset``, ``summarise``).
- ``PIPELINE_KILL``: comma-separated points where the process SIGKILLs itself:
  ``before:<step>`` and ``after:<step>`` in the flow body (``after`` follows the
  ``.load()`` of the completed call), ``inside:<step>`` in a checkpoint body after its
  trace line, ``square:<x>`` in the fan-out call for ``x`` (once the journal records
  every other call of the fan-out as completed).
- ``PIPELINE_BLOCK``: a folder; ``offset`` writes ``ready`` there, then waits for
  ``release`` to appear.
- ``PIPELINE_SLOW``: seconds ``summarise`` sleeps before returning.
- ``PIPELINE_PAUSE``: seconds every checkpoint body sleeps after its trace line.

``python -m tests.flows.pipeline [N]`` runs it to the end and prints the result as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from kitaru import KitaruClient, checkpoint, current_execution_id, flow


def _record(tag: str) -> None:
    side = os.environ.get("PIPELINE_SIDE")
    if side:
        with open(side, "a", encoding="utf-8") as file:
            file.write(tag + "\n")
    time.sleep(float(os.environ.get("PIPELINE_PAUSE", "0")))


def _kill_at(point: str) -> None:
    if point in os.environ.get("PIPELINE_KILL", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)


# How many calls the running flow's fan-out makes (the flow body sets it before the map).
_fan_out = 0


def _await_siblings_completed() -> None:
    """Wait until the journal records every other ``square`` call of the fan-out as
    completed, so a kill now leaves exactly this call unfinished."""
    exec_id = current_execution_id()
    assert exec_id is not None, "only a checkpoint body waits for its siblings"
    client = KitaruClient()
    deadline = time.monotonic() + 30
    while (
        sum(
            call.name == "square" and call.status == "completed"
            for call in client.executions.get(exec_id).checkpoints
        )
        < _fan_out - 1
    ):
        if time.monotonic() > deadline:
            raise TimeoutError("the other square calls did not complete within 30 s")
        time.sleep(0.01)


@checkpoint
def load_numbers(n: int) -> list[int]:
    _record("load_numbers")
    _kill_at("inside:load_numbers")
    return list(range(1, n + 1))


@checkpoint(type="tool_call")
def square(x: int) -> int:
    _record(f"square:{x}")
    if f"square:{x}" in os.environ.get("PIPELINE_KILL", "").split(","):
        _await_siblings_completed()
        _kill_at(f"square:{x}")
    return x * x


@checkpoint
def offset(values: list[int], by: int) -> list[int]:
    _record("offset")
    _kill_at("inside:offset")
    block = os.environ.get("PIPELINE_BLOCK")
    if block:
        Path(block, "ready").write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not Path(block, "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return [v + by for v in values]


@checkpoint
def summarise(values: list[int], extra: int) -> dict[str, int]:
    _record("summarise")
    _kill_at("inside:summarise")
    time.sleep(float(os.environ.get("PIPELINE_SLOW", "0")))
    return {"total": sum(values) + extra, "count": len(values)}


@flow
def pipeline(n: int, by: int = 10) -> dict[str, Any]:
    _kill_at("before:load_numbers")
    numbers = load_numbers(n)
    values = numbers.load()
    _kill_at("after:load_numbers")
    global _fan_out  # noqa: PLW0603  (read by the fan-out's bodies, in this process)
    _fan_out = len(values)
    squares = square.map(values)
    shifted = offset.submit(squares, by)
    shifted.load()
    _kill_at("before:summarise")
    summary = summarise(shifted, extra=1)
    return {"numbers": numbers, "squares": squares, "shifted": [shifted], "summary": summary}


if __name__ == "__main__":
    handle = pipeline.run(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print(json.dumps({"exec_id": handle.exec_id, "result": handle.wait()}))

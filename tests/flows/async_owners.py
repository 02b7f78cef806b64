"""An async flow whose awaited checkpoints can be held at a gate, for ownership tests.

``fetched(n)`` awaits ``prepare``, gathers ``fetch(i)`` for ``i < n`` and awaits
``total`` of the squares. Environment, read at call time:

- ``ASYNC_OWNERS_SIDE``: a file every body appends its tag to (``prepare``,
  ``fetch:<i>``, ``total``).
- ``ASYNC_OWNERS_GATE``: a folder. A held ``fetch`` body writes ``ready-<i>-<pid>``
  there, then awaits until ``release`` appears (60 s at most).
- ``ASYNC_OWNERS_HOLD``: the indexes held at the gate, comma-separated (default: all).

``python -m tests.flows.async_owners N`` runs it and prints
``{"exec_id": ..., "result": ...}``; a kitaru error ends the process with exit code 3
and ``<error type>: <message>`` on stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from kitaru import KitaruError, checkpoint, flow


def _effect(tag: str) -> None:
    side = os.environ.get("ASYNC_OWNERS_SIDE")
    if side:
        with open(side, "a", encoding="utf-8") as file:
            file.write(tag + "\n")


def _held(i: int) -> bool:
    hold = os.environ.get("ASYNC_OWNERS_HOLD")
    return hold is None or str(i) in hold.split(",")


async def _wait_at_gate(i: int) -> None:
    gate = os.environ.get("ASYNC_OWNERS_GATE")
    if not gate or not _held(i):
        return
    Path(gate, f"ready-{i}-{os.getpid()}").write_text("")
    deadline = time.monotonic() + 60
    while not Path(gate, "release").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


@checkpoint
async def prepare(n: int) -> list[int]:
    _effect("prepare")
    await asyncio.sleep(0)
    return list(range(n))


@checkpoint
async def fetch(i: int) -> int:
    _effect(f"fetch:{i}")
    await _wait_at_gate(i)
    return i * i


@checkpoint
async def total(values: list[int]) -> int:
    _effect("total")
    await asyncio.sleep(0)
    return sum(values)


@flow
async def fetched(n: int) -> int:
    items = await prepare(n)
    squares = await asyncio.gather(*(fetch(i) for i in items))
    return await total(list(squares))


if __name__ == "__main__":
    try:
        handle = fetched.run(int(sys.argv[1]))
        print(json.dumps({"exec_id": handle.exec_id, "result": handle.wait()}), flush=True)
    except KitaruError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)

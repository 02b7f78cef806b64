"""An async research flow: a gather fan-out of async checkpoints, then a sync one.

Environment, read at call time:

- ``ASYNC_SIDE``: a file every checkpoint body appends one line to (``search:<topic>``,
  ``summarise``).
- ``ASYNC_ORDER``: ``reverse`` makes later topics finish first, ``forward`` earlier ones.
- ``ASYNC_HOLD``: a topic whose search, once every other search is recorded as
  completed, writes ``ASYNC_READY`` (a file) and then awaits for a minute: the test
  SIGKILLs the process during that await.
- ``ASYNC_BROKEN``: a topic whose search, once every other search is recorded as
  completed, raises ``ValueError`` (so the execution fails at that one call).

``python -m tests.flows.async_research TOPIC...`` runs it and prints the result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from kitaru import KitaruClient, checkpoint, current_execution_id, flow


def _record(tag: str) -> None:
    side = os.environ.get("ASYNC_SIDE")
    if side:
        with open(side, "a", encoding="utf-8") as file:
            file.write(tag + "\n")


async def _others_completed(count: int) -> None:
    exec_id = current_execution_id()
    assert exec_id is not None
    client = KitaruClient()
    for _ in range(3000):
        calls = client.executions.get(exec_id).checkpoints
        if sum(c.name == "search" and c.status == "completed" for c in calls) >= count:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the other searches did not complete within 30 s")


@checkpoint
async def search(topic: str, index: int, count: int) -> str:
    _record(f"search:{topic}")
    step = index if os.environ.get("ASYNC_ORDER") == "forward" else count - index
    await asyncio.sleep(0.02 * step)
    if os.environ.get("ASYNC_BROKEN") == topic:
        await _others_completed(count - 1)
        raise ValueError(f"the search index is down for {topic}")
    if os.environ.get("ASYNC_HOLD") == topic:
        await _others_completed(count - 1)
        Path(os.environ["ASYNC_READY"]).write_text(str(os.getpid()))
        await asyncio.sleep(60)
    return f"notes on {topic}"


@checkpoint
def summarise(notes: list[str]) -> str:
    _record("summarise")
    return " | ".join(notes)


@flow
async def research(topics: list[str]) -> dict[str, Any]:
    notes = await asyncio.gather(
        *(search(topic, index, len(topics)) for index, topic in enumerate(topics))
    )
    return {"notes": notes, "summary": summarise(notes)}


if __name__ == "__main__":
    handle = research.run(sys.argv[1:])
    print(json.dumps({"exec_id": handle.exec_id, "result": handle.wait()}))

"""A research flow to replay: gather, summarise, critique, write.

Environment, read at call time:

- ``MGMT_SIDE``: a file every checkpoint body appends its name to.
- ``MGMT_KILL=<step>``: that checkpoint's body SIGKILLs its process after its trace.

``python -m tests.mgmt_flows.research [TOPIC]`` prints ``{"exec_id": ...}``, then
``{"status": "completed", "result": ...}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from kitaru import checkpoint, flow


def _record(step: str) -> None:
    side = os.environ.get("MGMT_SIDE")
    if side:
        with open(side, "a", encoding="utf-8") as file:
            file.write(step + "\n")
    if os.environ.get("MGMT_KILL") == step:
        os.kill(os.getpid(), signal.SIGKILL)


@checkpoint(type="tool_call")
def gather(topic: str) -> list[str]:
    _record("gather")
    return [f"{topic} fact one", f"{topic} fact two"]


@checkpoint
def summarise(notes: list[str]) -> str:
    _record("summarise")
    return " + ".join(notes)


@checkpoint
def critique(summary: str) -> str:
    _record("critique")
    return f"{len(summary)} chars"


@checkpoint
def write(summary: str, review: str, topic: str) -> str:
    _record("write")
    return f"{topic}: {summary} [{review}]"


@flow
def research(topic: str) -> dict[str, Any]:
    notes = gather(topic)
    summary = summarise(notes)
    review = critique(summary)
    return {"notes": notes, "report": write(summary, review, topic)}


if __name__ == "__main__":
    handle = research.run(sys.argv[1] if len(sys.argv) > 1 else "tides", background=True)
    print(json.dumps({"exec_id": handle.exec_id}), flush=True)
    print(json.dumps({"status": "completed", "result": handle.wait()}), flush=True)

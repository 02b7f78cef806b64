"""A flow that reads and writes durable memory, and can kill its own process.

Environment, read at call time:

- ``MEMORY_KILL``: ``after:get`` or ``after:set`` SIGKILLs the process in the flow body
  right after that memory call returned.

``python -m tests.flows.memory_agent TAG`` runs it to the end and prints the result.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from kitaru import checkpoint, flow, memory


def _kill_at(point: str) -> None:
    if os.environ.get("MEMORY_KILL") == point:
        os.kill(os.getpid(), signal.SIGKILL)


@checkpoint
def bump(previous: int | None) -> int:
    return (previous or 0) + 1


@flow
def memory_agent(tag: str) -> dict[str, Any]:
    memory.configure(scope="agent", scope_type="namespace")
    seen = memory.get("counter")
    _kill_at("after:get")
    updated = bump(seen)
    memory.set("counter", updated)
    _kill_at("after:set")
    memory.set("last_tag", tag)
    return {"seen": seen, "counter": updated.load()}


if __name__ == "__main__":
    handle = memory_agent.run(sys.argv[1] if len(sys.argv) > 1 else "first")
    print(json.dumps({"exec_id": handle.exec_id, "result": handle.wait()}))

"""A release that waits for a person's approval between two checkpoints.

Environment, read at call time:

- ``MGMT_SIDE``: a file every checkpoint body appends its tag to (``prepare``,
  ``publish``).
- ``APPROVAL_SCHEMA``: ``bool`` (default) or ``decision`` (the ``Decision`` dataclass).
- ``APPROVAL_TIMEOUT``: seconds the wait keeps this process waiting (default 30);
  after that the execution stays ``waiting`` and the process exits.
- ``APPROVAL_KILL=publish``: ``publish`` SIGKILLs its process after its trace line.

``python -m tests.mgmt_flows.approval [VERSION]`` prints ``{"exec_id": ...}``, then
``{"status": ..., "result": ...}``. It exits 0 when the run completed or is left
waiting, 1 when it ended otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import kitaru
from kitaru import KitaruExecutionError, KitaruStateError, checkpoint, flow


@dataclass
class Decision:
    approved: bool
    reviewer: str
    note: str = ""


def _record(tag: str) -> None:
    side = os.environ.get("MGMT_SIDE")
    if side:
        with open(side, "a", encoding="utf-8") as file:
            file.write(tag + "\n")


@checkpoint
def prepare(version: str) -> str:
    _record("prepare")
    return f"release notes for {version}"


@checkpoint
def publish(notes: str, approved: bool, reviewer: str) -> str:
    _record("publish")
    if os.environ.get("APPROVAL_KILL") == "publish":
        os.kill(os.getpid(), signal.SIGKILL)
    return f"published ({notes}, reviewed by {reviewer})" if approved else "withdrawn"


@flow
def release(version: str) -> dict[str, Any]:
    notes = prepare(version)
    schema: type = Decision if os.environ.get("APPROVAL_SCHEMA") == "decision" else bool
    answer = kitaru.wait(
        schema=schema,
        name="approve",
        question=f"Publish {version}?",
        timeout=float(os.environ.get("APPROVAL_TIMEOUT", "30")),
        metadata={"version": version},
    )
    if isinstance(answer, Decision):
        approved, reviewer = answer.approved, answer.reviewer
    else:
        approved, reviewer = bool(answer), "anonymous"
    outcome = publish(notes, approved, reviewer)
    return {"answer_type": type(answer).__name__, "approved": approved, "outcome": outcome}


if __name__ == "__main__":
    handle = release.run(sys.argv[1] if len(sys.argv) > 1 else "1.0", background=True)
    print(json.dumps({"exec_id": handle.exec_id}), flush=True)
    try:
        result = handle.wait()
    except KitaruStateError:
        print(json.dumps({"status": handle.status}), flush=True)
    except KitaruExecutionError as exc:
        print(json.dumps({"status": exc.status, "error": str(exc)}), flush=True)
        sys.exit(1)
    else:
        print(json.dumps({"status": "completed", "result": result}), flush=True)

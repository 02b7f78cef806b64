"""Checkpoints that each make two ``kitaru.llm()`` calls, the second of which can crash.

``outline`` and ``draft`` each call the model twice; their calls are child events of
the checkpoint, which stays the replay boundary.

Environment, read at call time:

- ``LLMFLOW_KILL=inside:draft``: ``draft`` SIGKILLs its process after both of its calls,
  once their records reached the journal (the checkpoint itself never completes).

``python -m tests.llm_flows.research [TOPIC]`` runs it to its end and prints the result
as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time

import kitaru
from kitaru import checkpoint, flow

MODEL = "openai/gpt-4o-mini"


def _llm_records() -> int:
    """How many model calls the journal holds (child records are written in the background)."""
    connection = sqlite3.connect(os.environ["KITARU_STORE"])
    try:
        row = connection.execute("SELECT count(*) FROM events WHERE type = 'llm_call'").fetchone()
    finally:
        connection.close()
    return int(row[0])


@checkpoint(type="llm_call")
def outline(topic: str) -> str:
    points = kitaru.llm(f"List the main points about {topic}.", model=MODEL)
    order = kitaru.llm(f"Order these points for a reader: {points}", model=MODEL)
    return f"{points} | {order}"


@checkpoint(type="llm_call")
def draft(plan: str) -> str:
    before = _llm_records()
    body = kitaru.llm(f"Write a draft following: {plan}", model=MODEL, max_tokens=400)
    title = kitaru.llm(f"Give this draft a title: {body}", model=MODEL, temperature=0.0)
    if os.environ.get("LLMFLOW_KILL") == "inside:draft":
        # Kill only once the journal shows both calls were made, then die mid-checkpoint.
        deadline = time.monotonic() + 10
        while _llm_records() < before + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
    return f"{title}\n\n{body}"


@flow
def research(topic: str) -> str:
    return draft(outline(topic))  # type: ignore[no-any-return]


if __name__ == "__main__":
    print(json.dumps(research.run(sys.argv[1] if len(sys.argv) > 1 else "journals").wait(60)))

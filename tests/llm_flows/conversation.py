"""A chat loop in the flow body: every turn resends the whole, growing conversation.

Each turn appends a user message, makes one flow-body ``kitaru.llm()`` call (a durable
call boundary of its own) and appends the reply, which the next turn sends back.

Environment, read at call time:

- ``LLMFLOW_KILL_AFTER``: the process SIGKILLs itself right after its N-th call returned
  (replayed calls count: a resumed process that replays 3 calls and runs a 4th dies
  after the 4th with ``4``).
- ``LLMFLOW_GATE`` and ``LLMFLOW_PAUSE_AFTER``: after call N, write ``ready`` into the
  folder ``LLMFLOW_GATE`` and wait until a file ``release`` appears there.
- ``LLMFLOW_LOG``: when set, kitaru's log records go to stderr at DEBUG level.

``python -m tests.llm_flows.conversation [TURNS [MODEL]]`` runs it to its end and prints
the result as JSON; a failed execution prints its error to stderr and exits 1. The model
(an alias or ``provider/model``) is a flow argument, so a resumed run uses it too.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import kitaru
from kitaru import KitaruError, flow
from kitaru._logging import enable_cli_logging

SYSTEM = "You are a patient assistant. Answer in one short paragraph."


def question(turn: int) -> str:
    """The user message of ``turn`` (1-based)."""
    return f"Question {turn}: what is worth knowing about durable step number {turn}?"


def _after_call(done: int) -> None:
    if os.environ.get("LLMFLOW_KILL_AFTER") == str(done):
        os.kill(os.getpid(), signal.SIGKILL)
    gate = os.environ.get("LLMFLOW_GATE")
    if gate and os.environ.get("LLMFLOW_PAUSE_AFTER") == str(done):
        Path(gate, "ready").write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not Path(gate, "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)


@flow
def chat(turns: int, model: str = "openai/gpt-4o-mini") -> dict[str, Any]:
    history: list[dict[str, str]] = []
    replies: list[str] = []
    for turn in range(1, turns + 1):
        history.append({"role": "user", "content": question(turn)})
        reply: str = kitaru.llm(history, model=model, system=SYSTEM).load()
        history.append({"role": "assistant", "content": reply})
        replies.append(reply)
        _after_call(turn)
    return {"turns": turns, "replies": replies}


if __name__ == "__main__":
    if os.environ.get("LLMFLOW_LOG"):
        enable_cli_logging(logging.DEBUG)
    try:
        args = sys.argv[1:]
        result = chat.run(int(args[0]) if args else 4, *args[1:2]).wait(timeout=60)
    except KitaruError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result))

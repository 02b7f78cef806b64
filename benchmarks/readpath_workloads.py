"""The flows the read-path benchmark records (importable: a retry imports them again)."""

from __future__ import annotations

import time
from typing import Any

import kitaru

__all__ = ["BODY_STARTED", "FAIL_AT", "chain", "report", "step"]

FAIL_AT: dict[str, int | None] = {"input": None}
"""The step that receives this input raises (the last one, when building the journal)."""
BODY_STARTED: list[float] = []
"""When each run of ``chain``'s body started (``time.perf_counter()``)."""


@kitaru.checkpoint
def step(i: int) -> int:
    if i == FAIL_AT["input"]:
        raise RuntimeError(f"step failed at input {i}, as the benchmark asked")
    return i + 1


@kitaru.flow
def chain(n: int) -> Any:
    BODY_STARTED.append(time.perf_counter())
    # Each step gets the previous one's output handle, as a flow body passes them on.
    value: Any = 0
    for _ in range(n):
        value = step(value)
    return value


@kitaru.checkpoint
def draft(topic: str) -> str:
    # Larger than a value recorded inline, so the output is a stored payload.
    return f"notes on {topic}: " + "lorem ipsum " * 40


@kitaru.checkpoint
def ask(notes: str) -> str:
    kitaru.save("notes", notes)
    return kitaru.llm(f"Summarise: {notes}", model="openai/gpt-4o-mini")


@kitaru.flow
def report(topic: str) -> dict[str, Any]:
    notes = draft(topic)
    summary = ask(notes)
    return {"topic": topic, "summary": summary.load(), "body": "x" * 600}

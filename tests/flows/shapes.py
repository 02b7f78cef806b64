"""A flow whose shape of durable calls changes with ``SHAPES_CODE``, to provoke divergence.

- ``SHAPES_CODE``: ``original`` (default), ``renamed`` (``research`` became
  ``research_v2``), ``added`` (a new ``extra`` call before ``research``), ``removed``
  (``plan`` is gone), ``reordered`` (``research`` before ``plan``) or ``truncated``
  (the flow returns after ``plan``).
- ``SHAPES_SIDE``: a file every checkpoint body appends its name to.
- ``SHAPES_KILL``: when set, ``write`` SIGKILLs its process after its trace line.
"""

from __future__ import annotations

import os
import signal

from kitaru import checkpoint, flow


def _record(tag: str) -> None:
    side = os.environ.get("SHAPES_SIDE")
    if side:
        with open(side, "a", encoding="utf-8") as file:
            file.write(tag + "\n")


@checkpoint
def plan(topic: str) -> str:
    _record("plan")
    return f"plan for {topic}"


@checkpoint
def research(topic: str) -> str:
    _record("research")
    return f"notes on {topic}"


@checkpoint
def research_v2(topic: str) -> str:
    _record("research_v2")
    return f"better notes on {topic}"


@checkpoint
def extra(topic: str) -> str:
    _record("extra")
    return topic.upper()


@checkpoint
def write(plan_text: str, notes: str) -> str:
    _record("write")
    if os.environ.get("SHAPES_KILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    return f"{plan_text} / {notes}"


@flow
def report(topic: str) -> str:
    shape = os.environ.get("SHAPES_CODE", "original")
    if shape == "renamed":
        p, r = plan(topic), research_v2(topic)
    elif shape == "added":
        p = plan(topic)
        extra(topic)
        r = research(topic)
    elif shape == "removed":
        p, r = "no plan", research(topic)
    elif shape == "reordered":
        r = research(topic)
        p = plan(topic)
    elif shape == "truncated":
        return plan(topic).load()
    else:
        p, r = plan(topic), research(topic)
    return write(p, r)  # type: ignore[return-value]


if __name__ == "__main__":
    print(report.run("durability").wait())

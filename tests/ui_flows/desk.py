"""A small support desk: flows that finish, fail, wait for a person, or run on.

``python -m tests.ui_flows.desk MODE`` prints ``{"exec_id": ...}`` first, then one JSON
line with how the run ended. Modes:

- ``finish``: two checkpoints and a model call (answered by the mock provider when
  ``KITARU_LLM_MOCK_RESPONSE`` is set), then completes.
- ``fail``: a checkpoint raises ``ValueError``; the execution fails.
- ``wait``: waits (up to ``DESK_WAIT_TIMEOUT`` seconds, default 60) for a ``Decision``,
  then completes with it.
- ``leak``: a checkpoint is passed ``OPENAI_API_KEY``, prints it and returns it.
- ``tick``: ``DESK_TICKS`` (default 600) checkpoints of 0.1 s each, printing as it goes.
- ``gate``: triages, then pays, which fails until the file ``DESK_GATE`` names exists.
- ``notes``: logs metadata on the execution and saves an artifact from a checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass

import kitaru
from kitaru import KitaruExecutionError, KitaruStateError, checkpoint, flow


@dataclass
class Decision:
    approved: bool
    reviewer: str
    priority: int = 1


@checkpoint
def triage(ticket: str) -> str:
    print(f"triaging {ticket}")
    return f"{ticket}: billing"


@checkpoint
def reply(category: str) -> str:
    answer = kitaru.llm(
        f"Write a short reply about {category}",
        system="Be brief.",
        name="draft",
        model="openai/gpt-4o-mini",
    )
    return f"reply for {category}: {answer}"


@checkpoint
def refund(ticket: str) -> str:
    raise ValueError(f"refund limit exceeded for {ticket}")


@checkpoint
def tick(i: int) -> int:
    print(f"tick {i}")
    time.sleep(0.1)
    return i


@checkpoint
def step(i: int) -> int:
    return i * 2


@checkpoint
def echo_key(key: str) -> str:
    print(f"using {key}")
    return f"the key is {key}"


@checkpoint
def pay(ticket: str) -> str:
    if not os.path.exists(os.environ["DESK_GATE"]):
        raise RuntimeError(f"payments are closed for {ticket}")
    return f"paid {ticket}"


@checkpoint
def summarise(ticket: str) -> str:
    kitaru.save("summary", {"ticket": ticket, "lines": 3}, type="context")
    kitaru.log(words=42)
    return f"summary of {ticket}"


@flow
def gated_refund(ticket: str) -> str:
    triage(ticket)
    return pay(ticket).load()


@flow
def annotate(ticket: str) -> str:
    kitaru.log(priority="high", team={"name": "billing"})
    return summarise(ticket).load()


@flow
def steps(n: int) -> int:
    return sum(step(i).load() for i in range(n))


@flow
def leak() -> str:
    return echo_key(os.environ["OPENAI_API_KEY"]).load()


@flow
def answer_ticket(ticket: str) -> str:
    return reply(triage(ticket)).load()


@flow
def refund_ticket(ticket: str) -> str:
    triage(ticket)
    return refund(ticket).load()


@flow
def escalate(ticket: str) -> dict[str, object]:
    category = triage(ticket).load()
    decision = kitaru.wait(
        schema=Decision,
        name="approve",
        question=f"Escalate {ticket}?",
        timeout=float(os.environ.get("DESK_WAIT_TIMEOUT", "60")),
    )
    return {"category": category, "approved": decision.approved, "by": decision.reviewer}


@flow
def watch(n: int) -> int:
    return sum(tick(i).load() for i in range(n))


def _start(mode: str) -> kitaru.FlowHandle:
    starts = {
        "finish": lambda: answer_ticket.run("T-1", background=True),
        "fail": lambda: refund_ticket.run("T-2", background=True),
        "wait": lambda: escalate.run("T-3", background=True),
        "leak": lambda: leak.run(background=True),
        "tick": lambda: watch.run(int(os.environ.get("DESK_TICKS", "600")), background=True),
        "gate": lambda: gated_refund.run("T-4", background=True),
        "notes": lambda: annotate.run("T-5", background=True),
    }
    if mode not in starts:
        raise SystemExit(f"unknown mode {mode!r}")
    return starts[mode]()


if __name__ == "__main__":
    handle = _start(sys.argv[1])
    print(json.dumps({"exec_id": handle.exec_id}), flush=True)
    try:
        result = handle.wait()
    except KitaruStateError:
        print(json.dumps({"status": str(handle.status)}), flush=True)
    except KitaruExecutionError as exc:
        print(json.dumps({"status": str(exc.status), "error": str(exc)}), flush=True)
        sys.exit(1)
    else:
        print(json.dumps({"status": "completed", "result": result}), flush=True)

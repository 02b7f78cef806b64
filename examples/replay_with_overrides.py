"""Replay a finished research run from a later step, with an earlier result changed.

Run it with ``python examples/replay_with_overrides.py``. It works offline: the model
call is answered by ``KITARU_LLM_MOCK_RESPONSE``, and the journal goes to a temporary
folder unless ``KITARU_STORE`` names one.

What happens:
1. The research flow runs once: search, summarise (a model call), review, report.
2. It is replayed from ``review`` with the ``search`` output overridden and a new
   ``audience`` input. The replay is a NEW execution: ``search`` is not run (its
   output is the override), ``summarise`` runs again because it consumes the changed
   search results, ``review`` and ``report`` run because they come at or after
   ``from_``. The step log printed at the end of each run shows exactly that.
"""

from __future__ import annotations

import os
import shlex
import tempfile

import kitaru
from kitaru import KitaruClient, checkpoint, flow

STEPS: list[str] = []
"""Which step bodies ran in this process, in order (reset before each run)."""


@checkpoint(type="tool_call")
def search(topic: str) -> list[str]:
    STEPS.append("search")
    return [f"{topic} are driven by the moon", f"{topic} happen twice a day"]


@checkpoint(type="llm_call")
def summarise(findings: list[str]) -> str:
    STEPS.append("summarise")
    answer = kitaru.llm("Summarise: " + "; ".join(findings), model="openai/gpt-4o-mini")
    return f"{answer} ({len(findings)} findings)"


@checkpoint
def review(summary: str, audience: str) -> str:
    STEPS.append("review")
    return f"checked for {audience}: {summary}"


@checkpoint
def report(reviewed: str, topic: str) -> str:
    STEPS.append("report")
    return f"# {topic}\n{reviewed}"


@flow
def research(topic: str, audience: str = "experts") -> str:
    findings = search(topic)
    summary = summarise(findings)
    reviewed = review(summary, audience)
    return report(reviewed, topic)  # type: ignore[return-value]


def main() -> None:
    os.environ.setdefault("KITARU_LLM_MOCK_RESPONSE", "The tides follow the moon.")
    if "KITARU_STORE" not in os.environ:
        folder = tempfile.mkdtemp(prefix="kitaru-replay-demo-")
        os.environ["KITARU_STORE"] = os.path.join(folder, "journal.db")

    print("1. The first run:")
    STEPS.clear()
    first = research.run("tides")
    print(first.wait())
    print(f"   steps that ran: {', '.join(STEPS)}\n")

    print("2. Replay from 'review', with search overridden and a new audience:")
    STEPS.clear()
    replay = research.replay(
        first.exec_id,
        from_="review",
        overrides={"checkpoint.search": ["tides are mostly lunar"]},
        audience="children",
    )
    print(replay.wait())
    print(f"   steps that ran: {', '.join(STEPS)}")
    print("   (search was overridden, so it did not run; summarise consumed its output)")

    execution = KitaruClient().executions.get(replay.exec_id)
    print(f"\nExecution {execution.exec_id} was replayed from {execution.original_exec_id}.")
    # Another terminal does not have this script's KITARU_STORE: the command names it.
    store = shlex.quote(os.environ["KITARU_STORE"])
    print(f"Inspect it with: KITARU_STORE={store} kitaru executions get {execution.exec_id}")


if __name__ == "__main__":
    main()

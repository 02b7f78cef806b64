"""A PydanticAI agent made durable with ``kitaru.adapters.pydantic_ai.wrap``.

The agent calls the tool ``record_step`` as often as the model asks; each call appends
its step to the file named by ``ADAPTERFLOW_SIDE_EFFECTS``, so a test counts how often
a tool body really ran. ``ADAPTERFLOW_KILL_AT=STEP`` makes the process SIGKILL itself
when the tool is called for STEP, before that call's side effect.
A step starting with ``bad`` is refused with ``ModelRetry`` (the model is asked again).
``ADAPTERFLOW_INSTRUCTIONS`` replaces the agent's instructions (a changed agent).
``ADAPTERFLOW_CAPTURE`` (JSON) is passed to ``wrap`` as ``tool_capture_config_by_name``.

``python -m tests.llm_flows.pydantic_agent PROMPT [sync|async]`` runs the flow (with
``run_sync`` or with ``asyncio.run(agent.run(...))``) and prints its result as JSON.
The model is OpenAI's chat API, aimed at the test server by ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from pydantic_ai import Agent, ModelRetry
from pydantic_ai.models.openai import OpenAIChatModel

from kitaru import KitaruError, flow
from kitaru.adapters import pydantic_ai as kp


def record_step(step: str) -> str:
    """Carry out one step of the plan and report it done.

    Args:
        step: The step to carry out.
    """
    if step.startswith("bad"):
        raise ModelRetry(f"{step} is not a step of the plan; name a real one")
    if os.environ.get("ADAPTERFLOW_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)
    with Path(os.environ["ADAPTERFLOW_SIDE_EFFECTS"]).open("a") as out:
        out.write(step + "\n")
    return f"done: {step}"


def build_agent() -> kp.DurableAgent:
    """The wrapped agent, with a client made now (so it reads the current environment)."""
    return kp.wrap(
        Agent(
            OpenAIChatModel("gpt-4o-mini", provider="openai"),
            instructions=os.environ.get(
                "ADAPTERFLOW_INSTRUCTIONS", "Carry out the plan one step at a time."
            ),
            tools=[record_step],
        ),
        tool_capture_config={"mode": "full"},
        tool_capture_config_by_name=json.loads(os.environ.get("ADAPTERFLOW_CAPTURE", "{}")),
    )


@flow
def plan(prompt: str, mode: str = "sync") -> dict[str, object]:
    agent = build_agent()
    result = asyncio.run(agent.run(prompt)) if mode == "async" else agent.run_sync(prompt)
    return {"output": result.output, "messages": len(result.all_messages())}


@flow
async def plan_async(prompt: str) -> dict[str, object]:
    result = await build_agent().run(prompt)
    return {"output": result.output, "messages": len(result.all_messages())}


if __name__ == "__main__":
    try:
        args = sys.argv[1:]
        outcome = plan.run(args[0], *args[1:2]).wait(timeout=60)
    except KitaruError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    print(json.dumps(outcome))

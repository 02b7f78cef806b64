"""An OpenAI Agents SDK agent made durable with ``kitaru.adapters.openai_agents.wrap``.

The agent calls the function tool ``record_step`` as often as the model asks; each call
appends its step to the file named by ``ADAPTERFLOW_SIDE_EFFECTS``, so a test counts how
often a tool body really ran. ``ADAPTERFLOW_KILL_AT=STEP`` makes the process SIGKILL
itself when the tool is called for STEP, before that call's side effect.
``ADAPTERFLOW_START_DELAY`` (JSON, step to seconds) holds a tool call in the run's
``on_tool_start`` hook, so the SDK's concurrent tools of one turn start in another order.

``python -m tests.llm_flows.openai_agent PROMPT [sync|async]`` runs the flow (with
``Runner.run_sync`` or with ``asyncio.run(Runner.run(...))``) and prints its result as
JSON. The model is OpenAI's chat completions API, aimed at the test server by
``OPENAI_BASE_URL``; the SDK's trace export is off, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    RunHooks,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from kitaru import KitaruError, flow
from kitaru.adapters import openai_agents as ka

set_tracing_disabled(True)


@function_tool
def record_step(step: str) -> str:
    """Carry out one step of the plan and report it done.

    Args:
        step: The step to carry out.
    """
    if os.environ.get("ADAPTERFLOW_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)
    with Path(os.environ["ADAPTERFLOW_SIDE_EFFECTS"]).open("a") as out:
        out.write(step + "\n")
    return f"done: {step}"


def build_agent() -> Agent[None]:
    """The wrapped agent, with a client made now (so it reads the current environment)."""
    model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=AsyncOpenAI())
    planner = Agent(
        name="planner",
        instructions="Carry out the plan one step at a time.",
        model=model,
        tools=[record_step],
    )
    return ka.wrap(planner)


class StartDelays(RunHooks[Any]):
    """Hold each tool call named in ``ADAPTERFLOW_START_DELAY`` before it starts."""

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        delays = json.loads(os.environ.get("ADAPTERFLOW_START_DELAY", "{}"))
        step = json.loads(getattr(context, "tool_arguments", None) or "{}").get("step")
        await asyncio.sleep(float(delays.get(step, 0)))


@flow
def plan(prompt: str, mode: str = "sync") -> dict[str, object]:
    agent = build_agent()
    if mode == "async":
        result = asyncio.run(Runner.run(agent, prompt, hooks=StartDelays()))
    else:
        result = Runner.run_sync(agent, prompt, hooks=StartDelays())
    return {"output": result.final_output, "items": len(result.new_items)}


@flow
async def plan_async(prompt: str) -> dict[str, object]:
    result = await Runner.run(build_agent(), prompt, hooks=StartDelays())
    return {"output": result.final_output, "items": len(result.new_items)}


if __name__ == "__main__":
    try:
        args = sys.argv[1:]
        outcome = plan.run(args[0], *args[1:2]).wait(timeout=60)
    except KitaruError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    print(json.dumps(outcome))

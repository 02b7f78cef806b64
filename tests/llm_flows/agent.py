"""An agent loop in the flow body: the model asks for tools, checkpoints run them.

Each step makes one flow-body ``kitaru.llm()`` call with ``tools=`` and
``response_format=``; every tool call the model asks for runs in the ``run_tool``
checkpoint and its result goes back in the next step's prompt. The loop ends when the
model answers without tool calls, with a ``Forecast``.

Environment, read at call time:

- ``AGENT_KILL_AFTER``: the process SIGKILLs itself right after its N-th model call
  returned (replayed calls count).
- ``AGENT_TOOL_LOG``: a file each real run of a tool appends a line to.

``python -m tests.llm_flows.agent MODEL`` runs it to its end and prints the result as
JSON; a failed execution prints its error to stderr and exits 1.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

import kitaru
from kitaru import KitaruError, LLMResponse, LLMToolCall, checkpoint, flow

TASK = "What should I wear in Paris today?"


class Forecast(BaseModel):
    city: str
    summary: str
    temperature_c: float


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, Any]:
    """Look up the current weather in a city.

    Args:
        city: The city to look up.
        unit: Celsius ("c") or Fahrenheit ("f").
    """
    log = os.environ.get("AGENT_TOOL_LOG")
    if log:
        with Path(log).open("a") as file:
            file.write(f"get_weather {city}\n")
    return {"city": city, "temperature": 21.5, "unit": unit, "sky": "clear"}


TOOLS = {"get_weather": get_weather}


@checkpoint
def run_tool(call: LLMToolCall) -> dict[str, Any]:
    return TOOLS[call.name](**call.arguments)


@flow
def agent(model: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": TASK}]
    for step in range(1, 6):
        response: LLMResponse = kitaru.llm(
            messages, model=model, tools=[get_weather], response_format=Forecast
        ).load()
        if os.environ.get("AGENT_KILL_AFTER") == str(step):
            os.kill(os.getpid(), signal.SIGKILL)
        messages.append(response.message())
        if not response.tool_calls:
            assert isinstance(response.parsed, Forecast)
            return {
                "forecast": response.parsed.model_dump(),
                "steps": step,
                "finish_reason": str(response.finish_reason),
            }
        for call in response.tool_calls:
            messages.append(call.result(run_tool(call).load()))
    raise RuntimeError("the model never stopped asking for tools")


if __name__ == "__main__":
    try:
        result = agent.run(sys.argv[1]).wait(timeout=60)
    except KitaruError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result))

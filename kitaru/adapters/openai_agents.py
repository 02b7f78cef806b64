"""``kitaru.adapters.openai_agents``: durable OpenAI Agents SDK agents.

``wrap(agent)`` returns a copy of the agent (and of the agents it hands off to) whose
model is a ``DurableModel`` and whose function tools are durable: inside a flow body,
every model response and every function tool call is a durable call of the flow. A
resumed execution gets completed responses and tool results back from the journal (no
request is sent again, no tool runs twice) and runs live from where it stopped::

    from agents import Agent, Runner
    from kitaru.adapters import openai_agents as ka

    agent = ka.wrap(Agent(name="planner", instructions="...", tools=[search]))

    @flow
    def research(topic: str) -> str:
        return Runner.run_sync(agent, f"Research {topic}").final_output

``DurableModelProvider(provider)`` does the same for the models a ``RunConfig`` picks by
name. Outside a flow (and inside a checkpoint, which is recorded as a whole) the calls
are plain. Streamed runs (``Runner.run_streamed``) are refused in a flow body: a stream
cannot be replayed. Tools other than function tools (hosted tools run by the provider,
computer or shell tools) are not made durable.

Calls are matched to the journal by their place in the run. The SDK runs the function
tools of one turn concurrently, and which of them starts first can change between runs
(hooks and guardrails run before each). So a turn's tool calls get their places when
the model's response arrives, in the order the response lists them, and each call
takes the place reserved for its tool call id: a resumed run matches every call to its
record whatever order the tools start in.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

from kitaru.adapters._durable import digest_of, durable_call, in_flow_body, plan_call
from kitaru.errors import KitaruFeatureNotAvailableError, KitaruUsageError

try:
    from agents import Agent, FunctionTool, Model, ModelProvider, ModelResponse
    from agents.models.multi_provider import MultiProvider
    from agents.tool_context import ToolContext
except ImportError as exc:
    raise KitaruFeatureNotAvailableError(
        f"kitaru.adapters.openai_agents needs the OpenAI Agents SDK ({exc}). "
        "Install it with `pip install 'kitaru[openai-agents]'`."
    ) from exc

__all__ = ["DurableModel", "DurableModelProvider", "durable_tool", "wrap"]

_TARGET = "kitaru.adapters.openai_agents"
_TOOLS_ARGUMENT = 3  # Model.get_response(system_instructions, input, settings, tools, ...)


def _plain(value: Any) -> Any:
    """A JSON-ready form of request items (dicts, or the SDK's pydantic models)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    return repr(value)


class DurableModel(Model):
    """A model whose responses, in a flow body, are durable calls named ``model_response``.

    ``model`` is a ``Model``, a model name (resolved by ``provider``, by default the
    SDK's ``MultiProvider``), or None for the SDK's default model.
    """

    def __init__(self, model: Model | str | None, provider: ModelProvider | None = None):
        self._model = model
        self._provider = provider

    @property
    def wrapped(self) -> Model:
        """The model that really answers (a name is resolved on first use)."""
        if not isinstance(self._model, Model):
            self._model = (self._provider or MultiProvider()).get_model(self._model)
        return self._model

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Ask the model, or return the response recorded for this request."""
        model = self.wrapped
        if not in_flow_body():
            return await model.get_response(*args, **kwargs)
        system_instructions, request_input = _instructions_and_input(args, kwargs)
        data = json.dumps(
            [type(model).__name__, system_instructions, request_input],
            sort_keys=True,
            default=_plain,
        ).encode()
        preview = request_input if isinstance(request_input, str) else f"{len(request_input)} items"
        response = await durable_call(
            "model_response",
            f"{_TARGET}:model_response",
            digest_of("input", data, preview),
            lambda: model.get_response(*args, **kwargs),
            call_type="llm_call",
            encode=lambda response: response,
            decode=_response,
        )
        tools = args[_TOOLS_ARGUMENT] if len(args) > _TOOLS_ARGUMENT else kwargs.get("tools")
        _plan_tool_calls(response, tools or ())
        return response

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Stream outside a flow body; refused inside one, where responses are recorded."""
        if in_flow_body():
            raise KitaruUsageError(
                "A wrapped OpenAI Agents SDK agent cannot stream inside a flow body: a "
                "stream cannot be recorded and replayed. Use Runner.run() or "
                "Runner.run_sync()."
            )
        return self.wrapped.stream_response(*args, **kwargs)


def _instructions_and_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    named = dict(zip(("system_instructions", "input"), args, strict=False))
    named.update({k: v for k, v in kwargs.items() if k in ("system_instructions", "input")})
    return named.get("system_instructions"), named.get("input")


def _response(value: Any) -> ModelResponse:
    if not isinstance(value, ModelResponse):
        raise KitaruUsageError(
            f"The recorded model response is a {type(value).__name__}, not a ModelResponse; "
            "the journal does not belong to this agent. Start a new execution."
        )
    return value


class DurableModelProvider(ModelProvider):
    """A provider whose models are ``DurableModel``s: ``RunConfig(model_provider=...)``."""

    def __init__(self, provider: ModelProvider | None = None):
        self._provider = provider or MultiProvider()

    def get_model(self, model_name: str | None) -> Model:
        """The durable form of the model ``model_name`` (None: the default model)."""
        return DurableModel(self._provider.get_model(model_name))


def _tool_request(arguments: str) -> Any:
    return digest_of("arguments", arguments.encode(), arguments)


def _plan_tool_calls(response: ModelResponse, tools: Any) -> None:
    """Reserve the places of the durable tool calls ``response`` asks for, in its order."""
    durable = {
        tool.name
        for tool in tools
        if isinstance(tool, FunctionTool)
        and getattr(tool.on_invoke_tool, "__kitaru_durable__", False)
    }
    if not durable:
        return
    for item in response.output:
        name = getattr(item, "name", None)
        call_id = getattr(item, "call_id", None)
        if getattr(item, "type", None) != "function_call" or name not in durable or not call_id:
            continue
        arguments = getattr(item, "arguments", "") or ""
        plan_call(call_id, f"tool_{name}", f"{_TARGET}:tool_{name}", _tool_request(arguments))


def durable_tool(tool: FunctionTool) -> FunctionTool:
    """A copy of ``tool`` whose calls, in a flow body, are durable calls ``tool_<name>``."""
    invoke = tool.on_invoke_tool
    if getattr(invoke, "__kitaru_durable__", False):
        return tool
    name = tool.name

    async def on_invoke_tool(context: ToolContext[Any], arguments: str) -> Any:
        if not in_flow_body():
            return await invoke(context, arguments)

        async def call() -> Any:
            return await invoke(context, arguments)

        return await durable_call(
            f"tool_{name}",
            f"{_TARGET}:tool_{name}",
            _tool_request(arguments),
            call,
            call_type="tool_call",
            encode=lambda result: result,
            decode=lambda result: result,
            planned=context.tool_call_id,
        )

    on_invoke_tool.__kitaru_durable__ = True  # type: ignore[attr-defined]
    return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool)


def wrap(agent: Agent[Any]) -> Agent[Any]:
    """Return a copy of ``agent`` whose model responses and function tool calls are durable.

    Agents it hands off to are wrapped too. Run it with ``Runner.run`` or
    ``Runner.run_sync`` inside a flow body.
    """
    if not isinstance(agent, Agent):
        raise KitaruUsageError(
            f"kitaru.adapters.openai_agents.wrap() takes an agents.Agent, got "
            f"{type(agent).__name__}."
        )
    return _wrap(agent, {})


def _wrap(agent: Agent[Any], done: dict[int, Agent[Any]]) -> Agent[Any]:
    if id(agent) in done:  # agents that hand off to each other
        return done[id(agent)]
    model = agent.model if isinstance(agent.model, DurableModel) else DurableModel(agent.model)
    copy = agent.clone(model=model)
    done[id(agent)] = copy
    copy.tools = [durable_tool(t) if isinstance(t, FunctionTool) else t for t in agent.tools]
    copy.handoffs = [_wrap(h, done) if isinstance(h, Agent) else h for h in agent.handoffs]
    return copy

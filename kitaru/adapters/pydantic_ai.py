"""``kitaru.adapters.pydantic_ai``: durable PydanticAI agents.

``wrap(agent)`` returns an agent that runs exactly like ``agent``; inside a flow body,
every model request and every tool call it makes is a durable call of the flow. A
resumed execution gets completed model requests and tool calls back from the journal
(no request is sent again, no tool runs twice) and runs live from where it stopped::

    from kitaru.adapters import pydantic_ai as kp

    agent = kp.wrap(Agent("openai:gpt-4o-mini", tools=[search]))

    @flow
    def research(topic: str) -> str:
        return agent.run_sync(f"Research {topic}").output

A tool made with ``hitl_tool`` asks a person: the agent's call becomes a
``kitaru.wait`` and the answer is the tool's result. Outside a flow (and inside a
checkpoint, which is recorded as a whole) the wrapped agent makes plain calls.

Tool calls run one at a time, in the order the model asked for them, so a resumed
run meets its calls in the order they were recorded.

``wrap(agent, tool_capture_config=..., tool_capture_config_by_name=...)`` takes
Kitaru's capture modes per tool. ``full`` (the default) records the call with a
preview of its arguments; ``metadata_only`` records it without that preview (the
result is still kept: a resumed run needs it to skip the tool); ``off`` makes the
tool a plain call that is not recorded, so a resumed run calls it again.

Streamed runs (``run_stream``, an ``event_stream_handler``) are refused in a flow body:
a stream cannot be replayed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

from kitaru.adapters._durable import digest_of, durable_call, in_flow_body
from kitaru.errors import KitaruFeatureNotAvailableError, KitaruUsageError

try:
    from pydantic_ai import RunContext
    from pydantic_ai.agent import Agent, WrapperAgent
    from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse
    from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
    from pydantic_ai.models.wrapper import WrapperModel
    from pydantic_ai.settings import ModelSettings
    from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, ToolsetTool
    from pydantic_ai.toolsets.wrapper import WrapperToolset
except ImportError as exc:
    raise KitaruFeatureNotAvailableError(
        f"kitaru.adapters.pydantic_ai needs PydanticAI ({exc}). "
        "Install it with `pip install 'kitaru[pydantic-ai]'`."
    ) from exc

__all__ = [
    "CaptureMode",
    "DurableAgent",
    "DurableModel",
    "DurableToolset",
    "ToolCapture",
    "hitl_tool",
    "wrap",
]

F = TypeVar("F", bound=Callable[..., Any])

_TARGET = "kitaru.adapters.pydantic_ai"
CaptureMode = Literal["full", "metadata_only", "off"]
_MODES = ("full", "metadata_only", "off")
_CAPTURE_KEYS = frozenset({"mode", "enabled", "save_args", "save_result", "include_timings"})
# Fields that differ between two runs of the same conversation (clock readings, ids
# made up per run); left out of a request's digest so a resumed run matches its record.
_RUN_LOCAL_FIELDS = frozenset({"timestamp", "run_id", "conversation_id"})


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _RUN_LOCAL_FIELDS}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _request_digest(model_name: str, messages: list[ModelMessage]) -> Any:
    plain = _stable(ModelMessagesTypeAdapter.dump_python(messages, mode="json"))
    data = json.dumps([model_name, plain], sort_keys=True).encode()
    return digest_of("messages", data, f"{model_name}: {len(messages)} messages")


def _encode_response(response: ModelResponse) -> bytes:
    return ModelMessagesTypeAdapter.dump_json([response])


def _decode_response(data: bytes) -> ModelResponse:
    (message,) = ModelMessagesTypeAdapter.validate_json(data)
    assert isinstance(message, ModelResponse)
    return message


class DurableModel(WrapperModel):
    """A model whose requests, in a flow body, are durable calls named ``model_request``."""

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Send the request, or return the response recorded for it."""
        if not in_flow_body():
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        return await durable_call(
            "model_request",
            f"{_TARGET}:model_request",
            _request_digest(self.wrapped.model_name, messages),
            lambda: self.wrapped.request(messages, model_settings, model_request_parameters),
            call_type="llm_call",
            encode=_encode_response,
            decode=_decode_response,
        )

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        """Stream outside a flow body; refused inside one, where requests are recorded."""
        if in_flow_body():
            raise KitaruUsageError(
                "A wrapped PydanticAI agent cannot stream inside a flow body: a stream "
                "cannot be recorded and replayed. Use agent.run() or agent.run_sync() "
                "without an event_stream_handler."
            )
        async with self.wrapped.request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as stream:
            yield stream


@dataclasses.dataclass(frozen=True)
class ToolCapture:
    """How one tool's calls are kept: recorded (``full``, ``metadata_only``) or not."""

    mode: CaptureMode = "full"

    @property
    def recorded(self) -> bool:
        return self.mode != "off"

    @property
    def shows_arguments(self) -> bool:
        return self.mode == "full"


def _capture_of(config: Any, where: str) -> ToolCapture:
    """Read one of Kitaru's capture configs (``{"mode": ..., "enabled": ...}``)."""
    if config is None:
        return ToolCapture()
    if not isinstance(config, dict):
        raise KitaruUsageError(
            f"{where} must be a dict such as {{'mode': 'full'}}, got {type(config).__name__}."
        )
    unknown = sorted(set(config) - _CAPTURE_KEYS)
    if unknown:
        raise KitaruUsageError(
            f"{where} has unknown keys {unknown}; use 'mode' (one of {', '.join(_MODES)})."
        )
    mode = config.get("mode", "full")
    if mode not in _MODES:
        raise KitaruUsageError(
            f"{where} has mode {mode!r}; use one of {', '.join(repr(m) for m in _MODES)}."
        )
    if config.get("enabled", True) is False:
        return ToolCapture("off")
    if mode == "full" and config.get("save_args", True) is False:
        mode = "metadata_only"  # no argument preview; the result stays for replay
    return ToolCapture(mode)


@dataclasses.dataclass
class DurableToolset(WrapperToolset[Any]):
    """A toolset whose calls, in a flow body, are durable calls named ``tool_<name>``."""

    capture: ToolCapture = dataclasses.field(default_factory=ToolCapture)
    capture_by_name: dict[str, ToolCapture] = dataclasses.field(default_factory=dict)

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        """The wrapped tools, each made to run alone so calls keep the model's order."""
        tools = await super().get_tools(ctx)
        return {
            name: dataclasses.replace(
                tool, tool_def=dataclasses.replace(tool.tool_def, sequential=True)
            )
            for name, tool in tools.items()
        }

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        """Run the tool (or ask a person, for a ``hitl_tool``), or return its recorded result."""
        if not in_flow_body():
            return await super().call_tool(name, tool_args, ctx, tool)
        question = _hitl_of(self.wrapped, name)
        if question is not None:
            return _ask(name, tool_args, question)
        capture = self.capture_by_name.get(name, self.capture)
        if not capture.recorded:
            return await super().call_tool(name, tool_args, ctx, tool)
        data = json.dumps(tool_args, sort_keys=True, default=repr).encode()
        preview = json.dumps(tool_args, default=repr) if capture.shows_arguments else ""
        return await durable_call(
            f"tool_{name}",
            f"{_TARGET}:tool_{name}",
            digest_of("arguments", data, preview),
            lambda: super(DurableToolset, self).call_tool(name, tool_args, ctx, tool),
            call_type="tool_call",
            encode=lambda result: result,
            decode=lambda result: result,
        )


@dataclasses.dataclass(frozen=True)
class _Question:
    question: str | None
    schema: Any
    timeout: float | None


_HITL_ATTRIBUTE = "__kitaru_hitl__"


def hitl_tool(
    *, question: str | None = None, schema: Any = None, timeout: float | None = 600
) -> Callable[[F], F]:
    """Mark a tool function as a question to a person.

    Register the function as a tool of the agent as usual. In a flow body, when the
    model calls it, its body does not run: the flow waits (``kitaru.wait`` named after
    the tool, with the call's arguments as metadata) and the answer, validated against
    ``schema``, is the tool's result. Outside a flow the body runs as a plain tool.
    """

    def mark(func: F) -> F:
        setattr(func, _HITL_ATTRIBUTE, _Question(question, schema, timeout))
        return func

    return mark


def _hitl_of(toolset: AbstractToolset[Any], name: str) -> _Question | None:
    if not isinstance(toolset, FunctionToolset):
        return None
    tool = toolset.tools.get(name)
    found = getattr(tool.function, _HITL_ATTRIBUTE, None) if tool is not None else None
    return found if isinstance(found, _Question) else None


def _ask(name: str, tool_args: dict[str, Any], question: _Question) -> Any:
    from kitaru._wait import wait

    # Blocks the agent's loop, as the flow body itself is what waits.
    return wait(
        schema=question.schema,
        name=name,
        question=question.question,
        timeout=question.timeout,
        metadata={"tool": name, "arguments": json.loads(json.dumps(tool_args, default=repr))},
    )


class DurableAgent(WrapperAgent[Any, Any]):
    """An agent that runs ``wrapped`` with a ``DurableModel`` and ``DurableToolset``s."""

    def __init__(
        self,
        wrapped: Any,
        *,
        capture: ToolCapture | None = None,
        capture_by_name: dict[str, ToolCapture] | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.capture = capture or ToolCapture()
        self.capture_by_name = dict(capture_by_name or {})

    @asynccontextmanager
    async def iter(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """The wrapped agent's run, with its model and every toolset made durable."""
        agent = self.wrapped
        if not isinstance(agent, Agent):
            raise KitaruUsageError(
                f"kitaru.adapters.pydantic_ai.wrap() takes a pydantic_ai.Agent, got "
                f"{type(agent).__name__}; wrap the Agent itself."
            )
        model = kwargs.pop("model", None) or agent.model
        if model is None:
            raise KitaruUsageError(
                "The agent has no model: give one to Agent(...) or to run(model=...)."
            )
        durable_model = DurableModel(model if isinstance(model, Model) else _infer(model))
        extra = kwargs.pop("toolsets", None) or ()
        # Every toolset, the agent's own function tools included, runs wrapped; the
        # agent's unwrapped function toolset is replaced by an empty one meanwhile.
        toolsets = [
            DurableToolset(t, capture=self.capture, capture_by_name=self.capture_by_name)
            for t in [*agent.toolsets, *extra]
        ]
        with agent.override(model=durable_model, tools=[], toolsets=toolsets):
            async with agent.iter(*args, **kwargs) as run:
                yield run


def _infer(name: Any) -> Model:
    from pydantic_ai.models import infer_model

    return infer_model(name)


def wrap(
    agent: Agent[Any, Any],
    *,
    tool_capture_config: dict[str, Any] | None = None,
    tool_capture_config_by_name: dict[str, dict[str, Any] | None] | None = None,
) -> DurableAgent:
    """Return ``agent`` made durable: its model requests and tool calls are recorded.

    Use the result like the agent (``run``, ``run_sync``); inside a flow body a
    resumed run replays completed requests and tool calls instead of repeating them.
    ``tool_capture_config`` sets how every tool's calls are kept (``{"mode": "full"}``,
    ``"metadata_only"`` or ``"off"``: see the module's description), and
    ``tool_capture_config_by_name`` overrides it per tool name.
    """
    capture = _capture_of(tool_capture_config, "tool_capture_config")
    if tool_capture_config_by_name is not None and not isinstance(
        tool_capture_config_by_name, dict
    ):
        raise KitaruUsageError(
            "tool_capture_config_by_name must map tool names to capture configs, got "
            f"{type(tool_capture_config_by_name).__name__}."
        )
    by_name = {
        name: capture if config is None else _capture_of(config, f"the config of tool {name!r}")
        for name, config in (tool_capture_config_by_name or {}).items()
    }
    if isinstance(agent, DurableAgent):
        if tool_capture_config is None and tool_capture_config_by_name is None:
            return agent
        agent = agent.wrapped
    if not isinstance(agent, Agent):
        raise KitaruUsageError(
            f"kitaru.adapters.pydantic_ai.wrap() takes a pydantic_ai.Agent, got "
            f"{type(agent).__name__}; wrap the Agent itself."
        )
    return DurableAgent(agent, capture=capture, capture_by_name=by_name)

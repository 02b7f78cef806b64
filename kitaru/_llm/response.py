"""What a model call with tools or structured output returns, and what it was offered.

``kitaru.llm(prompt)`` returns text. With ``tools=`` or ``response_format=`` it returns
an :class:`LLMResponse`: the text, the tool calls the model asked for (kitaru never
runs them), the parsed structured value, why the model stopped, and token usage.

These classes are recorded in the journal as the output of a flow-body call, under
their public names (``kitaru:LLMResponse``, ...), so moving their module later does not
make recorded executions unreadable.
"""

# No ``from __future__ import annotations``: the classes' ``__module__`` is set to
# ``kitaru`` below, and msgspec would look their string annotations up there.
import enum
import json
from typing import Any

import msgspec

__all__ = [
    "LLMFinishReason",
    "LLMResponse",
    "LLMToolCall",
    "LLMToolDefinition",
    "LLMUsage",
]


class LLMFinishReason(enum.StrEnum):
    """Why the model stopped generating, in the same words whatever the provider."""

    STOP = "stop"
    """The model finished its answer."""
    TOOL_CALLS = "tool_calls"
    """The model asked for one or more tool calls and waits for their results."""
    LENGTH = "length"
    """The answer hit ``max_tokens`` (or the model's limit) and is cut off."""
    CONTENT_FILTER = "content_filter"
    """The provider withheld (part of) the answer."""
    REFUSAL = "refusal"
    """The model declined to answer."""
    OTHER = "other"
    """A reason kitaru does not know; ``LLMResponse.text`` may still hold an answer."""


class LLMUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts as the provider reported them (None where it did not)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


class LLMToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """One tool call the model asked for: run it, then send back ``result(...)``."""

    id: str
    """The provider's id for the call; a tool result names it."""
    name: str
    arguments: dict[str, Any]
    """The arguments the model chose, decoded from JSON."""

    def result(self, content: object) -> dict[str, Any]:
        """The message that hands this call's result back to the model.

        ``content`` is sent as is if it is a string, else as JSON.
        """
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        return {"role": "tool", "tool_call_id": self.id, "name": self.name, "content": text}


class LLMToolDefinition(msgspec.Struct, frozen=True, kw_only=True):
    """A tool offered to the model: its name, what it does, and its parameters' schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""


class LLMResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A model's answer to a call made with ``tools=`` or ``response_format=``."""

    text: str
    """The answer's text ("" when the model only asked for tool calls)."""
    tool_calls: tuple[LLMToolCall, ...] = ()
    parsed: Any = None
    """The answer parsed into ``response_format`` (None without one, and when the model
    asked for tool calls instead of answering)."""
    finish_reason: LLMFinishReason = LLMFinishReason.STOP
    usage: LLMUsage = msgspec.field(default_factory=LLMUsage)
    model: str = ""
    """The ``provider/model`` that answered."""

    def message(self) -> dict[str, Any]:
        """This answer as the assistant message to append to the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "name": call.name, "arguments": call.arguments}
                for call in self.tool_calls
            ]
        return message


# Recorded under the public module (see the module docstring).
for _cls in (LLMFinishReason, LLMUsage, LLMToolCall, LLMToolDefinition, LLMResponse):
    _cls.__module__ = "kitaru"

"""Turn what users pass as a prompt into the one chat-message list every provider gets.

Besides ``role`` and ``content``, two kinds of message carry more, so an agent loop can
hand tool results back to the model in the same form for every provider:

- an assistant message may list the ``tool_calls`` it made, each
  ``{"id", "name", "arguments"}`` (``LLMResponse.message()`` builds it); its content
  may then be empty;
- a ``tool`` message holds one call's result: ``{"role": "tool", "tool_call_id",
  "content"}`` and optionally the tool's ``name`` (``LLMToolCall.result()`` builds it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = ["EXTRA_KEYS", "Message", "normalise_prompt"]

Message = dict[str, Any]
"""One chat message: ``role`` and ``content`` (both text), plus the keys in ``EXTRA_KEYS``
that tool calling adds."""

EXTRA_KEYS = ("tool_calls", "tool_call_id", "name")
"""Keys a normalised message may have besides ``role`` and ``content``."""

_PROMPT_HELP = (
    "Pass a non-empty string, or a non-empty list of messages such as "
    "[{'role': 'user', 'content': 'Hello'}]."
)


def normalise_prompt(prompt: object, system: object = None) -> list[Message]:
    """Return ``prompt`` as a fresh list of ``{"role", "content"}`` messages.

    A string becomes one user message. ``system``, if given, is prepended as a system
    message. Keys other than ``role``, ``content`` and the tool-calling ones (see the
    module docstring) are dropped: the recorded prompt must be exactly what the
    provider was sent.
    """
    messages = _messages_from(prompt)
    if system is not None:
        if not isinstance(system, str):
            raise KitaruUsageError(
                f"system= must be a string, got {type(system).__name__}; "
                "pass the system instructions as text or leave system= out."
            )
        if not system.strip():
            raise KitaruUsageError(
                "system= is empty; pass the system instructions as text or leave system= out."
            )
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _messages_from(prompt: object) -> list[Message]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise KitaruUsageError(f"The prompt is empty. {_PROMPT_HELP}")
        return [{"role": "user", "content": prompt}]
    # Strings and bytes are sequences too; only real lists and tuples hold messages.
    if not isinstance(prompt, Sequence) or isinstance(prompt, bytes | bytearray):
        raise KitaruUsageError(
            f"The prompt must be a string or a list of messages, got "
            f"{type(prompt).__name__}. {_PROMPT_HELP}"
        )
    if not prompt:
        raise KitaruUsageError(f"The prompt is an empty message list. {_PROMPT_HELP}")
    return [_message_from(index, item) for index, item in enumerate(prompt)]


def _message_from(index: int, item: object) -> Message:
    where = f"Message {index} of the prompt"
    if not isinstance(item, Mapping):
        raise KitaruUsageError(
            f"{where} is a {type(item).__name__}, not a mapping; "
            "write each message as {'role': ..., 'content': ...}."
        )
    missing = [key for key in ("role", "content") if key not in item]
    if missing:
        raise KitaruUsageError(
            f"{where} has no {' or '.join(repr(key) for key in missing)} key; "
            "write each message as {'role': ..., 'content': ...}."
        )
    role, content = item["role"], item["content"]
    if not isinstance(role, str) or not role.strip():
        raise KitaruUsageError(
            f"{where} has role {role!r}; the role must be non-empty text such as "
            "'system', 'user' or 'assistant'."
        )
    tool_calls = _tool_calls(where, item) if role == "assistant" else []
    if content is None and tool_calls:
        content = ""  # what providers send for a message that only calls tools
    if not isinstance(content, str):
        raise KitaruUsageError(
            f"{where} has content of type {type(content).__name__}; kitaru.llm() sends "
            "text only, so pass the content as a string."
        )
    if not content.strip() and not tool_calls:
        raise KitaruUsageError(f"{where} has empty content; give it some text or remove it.")
    message: Message = {"role": role, "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if role == "tool":
        message.update(_tool_result(where, item))
    return message


def _tool_calls(where: str, item: Mapping[str, Any]) -> list[dict[str, Any]]:
    calls = item.get("tool_calls") or []
    if not isinstance(calls, Sequence) or isinstance(calls, str | bytes):
        raise KitaruUsageError(
            f"{where} has tool_calls of type {type(calls).__name__}; pass a list such as "
            "[{'id': 'call_1', 'name': 'search', 'arguments': {'q': 'x'}}]."
        )
    return [_tool_call(f"{where}, tool call {index}", call) for index, call in enumerate(calls)]


def _tool_call(where: str, call: object) -> dict[str, Any]:
    # An LLMToolCall (from a response) or the dict LLMResponse.message() writes.
    fields = (
        call
        if isinstance(call, Mapping)
        else {name: getattr(call, name, None) for name in ("id", "name", "arguments")}
    )
    call_id, name, arguments = fields.get("id"), fields.get("name"), fields.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = None
    if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
        raise KitaruUsageError(
            f"{where} needs a non-empty 'id' and 'name'; append response.message() to "
            "the conversation to pass the calls back as the model made them."
        )
    if not isinstance(arguments, Mapping):
        raise KitaruUsageError(
            f"{where} has arguments {arguments!r}; they must be a dict (a JSON object)."
        )
    return {"id": call_id, "name": name, "arguments": dict(arguments)}


def _tool_result(where: str, item: Mapping[str, Any]) -> dict[str, str]:
    call_id, name = item.get("tool_call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise KitaruUsageError(
            f"{where} is a tool result without a 'tool_call_id'; build it with "
            "tool_call.result(value) so it names the call it answers."
        )
    result = {"tool_call_id": call_id}
    if isinstance(name, str) and name:
        result["name"] = name
    return result

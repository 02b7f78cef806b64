"""Turn what users pass as a prompt into the one chat-message list every provider gets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kitaru.errors import KitaruUsageError

__all__ = ["Message", "normalise_prompt"]

Message = dict[str, str]
"""One chat message: exactly the keys ``role`` and ``content``, both text."""

_PROMPT_HELP = (
    "Pass a non-empty string, or a non-empty list of messages such as "
    "[{'role': 'user', 'content': 'Hello'}]."
)


def normalise_prompt(prompt: object, system: object = None) -> list[Message]:
    """Return ``prompt`` as a fresh list of ``{"role", "content"}`` messages.

    A string becomes one user message. ``system``, if given, is prepended as a system
    message. Keys other than ``role`` and ``content`` are dropped: calls are text in,
    text out, and the recorded prompt must be exactly what the provider was sent.
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
    if not isinstance(content, str):
        raise KitaruUsageError(
            f"{where} has content of type {type(content).__name__}; kitaru.llm() sends "
            "text only, so pass the content as a string."
        )
    if not content.strip():
        raise KitaruUsageError(f"{where} has empty content; give it some text or remove it.")
    return {"role": role, "content": content}

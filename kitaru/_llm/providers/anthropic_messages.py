"""Messages through the official ``anthropic`` SDK.

The SDK is imported on first use, so ``import kitaru`` never pays for it. This module is
the one place where the SDK's exceptions become :class:`ProviderError`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from kitaru._llm.messages import Message
from kitaru._llm.providers.protocol import (
    CONNECT_TIMEOUT_SECONDS,
    SDK_MAX_RETRIES,
    TIMEOUT_SECONDS,
    ProviderError,
    ProviderRequest,
    ProviderResponse,
    answered_model,
    connection_error,
    empty_response_error,
    malformed_response_error,
    never_reached_provider,
    status_error,
    token_count,
)
from kitaru._llm.response import LLMFinishReason, LLMToolCall, LLMToolDefinition
from kitaru.errors import KitaruUsageError

if TYPE_CHECKING:
    import anthropic

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicMessagesProvider", "split_system"]

PROVIDER = "anthropic"
# The messages API requires max_tokens; this is the default when the caller gives none.
DEFAULT_MAX_TOKENS = 4096
_CHAT_ROLES = ("user", "assistant", "tool")


def split_system(messages: list[Message]) -> tuple[str | None, list[Message]]:
    """Split leading system messages off ``messages`` into Anthropic's ``system=`` text.

    Several leading system messages are joined by blank lines. A system message after a
    user or assistant message has no place in the messages API and is refused.
    """
    system_parts: list[str] = []
    index = 0
    while index < len(messages) and messages[index]["role"] == "system":
        system_parts.append(messages[index]["content"])
        index += 1
    chat = messages[index:]
    for position, message in enumerate(chat, start=index):
        role = message["role"]
        if role == "system":
            raise KitaruUsageError(
                f"Message {position} is a system message after a non-system one; Anthropic "
                "models take system instructions only at the start. Move it to the front or "
                "pass it as system=."
            )
        if role not in _CHAT_ROLES:
            raise KitaruUsageError(
                f"Message {position} has role {role!r}; Anthropic models accept 'system' "
                "(at the start), 'user', 'assistant' and 'tool' (a tool result)."
            )
    if not chat:
        raise KitaruUsageError(
            "The prompt has only system messages; Anthropic models need at least one user "
            "message after them."
        )
    return ("\n\n".join(system_parts) if system_parts else None), chat


class AnthropicMessagesProvider:
    """A provider that speaks the Anthropic messages API at ``base_url``."""

    def __init__(self, *, base_url: str, api_key: str, key_hint: str) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self._key_hint = key_hint
        # Built here, not per request, so the SDK's import cost is not counted as latency
        # and a missing SDK is reported before anything is sent.
        self._sdk = _import_sdk()
        self._client = _client(api_key, base_url)

    def __repr__(self) -> str:
        return f"AnthropicMessagesProvider(base_url={self._base_url!r})"

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        """Ask for one message; return its text, tool calls and usage."""
        system, chat = split_system(request.messages)
        sdk, client = self._sdk, self._client
        options: dict[str, Any] = {}
        if system is not None:
            options["system"] = system
        extra_body: dict[str, Any] = {}
        if request.temperature is not None:
            # anthropic>=1.0 dropped the temperature keyword (newer models reject sampling
            # settings); the API still takes it where supported, so it goes in the body.
            extra_body["temperature"] = request.temperature
        if request.output is not None:
            # The messages API's own structured output. It goes in the body because SDKs
            # older than the feature lack the keyword.
            extra_body["output_config"] = {
                "format": {"type": "json_schema", "schema": request.output.schema}
            }
        if extra_body:
            options["extra_body"] = extra_body
        if request.tools:
            options["tools"] = [_tool(tool) for tool in request.tools]
        max_tokens = request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS
        try:
            message = client.messages.create(
                model=request.model_name,
                max_tokens=max_tokens,
                messages=_chat(chat),  # type: ignore[arg-type]  # plain dicts
                timeout=sdk.Timeout(
                    request.timeout, connect=min(CONNECT_TIMEOUT_SECONDS, request.timeout)
                ),
                **options,
            )
        except sdk.APIStatusError as exc:
            raise self._status_error(request, exc) from None
        except sdk.APITimeoutError:
            raise self._connection_error(request, timed_out=True) from None
        except sdk.APIConnectionError as exc:
            raise self._connection_error(
                request, timed_out=False, reached_provider=not never_reached_provider(exc)
            ) from None
        except ValueError as exc:
            # Bodies that are not JSON surface as JSON or Unicode decode errors.
            raise malformed_response_error(
                provider=PROVIDER, model=request.model_name, detail=type(exc).__name__
            ) from None
        return _response(request, message)

    def _status_error(self, request: ProviderRequest, exc: Any) -> ProviderError:
        return status_error(
            provider=PROVIDER,
            model=request.model_name,
            status_code=exc.status_code,
            body=exc.body,
            key_hint=self._key_hint,
            api_key=self._api_key,
        )

    def _connection_error(
        self, request: ProviderRequest, *, timed_out: bool, reached_provider: bool = True
    ) -> ProviderError:
        return connection_error(
            provider=PROVIDER,
            model=request.model_name,
            base_url=self._base_url,
            timed_out=timed_out,
            timeout=request.timeout,
            reached_provider=reached_provider,
        )


def _response(request: ProviderRequest, message: Any) -> ProviderResponse:
    # The SDK does not validate responses strictly: a body of the wrong shape comes back
    # as an object whose fields are None, so every field is checked here.
    model = request.model_name
    content = getattr(message, "content", None)
    if not isinstance(content, list):
        raise malformed_response_error(
            provider=PROVIDER, model=model, detail="no content list in the response"
        )
    text = "".join(
        block.text
        for block in content
        if getattr(block, "type", None) == "text" and isinstance(getattr(block, "text", None), str)
    )
    tool_calls = tuple(
        _tool_call(model, block) for block in content if getattr(block, "type", None) == "tool_use"
    )
    stop = getattr(message, "stop_reason", None)
    if not text and not tool_calls:
        raise empty_response_error(provider=PROVIDER, model=model, detail=f"stop reason {stop!r}")
    usage = getattr(message, "usage", None)
    input_tokens = token_count(getattr(usage, "input_tokens", None))
    output_tokens = token_count(getattr(usage, "output_tokens", None))
    total = (
        input_tokens + output_tokens
        if input_tokens is not None and output_tokens is not None
        else None
    )
    return ProviderResponse(
        text=text,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total,
        tool_calls=tool_calls,
        finish_reason=_STOP_REASONS.get(str(stop), LLMFinishReason.OTHER),
        model=answered_model(getattr(message, "model", None)),
    )


_STOP_REASONS = {
    "end_turn": LLMFinishReason.STOP,
    "stop_sequence": LLMFinishReason.STOP,
    "tool_use": LLMFinishReason.TOOL_CALLS,
    "max_tokens": LLMFinishReason.LENGTH,
    "model_context_window_exceeded": LLMFinishReason.LENGTH,
    "refusal": LLMFinishReason.REFUSAL,
}


def _tool_call(model: str, block: Any) -> LLMToolCall:
    call_id, name = getattr(block, "id", None), getattr(block, "name", None)
    arguments = getattr(block, "input", None)
    if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, dict):
        raise malformed_response_error(
            provider=PROVIDER,
            model=model,
            detail=f"tool_use block {name!r} lacks an id, a name or an input object",
        )
    return LLMToolCall(id=call_id, name=name, arguments=arguments)


def _chat(messages: list[Message]) -> list[dict[str, Any]]:
    """kitaru messages in the messages-API form.

    Tool calls become ``tool_use`` blocks of the assistant turn; tool results become
    ``tool_result`` blocks, and results that follow each other share one user turn, as
    the API expects all results of one assistant turn together.
    """
    chat: list[dict[str, Any]] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": content,
            }
            previous = chat[-1] if chat else None
            if previous is not None and previous.get("tool_results"):
                previous["content"].append(block)
            else:
                chat.append({"role": "user", "content": [block], "tool_results": True})
        elif message.get("tool_calls"):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
            blocks.extend(
                {
                    "type": "tool_use",
                    "id": call["id"],
                    "name": call["name"],
                    "input": call["arguments"],
                }
                for call in message["tool_calls"]
            )
            chat.append({"role": role, "content": blocks})
        else:
            chat.append({"role": role, "content": content})
    for turn in chat:
        turn.pop("tool_results", None)  # only marks turns that hold results
    return chat


def _tool(tool: LLMToolDefinition) -> dict[str, Any]:
    definition: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters}
    if tool.description:
        definition["description"] = tool.description
    return definition


def _import_sdk() -> Any:
    try:
        import anthropic
    except ImportError:
        raise KitaruUsageError(
            "anthropic models are called through the anthropic SDK, which is not installed; "
            "install it with: pip install 'kitaru[anthropic]'"
        ) from None
    return anthropic


# Clients are kept so an agent loop reuses connections instead of opening a new TLS
# session per call. The key includes the base URL, so changing it takes effect.
@functools.lru_cache(maxsize=16)
def _client(api_key: str, base_url: str) -> anthropic.Anthropic:
    import anthropic

    return anthropic.Anthropic(
        api_key=api_key,
        base_url=base_url,
        max_retries=SDK_MAX_RETRIES,
        timeout=anthropic.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
    )

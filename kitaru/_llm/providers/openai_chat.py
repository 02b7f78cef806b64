"""Chat completions through the official ``openai`` SDK (openai, ollama and openrouter).

The SDK is imported on first use, so ``import kitaru`` never pays for it. This module is
the one place where the SDK's exceptions become :class:`ProviderError`.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, Literal

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
    import openai

__all__ = ["OpenAIChatProvider"]

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]


class OpenAIChatProvider:
    """A provider that speaks the OpenAI chat-completions API at ``base_url``."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        api_key: str,
        key_hint: str | None,
        max_tokens_field: MaxTokensField = "max_tokens",
    ) -> None:
        self._provider = provider
        self._base_url = base_url
        self._api_key = api_key
        self._key_hint = key_hint
        self._max_tokens_field = max_tokens_field
        # Built here, not per request, so the SDK's import cost is not counted as latency
        # and a missing SDK is reported before anything is sent.
        self._sdk = _import_sdk(provider)
        self._client = _client(api_key, base_url)

    def __repr__(self) -> str:
        return f"OpenAIChatProvider(provider={self._provider!r}, base_url={self._base_url!r})"

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        """Ask for one chat completion; return its text, tool calls and usage."""
        sdk, client = self._sdk, self._client
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options[self._max_tokens_field] = request.max_tokens
        if request.tools:
            options["tools"] = [_tool(tool) for tool in request.tools]
        if request.output is not None:
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.output.name,
                    "schema": request.output.schema,
                    "strict": request.output.strict,
                },
            }
        try:
            completion = client.chat.completions.create(
                model=request.model_name,
                messages=[_message(message) for message in request.messages],  # type: ignore[misc]
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
            # The SDK raises JSON and Unicode decode errors (ValueErrors) for bodies that
            # are not JSON; pydantic's validation errors are ValueErrors too.
            raise malformed_response_error(
                provider=self._provider, model=request.model_name, detail=type(exc).__name__
            ) from None
        return self._response(request, completion)

    def _status_error(self, request: ProviderRequest, exc: Any) -> ProviderError:
        return status_error(
            provider=self._provider,
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
            provider=self._provider,
            model=request.model_name,
            base_url=self._base_url,
            timed_out=timed_out,
            timeout=request.timeout,
            reached_provider=reached_provider,
        )

    def _response(self, request: ProviderRequest, completion: Any) -> ProviderResponse:
        # The SDK does not validate responses strictly: a body of the wrong shape comes
        # back as an object whose fields are None, so every field is checked here.
        model = request.model_name
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise malformed_response_error(
                provider=self._provider, model=model, detail="no choices in the response"
            )
        choice = choices[0]
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        if content is not None and not isinstance(content, str):
            raise malformed_response_error(
                provider=self._provider, model=model, detail="message content is not text"
            )
        tool_calls = self._tool_calls(request, getattr(message, "tool_calls", None))
        finish = getattr(choice, "finish_reason", None)
        if not content and not tool_calls:
            refusal = getattr(message, "refusal", None)
            detail = "the model refused" if refusal else f"finish reason {finish!r}"
            raise empty_response_error(provider=self._provider, model=model, detail=detail)
        usage = getattr(completion, "usage", None)
        input_tokens = token_count(getattr(usage, "prompt_tokens", None))
        output_tokens = token_count(getattr(usage, "completion_tokens", None))
        total_tokens = token_count(getattr(usage, "total_tokens", None))
        if total_tokens is None and input_tokens is not None and output_tokens is not None:
            total_tokens = input_tokens + output_tokens
        return ProviderResponse(
            text=content or "",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=total_tokens,
            tool_calls=tool_calls,
            finish_reason=_FINISH_REASONS.get(str(finish), LLMFinishReason.OTHER),
            model=answered_model(getattr(completion, "model", None)),
        )

    def _tool_calls(self, request: ProviderRequest, raw: object) -> tuple[LLMToolCall, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise malformed_response_error(
                provider=self._provider, model=request.model_name, detail="tool_calls is not a list"
            )
        calls = []
        for item in raw:
            function = getattr(item, "function", None)
            call_id, name = getattr(item, "id", None), getattr(function, "name", None)
            arguments = _arguments(getattr(function, "arguments", None))
            if not isinstance(call_id, str) or not isinstance(name, str) or arguments is None:
                raise malformed_response_error(
                    provider=self._provider,
                    model=request.model_name,
                    detail=f"tool call {name!r} lacks an id, a name or JSON-object arguments",
                )
            calls.append(LLMToolCall(id=call_id, name=name, arguments=arguments))
        return tuple(calls)


_FINISH_REASONS = {
    "stop": LLMFinishReason.STOP,
    "tool_calls": LLMFinishReason.TOOL_CALLS,
    "function_call": LLMFinishReason.TOOL_CALLS,
    "length": LLMFinishReason.LENGTH,
    "content_filter": LLMFinishReason.CONTENT_FILTER,
}


def _arguments(raw: object) -> dict[str, Any] | None:
    """A tool call's arguments (a JSON object in a string), or None if they are not one."""
    if not isinstance(raw, str):
        return None
    if not raw.strip():
        return {}  # some servers send "" for a call without arguments
    try:
        decoded = json.loads(raw)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _message(message: Message) -> dict[str, Any]:
    """A kitaru message in the chat-completions form."""
    if message["role"] == "tool":
        return {
            "role": "tool",
            "tool_call_id": message["tool_call_id"],
            "content": message["content"],
        }
    calls = message.get("tool_calls")
    if not calls:
        return {"role": message["role"], "content": message["content"]}
    return {
        "role": message["role"],
        "content": message["content"] or None,
        "tool_calls": [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
            for call in calls
        ],
    }


def _tool(tool: LLMToolDefinition) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _import_sdk(provider: str) -> Any:
    try:
        import openai
    except ImportError:
        raise KitaruUsageError(
            f"{provider} models are called through the openai SDK, which is not installed; "
            "install it with: pip install 'kitaru[openai]'"
        ) from None
    return openai


# Clients are kept so an agent loop reuses connections instead of opening a new TLS
# session per call. The key includes the base URL, so changing it takes effect.
@functools.lru_cache(maxsize=16)
def _client(api_key: str, base_url: str) -> openai.OpenAI:
    import openai

    return openai.OpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=SDK_MAX_RETRIES,
        timeout=openai.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
    )

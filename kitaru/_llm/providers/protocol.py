"""The seam between kitaru and a model provider: request in, text and usage out.

Every adapter implements :class:`Provider` and turns its SDK's failures into
:class:`ProviderError` in one place, using :func:`status_error` for HTTP statuses so the
same status reads the same whatever the provider.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import msgspec

from kitaru._llm.messages import Message
from kitaru._llm.response import LLMFinishReason, LLMToolCall, LLMToolDefinition
from kitaru._llm.structured import OutputFormat
from kitaru._redaction import Redactor, redact
from kitaru.errors import ProviderError

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "SDK_MAX_RETRIES",
    "TIMEOUT_SECONDS",
    "Provider",
    "ProviderError",
    "ProviderRequest",
    "ProviderResponse",
    "answered_model",
    "connection_error",
    "empty_response_error",
    "malformed_response_error",
    "never_reached_provider",
    "public_url",
    "status_error",
    "token_count",
]

# The SDKs' own retries are off. They resend after a read timeout or a 5xx, when the
# provider may already be generating (and billing) the first request, and they do it
# out of sight of the journal. kitaru resends only requests that provably never reached
# the provider (see ``never_reached_provider``) and records every attempt.
SDK_MAX_RETRIES = 0
# The default timeout of a model call (``timeout=``/``KITARU_LLM_TIMEOUT`` change it).
# Long generations take minutes, so it is generous, but a dead host should fail fast.
TIMEOUT_SECONDS = 300.0
CONNECT_TIMEOUT_SECONDS = 10.0

# Provider messages are shown to help the user, but only this much of them.
_MAX_PROVIDER_MESSAGE = 300


class ProviderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One text completion to ask a provider for."""

    messages: list[Message]
    model_name: str
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = TIMEOUT_SECONDS
    """Seconds to wait for the answer (connecting gets at most ``CONNECT_TIMEOUT_SECONDS``)."""
    tools: tuple[LLMToolDefinition, ...] = ()
    """Tools the model may ask to call."""
    output: OutputFormat | None = None
    """The schema the answer must fit, if any."""


class ProviderResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The text a provider answered and the token usage it reported (None if it did not)."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    tool_calls: tuple[LLMToolCall, ...] = ()
    finish_reason: LLMFinishReason = LLMFinishReason.STOP
    model: str | None = None
    """The model the provider says answered (None if it did not say)."""


def answered_model(value: object) -> str | None:
    """The model name a response reports, if it reports one as text."""
    return value if isinstance(value, str) and value else None


class Provider(Protocol):
    """Something that completes a chat prompt."""

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        """Send ``request`` once; return the answer or raise ``ProviderError``."""
        ...


def status_error(
    *,
    provider: str,
    model: str,
    status_code: int,
    body: object,
    key_hint: str | None,
    api_key: str | None,
) -> ProviderError:
    """Build the error for an HTTP error status from ``provider``.

    ``key_hint`` says where the key came from (never the key), None if kitaru sends none;
    ``api_key`` is only used to blank the key (and any part of it) out of the provider's
    own message.
    """
    detail = _provider_message(body, api_key)
    said = f": {detail}" if detail else ""
    target = f"{provider}/{model}"
    if status_code == 401:
        # Providers echo part of a rejected key in their message, so it is not shown.
        message = (
            f"{provider} rejected the API key for {target} (HTTP 401). "
            f"Check {key_hint}: it may be wrong, expired or revoked."
            if key_hint is not None
            else f"{provider} refused {target} as unauthorised (HTTP 401), but kitaru sends "
            f"{provider} no key. Check the server's access settings or any proxy in front of it."
        )
        reason = "authentication"
    elif status_code == 403:
        key_from = f"the key from {key_hint}" if key_hint is not None else "the server"
        message = (
            f"{provider} refused {target} (HTTP 403){said}. Check that {key_from} allows "
            "this model, or pick another model."
        )
        reason = "permission"
    elif status_code == 404:
        message = f"{provider} does not know {target} (HTTP 404){said}. Check the model name" + (
            " and run `ollama pull` for it." if provider == "ollama" else "."
        )
        reason = "not_found"
    elif status_code == 429:
        message = (
            f"{provider} rate-limited {target} (HTTP 429){said}. Wait and retry (e.g. "
            "`kitaru executions retry <id>`), or raise your quota with the provider."
        )
        reason = "rate_limit"
    elif status_code in (400, 413, 422):
        message = (
            f"{provider} rejected the request for {target} (HTTP {status_code}){said}. "
            "Check the prompt, temperature and max_tokens."
        )
        reason = "bad_request"
    elif status_code >= 500:
        message = (
            f"{provider} had a server error for {target} (HTTP {status_code}){said}. kitaru "
            "does not resend a request the provider received, as it may have been processed "
            "and billed. Retry later (e.g. `kitaru executions retry <id>`)."
        )
        reason = "server"
    else:
        message = f"{provider} answered HTTP {status_code} for {target}{said}."
        reason = "http"
    return ProviderError(
        message, provider=provider, model=model, reason=reason, status_code=status_code
    )


def connection_error(
    *,
    provider: str,
    model: str,
    base_url: str,
    timed_out: bool,
    timeout: float,
    reached_provider: bool = True,
) -> ProviderError:
    """Build the error for a request that never got an HTTP answer.

    ``reached_provider`` is False when the request never left (see
    ``never_reached_provider``).
    """
    where = public_url(base_url)
    if timed_out:
        message = (
            f"{provider} did not answer for {provider}/{model} at {where} within "
            f"{timeout:g}s. It was not resent, as the provider may still be generating (and "
            "billing) it. Retry later, ask for fewer tokens with max_tokens=, or allow more "
            "time with timeout= or KITARU_LLM_TIMEOUT."
        )
        return ProviderError(message, provider=provider, model=model, reason="timeout")
    hint = (
        "Check that Ollama is running (`ollama serve`) and that OLLAMA_HOST points at it."
        if provider == "ollama"
        else "Check your network connection and any proxy or base URL setting."
    )
    message = f"Could not connect to {provider} at {where} for {provider}/{model}. {hint}"
    return ProviderError(
        message,
        provider=provider,
        model=model,
        reason="connection",
        reached_provider=reached_provider,
    )


# What the SDKs' HTTP layers (httpx and its successors) raise while opening a connection,
# before a byte of the request is written.
_CONNECT_ERROR_NAMES = frozenset({"ConnectError"})


def never_reached_provider(exc: BaseException) -> bool:
    """Whether the SDK failure ``exc`` provably happened before the request was sent.

    True for a refused connection or a host name that did not resolve, found anywhere in
    the chain of causes. Anything else (a timeout, a connection dropped mid-answer) may
    have reached the provider.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError | socket.gaierror):
            return True
        module = type(current).__module__.split(".")[0]
        if type(current).__name__ in _CONNECT_ERROR_NAMES and module.startswith(
            ("httpx", "httpcore")
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def malformed_response_error(*, provider: str, model: str, detail: str) -> ProviderError:
    """Build the error for a response kitaru cannot read."""
    message = (
        f"{provider} sent a response for {provider}/{model} that kitaru cannot read "
        f"({detail}). Retry; if it persists, check the provider's base URL setting."
    )
    return ProviderError(message, provider=provider, model=model, reason="malformed_response")


def empty_response_error(*, provider: str, model: str, detail: str) -> ProviderError:
    """Build the error for a well-formed response that carries no text."""
    message = (
        f"{provider} returned no text for {provider}/{model} ({detail}). Retry, rephrase "
        "the prompt, or raise max_tokens if the answer was cut off."
    )
    return ProviderError(message, provider=provider, model=model, reason="empty_response")


def token_count(value: object) -> int | None:
    """Return ``value`` if it is a token count an SDK reported, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def public_url(url: str) -> str:
    """Return ``url`` without any user name, password, query or fragment in it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _provider_message(body: object, api_key: str | None) -> str:
    # Blank echoes of the key (even partial or re-cased ones) before anything else.
    text = redact(Redactor([api_key] if api_key else [])(_find_message(body)))
    text = " ".join(text.split())
    if len(text) > _MAX_PROVIDER_MESSAGE:
        text = text[: _MAX_PROVIDER_MESSAGE - 3] + "..."
    return text


def _find_message(body: object) -> str:
    # OpenAI's SDK hands over the inner error object, Anthropic's the whole envelope
    # ({"type": "error", "error": {...}}); look in both places.
    if isinstance(body, Mapping):
        inner: Any = body.get("error")
        for candidate in (
            body.get("message"),
            inner.get("message") if isinstance(inner, Mapping) else inner,
        ):
            if isinstance(candidate, str) and candidate.strip():
                return candidate
        return ""
    return body if isinstance(body, str) else ""

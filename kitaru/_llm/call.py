"""One model call, start to finish: prompt, model, credentials, provider, result.

This is pure work with no journal: the durable-call boundary around ``kitaru.llm()``
decides whether to call :func:`perform_llm_call` at all, and records what it returns.
Callers that want to record the request before the network is touched use
:func:`prepare_llm_call` and then :meth:`PreparedLlmCall.run`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from kitaru import _telemetry as tracing
from kitaru._llm.credentials import Credentials, CredentialSource, resolve_credentials
from kitaru._llm.messages import Message, normalise_prompt
from kitaru._llm.providers import (
    MockProvider,
    Provider,
    ProviderError,
    ProviderRequest,
    build_provider,
)
from kitaru._llm.providers.protocol import TIMEOUT_SECONDS
from kitaru._llm.registry import ModelRegistry, effective_registry
from kitaru._llm.resolution import ResolvedModel, resolve_model
from kitaru._llm.response import (
    LLMFinishReason,
    LLMResponse,
    LLMToolCall,
    LLMToolDefinition,
    LLMUsage,
)
from kitaru._llm.structured import OutputFormat, OutputTarget, output_format, parse_output
from kitaru._llm.tools import tool_definitions
from kitaru.errors import KitaruUsageError

__all__ = [
    "CONNECT_RETRIES",
    "MOCK_RESPONSE_ENV",
    "TIMEOUT_ENV",
    "FailedAttempt",
    "LlmResult",
    "PreparedLlmCall",
    "check_call_options",
    "perform_llm_call",
    "prepare_llm_call",
]

MOCK_RESPONSE_ENV = "KITARU_LLM_MOCK_RESPONSE"
TIMEOUT_ENV = "KITARU_LLM_TIMEOUT"

# A request that provably never reached the provider (connection refused, host name not
# found) is sent again this many times, after these pauses: a provider restarting or a
# network blip costs nothing to ride out. Anything else is not resent (see
# ``ProviderError.reached_provider``).
CONNECT_RETRIES = 2
_CONNECT_RETRY_DELAYS = (0.25, 1.0)


class LlmResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one model call sent and got back; token counts are None if not reported."""

    messages: list[Message]
    text: str
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    latency_ms: float
    requested_model: str
    alias: str | None
    resolved_model: str
    credential_source: CredentialSource
    provider_attempt: int = 1
    """Which request to the provider this answer came from (1 unless one never arrived)."""
    tool_calls: tuple[LLMToolCall, ...] = ()
    finish_reason: LLMFinishReason = LLMFinishReason.STOP


@dataclass(frozen=True)
class FailedAttempt:
    """One request to the provider that failed: what happened and how long it took."""

    number: int
    """1 for the call's first request, 2 for the one sent after it, ..."""
    error: ProviderError
    latency_ms: float
    will_retry: bool
    """True when the request never reached the provider and is sent again."""


AttemptObserver = Callable[[FailedAttempt], None]


@dataclass(frozen=True)
class PreparedLlmCall:
    """A checked call, ready to send: nothing has touched the network yet."""

    messages: list[Message]
    resolved: ResolvedModel
    credentials: Credentials
    provider: Provider
    temperature: float | None
    max_tokens: int | None
    timeout: float = TIMEOUT_SECONDS
    tools: tuple[LLMToolDefinition, ...] = ()
    output: OutputFormat | None = None
    target: OutputTarget | None = None
    """How to parse the answer into ``response_format=`` (None without one)."""

    def response(self, result: LlmResult) -> LLMResponse:
        """The call's answer as an ``LLMResponse``, parsed into ``response_format=`` if given.

        An answer that does not fit the format raises ``ProviderError`` (``invalid_output``);
        an answer with tool calls is not parsed (``parsed`` is None).
        """
        parsed = None
        # Text beside tool calls is the model thinking aloud, not the final answer.
        if self.target is not None and not result.tool_calls:
            parsed = parse_output(
                result.text,
                self.target,
                provider=self.resolved.provider,
                model=self.resolved.model_name,
            )
        return LLMResponse(
            text=result.text,
            tool_calls=result.tool_calls,
            parsed=parsed,
            finish_reason=result.finish_reason,
            usage=LLMUsage(
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                total_tokens=result.total_tokens,
            ),
            model=result.resolved_model,
        )

    def run(self, on_failure: AttemptObserver | None = None) -> LlmResult:
        """Send the call and return its result; provider failures raise ``ProviderError``.

        A request that provably never reached the provider is sent again (up to
        ``CONNECT_RETRIES`` times); any other failure is raised at once, since the provider
        may be generating, and billing, an answer to it. ``on_failure`` hears of every
        failed request, so each one can be recorded.
        """
        request = ProviderRequest(
            messages=self.messages,
            model_name=self.resolved.model_name,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            timeout=self.timeout,
            tools=self.tools,
            output=self.output,
        )
        number = 1
        while True:
            started = time.perf_counter()
            span = self._trace(number) if tracing.on else None
            try:
                response = self.provider.complete(request)
            except ProviderError as exc:
                if span is not None:
                    span.failed(exc)
                will_retry = not exc.reached_provider and number <= CONNECT_RETRIES
                if on_failure is not None:
                    latency_ms = (time.perf_counter() - started) * 1000.0
                    on_failure(FailedAttempt(number, exc, latency_ms, will_retry))
                if not will_retry:
                    raise
                time.sleep(_CONNECT_RETRY_DELAYS[min(number, len(_CONNECT_RETRY_DELAYS)) - 1])
                number += 1
                continue
            break
        latency_ms = (time.perf_counter() - started) * 1000.0
        if span is not None:
            span.answered(
                model=response.model,
                input_tokens=response.input_tokens,
                output_tokens=response.output_tokens,
                finish_reason=str(response.finish_reason),
            )
        return LlmResult(
            messages=self.messages,
            text=response.text,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            total_tokens=response.total_tokens,
            latency_ms=latency_ms,
            requested_model=self.resolved.requested,
            alias=self.resolved.alias,
            resolved_model=self.resolved.model,
            credential_source=self.credentials.source,
            provider_attempt=number,
            tool_calls=response.tool_calls,
            finish_reason=response.finish_reason,
        )

    def _trace(self, number: int) -> tracing.Request:
        return tracing.request(
            provider=self.resolved.provider,
            model=self.resolved.model_name,
            attempt=number,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )


def prepare_llm_call(
    prompt: object,
    *,
    model: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    timeout: float | None = None,
    registry_snapshot: Mapping[str, Any] | None = None,
    fill_from_local: bool = False,
    retry_hint: str | None = None,
    tools: object = None,
    response_format: object = None,
) -> PreparedLlmCall:
    """Check the arguments, resolve the model and its credentials; raise on bad input.

    ``registry_snapshot`` is the execution's registry (``ModelRegistry.to_snapshot()``);
    None uses the local registry. ``fill_from_local`` (resumed and retried executions)
    resolves aliases the snapshot lacks from the local registry; ``retry_hint`` is the
    command that retries the execution, named in errors that registering an alias fixes.
    ``timeout`` (seconds) defaults to ``KITARU_LLM_TIMEOUT``, else ``TIMEOUT_SECONDS``.
    With ``KITARU_LLM_MOCK_RESPONSE`` set, the call is answered by a mock provider and no
    credentials are needed. ``tools`` (functions or JSON-schema dicts) are offered to the
    model; ``response_format`` (a pydantic model, dataclass or msgspec Struct class) is
    the schema its answer must fit.
    """
    messages = normalise_prompt(prompt, system)
    definitions = tool_definitions(tools) if tools is not None else ()
    output, target = (None, None) if response_format is None else output_format(response_format)
    _check_temperature(temperature)
    _check_max_tokens(max_tokens)
    _check_timeout(timeout)
    seconds = float(timeout) if timeout is not None else timeout_from_environment()
    registry = effective_registry(registry_snapshot, fill_from_local=fill_from_local)
    mock_text = os.environ.get(MOCK_RESPONSE_ENV, "")
    resolved = resolve_model(model, registry, retry_hint=retry_hint, mock=bool(mock_text))
    provider: Provider
    if mock_text:
        credentials = Credentials(api_key=None, source="mock", hint=f"{MOCK_RESPONSE_ENV} (mock)")
        provider = MockProvider(mock_text)
    else:
        credentials = resolve_credentials(resolved)
        provider = build_provider(
            resolved.provider, api_key=credentials.api_key, key_hint=credentials.hint
        )
    return PreparedLlmCall(
        messages=messages,
        resolved=resolved,
        credentials=credentials,
        provider=provider,
        temperature=None if temperature is None else float(temperature),
        max_tokens=max_tokens,
        timeout=seconds,
        tools=definitions,
        output=output,
        target=target,
    )


def perform_llm_call(
    prompt: object,
    *,
    model: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    timeout: float | None = None,
    registry_snapshot: Mapping[str, Any] | None = None,
) -> LlmResult:
    """Make one text call: normalise the prompt, resolve model and credentials, send it."""
    return prepare_llm_call(
        prompt,
        model=model,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        timeout=timeout,
        registry_snapshot=registry_snapshot,
    ).run()


def timeout_from_environment() -> float:
    """Return ``KITARU_LLM_TIMEOUT`` in seconds, or ``TIMEOUT_SECONDS`` if it is unset."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return TIMEOUT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise KitaruUsageError(
            f"{TIMEOUT_ENV} must be a number of seconds > 0 (e.g. 120), got {raw!r}; fix "
            f"it or unset it to use the default of {TIMEOUT_SECONDS:g} s."
        )
    return seconds


def check_call_options(
    *, model: object, temperature: object, max_tokens: object, timeout: object = None
) -> None:
    """Refuse options that no environment could make valid; raise ``KitaruUsageError``.

    A durable call checks these before it takes a name or touches the journal. An alias
    or a missing ``model=`` is left alone: what it resolves to depends on the registry
    and the environment of the process that makes the call live.
    """
    _check_temperature(temperature)
    _check_max_tokens(max_tokens)
    _check_timeout(timeout)
    if model is not None and (not isinstance(model, str) or "/" in model or not model.strip()):
        # Alias names cannot hold '/', so this is a raw provider/model in any registry.
        resolve_model(model, ModelRegistry())  # type: ignore[arg-type]


def _check_temperature(temperature: object) -> None:
    if temperature is None:
        return
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        raise KitaruUsageError(
            f"temperature= must be a number >= 0 (e.g. 0.2), got {temperature!r}."
        )


def _check_max_tokens(max_tokens: object) -> None:
    if max_tokens is None:
        return
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise KitaruUsageError(
            f"max_tokens= must be a whole number >= 1 (e.g. 512), got {max_tokens!r}."
        )


def _check_timeout(timeout: object) -> None:
    if timeout is None:
        return
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise KitaruUsageError(
            f"timeout= must be a number of seconds > 0 (e.g. 120), got {timeout!r}; leave "
            f"it out to use {TIMEOUT_ENV} or the default of {TIMEOUT_SECONDS:g} s."
        )

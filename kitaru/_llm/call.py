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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from kitaru._llm.credentials import Credentials, CredentialSource, resolve_credentials
from kitaru._llm.messages import Message, normalise_prompt
from kitaru._llm.providers import MockProvider, Provider, ProviderRequest, build_provider
from kitaru._llm.registry import ModelRegistry, effective_registry
from kitaru._llm.resolution import ResolvedModel, resolve_model
from kitaru.errors import KitaruUsageError

__all__ = [
    "MOCK_RESPONSE_ENV",
    "LlmResult",
    "PreparedLlmCall",
    "check_call_options",
    "perform_llm_call",
    "prepare_llm_call",
]

MOCK_RESPONSE_ENV = "KITARU_LLM_MOCK_RESPONSE"


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


@dataclass(frozen=True)
class PreparedLlmCall:
    """A checked call, ready to send: nothing has touched the network yet."""

    messages: list[Message]
    resolved: ResolvedModel
    credentials: Credentials
    provider: Provider
    temperature: float | None
    max_tokens: int | None

    def run(self) -> LlmResult:
        """Send the call and return its result; provider failures raise ``ProviderError``."""
        request = ProviderRequest(
            messages=self.messages,
            model_name=self.resolved.model_name,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        started = time.perf_counter()
        response = self.provider.complete(request)
        latency_ms = (time.perf_counter() - started) * 1000.0
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
        )


def prepare_llm_call(
    prompt: object,
    *,
    model: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    registry_snapshot: Mapping[str, Any] | None = None,
) -> PreparedLlmCall:
    """Check the arguments, resolve the model and its credentials; raise on bad input.

    ``registry_snapshot`` is the execution's registry (``ModelRegistry.to_snapshot()``);
    None uses the local registry. With ``KITARU_LLM_MOCK_RESPONSE`` set, the call is
    answered by a mock provider and no credentials are needed.
    """
    messages = normalise_prompt(prompt, system)
    _check_temperature(temperature)
    _check_max_tokens(max_tokens)
    resolved = resolve_model(model, effective_registry(registry_snapshot))
    mock_text = os.environ.get(MOCK_RESPONSE_ENV, "")
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
    )


def perform_llm_call(
    prompt: object,
    *,
    model: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    registry_snapshot: Mapping[str, Any] | None = None,
) -> LlmResult:
    """Make one model call: normalise the prompt, resolve model and credentials, send it."""
    return prepare_llm_call(
        prompt,
        model=model,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        registry_snapshot=registry_snapshot,
    ).run()


def check_call_options(*, model: object, temperature: object, max_tokens: object) -> None:
    """Refuse options that no environment could make valid; raise ``KitaruUsageError``.

    A durable call checks these before it takes a name or touches the journal. An alias
    or a missing ``model=`` is left alone: what it resolves to depends on the registry
    and the environment of the process that makes the call live.
    """
    _check_temperature(temperature)
    _check_max_tokens(max_tokens)
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

"""``kitaru.llm()``: one tracked, durable model call.

In a flow body the call is a durable call boundary of its own (kind ``llm``): on
resume or replay a completed call returns its recorded text and the provider is not
contacted. Inside a checkpoint it returns the text and is journaled as a child event
of that checkpoint, which stays the replay boundary.

With ``tools=`` or ``response_format=`` the call returns an ``LLMResponse`` instead of
text, recorded and replayed the same way. Tool calls the model asks for are only
returned, never run: the caller runs them (a checkpoint makes each one durable) and
sends the results back in the next call's prompt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from kitaru._llm.call import (
    FailedAttempt,
    LlmResult,
    PreparedLlmCall,
    check_call_options,
    prepare_llm_call,
)
from kitaru._llm.messages import EXTRA_KEYS, Message, normalise_prompt
from kitaru._llm.pricing import estimate_cost
from kitaru._llm.pricing import warm_up as warm_up_prices
from kitaru._llm.providers import ProviderError
from kitaru._llm.response import LLMResponse, LLMToolDefinition
from kitaru._llm.structured import OutputFormat, output_format
from kitaru._llm.tools import tool_definitions
from kitaru._logging import get_logger
from kitaru._redaction import redact
from kitaru.errors import KitaruContextError, KitaruUsageError
from kitaru.journal.conversation import store_prompt, text_blob
from kitaru.journal.events import ErrorInfo, LlmCallRecorded, LlmToolCall, LlmUsage
from kitaru.journal.payloads import make_ref
from kitaru.runtime.arguments import digest_arguments
from kitaru.runtime.boundary import CallSlot, execute, execute_async, output_handle, reserve
from kitaru.runtime.context import CallScope, ExecutionContext, current_call, current_execution
from kitaru.runtime.failures import type_name

__all__ = ["llm", "llm_async"]

_log = get_logger()


def llm(
    prompt: str | list[dict[str, str]],
    *,
    model: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    name: str | None = None,
    timeout: float | None = None,
    tools: Sequence[object] | None = None,
    response_format: type | None = None,
) -> Any:
    """Make one tracked model call; returns an output handle in a flow body, text in a checkpoint.

    ``prompt`` is a string or a list of ``{"role", "content"}`` messages; ``system``
    prepends a system message. ``model`` is an alias or ``provider/model`` (default:
    ``KITARU_DEFAULT_MODEL``, then the registry's default alias). ``name`` names the
    call (default ``llm_1``, ``llm_2``, ... per flow body or checkpoint attempt).
    ``timeout`` is how many seconds to wait for the answer (default: ``KITARU_LLM_TIMEOUT``,
    else 300); a request that timed out is not resent, as the provider may still be
    generating, and billing, it.

    ``tools`` offers the model tools: plain functions (their JSON schema comes from the
    type hints, their descriptions from the docstring) or JSON-schema dicts.
    ``response_format`` (a pydantic model, dataclass or msgspec Struct class) is the
    schema the answer must fit. With either, the call's value is an ``LLMResponse``
    (text, tool calls, parsed value, finish reason, usage) instead of text; tool calls
    are never run by kitaru.
    """
    slot, call = _prepare(
        "kitaru.llm()",
        prompt,
        model=model,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        name=name,
        timeout=timeout,
        tools=tools,
        response_format=response_format,
    )
    if slot is None:
        return call(0)
    value = execute(
        slot, lambda attempt: call(attempt.attempt), checkpoint_type="llm_call", scoped=False
    )
    # Through output_handle, like a checkpoint's: reading the text in the flow body
    # (to build the next prompt) is what tells a replay that later calls may change.
    return output_handle(slot, value=value)


def llm_async(
    prompt: str | list[dict[str, str]],
    *,
    model: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    name: str | None = None,
    timeout: float | None = None,
    tools: Sequence[object] | None = None,
    response_format: type | None = None,
) -> Coroutine[Any, Any, Any]:
    """``kitaru.llm()`` in async code: ``text = await kitaru.llm_async(prompt, ...)``.

    The same options, and the same recorded, replayed model call; awaiting gives the
    text (or the ``LLMResponse``) itself, in a flow body as in a checkpoint. The
    request goes out from a worker thread, so other tasks of the flow keep running,
    and ``asyncio.gather`` over several calls sends them at once.

    A separate ``_async`` name, as Python libraries name their awaitable forms
    (``AsyncOpenAI``, httpx's ``AsyncClient``): returning an awaitable from
    ``kitaru.llm()`` would change what every sync flow gets back from it. Like a
    checkpoint call, the call takes its name (``llm_1``, ``llm_2``, ...) when
    ``llm_async`` is called, in program order, not when the awaitable first runs.
    """
    slot, call = _prepare(
        "kitaru.llm_async()",
        prompt,
        model=model,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        name=name,
        timeout=timeout,
        tools=tools,
        response_format=response_format,
    )
    return _await_llm(slot, call)


async def _await_llm(slot: CallSlot | None, call: Callable[[int], Any]) -> Any:
    if slot is None:  # inside a checkpoint attempt, which records it as its child
        return await asyncio.to_thread(call, 0)
    value = await execute_async(
        slot,
        lambda attempt: asyncio.to_thread(call, attempt.attempt),
        checkpoint_type="llm_call",
        scoped=False,
    )
    replay = slot.ctx.replay
    if replay is not None:
        # The flow body gets the text itself: a load, as for an awaited checkpoint.
        replay.loaded(slot.identity)
    return value


def _prepare(
    what: str,
    prompt: str | list[dict[str, str]],
    *,
    model: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    name: str | None,
    timeout: float | None,
    tools: Sequence[object] | None,
    response_format: type | None,
) -> tuple[CallSlot | None, Callable[[int], Any]]:
    """Check the call and give it its name; return its slot and what makes the request.

    The slot is None inside a checkpoint attempt (the call is that attempt's child).
    The callable takes the attempt number of the flow-body call it makes the request for.
    """
    ctx = current_execution.get()
    if ctx is None:
        raise KitaruContextError(f"{what} can only run inside a @flow.")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise KitaruUsageError(f"name= must be a non-empty string, got {name!r}.")
    messages = normalise_prompt(prompt, system)
    # Bad arguments raise here, before the call takes a name or anything is journaled.
    check_call_options(model=model, temperature=temperature, max_tokens=max_tokens, timeout=timeout)
    structured = StructuredRequest.of(tools, response_format)
    options = {"model": model, "temperature": temperature, "max_tokens": max_tokens}
    scope = current_call.get()
    if scope is not None:
        call_name = _child_name(scope, name)
        parent, parent_attempt = scope.identity, scope.attempt

        def child(_attempt: int) -> str | LLMResponse:
            return _call(
                ctx,
                messages,
                options,
                timeout,
                structured,
                name=call_name,
                parent=parent,
                attempt=parent_attempt,
            )

        return None, child

    if name is None:
        ctx.llm_count += 1
    # Checked like a checkpoint's arguments: a resumed call with another prompt or other
    # options must not get the answer recorded for the old one.
    checked = digest_arguments({"prompt": messages, **options, **structured.checked()})
    slot = reserve(ctx, "llm", name or f"llm_{ctx.llm_count}", arguments=checked)

    def live(attempt: int) -> str | LLMResponse:
        return _call(
            ctx,
            messages,
            options,
            timeout,
            structured,
            name=slot.identity,
            parent=None,
            attempt=attempt,
        )

    return slot, live


def _child_name(scope: CallScope, name: str | None) -> str:
    """Name a call inside a checkpoint attempt the way the flow body names its calls.

    Only unnamed calls count towards ``llm_N``; a name used again gets ``_2``, ``_3``.
    """
    if name is None:
        scope.llm_count += 1
        name = f"llm_{scope.llm_count}"
    unique, count = name, 1
    while unique in scope.llm_names:
        count += 1
        unique = f"{name}_{count}"
    scope.llm_names.add(unique)
    return unique


@dataclass(frozen=True)
class StructuredRequest:
    """The checked ``tools=`` and ``response_format=`` of a call (both None: a text call)."""

    tools: tuple[LLMToolDefinition, ...] | None
    response_format: type | None
    output: OutputFormat | None

    @classmethod
    def of(cls, tools: object, response_format: object) -> StructuredRequest:
        """Check both; bad ones raise ``KitaruUsageError`` before anything is journaled."""
        definitions = None if tools is None else tool_definitions(tools)
        output = None if response_format is None else output_format(response_format)[0]
        return cls(definitions, response_format, output)  # type: ignore[arg-type]

    @property
    def wanted(self) -> bool:
        """Whether the call returns an ``LLMResponse`` rather than text."""
        return self.tools is not None or self.response_format is not None

    def checked(self) -> dict[str, Any]:
        """What a resumed call must send the same, beside the prompt and options.

        Empty for a text call, so the digests of text calls are what they always were.
        """
        checked: dict[str, Any] = {}
        if self.tools is not None:
            checked["tools"] = msgspec.to_builtins(self.tools)
        if self.output is not None:
            checked["response_format"] = msgspec.to_builtins(self.output)
        return checked


def _call(
    ctx: ExecutionContext,
    messages: list[Message],
    options: dict[str, Any],
    timeout: float | None,
    structured: StructuredRequest,
    *,
    name: str,
    parent: str | None,
    attempt: int,
) -> str | LLMResponse:
    """Run the model call and queue a record of every request it sent for the next append.

    Returns the text, or an ``LLMResponse`` for a call with tools or a response format.
    """
    # A resumed or retried execution looks up aliases its snapshot lacks in the local
    # registry, so registering a missing alias and retrying really does fix the call.
    resumed = bool(ctx.state.resumes)
    prepared = prepare_llm_call(
        messages,
        registry_snapshot=ctx.registry,
        timeout=timeout,
        fill_from_local=resumed,
        retry_hint=f"`kitaru executions retry {ctx.exec_id}`",
        tools=structured.tools,
        response_format=structured.response_format,
        **options,
    )
    extras = _request_extras(prepared)
    warm_up_prices()  # loads while the request is out, not after it

    def record(
        result: LlmResult | None,
        *,
        provider_attempt: int,
        latency_ms: float,
        error: ProviderError | None = None,
    ) -> None:
        payloads: dict[str, bytes] = {}
        head = store_prompt(prepared.messages, payloads, ctx.prompt_nodes)
        text = result.text if result is not None else ""
        # A mock answer reached no provider and its usage is a word count: not priced.
        mocked = prepared.credentials.source == "mock"
        cost = estimate_cost(
            prepared.resolved.provider,
            prepared.resolved.model_name,
            None if result is None or mocked else result.input_tokens,
            None if result is None or mocked else result.output_tokens,
            reached_provider=True if error is None else error.reached_provider,
        )
        ctx.writer.defer(
            LlmCallRecorded(
                name=name,
                parent=parent,
                prompt=head,
                message_count=len(prepared.messages),
                response=make_ref(text_blob(text), payloads),
                usage=LlmUsage(
                    *(
                        (result.input_tokens, result.output_tokens, result.total_tokens)
                        if result is not None
                        else (None, None, None)
                    )
                ),
                latency_ms=latency_ms,
                requested_model=prepared.resolved.requested,
                alias=prepared.resolved.alias,
                resolved_model=prepared.resolved.model,
                credential_source=prepared.credentials.source,
                attempt=attempt,
                temperature=prepared.temperature,
                max_tokens=prepared.max_tokens,
                provider_attempt=provider_attempt,
                error=None if error is None else _request_error(error),
                reached_provider=True if error is None else error.reached_provider,
                timeout=prepared.timeout,
                tool_calls=()
                if result is None
                else tuple(
                    LlmToolCall(call.id, call.name, json.dumps(call.arguments))
                    for call in result.tool_calls
                ),
                finish_reason=None if result is None else str(result.finish_reason),
                request_extras=None if extras is None else make_ref(extras, payloads),
                estimated_cost=cost.usd,
                cost_source=cost.source,
            ),
            payloads,
        )

    def on_failure(failed: FailedAttempt) -> None:
        record(
            None, provider_attempt=failed.number, latency_ms=failed.latency_ms, error=failed.error
        )
        _log.warning(
            "llm request failed",
            exec_id=ctx.exec_id,
            call=name,
            parent=parent,
            model=prepared.resolved.model,
            provider_attempt=failed.number,
            reason=failed.error.reason,
            reached_provider=failed.error.reached_provider,
            sending_again=failed.will_retry,
        )

    result = prepared.run(on_failure)
    try:
        response = prepared.response(result) if structured.wanted else None
    except ProviderError as exc:
        # The answer arrived (and was paid for) but does not fit: recorded with the error.
        record(
            result,
            provider_attempt=result.provider_attempt,
            latency_ms=result.latency_ms,
            error=exc,
        )
        raise
    record(result, provider_attempt=result.provider_attempt, latency_ms=result.latency_ms)
    _log.info(
        "llm call completed",
        exec_id=ctx.exec_id,
        call=name,
        parent=parent,
        model=result.resolved_model,
        total_tokens=result.total_tokens,
        latency_ms=round(result.latency_ms, 1),
    )
    return result.text if response is None else response


def _request_extras(prepared: PreparedLlmCall) -> bytes | None:
    """The request's tools, output schema and tool-calling messages (see ``LlmCallRecorded``)."""
    extras: dict[str, Any] = {}
    if prepared.tools:
        extras["tools"] = msgspec.to_builtins(prepared.tools)
    if prepared.output is not None:
        extras["response_format"] = msgspec.to_builtins(prepared.output)
    messages = {
        index: {key: message[key] for key in EXTRA_KEYS if key in message}
        for index, message in enumerate(prepared.messages)
        if any(key in message for key in EXTRA_KEYS)
    }
    if messages:
        extras["messages"] = messages
    return msgspec.msgpack.encode(extras) if extras else None


def _request_error(error: ProviderError) -> ErrorInfo:
    """The recorded form of a failed request: its type and (already blanked) message."""
    return ErrorInfo(type=type_name(error), message=redact(str(error)))

"""``kitaru.llm()``: one tracked, durable model call.

In a flow body the call is a durable call boundary of its own (kind ``llm``): on
resume or replay a completed call returns its recorded text and the provider is not
contacted. Inside a checkpoint it returns the text and is journaled as a child event
of that checkpoint, which stays the replay boundary.
"""

from __future__ import annotations

from typing import Any

from kitaru._llm.call import FailedAttempt, LlmResult, check_call_options, prepare_llm_call
from kitaru._llm.messages import Message, normalise_prompt
from kitaru._llm.providers import ProviderError
from kitaru._logging import get_logger
from kitaru._redaction import redact
from kitaru.errors import KitaruContextError, KitaruUsageError
from kitaru.journal.conversation import store_prompt, text_blob
from kitaru.journal.events import ErrorInfo, LlmCallRecorded, LlmUsage
from kitaru.journal.payloads import make_ref
from kitaru.runtime.arguments import digest_arguments
from kitaru.runtime.boundary import execute, output_handle, reserve
from kitaru.runtime.context import CallScope, ExecutionContext, current_call, current_execution
from kitaru.runtime.failures import type_name

__all__ = ["llm"]

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
) -> Any:
    """Make one tracked model call; returns an output handle in a flow body, text in a checkpoint.

    ``prompt`` is a string or a list of ``{"role", "content"}`` messages; ``system``
    prepends a system message. ``model`` is an alias or ``provider/model`` (default:
    ``KITARU_DEFAULT_MODEL``, then the registry's default alias). ``name`` names the
    call (default ``llm_1``, ``llm_2``, ... per flow body or checkpoint attempt).
    ``timeout`` is how many seconds to wait for the answer (default: ``KITARU_LLM_TIMEOUT``,
    else 300); a request that timed out is not resent, as the provider may still be
    generating, and billing, it.
    """
    ctx = current_execution.get()
    if ctx is None:
        raise KitaruContextError("kitaru.llm() can only run inside a @flow.")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise KitaruUsageError(f"name= must be a non-empty string, got {name!r}.")
    messages = normalise_prompt(prompt, system)
    # Bad arguments raise here, before the call takes a name or anything is journaled.
    check_call_options(model=model, temperature=temperature, max_tokens=max_tokens, timeout=timeout)
    options = {"model": model, "temperature": temperature, "max_tokens": max_tokens}
    scope = current_call.get()
    if scope is not None:
        call_name = _child_name(scope, name)
        return _call(
            ctx,
            messages,
            options,
            timeout,
            name=call_name,
            parent=scope.identity,
            attempt=scope.attempt,
        ).text

    if name is None:
        ctx.llm_count += 1
    # Checked like a checkpoint's arguments: a resumed call with another prompt or other
    # options must not get the answer recorded for the old one.
    checked = digest_arguments({"prompt": messages, **options})
    slot = reserve(ctx, "llm", name or f"llm_{ctx.llm_count}", arguments=checked)

    def live(attempt: CallScope) -> str:
        return _call(
            ctx,
            messages,
            options,
            timeout,
            name=slot.identity,
            parent=None,
            attempt=attempt.attempt,
        ).text

    text = execute(slot, live, checkpoint_type="llm_call", scoped=False)
    # Through output_handle, like a checkpoint's: reading the text in the flow body
    # (to build the next prompt) is what tells a replay that later calls may change.
    return output_handle(slot, value=text)


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


def _call(
    ctx: ExecutionContext,
    messages: list[Message],
    options: dict[str, Any],
    timeout: float | None,
    *,
    name: str,
    parent: str | None,
    attempt: int,
) -> LlmResult:
    """Run the model call and queue a record of every request it sent for the next append."""
    # A resumed or retried execution looks up aliases its snapshot lacks in the local
    # registry, so registering a missing alias and retrying really does fix the call.
    resumed = bool(ctx.state.resumes)
    prepared = prepare_llm_call(
        messages,
        registry_snapshot=ctx.registry,
        timeout=timeout,
        fill_from_local=resumed,
        retry_hint=f"`kitaru executions retry {ctx.exec_id}`",
        **options,
    )

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
    return result


def _request_error(error: ProviderError) -> ErrorInfo:
    """The recorded form of a failed request: its type and (already blanked) message."""
    return ErrorInfo(type=type_name(error), message=redact(str(error)))

"""OpenTelemetry spans for executions, durable calls and provider requests.

Off unless switched on, with ``kitaru.configure(otel=True)`` or ``KITARU_OTEL=1``.
While off, every hook costs one read of ``tracing.on`` and opentelemetry is never
imported. While on, spans go to the global tracer provider the application set; only
when it set none does kitaru install one that exports over OTLP/HTTP, configured by the
standard ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_SERVICE_NAME`` variables.

The tree of one run of an execution in this process::

    invoke_workflow <flow>          gen_ai.operation.name=invoke_workflow, kitaru.*
      checkpoint <identity>         one per attempt; kitaru.call.*
        chat <model>                one per request sent to the provider; gen_ai.*
      llm <identity>                a flow-body model call; gen_ai.operation.name=chat
        chat <model>
      checkpoint <identity>         kitaru.call.replayed=true: recorded result returned

A replayed call (resume, retry or replay returning what the journal holds) gets a short
span marked ``kitaru.call.replayed``, and no provider span: nothing was sent again.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from kitaru._logging import get_logger
from kitaru.errors import KitaruUsageError

__all__ = [
    "OTEL_ENV",
    "CallSlotLike",
    "Execution",
    "Request",
    "on",
    "replayed",
    "request",
    "set_enabled",
    "start_execution",
    "traced",
    "traced_async",
]

OTEL_ENV = "KITARU_OTEL"
TRACER_NAME = "kitaru"
_TRUE = frozenset({"1", "true", "yes", "on"})

on = False
"""Whether spans are emitted. The hot paths read this before calling in here."""

_chosen: bool | None = None
"""What ``kitaru.configure(otel=...)`` chose; None leaves it to ``KITARU_OTEL``."""
_tracer: Any = None
_lock = threading.Lock()
_labels: ContextVar[dict[str, str] | None] = ContextVar("kitaru_otel_labels", default=None)
"""The kitaru attributes of the enclosing execution or call, copied onto provider spans."""

_log = get_logger()

T = TypeVar("T")


class _ExecutionLike(Protocol):
    exec_id: str
    flow_name: str


class CallSlotLike(Protocol):
    """What a span reads from a durable call (``kitaru.runtime.boundary.CallSlot``)."""

    @property
    def ctx(self) -> _ExecutionLike: ...
    @property
    def kind(self) -> str: ...
    @property
    def identity(self) -> str: ...
    @property
    def call_id(self) -> str: ...


def set_enabled(value: bool | None) -> None:
    """``kitaru.configure(otel=...)``: True or False override ``KITARU_OTEL``; None defers.

    Switching on without opentelemetry installed raises ``KitaruUsageError``.
    """
    global _chosen  # noqa: PLW0603  (one process-wide switch)
    if value is not None and not isinstance(value, bool):
        raise KitaruUsageError(f"otel= must be True, False or None, got {value!r}.")
    if value:
        _require_opentelemetry("kitaru.configure(otel=True)")
    _chosen = value
    _refresh()


def _refresh() -> bool:
    """Decide from ``configure`` and ``KITARU_OTEL`` whether spans are emitted now."""
    global on  # noqa: PLW0603  (read without a lock on the hot path; a bool swap is atomic)
    wanted = _chosen
    if wanted is None:
        wanted = os.environ.get(OTEL_ENV, "").strip().lower() in _TRUE
    if wanted and _tracer is None:
        try:
            _make_tracer()
        except KitaruUsageError as exc:
            # Tracing must never stop an agent: say what is missing and run untraced.
            _log.warning("tracing is off", reason=str(exc))
            wanted = False
    on = wanted
    return on


def _require_opentelemetry(switch: str) -> None:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise KitaruUsageError(
            f"{switch} needs OpenTelemetry; install it with `pip install 'kitaru[otel]'`, "
            f"or leave tracing off."
        ) from None


def _make_tracer() -> None:
    """Get kitaru's tracer, installing an OTLP exporter if the application set no provider."""
    global _tracer  # noqa: PLW0603  (made once per process)
    with _lock:
        if _tracer is not None:
            return
        _require_opentelemetry(f"{OTEL_ENV}=1")
        from opentelemetry import trace

        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            _install_otlp_provider()
        # A proxy tracer: it follows the global provider, whenever the application sets it.
        _tracer = trace.get_tracer(TRACER_NAME)


def _install_otlp_provider() -> None:
    """The provider a library installs only when the application has none of its own."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise KitaruUsageError(
            f"{OTEL_ENV}=1 with no tracer provider set needs the OTLP exporter; install it "
            "with `pip install 'kitaru[otel]'`, or set a tracer provider in the application."
        ) from None
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "kitaru"}
    provider = TracerProvider(resource=Resource.create(attributes))
    # The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT itself;
    # the provider flushes what is batched when the process exits.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def _end(span: Any, error: BaseException | None) -> None:
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(error)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()


class Execution:
    """The span of one run of an execution in this process, current while it runs."""

    def __init__(self, span: Any, token: object, labels_token: object) -> None:
        self._span = span
        self._token = token
        self._labels_token = labels_token

    def end(self, error: BaseException | None, *, suspended: bool = False) -> None:
        """End the span: ERROR with the exception if the run failed."""
        from opentelemetry import context

        if suspended:
            self._span.set_attribute("kitaru.execution.suspended", True)
        _labels.reset(self._labels_token)  # type: ignore[arg-type]
        context.detach(self._token)  # type: ignore[arg-type]
        _end(self._span, error)


def start_execution(execution: _ExecutionLike, *, resumed: bool, replay: bool) -> Execution | None:
    """Open the execution's span (None while tracing is off); the caller ends it."""
    if not _refresh():
        return None
    from opentelemetry import context, trace

    labels = {"kitaru.execution.id": execution.exec_id, "kitaru.flow.name": execution.flow_name}
    span = _tracer.start_span(
        f"invoke_workflow {execution.flow_name}",
        kind=trace.SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "invoke_workflow",
            **labels,
            "kitaru.execution.resumed": resumed,
            "kitaru.execution.replay": replay,
        },
    )
    token = context.attach(trace.set_span_in_context(span))
    return Execution(span, token, _labels.set(labels))


def _call_labels(slot: CallSlotLike) -> dict[str, str]:
    return {
        "kitaru.execution.id": slot.ctx.exec_id,
        "kitaru.flow.name": slot.ctx.flow_name,
        "kitaru.call.id": slot.call_id,
        "kitaru.call.identity": slot.identity,
        "kitaru.call.kind": slot.kind,
    }


def _call_attributes(slot: CallSlotLike) -> dict[str, str]:
    """A call span's own attributes: its labels, and for a model call the GenAI
    operation it performs (a checkpoint is no GenAI operation, so it names none)."""
    attributes = _call_labels(slot)
    if slot.kind == "llm":
        attributes["gen_ai.operation.name"] = "chat"
    return attributes


@contextlib.contextmanager
def _attempt_span(
    slot: CallSlotLike, attempt: int, ok: tuple[type[BaseException], ...]
) -> Iterator[None]:
    """The span of one attempt of a durable call, current while the attempt runs."""
    from opentelemetry import context, trace

    labels = _call_labels(slot)
    span = _tracer.start_span(
        f"{slot.kind} {slot.identity}",
        attributes={
            **_call_attributes(slot),
            "kitaru.call.attempt": attempt,
            "kitaru.call.replayed": False,
        },
    )
    token = context.attach(trace.set_span_in_context(span))
    labels_token = _labels.set(labels)
    error: BaseException | None = None
    try:
        yield
    except ok:
        span.set_attribute("kitaru.call.paused", True)
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        _labels.reset(labels_token)
        context.detach(token)
        _end(span, error)


def traced(
    slot: CallSlotLike,
    attempt: int,
    live: Callable[[T], Any],
    *,
    ok: tuple[type[BaseException], ...] = (),
) -> Callable[[T], Any]:
    """``live`` run inside the span of one attempt of a durable call.

    Exceptions of the ``ok`` types (a wait pausing the flow body) end the span normally.
    """

    def run(scope: T) -> Any:
        with _attempt_span(slot, attempt, ok):
            return live(scope)

    return run


def traced_async(
    slot: CallSlotLike,
    attempt: int,
    live: Callable[[T], Awaitable[Any]],
    *,
    ok: tuple[type[BaseException], ...] = (),
) -> Callable[[T], Awaitable[Any]]:
    """``traced`` for an awaitable attempt: the span lasts until the await ends."""

    async def run(scope: T) -> Any:
        with _attempt_span(slot, attempt, ok):
            return await live(scope)

    return run


def replayed(slot: CallSlotLike) -> None:
    """Mark a durable call that returned its recorded result: nothing ran again."""
    span = _tracer.start_span(
        f"{slot.kind} {slot.identity}",
        attributes={**_call_attributes(slot), "kitaru.call.replayed": True},
    )
    span.end()


class Request:
    """The span of one request sent to a model provider."""

    def __init__(self, span: Any) -> None:
        self._span = span

    def answered(
        self,
        *,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        finish_reason: str,
    ) -> None:
        """End the span with what the provider reported."""
        span = self._span
        if model:
            span.set_attribute("gen_ai.response.model", model)
        if input_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        if output_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        span.end()

    def failed(self, error: BaseException) -> None:
        """End the span as ERROR with the exception."""
        _end(self._span, error)


def request(
    *,
    provider: str,
    model: str,
    attempt: int,
    temperature: float | None,
    max_tokens: int | None,
) -> Request:
    """Open the span of one provider request (a GenAI ``chat`` client span)."""
    from opentelemetry import trace

    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "kitaru.request.attempt": attempt,
        **(_labels.get() or {}),
    }
    if temperature is not None:
        attributes["gen_ai.request.temperature"] = temperature
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    span = _tracer.start_span(f"chat {model}", kind=trace.SpanKind.CLIENT, attributes=attributes)
    return Request(span)

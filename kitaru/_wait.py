"""``kitaru.wait()``: pause a flow until a person (or a program) answers."""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from kitaru import _telemetry as tracing
from kitaru.errors import KitaruUsageError
from kitaru.journal.events import WaitRequested
from kitaru.runtime.boundary import execute_wait, reserve
from kitaru.runtime.context import Suspended, require_flow_body
from kitaru.runtime.wait_schemas import describe_schema, validate_input

__all__ = ["wait", "wait_async"]


def wait(
    *,
    schema: Any = None,
    name: str | None = None,
    question: str | None = None,
    timeout: float | None = 600,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Pause the flow body until input arrives; return the input (as ``schema``'s type).

    Answer with ``kitaru executions input ID --value JSON`` or
    ``KitaruClient().executions.input(...)``. If nothing arrives within ``timeout``
    seconds the execution stays ``waiting`` and this process lets it go;
    ``kitaru executions resume ID`` continues it later. ``schema=None`` is a plain
    continue gate (returns the value given, usually None).
    """
    return _reserve_wait(
        "kitaru.wait()",
        schema=schema,
        name=name,
        question=question,
        timeout=timeout,
        metadata=metadata,
    )(None)


def wait_async(
    *,
    schema: Any = None,
    name: str | None = None,
    question: str | None = None,
    timeout: float | None = 600,
    metadata: dict[str, Any] | None = None,
) -> Coroutine[Any, Any, Any]:
    """``kitaru.wait()`` in an async flow body: ``answer = await kitaru.wait_async(...)``.

    The same wait, recorded and answered the same way; without input in time the
    execution parks (``waiting``) exactly as with ``kitaru.wait()``. Meanwhile the
    flow's other tasks keep running. A separate ``_async`` name, as Python libraries
    name their awaitable forms (``AsyncOpenAI``, httpx's ``AsyncClient``): an awaitable
    from ``kitaru.wait()`` itself would change what sync flows get back.

    Like a checkpoint call, the wait takes its identity when ``wait_async`` is called,
    in program order, not when the awaitable first runs.
    """
    waiting = _reserve_wait(
        "kitaru.wait_async()",
        schema=schema,
        name=name,
        question=question,
        timeout=timeout,
        metadata=metadata,
    )
    return _await_wait(waiting)


async def _await_wait(waiting: Callable[[threading.Event | None], Any]) -> Any:
    # The wait polls the store's mailbox with blocking reads, so it waits in a worker
    # thread. If the awaiting task is cancelled (or the flow body ends without it), the
    # thread is told to stop, so the loop's shutdown does not wait for the timeout.
    abandoned = threading.Event()
    try:
        return await asyncio.to_thread(waiting, abandoned)
    finally:
        abandoned.set()


def _reserve_wait(
    what: str,
    *,
    schema: Any,
    name: str | None,
    question: str | None,
    timeout: float | None,
    metadata: dict[str, Any] | None,
) -> Callable[[threading.Event | None], Any]:
    """Check the options, reserve the wait's identity, and return what waits for it."""
    ctx = require_flow_body(what)
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout < 0
    ):
        raise KitaruUsageError(f"timeout= must be a number of seconds >= 0, got {timeout!r}.")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise KitaruUsageError(f"name= must be a non-empty string, got {name!r}.")
    if metadata is not None:
        try:
            msgspec.json.encode(metadata)
        except (TypeError, msgspec.EncodeError) as exc:
            raise KitaruUsageError(f"metadata= must be JSON-serialisable: {exc}.") from None
    type_name, json_schema = describe_schema(schema)
    slot = reserve(ctx, "wait", name or "wait")
    request = WaitRequested(
        position=slot.position,
        identity=slot.identity,
        name=slot.name,
        call_id=slot.call_id,
        question=question,
        schema_type=type_name,
        schema=json_schema,
        metadata=metadata,
        timeout=None if timeout is None else float(timeout),
    )

    def convert(value: Any) -> Any:
        return validate_input(schema, value, exec_id=ctx.exec_id, wait=slot.identity)

    def waiting(abandoned: threading.Event | None) -> Any:
        run = functools.partial(
            execute_wait,
            slot,
            request,
            None if timeout is None else float(timeout),
            convert,
            abandoned=abandoned,
        )
        if tracing.on:
            if slot.recorded is not None and slot.recorded.output is not None:
                tracing.replayed(slot)  # its input is in the journal: returned, not waited for
            else:
                # The span lasts until input arrives or the flow body pauses (no error).
                return tracing.traced(slot, 1, lambda _: run(), ok=(Suspended,))(None)
        return run()

    return waiting

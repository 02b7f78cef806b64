"""The durable call an adapter makes for one model request or one tool call.

Agent frameworks drive their model and tool calls from an asyncio event loop that
runs in the flow body's thread (``run_sync`` starts it there). A call is matched
to the journal in that thread, in the order the agent makes it; its recorded
outcome, or a live run, is then produced on the execution's thread pool while the
loop stays free to run the real request (so the provider SDK keeps using the loop
its connections belong to).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from kitaru.journal.events import ArgumentDigest
from kitaru.runtime.boundary import execute, reserve
from kitaru.runtime.context import CallScope, current_call, current_execution

__all__ = ["digest_of", "durable_call", "in_flow_body", "plan_call"]

T = TypeVar("T")

_PREVIEW_CHARS = 80


def plan_call(key: str, name: str, target: str, request: ArgumentDigest) -> None:
    """Give the call known by ``key`` its place in the flow body now, ahead of running it.

    For calls that start in an order the flow does not control (tools a framework runs
    concurrently): reserved in an order it does control, such as the order the model
    asked for them, they keep their identities on every run. ``durable_call(...,
    planned=key)`` then takes that place.
    """
    ctx = current_execution.get()
    assert ctx is not None, "plan_call() needs a running flow body"
    slot = reserve(ctx, "checkpoint", name, target=target, arguments=(request,))
    ctx.planned_calls[key] = slot


def in_flow_body() -> bool:
    """True when a call made now would be a durable call of the running flow body.

    Outside a flow the agent runs as it would without kitaru; inside a checkpoint the
    checkpoint itself is what is recorded, so its agent's calls stay plain too.
    """
    return current_execution.get() is not None and current_call.get() is None


def digest_of(name: str, data: bytes, preview: str) -> ArgumentDigest:
    """The recorded digest of a call's request, so a resumed call is checked against it."""
    return ArgumentDigest(
        name=name, digest=hashlib.sha256(data).hexdigest(), preview=preview[:_PREVIEW_CHARS]
    )


async def durable_call(
    name: str,
    target: str,
    request: ArgumentDigest,
    run: Callable[[], Coroutine[Any, Any, Any]],
    *,
    call_type: str,
    encode: Callable[[Any], Any],
    decode: Callable[[Any], T],
    planned: str | None = None,
) -> T:
    """Run ``run()`` as one durable call named ``name``, or return its recorded result.

    ``encode`` turns the live result into what the journal stores, ``decode`` turns the
    stored value back; a resumed call returns ``decode(recorded)`` without running.
    ``planned`` is the key of a place given earlier by ``plan_call``, if any.
    """
    ctx = current_execution.get()
    assert ctx is not None, "durable_call() needs a running flow body"
    slot = ctx.planned_calls.pop(planned, None) if planned is not None else None
    if slot is None:
        slot = reserve(ctx, "checkpoint", name, target=target, arguments=(request,))
    loop = asyncio.get_running_loop()

    def live(_scope: CallScope) -> Any:
        # This thread waits while the agent's own loop runs the request.
        return encode(asyncio.run_coroutine_threadsafe(run(), loop).result())

    context = contextvars.copy_context()
    future = ctx.submit(lambda: context.run(execute, slot, live, checkpoint_type=call_type))
    return decode(await asyncio.wrap_future(future))

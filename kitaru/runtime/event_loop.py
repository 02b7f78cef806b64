"""Flow bodies written as ``async def``: each run of the body drives its own event loop.

The loop is made where a sync body would simply be called (the thread driving the
execution), so starting, resuming, retrying and replaying an async execution are the
same code paths as for a sync one. The execution and call context are context
variables, which every asyncio task copies when it is created: a task the body starts
sees the execution, and a checkpoint awaited in that task records into it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from kitaru.runtime.context import CancelSignal, EndOfRecord, Suspended
from kitaru.runtime.interrupts import Interrupted

__all__ = ["call_flow_body", "run_body_coroutine"]

_SIGNALS: tuple[type[BaseException], ...] = (Interrupted, CancelSignal, EndOfRecord, Suspended)
"""How a run stops other than by the body's own outcome, most decisive first."""


def call_flow_body(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call a flow body; an ``async def`` one is run to its end in a fresh event loop."""
    result = func(*args, **kwargs)
    if inspect.iscoroutine(result):
        return run_body_coroutine(result)
    return result


def run_body_coroutine(body: Coroutine[Any, Any, Any]) -> Any:
    """Run ``body`` in a new event loop of this thread; tasks it leaves are cancelled.

    A fresh loop per run: nothing of the loop the execution was started from (or of an
    earlier attempt of the body) can schedule work into this one, so the same body
    code makes the same calls in the same order on a first run and on a resume.
    """
    try:
        return asyncio.run(body)
    except BaseExceptionGroup as group:
        # An asyncio.TaskGroup gathers what its tasks raised. A pause at a wait, a
        # cancel, a stop or a verification that ran out of record must reach the
        # runner as itself, as it would from a sync body, not inside a group.
        for kind in _SIGNALS:
            matched = group.subgroup(kind)
            if matched is not None:
                raise _first(matched) from None
        raise


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first

"""The flows the benchmarks run.

They live in an importable module (not in the benchmark driver) because the resume
benchmark continues an execution in a fresh process, which imports the flow again by
the module and name recorded in the journal.

Every step is trivial (``i + 1``), so what is measured is kitaru's own cost per
durable call. Steps are chained through their output handles, the way a flow body
passes one checkpoint's output to the next, so lineage tracking is part of the path.
"""

from __future__ import annotations

import cProfile
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import kitaru

__all__ = [
    "ResumeHooks",
    "async_chain",
    "async_step",
    "chain",
    "profiler",
    "resume_chain",
    "resume_hooks",
    "step",
    "timed_chain",
    "value_chain",
]


@dataclass
class ResumeHooks:
    """What the resume workload's steps do at given inputs; set by the worker process."""

    kill_at: int | None = None
    """The step that receives this input kills its own process (SIGKILL)."""
    mark_at: int | None = None
    """The step that receives this input records when its body started."""
    marks: list[float] = field(default_factory=list)
    body_started: list[float] = field(default_factory=list)
    """When the flow body started (replay of the recorded calls begins there)."""


resume_hooks = ResumeHooks()

profiler: cProfile.Profile | None = None
"""When set, the flow bodies run under it. cProfile only sees the thread that
enables it, and a flow body runs on its own worker thread, so the body turns it on."""


@kitaru.checkpoint
def step(i: int) -> int:
    return i + 1


@contextmanager
def _profiled() -> Iterator[None]:
    active = profiler
    if active is None:
        yield
        return
    active.enable()
    try:
        yield
    finally:
        active.disable()


@kitaru.flow
def chain(n: int) -> Any:
    # An int at first, then the previous step's output handle (passed on unresolved).
    value: Any = 0
    with _profiled():
        for _ in range(n):
            value = step(value)
    return value


@kitaru.flow
def value_chain(n: int) -> Any:
    # The sync chain passing values, as the async chain does (awaiting gives the value):
    # the same argument digests, so the two differ only in how the call is driven.
    value: Any = 0
    for _ in range(n):
        value = step(value).load()
    return value


@kitaru.checkpoint
async def async_step(i: int) -> int:
    return i + 1


@kitaru.flow
async def async_chain(n: int) -> Any:
    # Awaiting gives the value itself, so each step gets the previous step's int.
    value: Any = 0
    for _ in range(n):
        value = await async_step(value)
    return value


@kitaru.checkpoint
def resume_step(i: int) -> int:
    hooks = resume_hooks
    if i == hooks.kill_at:
        # A hard crash in the middle of a call: no cleanup, no final journal write.
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
    if i == hooks.mark_at and not hooks.marks:
        hooks.marks.append(time.perf_counter())
    return i + 1


@kitaru.flow
def resume_chain(n: int) -> Any:
    resume_hooks.body_started.append(time.perf_counter())
    # An int at first, then the previous step's output handle (passed on unresolved).
    value: Any = 0
    with _profiled():
        for _ in range(n):
            value = resume_step(value)
    return value


@kitaru.flow
def timed_chain(n: int) -> Any:
    """``chain``, also returning the seconds its ``n`` steps took inside the body: the
    cost per checkpoint without the execution's own start and end."""
    value: Any = 0
    t0 = time.perf_counter()
    for _ in range(n):
        value = step(value)
    return {"value": value, "seconds": time.perf_counter() - t0}

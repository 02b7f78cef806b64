"""The running execution and the call in progress, as context variables."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from kitaru.errors import KitaruContextError, KitaruError, KitaruUsageError
from kitaru.journal.events import Event, LogEntry, ValueRef
from kitaru.journal.store import Store
from kitaru.replay.state import ExecutionState
from kitaru.runtime.interrupts import Interrupted, stop_requested
from kitaru.runtime.writer import JournalWriter

__all__ = [
    "CallScope",
    "CancelSignal",
    "EndOfRecord",
    "ExecutionContext",
    "ReplayContext",
    "Suspended",
    "current_call",
    "current_execution",
    "require_flow_body",
]

_MAX_PARALLEL_CALLS = 16
_CONTROL_INTERVAL = 0.5
"""Seconds between looks at the store for a cancel request, at durable call boundaries."""


class Suspended(BaseException):
    """The flow body paused at a wait whose input did not arrive in time.

    A BaseException so that ``except Exception`` in user code cannot swallow it.
    """


class CancelSignal(BaseException):
    """Someone asked to cancel the execution; it stops at this durable call."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class EndOfRecord(BaseException):
    """Verifying against a journal, the flow body reached a call the journal does not hold.

    A BaseException so that ``except Exception`` in user code cannot swallow it.
    """

    def __init__(self, position: int, call: str):
        super().__init__(f"{call} at position {position}")
        self.position = position
        self.call = call


@dataclass
class ReplayContext:
    """A new execution that replays a recorded one (``flow.replay(..., from_=...)``)."""

    source: ExecutionState
    from_position: int
    overrides: dict[str, ValueRef]
    """Call identity -> encoded output that replaces the recorded one."""
    changed: set[str] = field(default_factory=set)
    """Calls whose outputs may differ from the source's (overridden or run live)."""
    tainted: bool = False
    """The flow body loaded a changed output: every later call runs live."""

    def loaded(self, identity: str) -> None:
        if identity in self.changed:
            self.tainted = True


@dataclass
class CallScope:
    """The durable call whose body is running in this thread (a checkpoint attempt)."""

    identity: str
    name: str
    attempt: int
    llm_count: int = 0
    llm_names: set[str] = field(default_factory=set)
    """Names of the model calls this attempt made, so a repeated name= gets ``_2``."""
    logs: list[LogEntry] = field(default_factory=list)
    """Prints and log records of this attempt (see runtime.capture); only ever appended
    to while the attempt runs, so another thread may read a prefix without a lock."""
    partial: dict[str, str] = field(default_factory=dict)
    """Text printed since the last newline, per stream."""
    shipped: int = 0
    """How many of ``logs`` were already handed to the journal (see runtime.live_logs)."""
    shipping: bool = False
    """The attempt is known to the live log shipper (or has ended)."""


@dataclass
class ExecutionContext:
    """One execution being run by this process."""

    exec_id: str
    store: Store
    writer: JournalWriter
    state: ExecutionState
    flow_name: str
    registry: dict[str, Any] | None = None
    next_position: int = 0
    name_counts: dict[str, int] = field(default_factory=dict)
    used_identities: set[str] = field(default_factory=set)
    llm_count: int = 0
    prompt_nodes: dict[tuple[str | None, str, str], str] = field(default_factory=dict)
    """Hashes of prompt nodes already stored by this execution (see journal.conversation)."""
    replay: ReplayContext | None = None
    cache: bool = False
    """Checkpoints may reuse outputs of earlier executions (``@flow(cache=True)``)."""
    verifying: bool = False
    """Checking code against the journal: recorded calls replay, nothing runs live."""
    end_of_record: EndOfRecord | None = None
    """Verifying: the first call the journal did not hold (the body stopped there)."""
    planned_calls: dict[str, Any] = field(default_factory=dict)
    """Call slots reserved ahead of their calls, by a key the reserving code chooses
    (tools a framework starts concurrently get their places in the model's order)."""
    park_waits: bool = False
    """A wait without input suspends at once instead of blocking this process (set by
    worker processes, which park such executions and run others meanwhile)."""
    _next_control_check: float = 0.0
    replays_to_control_check: int = 0
    """Replayed calls left before the next ``check_controls`` (see ``boundary``)."""
    fatal: KitaruError | None = None
    """An error that ends the execution whatever the flow body does (divergence, storage)."""
    _pool: ThreadPoolExecutor | None = None
    _futures: list[Future[Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def append(
        self,
        events: Sequence[Event],
        payloads: Mapping[str, bytes] | None = None,
        *,
        sync: bool = True,
    ) -> None:
        """Append for the running execution; a journal failure makes the run fatal."""
        try:
            self.writer.append(events, payloads, sync=sync)
        except KitaruError as exc:
            # The journal can no longer be trusted to hold what this process does next
            # (or, with a lost lease, it is no longer ours to write).
            self.fatal = exc
            raise

    def check_running(self) -> None:
        """Raise if this process may not start another durable call for the execution."""
        if self.fatal is not None:
            raise self.fatal
        if self.writer.ownership.lost.is_set():
            self.fatal = self.writer.ownership.lost_error()
            raise self.fatal
        if stop_requested():
            raise Interrupted(self.exec_id)

    def check_controls(self, *, force: bool = False) -> None:
        """Raise ``CancelSignal`` if a cancel was requested (looked up at most every 0.5 s)."""
        now = time.monotonic()
        if not force and now < self._next_control_check:
            return
        self._next_control_check = now + _CONTROL_INTERVAL
        reason = self.store.cancel_requested(self.exec_id)
        if reason is not None:
            raise CancelSignal(reason)

    def reached_end_of_record(self, position: int, call: str) -> EndOfRecord:
        """Note (once) where verification ran out of record; return the stop to raise."""
        with self._lock:
            stop = EndOfRecord(position, call)
            if self.end_of_record is None or position < self.end_of_record.position:
                self.end_of_record = stop
            return stop

    def reset_for_retry(self, state: ExecutionState) -> None:
        """Start the flow body again from the top against a freshly folded state."""
        self.state = state
        self.next_position = 0
        self.name_counts.clear()
        self.used_identities.clear()
        self.llm_count = 0

    def new_identity(self, name: str, explicit: str | None) -> tuple[int, str]:
        """Reserve the next call position and the call's identity."""
        with self._lock:
            if explicit is not None:
                if not explicit or not isinstance(explicit, str):
                    raise KitaruUsageError(f"id= must be a non-empty string, got {explicit!r}.")
                if explicit in self.used_identities:
                    raise KitaruUsageError(
                        f"The call id '{explicit}' is already used in this execution; "
                        "give every call a unique id=."
                    )
                identity = explicit
            else:
                count = self.name_counts.get(name, 0) + 1
                identity = name if count == 1 else f"{name}_{count}"
                while identity in self.used_identities:
                    count += 1
                    identity = f"{name}_{count}"
                self.name_counts[name] = count
            self.used_identities.add(identity)
            position = self.next_position
            self.next_position = position + 1
            return position, identity

    def take_identity(self, position: int, name: str, identity: str) -> bool:
        """Reserve ``position`` and ``identity`` for a call named ``name``, if they are
        what ``new_identity`` would give it now; otherwise reserve nothing.

        How a call that replays a recorded one takes its place: the record says which
        identity to expect, so nothing is searched. (Taken with ``acquire`` and
        ``release`` rather than ``with``: on a resume this runs once per recorded call,
        and here the statement costs more than the lock itself.)
        """
        lock = self._lock
        lock.acquire()
        try:
            if self.next_position != position or identity in self.used_identities:
                return False
            count = self.name_counts.get(name, 0) + 1
            if identity != (name if count == 1 else f"{name}_{count}"):
                return False
            self.name_counts[name] = count
            self.used_identities.add(identity)
            self.next_position = position + 1
            return True
        finally:
            lock.release()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on the execution's thread pool."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=_MAX_PARALLEL_CALLS, thread_name_prefix=f"kitaru-{self.exec_id[:8]}"
                )
            future = self._pool.submit(fn)
            self._futures.append(future)
            return future

    def drain(self) -> None:
        """Wait for every submitted call, then stop the pool."""
        with self._lock:
            futures, pool = list(self._futures), self._pool
            self._futures.clear()
            self._pool = None
        for future in futures:
            # The flow body saw (or chose to ignore) each outcome; here we only wait.
            # (A KeyboardInterrupt while waiting is not an outcome: it goes up.)
            with contextlib.suppress(Exception):
                future.exception()
        if pool is not None:
            pool.shutdown(wait=True)


current_execution: ContextVar[ExecutionContext | None] = ContextVar(
    "kitaru_execution", default=None
)
current_call: ContextVar[CallScope | None] = ContextVar("kitaru_call", default=None)


def require_flow_body(what: str) -> ExecutionContext:
    """Return the running execution, or raise if ``what`` is called outside a flow body."""
    ctx = current_execution.get()
    if ctx is None:
        raise KitaruContextError(f"{what} can only run inside a @flow.")
    if current_call.get() is not None:
        raise KitaruContextError(
            f"{what} cannot run inside a checkpoint; call it from the flow body instead."
        )
    return ctx

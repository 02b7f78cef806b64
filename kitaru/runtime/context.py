"""The running execution and the call in progress, as context variables."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kitaru.errors import KitaruContextError, KitaruUsageError
from kitaru.journal.store import Store
from kitaru.replay.state import ExecutionState
from kitaru.runtime.writer import JournalWriter

if TYPE_CHECKING:
    from kitaru.errors import KitaruError

__all__ = [
    "CallScope",
    "ExecutionContext",
    "current_call",
    "current_execution",
    "require_flow_body",
]

_MAX_PARALLEL_CALLS = 16


@dataclass
class CallScope:
    """The durable call whose body is running in this thread (a checkpoint attempt)."""

    identity: str
    name: str
    attempt: int
    llm_count: int = 0


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
    fatal: KitaruError | None = None
    """An error that ends the execution whatever the flow body does (divergence, storage)."""
    _pool: ThreadPoolExecutor | None = None
    _futures: list[Future[Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
                count = self.name_counts.get(name, 0)
                while True:
                    count += 1
                    identity = name if count == 1 else f"{name}_{count}"
                    if identity not in self.used_identities:
                        break
                self.name_counts[name] = count
            self.used_identities.add(identity)
            position = self.next_position
            self.next_position += 1
            return position, identity

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
            with contextlib.suppress(BaseException):
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

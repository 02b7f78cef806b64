"""``FlowHandle``: a started execution, to watch and wait on."""

from __future__ import annotations

import time
from typing import Any

from kitaru._stores import open_store
from kitaru.errors import (
    BackendFailure,
    KitaruBackendError,
    KitaruStateError,
    KitaruTimeoutError,
    KitaruUsageError,
)
from kitaru.journal.read_model import ExecutionStatus
from kitaru.journal.store import Store, WorkQueue
from kitaru.runtime.runner import Run, failure_error, load_state
from kitaru.runtime.values import decode_value

__all__ = ["FlowHandle"]

_POLL_SECONDS = 0.05


class FlowHandle:
    """An execution started or resumed by ``my_flow.run(...)`` or the client."""

    def __init__(self, exec_id: str, *, run: Run | None = None, store: Store | None = None):
        self.exec_id = exec_id
        self._run = run
        self._store = store if store is not None else open_store()

    def __repr__(self) -> str:
        return f"FlowHandle(exec_id={self.exec_id!r})"

    @property
    def status(self) -> ExecutionStatus:
        """The execution's status, read fresh from the journal."""
        row = self._store.get_execution(self.exec_id)
        if row is None:
            raise KitaruStateError(f"No execution {self.exec_id}.", exec_id=self.exec_id)
        return ExecutionStatus(row.status)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the execution ends; return its result or raise its error.

        Raises ``KitaruTimeoutError`` after ``timeout`` seconds (the execution goes
        on), and ``KitaruStateError`` if it pauses waiting for input.
        """
        if timeout is not None and timeout < 0:
            raise KitaruUsageError(f"timeout must be None or a number >= 0, got {timeout!r}.")
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._run is not None:
            if not self._run.done.wait(timeout):
                raise self._timeout(timeout)
            outcome = self._run.outcome
            if outcome is not None and not outcome.suspended:
                if outcome.error is not None:
                    raise outcome.error
                return outcome.value
        while True:
            try:
                status = self.status
            except KitaruBackendError as exc:
                # A shared store's server restarting: the execution goes on elsewhere, so
                # keep watching until the deadline (the next read reconnects).
                if exc.failure is not BackendFailure.CANNOT_OPEN:
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                time.sleep(_POLL_SECONDS)
                continue
            if status is ExecutionStatus.WAITING and self._input_awaits_pickup():
                pass  # a run in this process is about to take the posted answer and go on
            elif status.is_finished or status is ExecutionStatus.WAITING:
                return self.get()
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timeout(timeout)
            time.sleep(_POLL_SECONDS)

    def _input_awaits_pickup(self) -> bool:
        """Whether an answer is posted that a run will take: one owning the execution in
        this process, or a worker (the answer put the parked execution back in the queue).

        An execution whose process died keeps its answer until it is resumed, so waiting
        on it would only time out.
        """
        from kitaru.runtime.ownership import running_here

        here = running_here(self.exec_id)  # no I/O: asked first
        queue = self._store if isinstance(self._store, WorkQueue) else None
        if not here and queue is None:
            return False
        if not self._store.wait_inputs(self.exec_id):
            return False
        return here or (queue is not None and queue.will_run(self.exec_id))

    def get(self) -> Any:
        """Return the result of a finished execution without blocking."""
        outcome = self._run.outcome if self._run is not None and self._run.done.is_set() else None
        if outcome is not None and not outcome.suspended:
            if outcome.error is not None:
                raise outcome.error
            return outcome.value
        state = load_state(self._store, self.exec_id)
        if state.status is ExecutionStatus.COMPLETED:
            assert state.result is not None
            ref = state.result
            data = (
                ref.inline if ref.inline is not None else self._store.read_payload(ref.hash or "")
            )
            return decode_value(data)
        if state.status in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
            raise failure_error(state)
        hint = (
            f"it is waiting for input: answer with `kitaru executions input {self.exec_id}`"
            if state.status is ExecutionStatus.WAITING
            else "it is still running: use wait() to block until it ends"
        )
        raise KitaruStateError(
            f"Execution {self.exec_id} has not finished; {hint}.",
            exec_id=self.exec_id,
            status=state.status,
        )

    def _timeout(self, timeout: float | None) -> KitaruTimeoutError:
        status = self.status
        return KitaruTimeoutError(
            f"Execution {self.exec_id} did not finish within {timeout:g} s (status: {status}); "
            "it goes on. Call wait() again, or check it with `kitaru executions get`.",
            exec_id=self.exec_id,
            timeout_seconds=timeout or 0.0,
            last_status=status,
        )

"""``KitaruClient``: inspect and manage executions recorded in the journal."""

from __future__ import annotations

import builtins
import contextlib
from typing import Any

from kitaru.errors import KitaruBackendError, KitaruError, KitaruStateError, KitaruUsageError
from kitaru.flow_handle import FlowHandle
from kitaru.journal import open_store
from kitaru.journal.events import ExecutionCancelled, WaitRequested
from kitaru.journal.store import Store, WaitAlreadyAnsweredError
from kitaru.records import (
    ArtifactRef,
    CheckpointAttempt,
    CheckpointCall,
    Execution,
    FailureInfo,
    LlmCall,
    LogLine,
    PendingWait,
    artifacts_of,
    execution_from_state,
    log_lines,
    unreadable_execution,
)
from kitaru.replay.state import ExecutionState
from kitaru.runtime.boundary import resolve_wait
from kitaru.runtime.inputs import validate_input
from kitaru.runtime.locate import import_flow
from kitaru.runtime.ownership import claim_execution
from kitaru.runtime.runner import load_state, replay_execution, resume_execution
from kitaru.runtime.values import UnencodableValueError, encode_value
from kitaru.runtime.verify import Verification, verify_execution
from kitaru.runtime.writer import JournalWriter

__all__ = [
    "ArtifactRef",
    "ArtifactsClient",
    "CheckpointAttempt",
    "CheckpointCall",
    "Execution",
    "ExecutionsClient",
    "FailureInfo",
    "KitaruClient",
    "LlmCall",
    "LogLine",
    "PendingWait",
    "Verification",
]


class ExecutionsClient:
    """``KitaruClient().executions``."""

    def __init__(self, store: Store):
        self._store = store

    def resolve_id(self, exec_id: str) -> str:
        """Accept a full id or an unambiguous prefix of one."""
        if not exec_id:
            raise KitaruStateError("An execution id is required.")
        if self._store.get_execution(exec_id) is not None:
            return exec_id
        matches = self._store.find_executions(exec_id, limit=5)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise KitaruStateError(
                f"No execution {exec_id} in the journal {self._store.location}. "
                "List executions with `kitaru executions list`.",
                exec_id=exec_id,
            )
        raise KitaruStateError(
            f"'{exec_id}' matches several executions ({', '.join(matches)}, ...); "
            "give more of the id.",
            exec_id=exec_id,
        )

    def get(self, exec_id: str) -> Execution:
        exec_id = self.resolve_id(exec_id)
        return execution_from_state(load_state(self._store, exec_id), self._store)

    def list(
        self, flow: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[Execution]:
        """Executions, newest first, optionally filtered by flow name and status."""
        rows = self._store.list_executions(flow=flow, status=status, limit=limit)
        found = []
        for row in rows:
            try:
                found.append(self.get(row.exec_id))
            except KitaruBackendError as exc:
                # One unreadable journal must not hide every other execution.
                found.append(unreadable_execution(row, exc))
        return found

    def latest(self, flow: str | None = None, status: str | None = None) -> Execution:
        found = self.list(flow=flow, status=status, limit=1)
        if not found:
            raise KitaruStateError("No execution matches those filters.")
        return found[0]

    def verify(self, *exec_ids: str) -> builtins.list[Verification]:
        """Check today's code against recorded executions, running nothing live.

        Each execution's flow body runs against its journal: recorded calls return
        their recorded outcomes, and the body stops at the first call the journal does
        not hold, before running it. Nothing is written and no lease is taken, so
        running (even with a live owner), failed and completed executions can all be
        checked. One ``Verification`` per id, in order.
        """
        if not exec_ids:
            raise KitaruUsageError(
                "Give at least one execution id to verify, or call verify_all()."
            )
        return [verify_execution(self._store, self.resolve_id(exec_id)) for exec_id in exec_ids]

    def verify_all(self) -> builtins.list[Verification]:
        """``verify`` every execution of the store, oldest first."""
        rows = self._store.list_executions()
        return [verify_execution(self._store, row.exec_id) for row in reversed(rows)]

    def resume(self, exec_id: str) -> FlowHandle:
        """Continue an interrupted or waiting execution in this process."""
        run = resume_execution(
            self.resolve_id(exec_id), mode="resume", background=True, store=self._store
        )
        return FlowHandle(run.exec_id, run=run, store=self._store)

    def retry(self, exec_id: str) -> FlowHandle:
        """Continue a failed execution; its failed calls run again."""
        run = resume_execution(
            self.resolve_id(exec_id), mode="retry", background=True, store=self._store
        )
        return FlowHandle(run.exec_id, run=run, store=self._store)

    def replay(
        self,
        exec_id: str,
        *,
        from_: str,
        overrides: dict[str, Any] | None = None,
        **flow_inputs: Any,
    ) -> FlowHandle:
        """Start a new execution from a finished one (see ``Flow.replay``)."""
        from kitaru.flow import _registry_snapshot

        source = load_state(self._store, self.resolve_id(exec_id))
        assert source.flow is not None
        run = replay_execution(
            import_flow(source.flow),
            source.exec_id,
            from_=from_,
            overrides=overrides,
            flow_inputs=flow_inputs,
            registry=_registry_snapshot(),
            store=self._store,
        )
        return FlowHandle(run.exec_id, run=run, store=self._store)

    def logs(self, exec_id: str, *, checkpoint: str | None = None) -> builtins.list[LogLine]:
        """Lines printed or logged inside checkpoints, in time order."""
        state = load_state(self._store, self.resolve_id(exec_id))
        return log_lines(state, checkpoint)

    def input(self, exec_id: str, *, wait: str | None = None, value: Any) -> Execution:
        """Answer a pending wait; ``value`` is checked against the wait's schema."""
        state = load_state(self._store, self.resolve_id(exec_id))
        request = _pending(state, wait)
        if request.identity in self._store.wait_inputs(state.exec_id):
            raise WaitAlreadyAnsweredError(state.exec_id, request.identity)
        if request.schema_type and not request.schema_type.startswith("builtins:"):
            _make_types_importable(state)
        validate_input(request.schema_type, value, exec_id=state.exec_id, wait=request.identity)
        try:
            data = encode_value(value)
        except UnencodableValueError as exc:
            raise KitaruUsageError(f"The input for wait '{request.identity}' is {exc}.") from None
        self._store.post_wait_input(state.exec_id, request.identity, data, aborted=False)
        return self.get(state.exec_id)

    def abort_wait(self, exec_id: str, *, wait: str | None = None) -> Execution:
        """Refuse a pending wait: the execution ends ``cancelled``."""
        state = load_state(self._store, self.resolve_id(exec_id))
        request = _pending(state, wait)
        reason = f"wait '{request.identity}' was aborted"
        if not self._end_here(state.exec_id, reason, abort=request.identity):
            self._store.post_wait_input(state.exec_id, request.identity, None, aborted=True)
        return self.get(state.exec_id)

    def cancel(self, exec_id: str) -> Execution:
        """Cancel a running or waiting execution.

        With no live process running it, it is cancelled at once; otherwise that
        process stops it at its next durable call (within about half a second).
        """
        state = load_state(self._store, self.resolve_id(exec_id))
        if state.finished:
            raise KitaruStateError(
                f"Execution {state.exec_id} already {state.status}; there is nothing to cancel.",
                exec_id=state.exec_id,
                status=state.status,
            )
        reason = "cancelled on request"
        if not self._end_here(state.exec_id, reason):
            self._store.request_cancel(state.exec_id, reason)
        return self.get(state.exec_id)

    def _end_here(self, exec_id: str, reason: str, *, abort: str | None = None) -> bool:
        """Cancel the execution in this process if no live process runs it."""
        try:
            ownership = claim_execution(self._store, exec_id)
        except KitaruStateError:
            return False
        try:
            state = load_state(self._store, exec_id)
            if state.finished:
                return True
            append = JournalWriter(self._store, ownership, state.last_seq).append
            cancelled = ExecutionCancelled(reason=reason)
            if abort is not None and abort in state.pending_waits:
                resolve_wait(
                    self._store,
                    append,
                    exec_id,
                    state.calls[abort],
                    None,
                    aborted=True,
                    then=[cancelled],
                )
            else:
                append([cancelled])
            self._store.clear_cancel(exec_id)
        finally:
            ownership.release()
        return True


def _pending(state: ExecutionState, wait: str | None) -> WaitRequested:
    if not state.pending_waits:
        raise KitaruStateError(
            f"Execution {state.exec_id} is not waiting for input (status: {state.status}).",
            exec_id=state.exec_id,
            status=state.status,
        )
    if wait is None:
        if len(state.pending_waits) == 1:
            return next(iter(state.pending_waits.values()))
        names = ", ".join(state.pending_waits)
        raise KitaruUsageError(
            f"Execution {state.exec_id} waits at several places ({names}); name one with wait=."
        )
    for request in state.pending_waits.values():
        if wait in (request.identity, request.call_id, request.name):
            return request
    raise KitaruStateError(
        f"Execution {state.exec_id} has no pending wait '{wait}'; pending: "
        f"{', '.join(state.pending_waits)}.",
        exec_id=state.exec_id,
        status=state.status,
    )


def _make_types_importable(state: ExecutionState) -> None:
    """Import the flow's module so schema types defined there (or in __main__) resolve."""
    if state.flow is None:
        return
    with contextlib.suppress(KitaruError):
        import_flow(state.flow)


class ArtifactsClient:
    """``KitaruClient().artifacts``."""

    def __init__(self, executions: ExecutionsClient, store: Store):
        self._executions = executions
        self._store = store

    def list(self, exec_id: str) -> builtins.list[ArtifactRef]:
        """Saved artifacts, checkpoint outputs and llm prompts/responses of an execution."""
        state = load_state(self._store, self._executions.resolve_id(exec_id))
        return artifacts_of(state, self._store)

    def get(self, artifact_id: str) -> ArtifactRef:
        """An artifact by its id (as ``list`` gives it)."""
        exec_id = artifact_id.split(":", 1)[0]
        for ref in self.list(exec_id):
            if ref.artifact_id == artifact_id:
                return ref
        raise KitaruStateError(
            f"No artifact {artifact_id}; list them with artifacts.list(exec_id)."
        )

    def find(self, exec_id: str, name: str) -> ArtifactRef:
        """The artifact ``name`` of an execution: a saved one, else a call's output."""
        state = load_state(self._store, self._executions.resolve_id(exec_id))
        refs = artifacts_of(state, self._store)
        saved = [r for r in refs if r.origin == "saved" and r.name == name]
        if saved:
            producers = sorted({r.producing_call or "" for r in saved})
            if len(producers) > 1:
                raise KitaruStateError(
                    f"Several checkpoints saved an artifact '{name}' ({', '.join(producers)}); "
                    "load one by id: " + ", ".join(r.artifact_id for r in saved)
                )
            return saved[-1]  # the latest attempt's
        exact = [r for r in refs if r.name == name]
        if len(exact) == 1:
            return exact[0]
        family = [
            r
            for r in refs
            if r.origin == "checkpoint_output" and state.calls[r.producing_call or ""].name == name
        ]
        if len(family) == 1:
            return family[0]
        if family:
            raise KitaruStateError(
                f"'{name}' names several checkpoint outputs "
                f"({', '.join(r.name for r in family)}); load one of those names."
            )
        available = ", ".join(sorted({r.name for r in refs})) or "(none)"
        raise KitaruStateError(
            f"Execution {state.exec_id} has no artifact or checkpoint output '{name}'. "
            f"Available: {available}."
        )


class KitaruClient:
    """Entry point for managing executions: ``KitaruClient().executions.get(id)``."""

    def __init__(self, store: str | None = None):
        self._store = open_store(store)
        self.executions = ExecutionsClient(self._store)
        self.artifacts = ArtifactsClient(self.executions, self._store)

"""``KitaruClient``: inspect and manage executions recorded in the journal."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kitaru._stores import forget_store, open_store
from kitaru.client._lifecycle import LifecycleLine, lifecycle_lines
from kitaru.client._summaries import ExecutionSummary, flow_inputs, summaries, summary_of
from kitaru.client._views import (
    ArtifactRef,
    CallArgument,
    CheckpointAttempt,
    CheckpointCall,
    CostTotal,
    Execution,
    FailureInfo,
    LlmCall,
    LogEntry,
    LogLine,
    PendingWait,
    artifacts_of,
    execution_from_state,
    log_lines,
    unreadable_execution,
)
from kitaru.errors import (
    FailureOrigin,
    KitaruBackendError,
    KitaruError,
    KitaruFeatureNotAvailableError,
    KitaruLogRetrievalError,
    KitaruStateError,
    KitaruUsageError,
    WaitAlreadyAnsweredError,
)
from kitaru.journal.events import CallKind, ExecutionCancelled, WaitRequested
from kitaru.journal.read_model import EXECUTION_STATUSES, ExecutionStatus
from kitaru.journal.store import Lease, Store, WorkerRow, WorkQueue
from kitaru.replay.state import SUMMARY_EVENTS, ExecutionState, fold_summary
from kitaru.runtime.loading import load_state

if TYPE_CHECKING:
    from kitaru._store_check import IntegrityReport
    from kitaru.client._memories import MemoriesClient
    from kitaru.client._store_copy import StoreCopyReport
    from kitaru.runtime.recovery import RecoveryResult
    from kitaru.runtime.runner import Run
    from kitaru.runtime.verify import Verification

__all__ = [
    "EXECUTION_STATUSES",
    "ArtifactRef",
    "ArtifactsClient",
    "CallArgument",
    "CallKind",
    "CheckpointAttempt",
    "CheckpointCall",
    "CostTotal",
    "Execution",
    "ExecutionStatus",
    "ExecutionSummary",
    "ExecutionsClient",
    "FailureInfo",
    "FailureOrigin",
    "IntegrityReport",
    "KitaruClient",
    "Lease",
    "LifecycleLine",
    "LlmCall",
    "LogEntry",
    "LogLine",
    "PendingWait",
    "RecoveryResult",
    "Verification",
    "WorkerRow",
    "WorkersClient",
]

_IMPORTED_ON_USE = {
    "IntegrityReport": "kitaru._store_check",
    "RecoveryResult": "kitaru.runtime.recovery",
    "Verification": "kitaru.runtime.verify",
}
"""Public names whose modules bring the runtime with them: imported on first use, so a
client that only reads executions starts without it."""


def __getattr__(name: str) -> Any:
    module = _IMPORTED_ON_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'kitaru.client' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


_CANCEL_HERE_SECONDS = 5.0
"""How long cancel() waits for a run in this process to stop (it polls twice a second)."""
LOG_SOURCES = ("step", "runner")
"""``logs(source=)``: ``step`` is what checkpoints printed and logged; ``runner`` would be
the process running the flow, whose output this journal does not keep."""


class _RunnerLogsNotKeptError(KitaruLogRetrievalError, KitaruFeatureNotAvailableError):
    """``logs(source="runner")``: both a feature not offered and logs not retrievable.

    Kitaru's guides catch ``KitaruLogRetrievalError`` where runner logs cannot be read;
    this kitaru never keeps them, which is ``KitaruFeatureNotAvailableError``.
    """


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise KitaruUsageError(f"limit= must be a whole number >= 1, got {limit!r}.")


_SETTLE_POLL_SECONDS = 0.05


def _check_background(background: object) -> None:
    if background is not None and not isinstance(background, bool):
        raise KitaruUsageError(f"background must be True or False, got {background!r}.")


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
        """The execution as the journal holds it now.

        Reads a summary of the journal, a few events however many calls it has; the
        calls are read when ``checkpoints``, ``llm_calls`` or ``artifacts`` is first
        used, and recorded values when they are loaded.
        """
        exec_id = self.resolve_id(exec_id)
        events = self._store.read_events(exec_id, only=SUMMARY_EVENTS)
        return execution_from_state(fold_summary(exec_id, events), self._store, events)

    def list(
        self, flow: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[Execution]:
        """Executions, newest first, optionally filtered by flow name and status."""
        if status is not None and status not in EXECUTION_STATUSES:
            raise KitaruUsageError(
                f"status={status!r} is not an execution status; use one of "
                f"{', '.join(EXECUTION_STATUSES)}."
            )
        _check_limit(limit)
        status = None if status is None else str(ExecutionStatus(status))
        rows = self._store.list_executions(flow=flow, status=status, limit=limit)
        found = []
        for row in rows:
            try:
                found.append(self.get(row.exec_id))
            except KitaruBackendError as exc:
                # One unreadable journal must not hide every other execution.
                found.append(unreadable_execution(row, exc))
        return found

    def summaries(
        self, flow: str | None = None, status: str | None = None, id_prefix: str | None = None
    ) -> builtins.list[ExecutionSummary]:
        """Executions as the executions table lists them, newest first, without reading
        their journals: cheap for thousands. Each carries the execution's totals (calls,
        tokens, estimated cost) as the table keeps them, but no calls or payloads."""
        if status is not None and status not in EXECUTION_STATUSES:
            raise KitaruUsageError(
                f"status={status!r} is not an execution status; use one of "
                f"{', '.join(EXECUTION_STATUSES)}."
            )
        return summaries(self._store, flow=flow, status=status, id_prefix=id_prefix)

    def cost(self, flow: str) -> CostTotal:
        """What the model requests of every execution of ``flow`` are estimated to have
        cost (requests a replay reused are counted once, in the execution that made them)."""
        calls = [call for execution in self.list(flow=flow) for call in execution.llm_calls]
        return CostTotal.of(calls)

    def inputs(self, exec_id: str) -> dict[str, Any]:
        """The arguments the flow was called with: ``{"args": [...], "kwargs": {...}}``."""
        return flow_inputs(self._store, self.resolve_id(exec_id))

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
        from kitaru.runtime.verify import verify_execution

        if not exec_ids:
            raise KitaruUsageError(
                "Give at least one execution id to verify, or call verify_all()."
            )
        return [verify_execution(self._store, self.resolve_id(exec_id)) for exec_id in exec_ids]

    def verify_all(self) -> builtins.list[Verification]:
        """``verify`` every execution of the store, oldest first."""
        from kitaru.runtime.verify import verify_execution

        rows = self._store.list_executions()
        return [verify_execution(self._store, row.exec_id) for row in reversed(rows)]

    def summary(self, exec_id: str) -> ExecutionSummary:
        """The execution as the executions table records it, totals included (a cheap
        read: no journal is folded)."""
        exec_id = self.resolve_id(exec_id)
        row = self._store.get_execution(exec_id)
        if row is None:
            raise KitaruStateError(f"No execution {exec_id}.", exec_id=exec_id)
        return summary_of(row)

    def status(self, exec_id: str) -> ExecutionStatus:
        """The execution's status as the journal holds it now (a cheap read)."""
        exec_id = self.resolve_id(exec_id)
        row = self._store.get_execution(exec_id)
        if row is None:
            raise KitaruStateError(f"No execution {exec_id}.", exec_id=exec_id)
        return ExecutionStatus(row.status)

    def live_owner(self, exec_id: str) -> Lease | None:
        """The live process that owns the execution now (pid, host), or None."""
        return self._store.live_lease(self.resolve_id(exec_id))

    def queued_for_workers(self, exec_id: str) -> bool:
        """Whether a ``kitaru worker`` takes or holds the execution (queued or claimed)."""
        return isinstance(self._store, WorkQueue) and self._store.will_run(self.resolve_id(exec_id))

    def lifecycle(self, exec_id: str) -> builtins.list[LifecycleLine]:
        """The execution's lifecycle events as lines, in journal order."""
        return lifecycle_lines(self._store, self.resolve_id(exec_id))

    def resume(
        self,
        exec_id: str,
        *,
        background: bool | None = None,
        on_start: Callable[[Execution], None] | None = None,
    ) -> Execution:
        """Continue an interrupted or waiting execution in this process.

        By default it blocks as ``.run()`` does: the execution is returned once it has
        ended or is waiting for input (the run keeps waiting there and takes an input
        given in this process). ``background=True`` returns as soon as the run has
        started; the execution's ``wait()`` blocks until it ends. ``background=False``
        runs the flow body in the calling thread, and returns the execution as it stands
        when the body ended or gave up waiting. ``on_start`` is called with the execution
        just before its body starts. A waiting execution a run in this process still owns
        (a ``.run()`` that returned at a wait) needs no new run: that run takes the input
        itself, so its execution is returned as it stands.
        """
        from kitaru.runtime.ownership import running_here
        from kitaru.runtime.runner import resume_execution

        _check_background(background)
        exec_id = self.resolve_id(exec_id)
        if running_here(exec_id):
            current = self.get(exec_id)
            if current.status == "waiting":
                return current if background else self._settle_here(current)
        run = resume_execution(exec_id, mode="resume", background=False, store=self._store)
        return self._start(run, background, on_start)

    def retry(
        self,
        exec_id: str,
        *,
        background: bool | None = None,
        on_start: Callable[[Execution], None] | None = None,
    ) -> Execution:
        """Continue a failed execution in this process; its failed calls run again.

        ``background`` and ``on_start`` work as for ``resume``.
        """
        from kitaru.runtime.runner import resume_execution

        _check_background(background)
        run = resume_execution(
            self.resolve_id(exec_id), mode="retry", background=False, store=self._store
        )
        return self._start(run, background, on_start)

    def replay(
        self,
        exec_id: str,
        *,
        from_: str,
        overrides: dict[str, Any] | None = None,
        background: bool | None = None,
        on_start: Callable[[Execution], None] | None = None,
        **flow_inputs: Any,
    ) -> Execution:
        """Start a new execution from a finished one (see ``Flow.replay``).

        Returns the new execution (its ``original_exec_id`` is ``exec_id``);
        ``background`` and ``on_start`` work as for ``resume``.
        """
        from kitaru._llm.registry import registry_snapshot
        from kitaru.runtime.locate import import_flow
        from kitaru.runtime.runner import replay_execution

        _check_background(background)
        source = load_state(self._store, self.resolve_id(exec_id))
        assert source.flow is not None
        run = replay_execution(
            import_flow(source.flow),
            source.exec_id,
            from_=from_,
            overrides=overrides,
            flow_inputs=flow_inputs,
            registry=registry_snapshot(),
            store=self._store,
            background=False,
        )
        return self._start(run, background, on_start)

    def resume_all(
        self, *, parallel: int = 4, on_result: Callable[[RecoveryResult], None] | None = None
    ) -> builtins.list[RecoveryResult]:
        """Resume, once each, every execution whose process is gone, ``parallel`` at a time.

        Executions waiting for input are left alone. ``on_result`` hears of each as it
        ends; the results come back in the order the executions ended.
        """
        from kitaru.runtime.recovery import recover_all

        return recover_all(self._store, parallel=parallel, on_result=on_result)

    def _settle_here(self, execution: Execution) -> Execution:
        """Block while the run this process holds takes the input it was given.

        Back once the execution has ended, waits for input it has not been given, or
        is no longer held here.
        """
        from kitaru.runtime.ownership import running_here

        while (
            execution.status == "waiting"
            and any(wait.input_received for wait in execution.pending_waits)
            and running_here(execution.exec_id)
        ) or (execution.status == "running" and running_here(execution.exec_id)):
            time.sleep(_SETTLE_POLL_SECONDS)
            execution = self.get(execution.exec_id)
        return execution

    def _start(
        self, run: Run, background: bool | None, on_start: Callable[[Execution], None] | None
    ) -> Execution:
        """Run ``run`` here or on its own thread; the execution it took on, holding the run.

        With ``background=True`` the snapshot is built from the state the run just folded,
        before the body starts: the journal is not read again, nothing competes with the
        body for the interpreter, and it always shows the run just begun. Otherwise the
        execution is read again once the run has ended or is waiting.
        """
        from kitaru._flow import _settle

        try:
            execution = dataclasses.replace(
                execution_from_state(run.ctx.state, self._store), _run=run
            )
            if on_start is not None:
                on_start(execution)
        except BaseException:
            run.abandon()
            raise
        if background is None:
            # As `.run()` on Kitaru's local stack (and here): back once the execution has
            # ended or waits, so a program can act on its outcome at once.
            run.start_thread()
            _settle(run, self._store)
        elif background:
            run.start_thread()
            return execution
        else:
            run.drive()
        return dataclasses.replace(self.get(run.exec_id), _run=run)

    def pending_waits(self, exec_id: str) -> builtins.list[PendingWait]:
        """The waits the execution is paused at (empty when it waits for nothing)."""
        return self.get(exec_id).pending_waits

    def logs(
        self,
        exec_id: str,
        *,
        checkpoint: str | None = None,
        source: str = "step",
        limit: int | None = None,
    ) -> builtins.list[LogEntry]:
        """Lines printed or logged inside checkpoints, in time order.

        ``checkpoint`` keeps one checkpoint's lines (by name: every call of it; or by
        call identity); ``limit`` keeps the first that many. ``source="step"`` (the
        default) is what checkpoints printed and logged: the only logs kept here.
        """
        if source == "runner":
            raise _RunnerLogsNotKeptError(
                "Runner logs are not kept: executions here run in the calling process, "
                "and the journal keeps what checkpoints print and log. Read those with "
                "logs(exec_id) (source='step')."
            )
        if source not in LOG_SOURCES:
            raise KitaruUsageError(f"source={source!r} is not a log source; use 'step'.")
        _check_limit(limit)
        if checkpoint is not None and (not isinstance(checkpoint, str) or not checkpoint.strip()):
            raise KitaruUsageError("checkpoint= must be a non-empty checkpoint name.")
        exec_id = self.resolve_id(exec_id)
        try:
            state = load_state(self._store, exec_id)
        except KitaruBackendError as exc:
            raise KitaruLogRetrievalError(
                f"The logs of execution {exec_id} cannot be read: {exc}",
                failure=exc.failure,
                detail=exc.detail,
            ) from exc
        lines = log_lines(state, checkpoint.strip() if checkpoint else None)
        return lines if limit is None else lines[:limit]

    def input(self, exec_id: str, *, wait: str | None = None, value: Any) -> Execution:
        """Answer a pending wait; ``value`` is checked against the wait's schema."""
        from kitaru.runtime.values import UnencodableValueError, encode_value
        from kitaru.runtime.wait_schemas import validate_input

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
        process stops it at its next durable call (within about half a second). When
        that process is this one, the call waits (up to a few seconds) for the run to
        stop, so the execution returned is already cancelled and can be replayed.
        """
        from kitaru.runtime.ownership import running_here

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
            deadline = time.monotonic() + _CANCEL_HERE_SECONDS
            while running_here(state.exec_id) and time.monotonic() < deadline:
                time.sleep(0.05)
        return self.get(state.exec_id)

    def _end_here(self, exec_id: str, reason: str, *, abort: str | None = None) -> bool:
        """Cancel the execution in this process if no live process runs it."""
        from kitaru.runtime.boundary import resolve_wait
        from kitaru.runtime.ownership import claim_execution
        from kitaru.runtime.writer import JournalWriter

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
        if isinstance(self._store, WorkQueue):
            # A parked execution ended here: no worker is to pick it up again.
            self._store.dequeue(exec_id)
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
    from kitaru.runtime.locate import import_flow

    if state.flow is None:
        return
    with contextlib.suppress(KitaruError):
        import_flow(state.flow)


def _memories_of(store: Store) -> MemoriesClient:
    # Imported on first use: the memory client brings the model-call layer with it,
    # which a client that only reads executions (the CLI's listings) never needs.
    from kitaru.client._memories import MemoriesClient

    return MemoriesClient(store)


class ArtifactsClient:
    """``KitaruClient().artifacts``."""

    def __init__(self, executions: ExecutionsClient, store: Store):
        self._executions = executions
        self._store = store

    def list(
        self,
        exec_id: str,
        *,
        name: str | None = None,
        kind: str | None = None,
        producing_call: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[ArtifactRef]:
        """Saved artifacts, checkpoint outputs and llm prompts/responses of an execution.

        Filters: ``name``, ``kind`` (prompt, response, context, input, output, blob),
        ``producing_call`` (a checkpoint's name, for every call of it, or a call
        identity); ``limit`` keeps the first that many.
        """
        _check_limit(limit)
        state = load_state(self._store, self._executions.resolve_id(exec_id))
        refs = artifacts_of(state, self._store)
        if name is not None:
            refs = [ref for ref in refs if ref.name == name]
        if kind is not None:
            refs = [ref for ref in refs if ref.kind == kind]
        if producing_call is not None:
            refs = [
                ref for ref in refs if producing_call in (ref.producing_call, ref._producing_name)
            ]
        return refs if limit is None else refs[:limit]

    def get(self, artifact_id: str) -> ArtifactRef:
        """An artifact by its id (as ``list`` gives it, or a memory entry's ``artifact_id``)."""
        memory = _memories_of(self._store).load_artifact(artifact_id)
        if memory is not None:
            row, value = memory
            return ArtifactRef(
                artifact_id=artifact_id,
                exec_id=row.exec_id or "",
                name=row.key,
                kind="memory",
                origin="memory",
                producing_call=None,
                attempt=None,
                tags=(),
                _load=lambda: value,
            )
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


class WorkersClient:
    """``KitaruClient().workers``: the ``kitaru worker`` processes of a shared store."""

    def __init__(self, store: Store, location: str | None):
        self._store = store
        self._location = location

    def _queue(self) -> WorkQueue:
        if not isinstance(self._store, WorkQueue):
            raise KitaruUsageError(
                f"The store {self._store.location} has no workers: `kitaru worker` runs on a "
                "PostgreSQL store. Point KITARU_STORE (or --store) at one."
            )
        return self._store

    def list(self, *, include_dead: bool = False) -> builtins.list[WorkerRow]:
        """Workers alive now (their host, pid, what they run, last heartbeat), oldest first."""
        from kitaru.runtime.ownership import lease_ttl

        rows = self._queue().list_workers(lease_ttl())
        return rows if include_dead else [row for row in rows if row.alive]

    def run(
        self,
        *,
        concurrency: int = 4,
        queues: tuple[str, ...] = ("default",),
        import_paths: tuple[str, ...] = (),
        grace: float = 30.0,
        poll: float | None = None,
    ) -> None:
        """Run a worker in this process until SIGTERM or SIGINT (see ``kitaru worker``);
        ``poll`` is the fallback look at the queue in seconds (default: the worker's own)."""
        from kitaru._worker import WorkerSettings, run_worker

        settings = WorkerSettings(
            store=self._location,
            concurrency=concurrency,
            queues=queues or ("default",),
            import_paths=import_paths,
            grace=grace,
            **({} if poll is None else {"poll": poll}),
        )
        self._queue()
        run_worker(settings)


class KitaruClient:
    """Entry point for managing executions: ``KitaruClient().executions.get(id)``.

    ``store`` is the journal to read (default: ``KITARU_STORE``, else the config dir's).
    With ``create=False`` a missing journal raises ``JournalNotFoundError`` instead of
    being created empty (for programs that only read).
    There is no server: ``server_url``, ``auth_token`` and ``project`` raise
    ``KitaruFeatureNotAvailableError``.
    """

    def __init__(
        self,
        store: str | None = None,
        *,
        server_url: str | None = None,
        auth_token: str | None = None,
        project: str | None = None,
        create: bool = True,
    ):
        given = {"server_url": server_url, "auth_token": auth_token, "project": project}
        named = sorted(key for key, value in given.items() if value is not None)
        if named:
            raise KitaruFeatureNotAvailableError(
                f"KitaruClient({', '.join(f'{key}=...' for key in named)}) needs a Kitaru "
                "server, and this kitaru has none: executions live in a journal store. "
                "Point the client at one with KitaruClient(store='/path/to/kitaru.db') "
                "or the KITARU_STORE environment variable."
            )
        self._store = open_store(store, create=create)
        self.executions = ExecutionsClient(self._store)
        self.artifacts = ArtifactsClient(self.executions, self._store)
        self.workers = WorkersClient(self._store, store)

    @functools.cached_property
    def memories(self) -> MemoriesClient:
        """``KitaruClient().memories``: memory scopes, their history and maintenance."""
        return _memories_of(self._store)

    def check_store(self) -> IntegrityReport:
        """Check the journal store's integrity: every event, payload and read-model row."""
        from kitaru._store_check import check_store

        return check_store(self._store)

    @staticmethod
    def copy_store(
        source: str, destination: str, *, skip_existing: bool = False
    ) -> StoreCopyReport:
        """Copy every journal of the ``source`` store into ``destination`` and verify it.

        Executions the destination already has are refused (``StoreCopyRefusedError``,
        nothing written) unless ``skip_existing`` leaves them out; so are executions
        running in the source right now.
        """
        from kitaru.client._store_copy import copy_store

        return copy_store(source, destination, skip_existing=skip_existing)

    def close(self) -> None:
        """Close this process's connections to the journal (before its files are removed)."""
        forget_store(self._store.location)

    @property
    def store_location(self) -> str:
        """Where the client's journal is (for SQLite, the file's path)."""
        return self._store.location

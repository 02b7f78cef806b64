"""Starting and resuming executions: the loop that drives a flow body to its end."""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kitaru import _telemetry as tracing
from kitaru._logging import get_logger
from kitaru._stores import open_store
from kitaru.errors import (
    KitaruDivergenceError,
    KitaruError,
    KitaruExecutionError,
    KitaruStateError,
    KitaruUsageError,
    KitaruUserCodeError,
)
from kitaru.journal.events import (
    CallKind,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionSpec,
    ExecutionStarted,
    FlowRef,
    ReplayPlan,
    ValueRef,
)
from kitaru.journal.payloads import make_ref
from kitaru.journal.read_model import ExecutionStatus
from kitaru.journal.store import Store
from kitaru.replay.matching import describe, unmade_calls
from kitaru.replay.planning import SelectorError, select_calls
from kitaru.replay.state import ExecutionState
from kitaru.runtime.context import (
    CancelSignal,
    ExecutionContext,
    ReplayContext,
    Suspended,
    current_execution,
)
from kitaru.runtime.event_loop import call_flow_body
from kitaru.runtime.failures import error_info, failure_origin, type_name
from kitaru.runtime.handles import resolve_handles
from kitaru.runtime.interrupts import (
    Interrupted,
    install_stop_handlers,
    request_stop,
    running,
)
from kitaru.runtime.loading import load_state, read_state
from kitaru.runtime.ownership import Ownership, claim_execution
from kitaru.runtime.values import UnencodableValueError, decode_value, encode_value
from kitaru.runtime.writer import JournalWriter

__all__ = [
    "Outcome",
    "Run",
    "failure_error",
    "interrupted_error",
    "load_state",
    "replay_execution",
    "resume_execution",
    "start_execution",
]

_log = get_logger()

try:
    from importlib.metadata import version as _pkg_version

    KITARU_VERSION = _pkg_version("kitaru")
except Exception:  # pragma: no cover  (running from a source tree without metadata)
    KITARU_VERSION = "0+unknown"


@dataclass
class Outcome:
    """How a run of the flow body ended in this process."""

    value: Any = None
    error: BaseException | None = None
    suspended: bool = False
    """The flow body paused at a wait; the execution is ``waiting``."""


def cancelled_error(exec_id: str, reason: str) -> KitaruExecutionError:
    why = f" ({reason})" if reason else ""
    return KitaruExecutionError(
        f"Execution {exec_id} was cancelled{why}.",
        exec_id=exec_id,
        status=ExecutionStatus.CANCELLED,
    )


def interrupted_error(exec_id: str) -> KitaruStateError:
    return KitaruStateError(
        f"Execution {exec_id} was interrupted before it finished; nothing is lost. "
        f"Continue it with `kitaru executions resume {exec_id}`.",
        exec_id=exec_id,
        status=ExecutionStatus.RUNNING,
    )


def failure_error(
    state: ExecutionState, cause: BaseException | None = None, *, kind: str | None = None
) -> KitaruError:
    """The exception ``FlowHandle.wait()`` raises for a failed or cancelled execution."""
    exec_id = state.exec_id
    if state.status is ExecutionStatus.CANCELLED:
        return cancelled_error(exec_id, state.cancelled.reason if state.cancelled else "")
    failure = state.failure
    assert failure is not None
    if failure.divergence:
        return KitaruDivergenceError(
            failure.error.message,
            exec_id=exec_id,
            position=failure.position if failure.position is not None else -1,
            expected=failure.expected,
            actual=failure.actual,
            argument=failure.argument,
            recorded_argument=failure.recorded_argument,
            current_argument=failure.current_argument,
        )
    where = ""
    if failure.call:
        call = state.calls.get(failure.call)
        kind = kind or (call.kind if call else CallKind.CHECKPOINT)
        where = f" in {describe(kind, failure.call)}"
    detail = failure.error.message.rstrip(". ")
    error = KitaruUserCodeError(
        f"Execution {exec_id} failed{where}: {failure.error.type}: {detail}. "
        f"Fix the cause, then run `kitaru executions retry {exec_id}`.",
        exec_id=exec_id,
        error_type=failure.error.type,
        error_message=failure.error.message,
        call=failure.call,
        traceback=failure.error.traceback,
        failure_origin=failure_origin(failure.error.type),
    )
    if cause is not None:
        error.__cause__ = cause
    return error


class Run:
    """One process driving one execution until it ends (or pauses)."""

    def __init__(
        self,
        ctx: ExecutionContext,
        flow: Any,
        ownership: Ownership,
        inputs: tuple[tuple[Any, ...], dict[str, Any]],
        retries_left: int,
    ):
        self.ctx = ctx
        self.flow = flow
        # The execution's frozen spec decides, wherever and whenever it is resumed;
        # journals written before specs were recorded fall back to the flow's setting.
        started = ctx.state.started
        spec = started.spec if started is not None else None
        ctx.cache = spec.cache if spec is not None else bool(getattr(flow, "cache", False))
        self.ownership = ownership
        self.inputs = inputs
        self.retries_left = retries_left
        self.outcome: Outcome | None = None
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        # Made in the thread that starts or resumes the execution: if that is the main
        # thread, Ctrl-C and SIGTERM now stop the execution cleanly (runtime.interrupts).
        install_stop_handlers()

    @property
    def exec_id(self) -> str:
        return self.ctx.exec_id

    def abandon(self) -> None:
        """Let go of the execution without running its body (it stays resumable)."""
        self.ctx.writer.close()
        self.ownership.release()
        self.done.set()

    def start_thread(self) -> None:
        self.thread = threading.Thread(
            target=self.drive, name=f"kitaru-flow-{self.exec_id[:8]}", daemon=False
        )
        self.thread.start()

    def drive(self) -> Outcome:
        """Drive the flow body in this thread; always lets go of the execution."""
        token = current_execution.set(self.ctx)
        traced = tracing.start_execution(
            self.ctx, resumed=bool(self.ctx.state.resumes), replay=self.ctx.replay is not None
        )
        with running():
            try:
                self.outcome = self._drive_body()
            except BaseException as exc:
                # KeyboardInterrupt / SystemExit in the thread driving the flow body: the
                # process is going down. Nothing more starts; calls running on other
                # threads finish first (below), so the execution stays resumable exactly
                # as after a crash, and nobody can run it while they still record.
                self.outcome = Outcome(error=exc)
                if threading.current_thread() is threading.main_thread():
                    request_stop()
                raise
            finally:
                if traced is not None:
                    outcome = self.outcome
                    traced.end(
                        outcome.error if outcome else None,
                        suspended=bool(outcome and outcome.suspended),
                    )
                current_execution.reset(token)
                self._let_go()
        return self.outcome

    def _let_go(self) -> None:
        """Release the lease once no thread of this process can record for the execution."""
        try:
            self.ctx.drain()
        except BaseException:
            # Interrupted again while calls were still running: they may yet record,
            # so the lease is kept. It dies with this process.
            self.done.set()
            raise
        self.ctx.writer.close()
        self.ownership.release()
        self.done.set()

    def _drive_body(self) -> Outcome:
        ctx = self.ctx
        args, kwargs = self.inputs
        while True:
            try:
                result = call_flow_body(self.flow.func, args, kwargs)
                ctx.drain()
                result = resolve_handles(result)
                if ctx.fatal is not None:
                    raise ctx.fatal
                self._check_all_calls_made()
                return self._complete(result)
            except Suspended as suspended:
                ctx.drain()
                _log.info("execution suspended", exec_id=ctx.exec_id, wait=str(suspended))
                return Outcome(suspended=True)
            except CancelSignal as cancel:
                ctx.drain()
                return self._cancel(cancel.reason)
            except Interrupted:
                ctx.drain()
                _log.info("execution interrupted", exec_id=ctx.exec_id)
                return Outcome(error=interrupted_error(ctx.exec_id))
            except Exception as exc:
                ctx.drain()
                fatal = ctx.fatal
                if fatal is not None and not isinstance(fatal, KitaruDivergenceError):
                    # The journal failed us: record nothing more. Once the fault is gone
                    # the execution resumes from what was recorded.
                    _log.error("journal write failed", exec_id=ctx.exec_id, error=str(fatal))
                    return Outcome(error=fatal)
                if fatal is None and self.retries_left > 0:
                    self.retries_left -= 1
                    self._retry_in_place(exc)
                    continue
                return self._fail(fatal or exc)

    def _complete(self, result: Any) -> Outcome:
        ctx = self.ctx
        try:
            data = encode_value(result)
        except UnencodableValueError as exc:
            raise KitaruUsageError(
                f"Flow '{ctx.flow_name}' returned {exc}. Return builtins, dataclasses, msgspec "
                "Structs or pydantic models, or convert the result before returning it."
            ) from None
        payloads: dict[str, bytes] = {}
        ctx.append([ExecutionCompleted(result=make_ref(data, payloads))], payloads)
        _forget_cancel(ctx.store, ctx.exec_id)
        _log.info("execution completed", exec_id=ctx.exec_id, flow=ctx.flow_name)
        return Outcome(value=result)

    def _cancel(self, reason: str) -> Outcome:
        ctx = self.ctx
        try:
            ctx.append([ExecutionCancelled(reason=reason)])
            ctx.store.clear_cancel(ctx.exec_id)
        except KitaruError as exc:
            return Outcome(error=exc)
        _log.info("execution cancelled", exec_id=ctx.exec_id, reason=reason)
        return Outcome(error=cancelled_error(ctx.exec_id, reason))

    def _check_all_calls_made(self) -> None:
        ctx = self.ctx
        for call in unmade_calls(ctx.state, ctx.next_position):
            expected = describe(call.kind, call.identity)
            ctx.fatal = KitaruDivergenceError(
                f"Execution {ctx.exec_id} no longer matches its journal: the journal has "
                f"{expected} at position {call.position}, but the flow returned without "
                "making it. Restore the code that made the recorded calls, then run "
                f"`kitaru executions retry {ctx.exec_id}`.",
                exec_id=ctx.exec_id,
                position=call.position,
                expected=expected,
                actual=None,
            )
            raise ctx.fatal

    def _retry_in_place(self, exc: Exception) -> None:
        ctx = self.ctx
        _log.info(
            "flow failed, retrying",
            exec_id=ctx.exec_id,
            error=f"{type_name(exc)}: {exc}",
            retries_left=self.retries_left,
        )
        ctx.append([ExecutionResumed(mode="retry", owner=self.ownership.owner)])
        ctx.reset_for_retry(read_state(ctx.store, ctx.exec_id))

    def _fail(self, exc: Exception) -> Outcome:
        ctx = self.ctx
        divergence = exc if isinstance(exc, KitaruDivergenceError) else None
        event = ExecutionFailed(
            error=error_info(exc),
            call=getattr(exc, "__kitaru_call__", None),
            divergence=divergence is not None,
            position=divergence.position if divergence else None,
            expected=divergence.expected if divergence else None,
            actual=divergence.actual if divergence else None,
            argument=divergence.argument if divergence else None,
            recorded_argument=divergence.recorded_argument if divergence else None,
            current_argument=divergence.current_argument if divergence else None,
        )
        try:
            ctx.append([event])
        except KitaruError as store_error:
            return Outcome(error=store_error)
        _forget_cancel(ctx.store, ctx.exec_id)
        _log.info("execution failed", exec_id=ctx.exec_id, error=f"{event.error.type}: {exc}")
        if divergence is not None:
            return Outcome(error=divergence)
        state = ExecutionState(ctx.exec_id, status=ExecutionStatus.FAILED, failure=event)
        kind = getattr(exc, "__kitaru_call_kind__", None)
        return Outcome(error=failure_error(state, cause=exc, kind=kind))


def _forget_cancel(store: Store, exec_id: str) -> None:
    """Drop a cancel request that arrived too late: it ends with the run it was meant for.

    Best effort: the execution has already ended, and a retry clears it again.
    """
    with contextlib.suppress(KitaruError):
        store.clear_cancel(exec_id)


def _context(store: Store, state: ExecutionState, ownership: Ownership) -> ExecutionContext:
    assert state.started is not None
    replay = None
    plan = state.started.replay_plan
    if plan is not None:
        source = read_state(store, plan.source)
        replay = ReplayContext(source, plan.from_position, dict(plan.overrides))
    return ExecutionContext(
        exec_id=state.exec_id,
        store=store,
        writer=JournalWriter(store, ownership, state.last_seq),
        state=state,
        flow_name=state.flow_name,
        registry=state.started.registry,
        replay=replay,
    )


def start_execution(
    flow: Any,
    ref: FlowRef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    retries: int,
    registry: dict[str, Any] | None = None,
    original_exec_id: str | None = None,
    replay_plan: ReplayPlan | None = None,
    payloads: dict[str, bytes] | None = None,
    background: bool = True,
    spec: ExecutionSpec | None = None,
    store: Store | None = None,
) -> Run:
    """Record a new execution of ``flow`` and start its body on a worker thread.

    With ``background=False`` the caller drives it (``Run.drive()``) in its own thread.
    ``spec`` is the resolved run configuration, frozen into the execution; ``store``
    is the journal of the stack it runs on (default: the current stack's).
    """
    try:
        inputs = encode_value([list(args), kwargs])
    except UnencodableValueError as exc:
        raise KitaruUsageError(
            f"Flow '{flow.name}' was called with {exc}. Flow arguments are stored in the "
            "journal so the execution can be resumed anywhere; pass builtins, dataclasses, "
            "msgspec Structs or pydantic models."
        ) from None
    store = store if store is not None else open_store()
    exec_id = str(uuid.uuid4())
    payloads = dict(payloads or {})
    started = ExecutionStarted(
        flow_name=flow.name,
        flow=ref,
        inputs=make_ref(inputs, payloads),
        kitaru_version=KITARU_VERSION,
        retries=retries,
        original_exec_id=original_exec_id,
        registry=registry,
        replay_plan=replay_plan,
        spec=spec,
    )
    ownership = claim_execution(store, exec_id)
    try:
        JournalWriter(store, ownership, 0).append([started], payloads)
        state = ExecutionState(exec_id, started=started, last_seq=1, started_at=time.time())
        ctx = _context(store, state, ownership)
    except BaseException:
        ownership.release()
        raise
    run = Run(ctx, flow, ownership, (tuple(args), dict(kwargs)), retries)
    _log.info("execution started", exec_id=exec_id, flow=flow.name, replay_of=original_exec_id)
    if background:
        run.start_thread()
    return run


def resume_execution(
    exec_id: str, *, mode: str, background: bool, store: Store | None = None
) -> Run:
    """Take over an interrupted (``resume``) or failed (``retry``) execution and run it.

    With ``background`` the body runs on a worker thread; otherwise the caller drives
    it with ``Run.drive()`` (the client does for ``background=False``).
    """
    from kitaru.runtime.locate import import_flow

    store = store if store is not None else open_store()
    state = load_state(store, exec_id)
    _check_resumable(state, mode)
    assert state.flow is not None
    flow = import_flow(state.flow)
    ownership = claim_execution(store, exec_id)
    try:
        # What it is now that we own it. Events are append-only, so folding the ones
        # appended since the first read is the same as folding the whole journal again.
        _catch_up(store, state)
        _check_resumable(state, mode)
        assert state.started is not None
        args, kwargs = decode_value(_payload(store, state.started.inputs))
        ctx = _context(store, state, ownership)
        if mode == "retry":
            # The execution is failed, so a cancel stored now was meant for the run that
            # failed (its process may have died before clearing it), not for this one.
            store.clear_cancel(exec_id)
        ctx.append([ExecutionResumed(mode=mode, owner=ownership.owner)])
        _catch_up(store, ctx.state)
    except BaseException:
        ownership.release()
        raise
    _log.info(f"execution {'retried' if mode == 'retry' else 'resumed'}", exec_id=exec_id)
    # A crash must not refill the flow's retry budget: count what the journal says is used.
    retries_left = max(0, state.started.retries - ctx.state.body_retries)
    run = Run(ctx, flow, ownership, (tuple(args), dict(kwargs)), retries_left)
    if background:
        run.start_thread()
    return run


def _catch_up(store: Store, state: ExecutionState) -> None:
    """Fold the events appended after ``state.last_seq`` into ``state``."""
    for stored in store.read_events(state.exec_id, after_seq=state.last_seq):
        state.apply(stored)


def _payload(store: Store, ref: Any) -> bytes:
    return bytes(ref.inline) if ref.inline is not None else store.read_payload(ref.hash)


def _check_resumable(state: ExecutionState, mode: str) -> None:
    exec_id, status = state.exec_id, state.status
    if mode == "retry":
        if status is ExecutionStatus.FAILED:
            return
        advice = {
            "completed": "it already completed; replay it to run it again",
            "cancelled": "it was cancelled",
            "running": f"it did not fail; use `kitaru executions resume {exec_id}` to continue it",
            "waiting": f"it is waiting for input; use `kitaru executions input {exec_id}`",
        }.get(status, "")
        raise KitaruStateError(
            f"Execution {exec_id} cannot be retried: {advice}.", exec_id=exec_id, status=status
        )
    if status in (ExecutionStatus.RUNNING, ExecutionStatus.WAITING):
        return
    advice = {
        "completed": "it already completed",
        "failed": f"it failed; `kitaru executions retry {exec_id}` runs its failed calls again",
        "cancelled": "it was cancelled",
    }.get(status, "")
    raise KitaruStateError(
        f"Execution {exec_id} cannot be resumed: {advice}.", exec_id=exec_id, status=status
    )


def replay_execution(
    flow: Any,
    source_id: str,
    *,
    from_: str,
    overrides: dict[str, Any] | None,
    flow_inputs: dict[str, Any],
    registry: dict[str, Any] | None,
    background: bool = True,
    store: Store | None = None,
    invocation: Any = None,
) -> Run:
    """Start a new execution that reuses ``source_id``'s calls before ``from_``.

    The replay runs with the source's frozen spec, changed by ``invocation`` (a
    ``KitaruConfig`` of run options), as ``Flow.spec_for_replay`` resolves it.
    """
    from kitaru.runtime.locate import flow_ref

    store = store if store is not None else open_store()
    source = load_state(store, source_id)
    # A waiting source may be replayed, as Kitaru allows: the calls before its wait are
    # recorded for good, and the replay reads nothing it might still append.
    if not source.finished and source.status != ExecutionStatus.WAITING:
        raise KitaruStateError(
            f"Execution {source_id} is {source.status}; only a finished or waiting "
            "execution can be replayed. Wait for it to end, or cancel it first.",
            exec_id=source_id,
            status=source.status,
        )
    assert source.started is not None
    if source.flow_name != flow.name:
        raise KitaruStateError(
            f"Execution {source_id} ran flow '{source.flow_name}', not '{flow.name}'; "
            f"replay it with {source.flow_name}.replay(...).",
            exec_id=source_id,
        )
    from_position = _select(source, from_)[0].position
    payloads: dict[str, bytes] = {}
    override_refs: dict[str, ValueRef] = {}
    if overrides is not None and not isinstance(overrides, dict):
        raise KitaruUsageError(
            'overrides= must be a dict like {"checkpoint.<selector>": value}, '
            f"got {type(overrides).__name__}."
        )
    for key, value in (overrides or {}).items():
        selector = key.removeprefix("checkpoint.") if isinstance(key, str) else ""
        if not isinstance(key, str) or not key.startswith("checkpoint.") or not selector:
            raise KitaruUsageError(
                f"Override key {key!r} is not understood; write 'checkpoint.<selector>' "
                "where the selector is a checkpoint name, call identity or call id."
            )
        try:
            data = encode_value(value)
        except UnencodableValueError as exc:
            raise KitaruUsageError(f"The override for '{key}' is {exc}.") from None
        for call in _select(source, selector):
            override_refs[call.identity] = make_ref(data, payloads)
    args, kwargs = decode_value(_payload(store, source.started.inputs))
    if flow_inputs:
        args, kwargs = _rebind(flow, tuple(args), dict(kwargs), flow_inputs)
    plan = ReplayPlan(
        source=source_id, from_position=from_position, from_selector=from_, overrides=override_refs
    )
    spec_for_replay = getattr(flow, "spec_for_replay", None)
    spec = spec_for_replay(source, store, invocation) if spec_for_replay is not None else None
    return start_execution(
        flow,
        flow_ref(flow.func),
        tuple(args),
        dict(kwargs),
        retries=spec.retries if spec is not None else flow.retries,
        spec=spec,
        store=store,
        registry=registry,
        original_exec_id=source_id,
        replay_plan=plan,
        payloads=payloads,
        background=background,
    )


def _select(state: ExecutionState, selector: str) -> list[Any]:
    try:
        return select_calls(state, selector)
    except SelectorError as exc:
        listed = "\n  ".join(exc.choices) if exc.choices else "(none recorded)"
        raise KitaruStateError(
            f"{exc}\nAvailable calls:\n  {listed}", exec_id=state.exec_id, status=state.status
        ) from None


def _rebind(
    flow: Any, args: tuple[Any, ...], kwargs: dict[str, Any], changes: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The original call's arguments with the named ``changes`` applied."""
    signature = inspect.signature(flow.func)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise KitaruUsageError(f"The recorded inputs no longer fit {flow.name}: {exc}.") from None
    unknown = [name for name in changes if name not in signature.parameters]
    if unknown:
        raise KitaruUsageError(
            f"{flow.name} has no parameter {', '.join(map(repr, unknown))}; its parameters "
            f"are {', '.join(signature.parameters)}."
        )
    bound.apply_defaults()
    bound.arguments.update(changes)
    return bound.args, bound.kwargs

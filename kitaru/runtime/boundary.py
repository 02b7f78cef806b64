"""The durable-call boundary: the one place that decides replay or run.

Every durable call (checkpoint, flow-body ``kitaru.llm``, wait, memory) goes through here:
``reserve`` gives the call its position and identity in the flow body and matches it
against the journal; ``execute`` returns the recorded outcome, or runs the call live
and appends its events. Nothing else appends call events.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Generator, Sequence
from concurrent.futures import Future
from typing import Any

import msgspec

from kitaru import _telemetry as tracing
from kitaru._logging import get_logger
from kitaru.errors import KitaruDivergenceError, KitaruUsageError
from kitaru.journal.events import (
    ArgumentDigest,
    CallCompleted,
    CallFailed,
    CallKind,
    CallStarted,
    LogsCaptured,
    ValueRef,
    WaitRequested,
    WaitResolved,
)
from kitaru.journal.payloads import make_ref
from kitaru.journal.read_model import ExecutionStatus
from kitaru.journal.store import Store
from kitaru.replay.matching import Divergence, Verdict, describe, match_call, verdict
from kitaru.replay.state import CallRecord
from kitaru.runtime.arguments import digests_agree
from kitaru.runtime.capture import ensure_capturing, take_logs
from kitaru.runtime.context import (
    CallScope,
    CancelSignal,
    ExecutionContext,
    ReplayContext,
    Suspended,
    current_call,
)
from kitaru.runtime.failures import error_info, rebuild_exception
from kitaru.runtime.handles import OutputHandle, recorded_output
from kitaru.runtime.values import UnencodableValueError, decode_value, encode_value
from kitaru.runtime.wait_prompt import TerminalPrompt

__all__ = [
    "CallSlot",
    "execute",
    "execute_async",
    "execute_wait",
    "load_value",
    "output_handle",
    "recorded_handle",
    "replayed_checkpoint",
    "reserve",
    "resolve_wait",
]

_log = get_logger()
_COMPLETED = ExecutionStatus.COMPLETED
_CHECKPOINT = CallKind.CHECKPOINT
"""Looked up once: an enum member's attribute access costs as much as a dict probe."""
_REPLAYS_PER_CONTROL_CHECK = 63
"""Replayed calls between two that look for a pending cancel (the first one looks)."""


class CallSlot:
    """A durable call whose place in the flow body is fixed and matched."""

    __slots__ = (
        "arguments",
        "call_id",
        "ctx",
        "identity",
        "kind",
        "name",
        "position",
        "recorded",
        "target",
    )

    def __init__(  # noqa: PLR0917  (built in one place, by reserve())
        self,
        ctx: ExecutionContext,
        position: int,
        identity: str,
        kind: str,
        name: str,
        recorded: CallRecord | None,
        target: str | None = None,
        arguments: tuple[ArgumentDigest, ...] | None = None,
    ):
        self.ctx = ctx
        self.position = position
        self.identity = identity
        self.kind = kind
        self.name = name
        self.recorded = recorded
        self.target = target
        """``module:QualName`` of the function called, recorded with every attempt."""
        self.arguments = arguments
        """Digests of the call's arguments, recorded with every attempt."""
        self.call_id = recorded.call_id if recorded is not None else os.urandom(8).hex()

    def started(self, attempt: int = 1, **fields: Any) -> CallStarted:
        """The ``CallStarted`` event of one attempt of this call."""
        return CallStarted(
            position=self.position,
            identity=self.identity,
            kind=self.kind,
            name=self.name,
            call_id=self.call_id,
            attempt=attempt,
            target=self.target,
            arguments=self.arguments,
            **fields,
        )


def reserve(
    ctx: ExecutionContext,
    kind: str,
    name: str,
    explicit_id: str | None = None,
    *,
    target: str | None = None,
    arguments: tuple[ArgumentDigest, ...] | None = None,
    ignored: Collection[str] = (),
) -> CallSlot:
    """Give the next durable call its position and identity, and match it to the journal.

    ``target`` (the function's ``module:QualName``) and ``arguments`` (their digests,
    without the ``ignored`` ones) must agree with a recorded call for its outcome to be
    reused; a mismatch is a ``KitaruDivergenceError``.
    """
    ctx.check_running()
    if not ctx.verifying:
        ctx.check_controls()
    position, identity = ctx.new_identity(name, explicit_id)
    recorded = ctx.state.by_position.get(position)
    # The same call with the same function and argument digests (every call a resume
    # makes before the one that failed): nothing can differ, so the matcher's search
    # for where it went wrong is skipped. Anything else goes through the matcher.
    if (
        recorded is None
        or ignored
        or recorded.identity != identity
        or recorded.kind != kind
        or (recorded.target != target and recorded.target is not None and target is not None)
        or (
            recorded.arguments != arguments
            and recorded.arguments is not None
            and arguments is not None
        )
    ):
        try:
            recorded = match_call(
                ctx.state,
                position,
                identity,
                kind,
                target=target,
                arguments=arguments,
                ignored=ignored,
            )
        except Divergence as divergence:
            raise _diverged(ctx, divergence, "its journal") from None
    return CallSlot(ctx, position, identity, kind, name, recorded, target, arguments)


def _diverged(ctx: ExecutionContext, divergence: Divergence, against: str) -> KitaruDivergenceError:
    """Record a divergence as fatal for the run, log it, and return the error to raise."""
    drift = divergence.argument
    if drift is None:
        advice = (
            "Restore the code that made the recorded calls (checkpoints added, removed, "
            "renamed or reordered before this point)"
        )
    elif (divergence.expected or "").startswith("llm "):
        advice = "Make the model call with its recorded prompt and options again"
    else:
        advice = (
            f"Make the call with its recorded arguments again, or, if '{drift.name}' may "
            "legitimately differ between runs (a timestamp, a request id), list it in the "
            "checkpoint's ignore_args="
        )
    error = KitaruDivergenceError(
        f"Execution {ctx.exec_id} no longer matches {against}: {divergence}. {advice}, "
        f"then run `kitaru executions retry {ctx.exec_id}`.",
        exec_id=ctx.exec_id,
        position=divergence.position,
        expected=divergence.expected,
        actual=divergence.actual,
        argument=drift.name if drift else None,
        recorded_argument=drift.recorded if drift else None,
        current_argument=drift.now if drift else None,
    )
    ctx.fatal = error
    _log.warning(
        "execution diverged",
        exec_id=ctx.exec_id,
        position=divergence.position,
        expected=divergence.expected,
        actual=divergence.actual,
        argument=drift.name if drift else None,
    )
    return error


def output_handle(
    slot: CallSlot, *, value: Any = None, future: Future[Any] | None = None
) -> OutputHandle[Any]:
    """The handle a durable call returns in the flow body.

    In a replay, loading a changed output (overridden, or run live) in flow-body code
    means later calls may see other inputs, so they all run live from then on.
    """
    replay = slot.ctx.replay
    on_load = None if replay is None else functools.partial(replay.loaded, slot.identity)
    return OutputHandle(
        slot.identity, slot.call_id, slot.kind, value=value, future=future, on_load=on_load
    )


def recorded_handle(slot: CallSlot) -> OutputHandle[Any] | None:
    """The handle of a call the execution completed before, or None if it must run.

    Every call a resume makes until it reaches the failed or interrupted one ends
    here: its arguments are not resolved and nothing runs, and its recorded output is
    decoded only when the flow body (or a call that runs) uses the value.
    """
    recorded = slot.recorded
    if recorded is None or recorded.status is not _COMPLETED or slot.ctx.replay is not None:
        return None
    if tracing.on:
        tracing.replayed(slot)
    output = recorded.output
    assert output is not None
    return recorded_output(slot.identity, slot.call_id, slot.kind, output, slot.ctx.store)


def replayed_checkpoint(
    ctx: ExecutionContext,
    name: str,
    target: str,
    names: tuple[str, ...],
    args: tuple[Any, ...],
) -> OutputHandle[Any] | None:
    """The recorded output of the body's next call, if that is ``name`` made again exactly.

    What ``reserve`` and ``recorded_handle`` do for a completed checkpoint called with
    its parameters ``names`` given positionally as ``args`` (every call a resume makes
    before the one that failed), fused: one look at the record, the arguments checked
    against its digests without being captured, no slot. Nothing is reserved unless
    the call replays; otherwise None, and the general path reserves the call, matches
    it and says what differs.
    """
    if ctx.replay is not None or tracing.on:
        return None
    ctx.check_running()
    if not ctx.verifying:
        # A replayed call takes microseconds: the clock ``check_controls`` reads to
        # pace its look-ups is read for the first one and every so many after.
        countdown = ctx.replays_to_control_check - 1
        if countdown < 0:
            countdown = _REPLAYS_PER_CONTROL_CHECK
            ctx.check_controls()
        ctx.replays_to_control_check = countdown
    position = ctx.next_position
    recorded = ctx.state.by_position.get(position)
    if (
        recorded is None
        or recorded.status is not _COMPLETED
        or recorded.kind != _CHECKPOINT
        or recorded.target != target
        or recorded.arguments is None
        or recorded.output is None
        or not digests_agree(recorded.arguments, names, args)
        or not ctx.take_identity(position, name, recorded.identity)
    ):
        return None
    return recorded_output(
        recorded.identity, recorded.call_id, _CHECKPOINT, recorded.output, ctx.store
    )


def load_value(ctx: ExecutionContext, ref: ValueRef) -> Any:
    """Decode a recorded value, fetching its payload if it was stored by hash."""
    data = ref.inline if ref.inline is not None else ctx.store.read_payload(ref.hash or "")
    return decode_value(data)


def _recorded_outcome(
    slot: CallSlot,
    inputs_from: tuple[str, ...],
    checkpoint_type: str | None,
    cache_key: str | None = None,
) -> ValueRef | None:
    """The output to return without running the call, or None to run it live.

    Raises the recorded error of a call that failed for good.
    """
    ctx, recorded = slot.ctx, slot.recorded
    decision = verdict(ctx.state, recorded)
    if decision is Verdict.REPLAY:
        assert recorded is not None
        assert recorded.output is not None
        if ctx.replay is not None and recorded.reused_from is None:
            ctx.replay.changed.add(slot.identity)
        return recorded.output
    if decision is Verdict.RAISE:
        assert recorded is not None
        assert recorded.error is not None
        error = rebuild_exception(recorded.error)
        _mark_origin(error, slot.identity, slot.kind)
        raise error
    if ctx.verifying:
        raise ctx.reached_end_of_record(slot.position, describe(slot.kind, slot.identity))
    if recorded is None and ctx.replay is not None:
        reused = _from_source(slot, ctx.replay, inputs_from, checkpoint_type)
        if reused is not None:
            return reused
        ctx.replay.changed.add(slot.identity)
    elif recorded is None and cache_key is not None:
        return _from_cache(slot, cache_key, inputs_from, checkpoint_type)
    return None


def _from_cache(
    slot: CallSlot, key: str, inputs_from: tuple[str, ...], checkpoint_type: str | None
) -> ValueRef | None:
    """Reuse an output an earlier execution recorded under the same cache key."""
    ctx = slot.ctx
    hit = ctx.store.find_cached(key)
    if hit is None:
        return None
    source_exec, completed = hit
    started = slot.started(checkpoint_type=checkpoint_type, inputs_from=inputs_from)
    reused = CallCompleted(
        position=slot.position,
        identity=slot.identity,
        call_id=slot.call_id,
        output=completed.output,
        cached_from=source_exec,
    )
    # Not forced to disk: if this is lost in a crash, resuming looks it up again.
    ctx.append([started, reused], sync=False)
    _log.info("checkpoint cached", exec_id=ctx.exec_id, call=slot.identity, source=source_exec)
    return completed.output


def _from_source(
    slot: CallSlot,
    replay: ReplayContext,
    inputs_from: tuple[str, ...],
    checkpoint_type: str | None,
) -> ValueRef | None:
    """In a replay, reuse the source's outcome (or an override) instead of running.

    Returns the output to use, already recorded in this execution, or None to run live.
    """
    ctx = slot.ctx
    override = replay.overrides.get(slot.identity)
    source = replay.source.by_position.get(slot.position)
    if override is None:
        if (
            slot.position >= replay.from_position
            or replay.tainted
            or any(identity in replay.changed for identity in inputs_from)
        ):
            return None
        if source is None or source.identity != slot.identity or source.kind != slot.kind:
            expected = describe(source.kind, source.identity) if source else None
            divergence = Divergence(slot.position, expected, describe(slot.kind, slot.identity))
            raise _diverged(ctx, divergence, f"the execution it replays ({replay.source.exec_id})")
        if source.target is not None and slot.target is not None and source.target != slot.target:
            divergence = Divergence(
                slot.position,
                describe(source.kind, source.identity, source.target),
                describe(slot.kind, slot.identity, slot.target),
            )
            raise _diverged(ctx, divergence, f"the execution it replays ({replay.source.exec_id})")
        if source.status is not ExecutionStatus.COMPLETED or source.output is None:
            return None
    events: list[Any] = [slot.started(checkpoint_type=checkpoint_type, inputs_from=inputs_from)]
    if override is not None:
        output = override
    else:
        assert source is not None
        assert source.output is not None
        output = source.output
        # Marked reused: the source execution paid for these requests, this one did not.
        events.extend(
            msgspec.structs.replace(e, cost_reused=True)
            for e in source.llm_calls
            if e.parent is None
        )
        # What the reused attempt saved stays loadable by name from the replay.
        events.extend(
            msgspec.structs.replace(saved, attempt=1)
            for _, saved in source.artifacts
            if saved.attempt == source.last_attempt
        )
    events.append(
        CallCompleted(
            position=slot.position,
            identity=slot.identity,
            call_id=slot.call_id,
            output=output,
            reused_from=None if override is not None else replay.source.exec_id,
            overridden=override is not None,
        )
    )
    if override is not None:
        replay.changed.add(slot.identity)
    payloads = {output.hash: ctx.store.read_payload(output.hash)} if output.hash else None
    # Not forced to disk: if this is lost in a crash, resuming copies it again.
    ctx.append(events, payloads, sync=False)
    return output


def _record_failure(
    slot: CallSlot, attempt: int, error: BaseException, *, final: bool, duration: float
) -> None:
    """Append a failed attempt; ``final`` when no retry follows."""
    failed = CallFailed(
        position=slot.position,
        identity=slot.identity,
        call_id=slot.call_id,
        error=error_info(error),
        attempt=attempt,
        final=final,
        duration_ms=duration,
    )
    slot.ctx.append([failed])


def _journal_logs(ctx: ExecutionContext, scope: CallScope) -> None:
    """Queue what the attempt printed or logged and is not journaled yet, to go with
    its outcome (or, if it was interrupted, with the execution's next append)."""
    if len(scope.logs) > scope.shipped or scope.partial:
        entries = tuple(take_logs(scope))
        if entries:
            ctx.writer.defer(
                LogsCaptured(call=scope.identity, attempt=scope.attempt, entries=entries)
            )


def _mark_origin(exc: BaseException, identity: str, kind: str) -> None:
    """Note on the exception which call it came from, for the execution's failure record."""
    if getattr(exc, "__kitaru_call__", None) is None:
        with contextlib.suppress(AttributeError):
            exc.__kitaru_call__ = identity  # type: ignore[attr-defined]
            exc.__kitaru_call_kind__ = kind  # type: ignore[attr-defined]


def _encode_output(slot: CallSlot, value: Any) -> bytes:
    """The call's output, encoded; a ``KitaruUsageError`` naming the call if it cannot be."""
    try:
        return encode_value(value)
    except UnencodableValueError as exc:
        exc.call = slot.identity
        raise KitaruUsageError(
            f"{slot.kind.capitalize()} '{slot.identity}' returned {exc}. Return data "
            "(builtins, dataclasses, msgspec Structs, pydantic models or other module-level "
            "classes), or convert the value to data before returning it."
        ) from exc


def _attempts(
    slot: CallSlot,
    *,
    retries: int,
    checkpoint_type: str | None,
    inputs_from: tuple[str, ...],
    scoped: bool,
    cache_key: str | None,
) -> Generator[CallScope, Any, Any]:
    """The one record/replay decision and attempt loop of every durable call.

    A generator, so that the synchronous and the awaitable drivers (``execute``,
    ``execute_async``) share every line of it: it yields the scope of each attempt to
    run, receives the attempt's value (or has its exception thrown in), and returns the
    call's value. Whatever runs the attempt, the journal sees the same events.
    """
    ctx, recorded = slot.ctx, slot.recorded
    if recorded is not None and recorded.status is _COMPLETED and ctx.replay is None:
        # A call the execution completed before (every call a resume makes until it
        # reaches the failed or interrupted one): its recorded output, nothing else.
        if tracing.on:
            tracing.replayed(slot)
        output = recorded.output
        assert output is not None
        return decode_value(output.inline) if output.inline is not None else load_value(ctx, output)
    outcome = _recorded_outcome(slot, inputs_from, checkpoint_type, cache_key)
    if outcome is not None:
        if tracing.on:
            tracing.replayed(slot)
        return load_value(ctx, outcome)

    position, identity, call_id = slot.position, slot.identity, slot.call_id
    attempt = recorded.last_attempt + 1 if recorded else 1
    failures = recorded.failures_in_epoch(ctx.state.retry_epoch) if recorded else 0
    while True:
        ctx.check_running()
        ctx.writer.defer(
            slot.started(attempt, checkpoint_type=checkpoint_type, inputs_from=inputs_from)
        )
        scope = CallScope(identity, slot.name, attempt)
        token = None
        if scoped:
            ensure_capturing()
            token = current_call.set(scope)
        started = time.perf_counter()
        try:
            value = yield scope
            # Inside the attempt: an output that cannot be stored fails this attempt,
            # so retries= applies to it like to any other failure.
            data = _encode_output(slot, value)
        except Exception as exc:
            _journal_logs(ctx, scope)
            duration = (time.perf_counter() - started) * 1000
            final = failures >= retries or ctx.fatal is not None
            _record_failure(slot, attempt, exc, final=final, duration=duration)
            if final:
                _log.info("call failed", exec_id=ctx.exec_id, call=identity, attempt=attempt)
                _mark_origin(exc, identity, slot.kind)
                raise
            failures += 1
            attempt += 1
            continue
        finally:
            # A BaseException (an asyncio cancellation, a stop) records nothing: the
            # call stays started, and a resume runs it again.
            if token is not None:
                current_call.reset(token)
            _journal_logs(ctx, scope)
        duration = (time.perf_counter() - started) * 1000
        payloads: dict[str, bytes] = {}
        ref = make_ref(data, payloads)
        completed = CallCompleted(
            position=position,
            identity=identity,
            call_id=call_id,
            output=ref,
            attempt=attempt,
            duration_ms=duration,
            cache_key=cache_key,
        )
        ctx.append([completed], payloads)
        return value


def execute(
    slot: CallSlot,
    live: Callable[[CallScope], Any],
    *,
    retries: int = 0,
    checkpoint_type: str | None = None,
    inputs_from: tuple[str, ...] = (),
    scoped: bool = True,
    cache_key: str | None = None,
) -> Any:
    """Return the call's recorded outcome, or run ``live`` and record it.

    ``live`` runs once per attempt, up to ``retries`` extra attempts after failures.
    With ``scoped``, it runs as the current call (so nested kitaru calls see it).
    """
    steps = _attempts(
        slot,
        retries=retries,
        checkpoint_type=checkpoint_type,
        inputs_from=inputs_from,
        scoped=scoped,
        cache_key=cache_key,
    )
    try:
        scope = next(steps)
        while True:
            run = tracing.traced(slot, scope.attempt, live) if tracing.on else live
            try:
                value = run(scope)
            except BaseException as exc:
                scope = steps.throw(exc)
            else:
                scope = steps.send(value)
    except StopIteration as done:
        return done.value


async def execute_async(
    slot: CallSlot,
    live: Callable[[CallScope], Awaitable[Any]],
    *,
    retries: int = 0,
    checkpoint_type: str | None = None,
    inputs_from: tuple[str, ...] = (),
    scoped: bool = True,
    cache_key: str | None = None,
) -> Any:
    """``execute`` for an awaitable call: the same decisions and events, ``live`` awaited.

    The scope is set in the awaiting task's context, so prints, logs and model calls
    of the attempt (and tasks it starts) are its own, whatever else the loop runs.
    """
    steps = _attempts(
        slot,
        retries=retries,
        checkpoint_type=checkpoint_type,
        inputs_from=inputs_from,
        scoped=scoped,
        cache_key=cache_key,
    )
    try:
        scope = next(steps)
        while True:
            run = tracing.traced_async(slot, scope.attempt, live) if tracing.on else live
            try:
                value = await run(scope)
            except BaseException as exc:
                scope = steps.throw(exc)
            else:
                scope = steps.send(value)
    except StopIteration as done:
        return done.value


_WAIT_POLL_SECONDS = 0.1


def execute_wait(
    slot: CallSlot,
    request: WaitRequested,
    timeout: float | None,
    convert: Callable[[Any], Any],
    *,
    abandoned: threading.Event | None = None,
) -> Any:
    """Return a wait's recorded input, or pause the flow body until input arrives.

    Input comes from another process through the store's mailbox (this process stays
    the only writer of the journal). Without input within ``timeout`` seconds the
    flow body is suspended: the execution stays ``waiting`` and ``resume`` goes on.
    ``abandoned`` set (nobody awaits the wait any more) suspends it at the next poll.
    """
    ctx = slot.ctx
    decision = verdict(ctx.state, slot.recorded)
    if decision is Verdict.REPLAY:
        assert slot.recorded is not None
        assert slot.recorded.output is not None
        return load_value(ctx, slot.recorded.output)
    if decision is Verdict.RAISE:
        raise CancelSignal(f"wait '{slot.identity}' was aborted")
    if ctx.verifying:
        raise ctx.reached_end_of_record(slot.position, describe(CallKind.WAIT, slot.identity))
    if slot.recorded is None and ctx.replay is not None:
        reused = _wait_from_source(slot, ctx.replay, request)
        if reused is not None:
            return load_value(ctx, reused)
    # A wait recorded before a resume is requested again if no input is there yet: the
    # resume marked the execution running, and it must read `waiting` while it waits.
    announced = slot.recorded is None
    if announced:
        ctx.append([request])
        _log.info("execution waiting", exec_id=ctx.exec_id, wait=slot.identity)
    prompt = TerminalPrompt(ctx.store, ctx.exec_id, request, convert)
    try:
        return _poll_for_input(slot, request, timeout, convert, abandoned, announced, prompt)
    finally:
        prompt.stop()


def _poll_for_input(  # noqa: PLR0917  (the wait's state, handed over once)
    slot: CallSlot,
    request: WaitRequested,
    timeout: float | None,
    convert: Callable[[Any], Any],
    abandoned: threading.Event | None,
    announced: bool,
    prompt: TerminalPrompt,
) -> Any:
    """Look for the wait's input until it comes, the timeout passes, or the body pauses."""
    ctx = slot.ctx
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ctx.check_running()
        ctx.check_controls(force=True)
        posted = ctx.store.wait_inputs(ctx.exec_id).get(slot.identity)
        if posted is None and not announced:
            ctx.append([request])
            announced = True
            _log.info("execution waiting", exec_id=ctx.exec_id, wait=slot.identity)
        if posted is not None:
            data, aborted = posted
            value = None if aborted or data is None else convert(decode_value(data))
            resolve_wait(
                ctx.store,
                ctx.append,
                ctx.exec_id,
                slot,
                value,
                aborted=aborted,
            )
            if aborted:
                raise CancelSignal(f"wait '{slot.identity}' was aborted")
            return value
        pause = _WAIT_POLL_SECONDS
        if deadline is not None:
            pause = min(pause, deadline - time.monotonic())
        if pause <= 0 or ctx.park_waits or (abandoned is not None and abandoned.is_set()):
            # A worker parks the execution rather than hold a thread while it waits.
            raise Suspended(slot.identity)
        prompt.offer()  # from a terminal, ask there too (the answer comes as mail)
        # The store wakes this loop when mail may have arrived; the loop still comes
        # round every poll interval to see a lost lease, a stop signal or a cancel.
        ctx.store.wait_for_mail(ctx.exec_id, pause)


def _wait_from_source(
    slot: CallSlot, replay: ReplayContext, request: WaitRequested
) -> ValueRef | None:
    """In a replay, reuse the input the source execution got at this wait."""
    if slot.position >= replay.from_position or replay.tainted:
        return None
    source = replay.source.by_position.get(slot.position)
    if source is None or source.identity != slot.identity or source.kind != CallKind.WAIT:
        expected = describe(source.kind, source.identity) if source else None
        divergence = Divergence(slot.position, expected, describe(CallKind.WAIT, slot.identity))
        raise _diverged(slot.ctx, divergence, f"the execution it replays ({replay.source.exec_id})")
    if source.status is not ExecutionStatus.COMPLETED or source.output is None:
        return None
    resolved = WaitResolved(
        position=slot.position,
        identity=slot.identity,
        call_id=slot.call_id,
        value=source.output,
    )
    payloads = (
        {source.output.hash: slot.ctx.store.read_payload(source.output.hash)}
        if source.output.hash
        else None
    )
    slot.ctx.append([request, resolved], payloads, sync=False)
    return source.output


def resolve_wait(
    store: Store,
    append: Callable[..., None],
    exec_id: str,
    wait: CallRecord | CallSlot,
    value: Any,
    *,
    aborted: bool,
    then: Sequence[Any] = (),
) -> None:
    """Record a wait's input (or its abort), plus ``then`` events, and clear the mailbox."""
    payloads: dict[str, bytes] = {}
    ref = None if aborted else make_ref(encode_value(value), payloads)
    resolved = WaitResolved(
        position=wait.position,
        identity=wait.identity,
        call_id=wait.call_id,
        value=ref,
        aborted=aborted,
    )
    append([resolved, *then], payloads)
    store.clear_wait_input(exec_id, wait.identity)

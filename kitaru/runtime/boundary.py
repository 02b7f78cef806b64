"""The durable-call boundary: the one place that decides replay or run.

Every durable call (checkpoint, flow-body ``kitaru.llm``, wait) goes through here:
``reserve`` gives the call its position and identity in the flow body and matches it
against the journal; ``execute`` returns the recorded outcome, or runs the call live
and appends its events. Nothing else appends call events.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from kitaru.errors import KitaruDivergenceError, KitaruError, KitaruUsageError
from kitaru.journal.events import CallCompleted, CallFailed, CallStarted, ValueRef
from kitaru.journal.payloads import make_ref
from kitaru.logs import get_logger
from kitaru.replay.matching import Divergence, Verdict, match_call, verdict
from kitaru.replay.state import CallRecord
from kitaru.runtime.context import CallScope, ExecutionContext, current_call
from kitaru.runtime.failures import error_info, rebuild_exception
from kitaru.runtime.values import UnencodableValueError, decode_value, encode_value

__all__ = ["CallSlot", "execute", "load_value", "reserve"]

_log = get_logger()


class CallSlot:
    """A durable call whose place in the flow body is fixed and matched."""

    __slots__ = ("call_id", "ctx", "identity", "kind", "name", "position", "recorded")

    def __init__(  # noqa: PLR0917  (built in one place, by reserve())
        self,
        ctx: ExecutionContext,
        position: int,
        identity: str,
        kind: str,
        name: str,
        recorded: CallRecord | None,
    ):
        self.ctx = ctx
        self.position = position
        self.identity = identity
        self.kind = kind
        self.name = name
        self.recorded = recorded
        self.call_id = recorded.call_id if recorded is not None else os.urandom(8).hex()


def reserve(
    ctx: ExecutionContext, kind: str, name: str, explicit_id: str | None = None
) -> CallSlot:
    """Give the next durable call its position and identity, and match it to the journal."""
    if ctx.fatal is not None:
        raise ctx.fatal
    position, identity = ctx.new_identity(name, explicit_id)
    try:
        recorded = match_call(ctx.state, position, identity, kind)
    except Divergence as divergence:
        error = KitaruDivergenceError(
            f"Execution {ctx.exec_id} no longer matches its journal: {divergence}. Restore "
            "the code that made the recorded calls (checkpoints added, removed, renamed or "
            "reordered before this point), then run "
            f"`kitaru executions retry {ctx.exec_id}`.",
            exec_id=ctx.exec_id,
            position=divergence.position,
            expected=divergence.expected,
            actual=divergence.actual,
        )
        ctx.fatal = error
        _log.warning(
            "execution diverged",
            exec_id=ctx.exec_id,
            position=divergence.position,
            expected=divergence.expected,
            actual=divergence.actual,
        )
        raise error from None
    return CallSlot(ctx, position, identity, kind, name, recorded)


def load_value(ctx: ExecutionContext, ref: ValueRef) -> Any:
    """Decode a recorded value, fetching its payload if it was stored by hash."""
    data = ref.inline if ref.inline is not None else ctx.store.read_payload(ref.hash or "")
    return decode_value(data)


def _append(ctx: ExecutionContext, event: Any, payloads: dict[str, bytes] | None = None) -> None:
    try:
        ctx.writer.append([event], payloads)
    except KitaruError as exc:
        # The journal can no longer be trusted to hold what this process does next.
        ctx.fatal = exc
        raise


def _mark_origin(exc: BaseException, identity: str) -> None:
    """Note on the exception which call it came from, for the execution's failure record."""
    if getattr(exc, "__kitaru_call__", None) is None:
        with contextlib.suppress(AttributeError):
            exc.__kitaru_call__ = identity  # type: ignore[attr-defined]


def execute(
    slot: CallSlot,
    live: Callable[[CallScope], Any],
    *,
    retries: int = 0,
    checkpoint_type: str | None = None,
    inputs_from: tuple[str, ...] = (),
    scoped: bool = True,
) -> Any:
    """Return the call's recorded outcome, or run ``live`` and record it.

    ``live`` runs once per attempt, up to ``retries`` extra attempts after failures.
    With ``scoped``, it runs as the current call (so nested kitaru calls see it).
    """
    ctx, recorded = slot.ctx, slot.recorded
    decision = verdict(ctx.state, recorded)
    if decision is Verdict.REPLAY:
        assert recorded is not None
        assert recorded.output is not None
        return load_value(ctx, recorded.output)
    if decision is Verdict.RAISE:
        assert recorded is not None
        assert recorded.error is not None
        error = rebuild_exception(recorded.error)
        _mark_origin(error, slot.identity)
        raise error

    position, identity, call_id = slot.position, slot.identity, slot.call_id
    attempt = recorded.last_attempt + 1 if recorded else 1
    failures = recorded.failures_in_epoch(ctx.state.retry_epoch) if recorded else 0
    while True:
        if ctx.fatal is not None:
            raise ctx.fatal
        ctx.writer.defer(
            CallStarted(
                position=position,
                identity=identity,
                kind=slot.kind,
                name=slot.name,
                call_id=call_id,
                attempt=attempt,
                checkpoint_type=checkpoint_type,
                inputs_from=inputs_from,
            )
        )
        scope = CallScope(identity, slot.name, attempt)
        token = current_call.set(scope) if scoped else None
        started = time.perf_counter()
        try:
            value = live(scope)
        except Exception as exc:
            duration = (time.perf_counter() - started) * 1000
            final = failures >= retries or ctx.fatal is not None
            _append(
                ctx,
                CallFailed(
                    position=position,
                    identity=identity,
                    call_id=call_id,
                    error=error_info(exc),
                    attempt=attempt,
                    final=final,
                    duration_ms=duration,
                ),
            )
            if final:
                _log.info("call failed", exec_id=ctx.exec_id, call=identity, attempt=attempt)
                _mark_origin(exc, identity)
                raise
            failures += 1
            attempt += 1
            continue
        finally:
            if token is not None:
                current_call.reset(token)
        duration = (time.perf_counter() - started) * 1000
        try:
            data = encode_value(value)
        except UnencodableValueError as exc:
            error = KitaruUsageError(
                f"{slot.kind.capitalize()} '{identity}' returned {exc}. Return builtins, "
                "dataclasses, msgspec Structs or pydantic models (module-level classes), "
                "or convert the value to one of those before returning it."
            )
            _mark_origin(error, identity)
            _append(
                ctx,
                CallFailed(
                    position=position,
                    identity=identity,
                    call_id=call_id,
                    error=error_info(error),
                    attempt=attempt,
                    final=True,
                    duration_ms=duration,
                ),
            )
            raise error from None
        payloads: dict[str, bytes] = {}
        ref = make_ref(data, payloads)
        _append(
            ctx,
            CallCompleted(
                position=position,
                identity=identity,
                call_id=call_id,
                output=ref,
                attempt=attempt,
                duration_ms=duration,
            ),
            payloads,
        )
        return value

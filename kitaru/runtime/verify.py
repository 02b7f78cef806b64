"""Checking today's code against recorded executions, with nothing live.

``verify_execution`` imports an execution's flow and runs its body against the
journal: every recorded call returns its recorded outcome, and the body stops at the
first call the journal does not hold, before running it (no checkpoint body, no model
request, no wait). Nothing is appended and no lease is taken, so it is safe on a
running execution whose owner is alive, and on failed and completed ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kitaru.errors import KitaruDivergenceError, KitaruError, KitaruRuntimeError
from kitaru.journal.events import Event
from kitaru.journal.store import Store
from kitaru.replay.matching import describe, unmade_calls
from kitaru.runtime.context import (
    CancelSignal,
    EndOfRecord,
    ExecutionContext,
    Suspended,
    current_execution,
)
from kitaru.runtime.event_loop import call_flow_body
from kitaru.runtime.failures import type_name
from kitaru.runtime.handles import resolve_handles
from kitaru.runtime.loading import load_state
from kitaru.runtime.locate import import_flow
from kitaru.runtime.ownership import DEFAULT_LEASE_TTL, Ownership
from kitaru.runtime.values import decode_value
from kitaru.runtime.writer import JournalWriter

__all__ = ["Verification", "verify_execution"]


@dataclass(frozen=True)
class Verification:
    """What checking one recorded execution against today's code found."""

    exec_id: str
    flow: str
    execution_status: str
    """The execution's status in the journal (running, waiting, completed, ...)."""
    outcome: str
    """``matched``: the code makes the recorded calls, as far as the record goes;
    ``diverged``: it makes another call, or the same call with other arguments;
    ``error``: the check could not be made (flow not importable, code raised)."""
    calls_matched: int = 0
    """Recorded calls the code made, with their recorded outcomes."""
    stopped_at: str = ""
    """Where the check ended: the first call the journal does not hold, or the end of
    the flow body."""
    position: int | None = None
    expected: str | None = None
    """For a divergence: the recorded call."""
    actual: str | None = None
    """For a divergence: the call the code made (None: it made none)."""
    argument: str | None = None
    recorded_argument: str | None = None
    current_argument: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "matched"


class _ReadOnlyWriter(JournalWriter):
    """Stands in for the journal writer: verification records nothing.

    Events the flow body queues (``kitaru.log`` metadata) are dropped. An append would
    mean a call ran live, which the boundary never lets happen while verifying.
    """

    def append(
        self,
        events: Sequence[Event],
        payloads: Mapping[str, bytes] | None = None,
        *,
        sync: bool = True,
    ) -> None:
        raise KitaruRuntimeError(
            f"Verifying execution {self.exec_id} tried to write to its journal; nothing "
            "was written. Report this as a kitaru bug."
        )

    def defer(self, event: Event, payloads: Mapping[str, bytes] | None = None) -> None:
        return None

    def close(self) -> None:
        return None


def verify_execution(store: Store, exec_id: str) -> Verification:
    """Run ``exec_id``'s flow body against its journal, live calls refused; report what
    was found. Unknown ids raise ``KitaruStateError``."""
    state = load_state(store, exec_id)
    base: dict[str, Any] = {
        "exec_id": exec_id,
        "flow": state.flow_name,
        "execution_status": state.status,
    }
    if state.started is None or state.flow is None:
        return Verification(**base, outcome="error", message="the journal has no start event")
    try:
        flow = import_flow(state.flow)
        ref = state.started.inputs
        data = ref.inline if ref.inline is not None else store.read_payload(ref.hash or "")
        args, kwargs = decode_value(data)
    except KitaruError as exc:
        return Verification(**base, outcome="error", message=str(exc))
    ctx = ExecutionContext(
        exec_id=exec_id,
        store=store,
        # Verification holds no lease (it writes nothing), so a live owner is undisturbed.
        writer=_ReadOnlyWriter(
            store, Ownership(store, exec_id, owner="", ttl=DEFAULT_LEASE_TTL), state.last_seq
        ),
        state=state,
        flow_name=state.flow_name,
        registry=state.started.registry,
        verifying=True,
    )
    token = current_execution.set(ctx)
    raised: BaseException | None = None
    try:
        result = call_flow_body(flow.func, args, kwargs)
        ctx.drain()
        # Returning handles waits for the calls behind them, as a real run does.
        resolve_handles(result)
    except (EndOfRecord, Suspended, CancelSignal, Exception) as exc:
        ctx.drain()
        raised = exc
    finally:
        current_execution.reset(token)
    return _report(ctx, base, raised)


def _report(  # noqa: PLR0911  (one return per way a check can end)
    ctx: ExecutionContext, base: dict[str, Any], raised: BaseException | None
) -> Verification:
    fatal = ctx.fatal
    if isinstance(fatal, KitaruDivergenceError):
        return Verification(
            **base,
            outcome="diverged",
            calls_matched=fatal.position,
            stopped_at=f"position {fatal.position}",
            position=fatal.position,
            expected=fatal.expected,
            actual=fatal.actual,
            argument=fatal.argument,
            recorded_argument=fatal.recorded_argument,
            current_argument=fatal.current_argument,
            message=str(fatal),
        )
    stop = ctx.end_of_record
    if stop is not None:
        return Verification(
            **base,
            outcome="matched",
            calls_matched=stop.position,
            stopped_at=f"{stop.call} at position {stop.position}, which the journal does "
            "not hold (not run)",
        )
    state = ctx.state
    if isinstance(raised, CancelSignal):
        return Verification(
            **base,
            outcome="matched",
            calls_matched=ctx.next_position,
            stopped_at=f"a recorded abort ({raised.reason})",
        )
    if raised is not None:
        recorded = state.failure.error.type if state.failure is not None else None
        if recorded is not None and recorded == type_name(raised):
            return Verification(
                **base,
                outcome="matched",
                calls_matched=ctx.next_position,
                stopped_at=f"the flow body raised {recorded}, as recorded",
            )
        return Verification(
            **base,
            outcome="error",
            calls_matched=ctx.next_position,
            stopped_at=f"the flow body raised {type_name(raised)}",
            message=f"{type_name(raised)}: {raised}",
        )
    for call in unmade_calls(state, ctx.next_position):
        expected = describe(call.kind, call.identity)
        return Verification(
            **base,
            outcome="diverged",
            calls_matched=call.position,
            stopped_at="the end of the flow body",
            position=call.position,
            expected=expected,
            actual=None,
            message=f"the journal has {expected} at position {call.position}, but the flow "
            "returned without making it",
        )
    return Verification(
        **base,
        outcome="matched",
        calls_matched=ctx.next_position,
        stopped_at="the end of the flow body",
    )

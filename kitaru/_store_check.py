"""``kitaru store check``: prove a journal is whole, or say exactly what is wrong.

Maintenance sits above replay and the journal: it folds events the way a resume would,
and reads any backend through the ``Store`` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kitaru.errors import KitaruBackendError
from kitaru.journal.conversation import load_prompt
from kitaru.journal.events import (
    CallCompleted,
    CallStartedAndCompleted,
    ErrorInfo,
    ExecutionCompleted,
    ExecutionStarted,
    LlmCallRecorded,
    ValueRef,
)
from kitaru.journal.payloads import content_hash
from kitaru.journal.read_model import index_calls
from kitaru.journal.store import CallIndexRow, Store, StoredEvent
from kitaru.replay.state import ExecutionState, JournalShapeError, fold

__all__ = ["IntegrityReport", "check_store"]


@dataclass
class IntegrityReport:
    location: str
    executions: int = 0
    events: int = 0
    payloads: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What was checked and what the check cannot prove."""
    log: dict[str, object] | None = None
    """The backend's write-ahead log as ``-o json`` shows it (SQLite: the -wal file,
    and where a damaged one was copied), or None."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _refs(event: object) -> list[ValueRef]:
    refs: list[ValueRef] = []
    if isinstance(event, ExecutionStarted):
        refs.append(event.inputs)
    elif isinstance(event, CallCompleted | CallStartedAndCompleted):
        refs.append(event.output)
    elif isinstance(event, ExecutionCompleted):
        refs.append(event.result)
    elif isinstance(event, LlmCallRecorded):
        refs.append(event.response)
    error = getattr(event, "error", None)
    if isinstance(error, ErrorInfo) and error.args is not None:
        refs.append(error.args)
    return refs


def check_store(store: Store) -> IntegrityReport:
    """Check the backend's storage, every execution's events, the read model and every payload.

    The backend's own storage check runs first, before anything reads the store (for
    SQLite, opening the database would recover its WAL and destroy the evidence).
    """
    report = IntegrityReport(store.location)
    storage = store.check_storage()
    report.problems.extend(storage.problems)
    report.notes.extend(storage.notes)
    report.log = storage.log
    try:
        structure = store.structural_problems()
        exec_ids = store.all_exec_ids()
        payloads = store.all_payloads()
    except KitaruBackendError as exc:
        detail = exc.detail or str(exc)
        report.problems.append(f"the file cannot be read as a journal: {detail}")
        return report
    report.problems.extend(structure)
    report.payloads = len(payloads)
    stored = dict(payloads)
    for digest, data in payloads:
        if content_hash(data) != digest:
            report.problems.append(f"payload {digest}: its bytes do not match its hash")
    for exec_id in exec_ids:
        report.executions += 1
        try:
            _check_execution(store, exec_id, stored, report)
        except KitaruBackendError as exc:
            report.problems.append(f"execution {exec_id}: {exc}")
    return report


def _totals(state: ExecutionState) -> tuple[int, int | None, float | None]:
    """Calls, tokens and estimated cost as the folded events give them (the executions
    table must keep the same)."""
    known = [e.usage.total_tokens for e in state.llm_calls if e.usage.total_tokens is not None]
    costs = [
        e.estimated_cost
        for e in state.llm_calls
        if e.estimated_cost is not None and not e.cost_reused
    ]
    return len(state.calls), sum(known) if known else None, sum(costs) if costs else None


def _check_execution(
    store: Store, exec_id: str, stored: dict[str, bytes], report: IntegrityReport
) -> None:
    events = store.read_events(exec_id)
    report.events += len(events)
    try:
        state = fold(exec_id, events)
    except JournalShapeError as exc:
        report.problems.append(f"execution {exec_id}: malformed journal: {exc}")
        return
    if state.started is None:
        report.problems.append(f"execution {exec_id}: has no start event")
        return
    row = store.get_execution(exec_id)
    if row is None:
        report.problems.append(f"execution {exec_id}: missing from the executions table")
    elif row.status != state.status:
        report.problems.append(
            f"execution {exec_id}: executions table says {row.status}, events say {state.status}"
        )
    if row is not None:
        kept = (row.calls, row.tokens, row.cost)
        folded = _totals(state)
        if kept != folded:
            report.problems.append(
                f"execution {exec_id}: executions table counts calls, tokens and cost "
                f"{kept}, events say {folded}"
            )
    _check_call_index(store, exec_id, events, state, report)
    for stored_event in events:
        event = stored_event.event
        if isinstance(event, LlmCallRecorded):
            try:
                load_prompt(event.prompt, stored.__getitem__)
            except KeyError as missing:
                report.problems.append(
                    f"execution {exec_id}: event {stored_event.seq} refers to missing "
                    f"prompt payload {missing.args[0]}"
                )
        for ref in _refs(event):
            if ref.hash is not None and ref.hash not in stored:
                report.problems.append(
                    f"execution {exec_id}: event {stored_event.seq} refers to missing "
                    f"payload {ref.hash}"
                )


def _check_call_index(
    store: Store,
    exec_id: str,
    events: list[StoredEvent],
    state: ExecutionState,
    report: IntegrityReport,
) -> None:
    """The call index must hold every call of the fold, at its position, with its end,
    and bound each call's events by the seqs of its first start and latest event."""
    spans = index_calls(events)
    expected = {
        identity: CallIndexRow(
            identity,
            call.position,
            spans[identity].first_seq if identity in spans else 0,
            spans[identity].last_seq if identity in spans else 0,
            call.ended_at,
        )
        for identity, call in state.calls.items()
    }
    kept = {row.identity: row for row in store.call_rows(exec_id)}
    for identity in sorted(kept.keys() | expected.keys()):
        row, want = kept.get(identity), expected.get(identity)
        if row == want:
            continue
        if row is None:
            said = "does not hold it"
        elif want is None:
            said = "holds a call the events do not"
        else:
            said = (
                f"says position {row.position}, events {row.first_seq}-{row.last_seq}, "
                f"ended {row.ended_at}; events say position {want.position}, events "
                f"{want.first_seq}-{want.last_seq}, ended {want.ended_at}"
            )
        report.problems.append(f"execution {exec_id}: call index for '{identity}' {said}")

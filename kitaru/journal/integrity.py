"""``kitaru store check``: prove a journal is whole, or say exactly what is wrong."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from kitaru.errors import KitaruBackendError
from kitaru.journal.conversation import load_prompt
from kitaru.journal.events import (
    CallCompleted,
    ErrorInfo,
    ExecutionCompleted,
    ExecutionStarted,
    LlmCallRecorded,
    ValueRef,
)
from kitaru.journal.payloads import content_hash
from kitaru.journal.sqlite import SqliteStore
from kitaru.journal.wal import WalReport, read_wal

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
    wal: WalReport | None = None
    saved_wal: str | None = None
    """A copy of a damaged -wal file, taken before SQLite could discard its frames."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _refs(event: object) -> list[ValueRef]:
    refs: list[ValueRef] = []
    if isinstance(event, ExecutionStarted):
        refs.append(event.inputs)
    elif isinstance(event, CallCompleted):
        refs.append(event.output)
    elif isinstance(event, ExecutionCompleted):
        refs.append(event.result)
    elif isinstance(event, LlmCallRecorded):
        refs.append(event.response)
    error = getattr(event, "error", None)
    if isinstance(error, ErrorInfo) and error.args is not None:
        refs.append(error.args)
    return refs


def check_store(store: SqliteStore) -> IntegrityReport:
    """Check the WAL, the file, every execution's events, the read model and every payload.

    The WAL is read first: opening the database makes SQLite recover the log, and a
    later write or the last close reuses or deletes it, destroying the evidence.
    """
    report = IntegrityReport(store.location)
    report.wal = read_wal(Path(store.path).resolve())
    report.problems.extend(report.wal.problems())
    report.notes.extend(report.wal.notes())
    for earlier in sorted(
        Path(report.wal.path).parent.glob(Path(report.wal.path).name + ".damaged*")
    ):
        report.notes.append(
            f"wal: {earlier} holds a damaged log that an earlier check saved; remove it "
            "once its frames are dealt with"
        )
    if report.wal.damaged:
        report.saved_wal = _keep_copy(Path(report.wal.path))
        report.notes.append(
            f"wal: the damaged log was copied to {report.saved_wal} before the database was "
            "opened (opening it makes SQLite discard the frames it cannot use)"
        )
    try:
        structure = store.structural_problems()
        exec_ids = store.all_exec_ids()
        payloads = store.all_payloads()
    except KitaruBackendError as exc:
        detail = exc.detail or str(exc)
        report.problems.append(f"the file cannot be read as a journal: {detail}")
        return report
    report.problems.extend(f"sqlite: {message}" for message in structure)
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


def _keep_copy(wal: Path) -> str:
    """Copy ``wal`` to a name no other copy has; the copy keeps every frame."""
    number = 1
    while True:
        target = wal.with_name(f"{wal.name}.damaged{'' if number == 1 else f'-{number}'}")
        if not target.exists():
            shutil.copyfile(wal, target)
            return str(target)
        number += 1


def _check_execution(
    store: SqliteStore, exec_id: str, stored: dict[str, bytes], report: IntegrityReport
) -> None:
    # Imported here: replay sits above the journal in the layering.
    from kitaru.replay.state import JournalShapeError, fold

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

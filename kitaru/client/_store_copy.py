"""``kitaru store copy``: move every journal from one store to another.

SQLite to PostgreSQL is how a team outgrows one machine, but any two stores work: the
copy reads and writes only through the ``Store`` protocol. It happens in three passes:

1. **Plan**, writing nothing: which executions exist in the destination already (the
   copy refuses them, or with ``skip_existing`` leaves them out), which run right now
   in the source (refused: see below), and a full read of everything to copy, so a
   damaged event or payload stops the copy before the destination is touched.
2. **Write**, one execution at a time, through the destination's own fencing: claim
   the execution's lease there, add its memory versions, append all its events in one
   transaction (with their original times; the destination derives its executions read
   model from them as it does for a live run), release. Payloads travel with the first
   append. Leases and mailboxes are not copied: they belong to processes of the source.
   Memory goes first and the events all at once, so a copy cut short never leaves an
   execution that looks present but is not whole: run again with ``--skip-existing``
   and it carries on (a memory version already there, identical, is not written twice).
3. **Verify**: read the destination back and compare every event, read-model row,
   payload and memory version with the source.

An execution with a live lease in the source is refused rather than copied: its journal
is still growing, so a copy would be behind the moment it was written, and a later
resume on the destination would run the execution a second time beside the original.
Wait for it to finish (or stop its process; an interrupted execution is copied and can
be resumed on the destination), then copy again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kitaru._config import store_url
from kitaru._stores import open_store
from kitaru.errors import (
    BackendFailure,
    KitaruBackendError,
    KitaruUsageError,
    StoreCopyRefusedError,
)
from kitaru.journal.payloads import content_hash
from kitaru.journal.store import MemoryRow, Store
from kitaru.runtime.ownership import claim_execution

__all__ = ["StoreCopyReport", "copy_store"]


@dataclass
class StoreCopyReport:
    """What ``copy_store`` copied."""

    source: str
    destination: str
    copied: list[str] = field(default_factory=list)
    """Execution ids written to the destination, sorted."""
    skipped: list[str] = field(default_factory=list)
    """Execution ids left out because the destination had them (``skip_existing``)."""
    events: int = 0
    payloads: int = 0
    memory_versions: int = 0


def copy_store(source: str, destination: str, *, skip_existing: bool = False) -> StoreCopyReport:
    """Copy every execution journal, payload and memory version of ``source`` into
    ``destination`` (both store URLs or journal paths); see the module docstring."""
    if store_url(source) == store_url(destination):
        raise KitaruUsageError(
            f"The source and destination of the copy are the same store ({source}); "
            "name two different stores."
        )
    src = open_store(source, create=False)
    dst = open_store(destination)
    report = StoreCopyReport(source=src.location, destination=dst.location)

    ids = src.all_exec_ids()
    existing = [i for i in ids if _exists(dst, i)]
    if existing and not skip_existing:
        raise StoreCopyRefusedError(
            f"{len(existing)} execution(s) of {src.location} already exist in "
            f"{dst.location}: {_named(existing)}. Nothing was copied; pass --skip-existing "
            "to copy only the others.",
            exec_ids=existing,
            reason="exists",
        )
    report.skipped = existing
    wanted = [i for i in ids if i not in set(existing)]
    running = [i for i in wanted if src.live_lease(i) is not None]
    if running:
        raise StoreCopyRefusedError(
            f"{len(running)} execution(s) are running in {src.location} right now: "
            f"{_named(running)}. Nothing was copied; wait for them to finish (or stop "
            "their processes), then copy again.",
            exec_ids=running,
            reason="running",
        )

    # Plan: read everything once, so damage stops the copy before anything is written.
    payloads = _verified_payloads(src)
    memories = _memory_rows(src, skipped=set(existing))
    for exec_id in wanted:
        src.read_events(exec_id)  # checks every event's checksum and sequence
    for row in memories:
        there = dst.read_memory(row.scope_type, row.scope, row.key, row.version)
        if there is not None and not there.same_version(row):
            raise StoreCopyRefusedError(
                f"{dst.location} already holds version {row.version} of memory "
                f"{row.scope_type} '{row.scope}' key '{row.key}' with other content. "
                "Nothing was copied; copy into a store without that memory.",
                exec_ids=[row.exec_id] if row.exec_id else [],
                reason="memory",
            )

    # Write, one execution at a time under its destination lease.
    pending_payloads = dict(payloads)
    by_exec: dict[str | None, list[MemoryRow]] = {}
    for row in memories:
        by_exec.setdefault(row.exec_id, []).append(row)
    for exec_id in wanted:
        events = src.read_events(exec_id)
        rows = by_exec.pop(exec_id, [])
        ownership = claim_execution(dst, exec_id)
        try:
            for row in rows:
                dst.restore_memory(row, owner=ownership.owner)
            if events:
                dst.append(
                    exec_id,
                    events[0].seq,
                    [(stored.event, stored.at) for stored in events],
                    pending_payloads or None,
                    owner=ownership.owner,
                )
                pending_payloads = {}
        finally:
            ownership.release()
        report.copied.append(exec_id)
        report.events += len(events)
        report.memory_versions += len(rows)
    for owner_id, rows in sorted(by_exec.items(), key=lambda item: item[0] or ""):
        report.memory_versions += _restore_loose(dst, owner_id, rows)
    # Payloads travel with executions: with none to copy, none are needed.
    report.payloads = len(payloads) if wanted else 0

    _verify(src, dst, report, payloads if wanted else {}, memories)
    return report


def _exists(store: Store, exec_id: str) -> bool:
    return store.get_execution(exec_id) is not None or bool(store.read_events(exec_id, only=()))


def _named(ids: list[str], shown: int = 10) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


def _verified_payloads(store: Store) -> dict[str, bytes]:
    payloads: dict[str, bytes] = {}
    for digest, data in store.all_payloads():
        if content_hash(data) != digest:
            raise KitaruBackendError(
                f"Payload {digest} in {store.location} is damaged (its bytes do not match "
                "their hash); nothing was copied. Run `kitaru store check` on the source.",
                failure=BackendFailure.DAMAGED,
            )
        payloads[digest] = data
    return payloads


def _memory_rows(store: Store, *, skipped: set[str]) -> list[MemoryRow]:
    """Every stored memory version, oldest first per key, but those of skipped executions."""
    rows: list[MemoryRow] = []
    for newest in store.memory_latest():
        history = store.memory_history(newest.scope_type, newest.scope, newest.key)
        rows.extend(row for row in reversed(history) if row.exec_id not in skipped)
    return rows


def _restore_loose(dst: Store, exec_id: str | None, rows: list[MemoryRow]) -> int:
    """Memory written from outside a flow (no execution), or by an execution the source
    no longer has: the former needs no lease, the latter is written under one."""
    if exec_id is None:
        for row in rows:
            dst.restore_memory(row)
        return len(rows)
    ownership = claim_execution(dst, exec_id)
    try:
        for row in rows:
            dst.restore_memory(row, owner=ownership.owner)
    finally:
        ownership.release()
    return len(rows)


def _verify(
    src: Store,
    dst: Store,
    report: StoreCopyReport,
    payloads: dict[str, bytes],
    memories: list[MemoryRow],
) -> None:
    """Read the destination back and compare it with the source, item by item."""

    def differs(what: str) -> KitaruBackendError:
        return KitaruBackendError(
            f"After the copy, {what} in {dst.location} differs from {src.location}. Run "
            "`kitaru store check` on the destination; the source is unchanged.",
            failure=BackendFailure.DAMAGED,
        )

    for exec_id in report.copied:
        if dst.read_events(exec_id) != src.read_events(exec_id):
            raise differs(f"the events of execution {exec_id}")
        if dst.get_execution(exec_id) != src.get_execution(exec_id):
            raise differs(f"the record of execution {exec_id}")
    for digest, data in payloads.items():
        if dst.read_payload(digest) != data:
            raise differs(f"payload {digest}")
    for row in memories:
        there = dst.read_memory(row.scope_type, row.scope, row.key, row.version)
        if there is None or not there.same_version(row):
            raise differs(f"version {row.version} of memory key '{row.key}'")

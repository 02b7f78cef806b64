"""The Store protocol: what the runtime needs from any journal backend.

SQL and its dialect stay inside the backends; this module only names the shapes.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import msgspec

from kitaru.errors import JournalConflictError, KitaruLeaseLostError, WaitAlreadyAnsweredError
from kitaru.journal.events import CallCompleted, Event

__all__ = [
    "CallIndex",
    "CallIndexRow",
    "CallPage",
    "EventLog",
    "ExecutionIndex",
    "ExecutionRow",
    "Inspection",
    "JournalConflictError",
    "Lease",
    "Leases",
    "Mailbox",
    "Memories",
    "MemoryRow",
    "MemoryWrite",
    "StorageReport",
    "Store",
    "StoredEvent",
    "WaitAlreadyAnsweredError",
    "WorkQueue",
    "WorkerRow",
    "lease_lost",
]


def lease_lost(exec_id: str, owner: str | None, *, released: bool) -> KitaruLeaseLostError:
    """The error of an append refused by its fence, the same on every backend:
    ``released`` when no lease is left, otherwise another process holds it."""
    why = "its lease was released" if released else "another process took it over"
    return KitaruLeaseLostError(
        f"This process no longer owns execution {exec_id} ({why}), so nothing more "
        f"is recorded here. Check it with `kitaru executions get {exec_id}`.",
        exec_id=exec_id,
        owner=owner or "",
    )


class StoredEvent(NamedTuple):
    """An event as read back: its sequence number, wall-clock time and body."""

    seq: int
    at: float
    event: Event


class ExecutionRow(msgspec.Struct, frozen=True):
    """The read model of one execution, kept in step with its events."""

    exec_id: str
    flow_name: str
    status: str
    started_at: float
    ended_at: float | None
    original_exec_id: str | None
    failure: str | None
    calls: int = 0
    """Durable calls it has started (each once, whatever its attempts)."""
    tokens: int | None = None
    """Tokens of its model requests; None while no request's usage is known."""
    cost: float | None = None
    """Estimated US dollars of the model requests it made (not those a replay reused);
    None while no request's cost is known."""


class CallIndexRow(msgspec.Struct, frozen=True):
    """One call of an execution as ``execution_calls`` keeps it (see
    ``read_model.CallSpan``): where its events lie, and when it ended."""

    identity: str
    position: int
    first_seq: int
    last_seq: int
    ended_at: float | None


class CallPage(msgspec.Struct, frozen=True):
    """Calls ``offset`` to ``offset + limit`` of an execution in position order, with
    what a timeline of the whole needs: how many calls there are, and the last end."""

    total: int
    last_ended_at: float | None
    rows: list[CallIndexRow]


class Lease(msgspec.Struct, frozen=True):
    """Who runs an execution right now, and until when the claim holds.

    ``owner`` is the claim's token: every append carries it and is refused once the
    lease is someone else's. ``host`` (name and kernel id), ``pid`` and ``pid_started``
    are for people reading the lease; whether its holder is alive is the store's call.
    """

    exec_id: str
    owner: str
    host: str
    pid: int
    pid_started: str
    expires_at: float


class MemoryWrite(msgspec.Struct, frozen=True):
    """One memory version to add: a value, or (``deleted``) a tombstone.

    ``exec_id`` is the execution that writes it (None for a write from outside a flow);
    ``call_key`` names the flow-body call that writes it, so a resumed execution that
    repeats the call gets the version it wrote before instead of a new one.
    """

    scope_type: str
    scope: str
    key: str
    value: bytes | None
    """The value as ``runtime.values.encode_value`` encodes it; None for a tombstone."""
    value_type: str
    deleted: bool = False
    exec_id: str | None = None
    flow_name: str | None = None
    call_key: str | None = None


class MemoryRow(msgspec.Struct, frozen=True):
    """One stored memory version."""

    id: int
    scope_type: str
    scope: str
    key: str
    version: int
    deleted: bool
    value: bytes | None
    value_type: str
    created_at: float
    exec_id: str | None
    flow_name: str | None
    call_key: str | None = None
    """The flow-body call that wrote it (see ``MemoryWrite.call_key``)."""

    def same_version(self, other: MemoryRow) -> bool:
        """Whether ``other`` records the same version with the same content (row ids aside)."""
        return msgspec.structs.replace(other, id=self.id) == self


class StorageReport(msgspec.Struct):
    """A backend's check of its own storage, apart from the journal's content.

    ``problems`` and ``notes`` read as ``kitaru store check`` prints them;
    ``log`` describes the backend's write-ahead log for ``-o json`` (None where there is
    none to show).
    """

    problems: list[str] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)
    log: dict[str, object] | None = None


class EventLog(Protocol):
    """The append-only events of every execution, and the payloads they refer to."""

    location: str
    """Where the journal is, as messages name it (the file, for SQLite)."""
    url: str
    """The store URL ``kitaru._stores.open_store`` opens this store by."""

    def append(
        self,
        exec_id: str,
        first_seq: int,
        events: Sequence[tuple[Event, float]],
        payloads: Mapping[str, bytes] | None = None,
        *,
        owner: str,
        sync: bool = True,
    ) -> None:
        """Append ``events`` (with their times) as seq ``first_seq``, ``first_seq+1``, ...

        All or nothing, in one transaction with the payloads and the read model.
        Unless ``owner`` holds the execution's lease at that moment, nothing is written
        and ``KitaruLeaseLostError`` is raised (fencing). A seq that is taken raises
        ``JournalConflictError``. ``sync=False`` may skip the flush to stable storage
        (the write still survives a process crash).
        """
        ...

    def read_events(
        self, exec_id: str, after_seq: int = 0, *, only: Collection[str] | None = None
    ) -> list[StoredEvent]:
        """Return the execution's events with seq > ``after_seq``, in order.

        ``only`` (event tags) keeps the events of those types, and the execution's last
        event whatever its type, so the reader knows how far the journal went: a
        summary of an execution with many calls reads a few events, not all of them.
        """
        ...

    def stream_events(self, exec_id: str) -> Generator[tuple[int, float, Event], None, None]:
        """Every event of the execution, in order, as ``read_events`` gives them, but
        decoded a batch at a time as the caller consumes them.

        What a resume folds: the rows, bodies and decoded events of one batch are gone
        before the next is read, so reading back a long journal does not hold all of it
        in memory at once. The events are those of one snapshot of the journal (the
        ones appended while the caller consumes are left for a later read). A damaged
        event raises when the caller reaches it. A caller that stops early closes the
        generator, which lets go of the read at once.
        """
        ...

    def read_payload(self, digest: str) -> bytes:
        """Return a stored payload by its content hash."""
        ...

    def close(self) -> None:
        """Let go of this thread's connections; the store opens new ones when used again."""
        ...


class ExecutionIndex(Protocol):
    """What ``append`` keeps in step with the events: executions and the checkpoint cache."""

    def get_execution(self, exec_id: str) -> ExecutionRow | None: ...

    def find_executions(self, prefix: str, limit: int = 2) -> list[str]:
        """Return execution ids that start with ``prefix``."""
        ...

    def list_executions(
        self, *, flow: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[ExecutionRow]:
        """Return executions, newest first."""
        ...

    def find_cached(self, key: str) -> tuple[str, CallCompleted] | None:
        """The latest completion recorded under a checkpoint cache key, with its execution."""
        ...


class CallIndex(Protocol):
    """Where each call's events lie in its execution's journal (kept by ``append``), so
    a view of some calls reads their events and not the whole journal."""

    def call_page(self, exec_id: str, *, through_seq: int, offset: int, limit: int) -> CallPage:
        """One page of the calls first started at or before ``through_seq``, in position
        order (a snapshot of the journal up to that event). Rows are as the index holds
        them now: for an execution still being written, a later end or event may show;
        readers bound the seqs they read by ``through_seq`` themselves."""
        ...

    def call_rows(
        self, exec_id: str, identities: Collection[str] | None = None
    ) -> list[CallIndexRow]:
        """The rows of these calls (every call when None), in position order."""
        ...

    def read_event_ranges(
        self, exec_id: str, ranges: Sequence[tuple[int, int]]
    ) -> list[StoredEvent]:
        """The execution's events whose seq lies in one of the inclusive ``(first,
        last)`` ranges, in seq order (each checked on its own, like a selection)."""
        ...


class Leases(Protocol):
    """Who may write an execution: one live owner at a time."""

    def claim(self, lease: Lease) -> Lease | None:
        """Take the lease unless its holder is alive; return the live holder, or None.

        Liveness is decided by something that dies with the holder's process where the
        backend has one, and by the lease's expiry otherwise. A successful claim holds
        that liveness token until ``release``.
        """
        ...

    def live_lease(self, exec_id: str) -> Lease | None:
        """The execution's lease if its holder is alive, else None."""
        ...

    def renew(self, exec_id: str, owner: str, expires_at: float) -> bool:
        """Extend our lease; False if it is no longer ours."""
        ...

    def release(self, exec_id: str, owner: str) -> None:
        """Drop our lease and its liveness token; a no-op if it is no longer ours."""
        ...

    def get_lease(self, exec_id: str) -> Lease | None:
        """The recorded lease, alive or not (for display)."""
        ...


class Mailbox(Protocol):
    """Requests other processes leave for an execution's owner, who records the outcome."""

    def post_wait_input(
        self, exec_id: str, wait: str, value: bytes | None, *, aborted: bool
    ) -> None:
        """Leave input for a wait of an execution another process runs.

        Raise ``WaitAlreadyAnsweredError`` if input for that wait is already there.
        """
        ...

    def wait_inputs(self, exec_id: str) -> dict[str, tuple[bytes | None, bool]]:
        """Input posted for the execution's waits: wait identity -> (value, aborted)."""
        ...

    def clear_wait_input(self, exec_id: str, wait: str) -> None: ...

    def request_cancel(self, exec_id: str, reason: str) -> None:
        """Ask the process running the execution to cancel it at its next durable call."""
        ...

    def cancel_requested(self, exec_id: str) -> str | None:
        """The reason given if someone asked to cancel the execution, else None."""
        ...

    def clear_cancel(self, exec_id: str) -> None: ...

    def wait_for_mail(self, exec_id: str, timeout: float) -> None:
        """The wake-up hook: return once mail for ``exec_id`` may have arrived, or after
        ``timeout`` seconds at most.

        Returning early without mail is allowed (the caller looks, and waits again); a
        backend that can be notified returns as soon as a request is posted.
        """
        ...


class Memories(Protocol):
    """Versioned memory values, written under the same fencing as events."""

    def write_memory(self, write: MemoryWrite, *, owner: str | None = None) -> MemoryRow | None:
        """Add the next version of a memory key, in one transaction.

        With ``write.exec_id``, ``owner`` must hold that execution's lease (fencing, as
        for ``append``), and a version already written under the same
        ``(exec_id, call_key)`` is returned instead of writing another. A tombstone is
        only written over a live value: for a key that never existed it returns None,
        for one already deleted it returns the existing tombstone.
        """
        ...

    def read_memory(
        self, scope_type: str, scope: str, key: str, version: int | None = None
    ) -> MemoryRow | None:
        """The newest version of a key (tombstones included), or the given version."""
        ...

    def memory_row(self, row_id: int) -> MemoryRow | None:
        """A memory version by its row id."""
        ...

    def memory_history(self, scope_type: str, scope: str, key: str) -> list[MemoryRow]:
        """Every stored version of a key, newest first."""
        ...

    def memory_latest(
        self, scope_type: str | None = None, scope: str | None = None
    ) -> list[MemoryRow]:
        """The newest version of every key (tombstones included), in one scope or all."""
        ...

    def purge_memory(self, rows: Sequence[int]) -> int:
        """Physically delete memory versions by row id; return how many went."""
        ...

    def restore_memory(self, row: MemoryRow, *, owner: str | None = None) -> bool:
        """Add a memory version exactly as another store recorded it (``kitaru store copy``).

        Its version number, time and call key are kept; ``row.id`` is not (the store
        numbers its rows). Fenced like ``write_memory`` when ``row.exec_id`` is set.
        Return False, writing nothing, if the same version with the same content is
        already here; raise ``JournalConflictError`` if that version (or that call's
        version) holds something else.
        """
        ...


class Inspection(Protocol):
    """What ``kitaru store check`` reads to prove a journal whole."""

    def check_storage(self) -> StorageReport:
        """The backend's check of its storage. Called first, before anything else reads
        the store: opening it may repair (and so hide) what this check reports."""
        ...

    def structural_problems(self) -> list[str]:
        """The backend's own structural check of its data, each problem one line;
        empty when it is sound."""
        ...

    def all_exec_ids(self) -> list[str]:
        """Every execution id that has events or a read-model row, sorted."""
        ...

    def all_payloads(self) -> list[tuple[str, bytes]]:
        """Every stored payload with its content hash."""
        ...


class Store(EventLog, ExecutionIndex, CallIndex, Leases, Mailbox, Memories, Inspection, Protocol):
    """A durable, append-only home for execution journals: every part a backend fills."""


class WorkerRow(msgspec.Struct, frozen=True):
    """A ``kitaru worker`` process as the store knows it."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: float
    heartbeat_at: float
    """Last heartbeat, on the store server's clock."""
    running: list[str]
    """The executions it runs right now."""
    alive: bool


@runtime_checkable
class WorkQueue(Protocol):
    """A queue of executions that worker processes claim and run (a shared store only).

    An entry is ``queued`` (any worker may claim it), ``claimed`` by one worker, or
    ``parked`` (waiting for input: posting the input or a cancel makes it ``queued``).
    A claimed entry whose worker died is claimable again.
    """

    def enqueue(self, exec_id: str, queue: str = "default", priority: int = 0) -> None:
        """Put an execution (recorded already, its lease released) in the queue."""
        ...

    def claim_queued(
        self,
        worker: str,
        queues: Sequence[str],
        concurrency: int,
        stale_after: float,
        *,
        skip: Sequence[str] = (),
    ) -> list[str]:
        """Claim runnable executions for ``worker`` in one transaction, highest priority
        first, then oldest, so that it holds at most ``concurrency``. An entry claimed by
        a worker whose session ended, or that missed heartbeats for ``stale_after``
        seconds, is runnable again. Executions in ``skip`` are left to other workers."""
        ...

    def park(self, exec_id: str, worker: str) -> None:
        """The execution waits for input: leave it parked (queued at once if input came)."""
        ...

    def requeue(self, exec_id: str, worker: str) -> None:
        """Hand a claimed execution back to the queue (the worker stops)."""
        ...

    def dequeue(self, exec_id: str) -> None:
        """Take an execution out of the queue (it ended)."""
        ...

    def register_worker(
        self, worker: str, host: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        """Record a worker; it is alive while its session lasts and it heartbeats."""
        ...

    def worker_heartbeat(self, worker: str, running: Sequence[str]) -> None: ...

    def unregister_worker(self, worker: str) -> None: ...

    def will_run(self, exec_id: str) -> bool:
        """Whether a worker takes or holds the execution (queued or claimed, not parked)."""
        ...

    def list_workers(self, ttl: float) -> list[WorkerRow]:
        """Every recorded worker; ``alive`` if its session holds or it beat within ``ttl``."""
        ...

    def wait_for_work(self, timeout: float) -> None:
        """Return once work may be there (an enqueue, input, a cancel), or after ``timeout``."""
        ...

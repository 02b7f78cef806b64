"""Every store backend agrees with a trivial in-memory model, whatever is asked of it.

A Hypothesis state machine appends random event batches (at the next free seq, at a
taken one, past a gap; with payloads, some of which try to overwrite a stored one),
reads events, payloads and executions back, and claims, renews and releases leases,
through two store instances on one journal (two processes, whose liveness tokens
conflict as two processes' do), one of which may die. After every step both stores
must say exactly what the model says, refusals included: an append the model refuses
raises ``JournalConflictError`` (or ``KitaruLeaseLostError`` from a writer that does not
hold the lease) and changes nothing. It runs once per backend in
``store_backends.BACKENDS``, through the ``Store`` protocol only.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from store_backends import StoreBackend
from strategies import event_batches

from kitaru._stores import new_store
from kitaru.errors import BackendFailure, KitaruBackendError, KitaruLeaseLostError
from kitaru.journal.events import (
    CallStarted,
    CallStartedAndCompleted,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    LlmCallRecorded,
    WaitRequested,
    WaitResolved,
)
from kitaru.journal.locks import kernel_id
from kitaru.journal.payloads import content_hash
from kitaru.journal.store import ExecutionRow, JournalConflictError, Lease, Store, StoredEvent

EXEC_IDS = ["run-1", "run-2", "run-10", "other"]
OWNERS = ["host-a/1", "host-b/2", "host-c/3"]
HERE = f"host-a#{kernel_id()}"
"""A lease written on this kernel: alive exactly while its kernel lock is held."""
ELSEWHERE = "host-z#0ther0ne"
"""A lease written under another kernel: alive until it expires."""


class LeaseLostError(Exception):
    """The model refuses an append from a writer that does not hold the lease."""


class ConflictError(Exception):
    """The model refuses an append."""


class MissingEventsError(Exception):
    """The model sees a gap in an execution's seqs."""


class MissingPayloadError(Exception):
    """The model has no payload under the asked hash."""


@dataclass
class _Execution:
    flow_name: str
    status: str
    started_at: float
    ended_at: float | None
    original_exec_id: str | None
    failure: str | None
    order: int
    calls: int = 0
    tokens: int | None = None
    cost: float | None = None


def _status(event: Event) -> tuple[str, bool, str | None] | None:
    """The status an event puts its execution in: written here from the spec, not the code."""
    if isinstance(event, ExecutionResumed | WaitResolved):
        return "running", False, None
    if isinstance(event, WaitRequested):
        return "waiting", False, None
    if isinstance(event, ExecutionCompleted):
        return "completed", True, None
    if isinstance(event, ExecutionFailed):
        return "failed", True, f"{event.error.type}: {event.error.message}"
    if isinstance(event, ExecutionCancelled):
        return "cancelled", True, None
    return None


def _totals(row: _Execution | None, noted: set[str], event: Event) -> None:
    """What an event adds to its execution's totals: written here from the spec.

    A call identity counts once (noted even while the execution has no row yet); a
    model request adds its known tokens, and its known cost unless a replay reused it.
    """
    if isinstance(event, CallStarted | CallStartedAndCompleted | WaitRequested):
        if event.identity not in noted:
            noted.add(event.identity)
            if row is not None:
                row.calls += 1
    elif isinstance(event, LlmCallRecorded) and row is not None:
        if event.usage.total_tokens is not None:
            row.tokens = (row.tokens or 0) + event.usage.total_tokens
        if event.estimated_cost is not None and not event.cost_reused:
            row.cost = (row.cost or 0.0) + event.estimated_cost


@dataclass
class ModelStore:
    """What the journal must hold: plain dicts."""

    events: dict[str, dict[int, tuple[float, Event]]] = field(default_factory=dict)
    payloads: dict[str, bytes] = field(default_factory=dict)
    executions: dict[str, _Execution] = field(default_factory=dict)
    noted: dict[str, set[str]] = field(default_factory=dict)
    """Call identities counted in each execution's totals."""
    leases: dict[str, Lease] = field(default_factory=dict)
    locks: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Kernel locks: execution -> (store that holds it, owner it holds it for)."""
    sessions: dict[tuple[str, str], int] = field(default_factory=dict)
    """Session locks: (execution, lease owner) -> the store whose session holds it."""
    liveness: str = "kernel"

    def claim(self, which: int, lease: Lease) -> Lease | None:
        if self.liveness == "session":
            return self._claim_by_session(which, lease)
        row = self.leases.get(lease.exec_id)
        lock = self.locks.get(lease.exec_id)
        if lock is not None and lock != (which, lease.owner):
            return row or Lease(lease.exec_id, "", "", 0, "", 0.0)
        if (
            row is not None
            and row.owner != lease.owner
            and row.host == ELSEWHERE
            and row.expires_at >= time.time()
        ):
            return row
        self.leases[lease.exec_id] = lease
        self.locks[lease.exec_id] = (which, lease.owner)
        return None

    def _session_alive(self, row: Lease) -> bool:
        return (row.exec_id, row.owner) in self.sessions and row.expires_at >= time.time()

    def _claim_by_session(self, which: int, lease: Lease) -> Lease | None:
        key = (lease.exec_id, lease.owner)
        row = self.leases.get(lease.exec_id)
        if self.sessions.get(key, which) != which:
            return row or Lease(lease.exec_id, "", "", 0, "", 0.0)
        self.sessions[key] = which
        if row is not None and row.owner != lease.owner and self._session_alive(row):
            del self.sessions[key]
            return row
        self.leases[lease.exec_id] = lease
        return None

    def release_locks(self, which: int, exec_id: str, owner: str) -> None:
        if self.locks.get(exec_id) == (which, owner):
            del self.locks[exec_id]
        if self.sessions.get((exec_id, owner)) == which:
            del self.sessions[(exec_id, owner)]

    def die(self, which: int) -> None:
        self.locks = {e: lock for e, lock in self.locks.items() if lock[0] != which}
        self.sessions = {k: w for k, w in self.sessions.items() if w != which}

    def held_locks(self) -> list[tuple[int, str, str]]:
        """(store, execution, owner) of every lock still held, for the teardown."""
        return [(w, e, o) for e, (w, o) in self.locks.items()] + [
            (w, e, o) for (e, o), w in self.sessions.items()
        ]

    def live_lease(self, exec_id: str) -> Lease | None:
        row = self.leases.get(exec_id)
        if self.liveness == "session":
            return row if row is not None and self._session_alive(row) else None
        if exec_id in self.locks:
            return row or Lease(exec_id, "", "", 0, "", 0.0)
        if row is not None and row.host == ELSEWHERE and row.expires_at >= time.time():
            return row
        return None

    def append(
        self,
        exec_id: str,
        first_seq: int,
        batch: list[tuple[Event, float]],
        payloads: dict[str, bytes],
        owner: str,
    ) -> None:
        held = self.leases.get(exec_id)
        if held is None or held.owner != owner:
            raise LeaseLostError(exec_id)
        taken = self.events.get(exec_id, {})
        if any(first_seq + i in taken for i in range(len(batch))):
            raise ConflictError("seq taken")
        if any(
            key in self.payloads and self.payloads[key] != data for key, data in payloads.items()
        ):
            raise ConflictError("payload overwrite")
        starts = sum(isinstance(event, ExecutionStarted) for event, _ in batch)
        if starts > 1 or (starts and exec_id in self.executions):
            raise ConflictError("started twice")
        self.payloads.update(payloads)
        stored = self.events.setdefault(exec_id, {})
        for i, (event, at) in enumerate(batch):
            stored[first_seq + i] = (at, event)
            if isinstance(event, ExecutionStarted):
                self.executions[exec_id] = _Execution(
                    event.flow_name,
                    "running",
                    at,
                    None,
                    event.original_exec_id,
                    None,
                    order=len(self.executions),
                )
                continue
            row = self.executions.get(exec_id)
            _totals(row, self.noted.setdefault(exec_id, set()), event)
            change = _status(event)
            if change is not None and row is not None:
                row.status, finished, row.failure = change
                row.ended_at = at if finished else None

    def read_events(self, exec_id: str, after: int = 0) -> list[StoredEvent]:
        stored = self.events.get(exec_id, {})
        seqs = sorted(seq for seq in stored if seq > after)
        if seqs != list(range(after + 1, after + 1 + len(seqs))):
            raise MissingEventsError(exec_id)
        return [StoredEvent(seq, *stored[seq]) for seq in seqs]

    def read_payload(self, digest: str) -> bytes:
        if digest not in self.payloads:
            raise MissingPayloadError(digest)
        return self.payloads[digest]

    def row(self, exec_id: str) -> ExecutionRow | None:
        row = self.executions.get(exec_id)
        if row is None:
            return None
        return ExecutionRow(
            exec_id,
            row.flow_name,
            row.status,
            row.started_at,
            row.ended_at,
            row.original_exec_id,
            row.failure,
            row.calls,
            row.tokens,
            row.cost,
        )

    def listed(self, status: str | None) -> list[ExecutionRow]:
        ordered = sorted(
            self.executions.items(), key=lambda item: (item[1].started_at, item[1].order)
        )
        rows = [self.row(exec_id) for exec_id, _ in reversed(ordered)]
        return [r for r in rows if r is not None and (status is None or r.status == status)]


def _outcome(call: Any) -> tuple[str, Any]:
    """Run ``call``; return ("ok", value) or the kind of error it raised.

    A gap in the events and a missing payload are both a damaged journal to a store
    (``BackendFailure.DAMAGED``): the failure, never the wording, tells them apart from
    other backend errors, and the call that raised tells them apart from each other.
    """
    try:
        return "ok", call()
    except (ConflictError, JournalConflictError):
        return "conflict", None
    except (MissingEventsError, MissingPayloadError):
        return "damaged", None
    except (LeaseLostError, KitaruLeaseLostError):
        return "lease lost", None
    except KitaruBackendError as exc:
        if exc.failure is BackendFailure.DAMAGED:
            return "damaged", None
        raise


_times = st.floats(min_value=0, max_value=2e9, allow_nan=False, allow_infinity=False)
_blobs = st.binary(min_size=1, max_size=48)


class StoreMachine(RuleBasedStateMachine):
    """Two store instances of one backend on one journal versus one ModelStore."""

    def __init__(self, backend: StoreBackend):
        super().__init__()
        self.backend = backend

    @initialize()
    def open_stores(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="kitaru-store-model-"))
        self.location = self.backend.location(self.folder)
        self.stores: list[Store] = [new_store(self.location), new_store(self.location)]
        self.model = ModelStore(liveness=self.backend.liveness)

    def teardown(self) -> None:
        if hasattr(self, "model"):
            for which, exec_id, owner in self.model.held_locks():
                self.stores[which].release(exec_id, owner)
        for store in getattr(self, "stores", []):
            store.close()
        if hasattr(self, "folder"):
            shutil.rmtree(self.folder, ignore_errors=True)

    def _last_seq(self, exec_id: str) -> int:
        return max(self.model.events.get(exec_id, {}), default=0)

    @rule(
        which=st.integers(0, 1),
        exec_id=st.sampled_from(EXEC_IDS),
        where=st.sampled_from(["next", "next", "next", "taken", "gap"]),
        events=st.data(),
        times=st.lists(_times, min_size=5, max_size=5),
        blobs=st.lists(_blobs, max_size=3),
        overwrite=st.booleans(),
        writer=st.sampled_from(["holder", "holder", "holder", *OWNERS]),
    )
    def append(  # noqa: PLR0917  (Hypothesis passes rule arguments by name)
        self,
        which: int,
        exec_id: str,
        where: str,
        events: st.DataObject,
        times: list[float],
        blobs: list[bytes],
        overwrite: bool,
        writer: str,
    ) -> None:
        """Append a batch; the store and the model accept or refuse it alike."""
        held = self.model.leases.get(exec_id)
        owner = held.owner if writer == "holder" and held is not None else writer
        if owner == "holder":
            owner = OWNERS[which]
        last = self._last_seq(exec_id)
        first = exec_id not in self.model.executions and events.draw(st.booleans())
        batch_events = events.draw(event_batches(first=first))
        batch = list(zip(batch_events, times, strict=False))
        first_seq = {"next": last + 1, "taken": max(1, last), "gap": last + 2}[where]
        payloads = {content_hash(blob): blob for blob in blobs}
        if overwrite and self.model.payloads:
            stored = sorted(self.model.payloads)[0]
            payloads[stored] = self.model.payloads[stored] + b"!"
        # The model checks everything before it changes anything: a refusal leaves it as is.
        expected, _ = _outcome(
            lambda: self.model.append(exec_id, first_seq, batch, payloads, owner)
        )
        actual, _ = _outcome(
            lambda: self.stores[which].append(exec_id, first_seq, batch, payloads, owner=owner)
        )
        assert actual == expected, (exec_id, first_seq, [type(e).__name__ for e in batch_events])

    @rule(which=st.integers(0, 1), exec_id=st.sampled_from(EXEC_IDS), after=st.integers(0, 6))
    def read_events(self, which: int, exec_id: str, after: int) -> None:
        """Reading from any seq gives the model's events, or both report the gap."""
        assert _outcome(lambda: self.stores[which].read_events(exec_id, after)) == _outcome(
            lambda: self.model.read_events(exec_id, after)
        )

    @precondition(lambda self: bool(self.model.payloads))
    @rule(which=st.integers(0, 1), data=st.data())
    def read_payload(self, which: int, data: st.DataObject) -> None:
        """Every stored payload comes back byte for byte; an unknown one is reported."""
        digest = data.draw(st.sampled_from(sorted(self.model.payloads)))
        assert self.stores[which].read_payload(digest) == self.model.payloads[digest]
        assert _outcome(lambda: self.stores[which].read_payload("f" * 32)) == _outcome(
            lambda: self.model.read_payload("f" * 32)
        )

    @rule(which=st.integers(0, 1), status=st.sampled_from([None, "running", "completed"]))
    def list_executions(self, which: int, status: str | None) -> None:
        """Listing gives the model's rows, newest first."""
        assert self.stores[which].list_executions(status=status) == self.model.listed(status)

    @rule(which=st.integers(0, 1), prefix=st.sampled_from(["run-1", "run-", "o", "x", "%"]))
    def find_executions(self, which: int, prefix: str) -> None:
        """A prefix finds exactly the executions whose ids start with it (no wildcards)."""
        found = self.stores[which].find_executions(prefix, limit=10)
        assert sorted(found) == sorted(e for e in self.model.executions if e.startswith(prefix))

    @rule(
        which=st.integers(0, 1),
        exec_id=st.sampled_from(EXEC_IDS),
        owner=st.sampled_from(OWNERS),
        host=st.sampled_from([HERE, HERE, ELSEWHERE]),
        expires_in=st.sampled_from([-3600.0, 3600.0]),
    )
    def claim(self, which: int, exec_id: str, owner: str, host: str, expires_in: float) -> None:
        """A claim wins unless a live holder has the lease, and then names that holder.

        Liveness is the kernel lock of whichever store holds it; a lease written under
        another kernel, whose lock this kernel cannot see, lives until it expires.
        """
        lease = Lease(exec_id, owner, host, 1, "t", time.time() + expires_in)
        expected = self.model.claim(which, lease)
        assert self._same(self.stores[which].claim(lease), expected)

    @rule(which=st.integers(0, 1))
    def die(self, which: int) -> None:
        """A process dies: its liveness tokens go; its lease rows stay behind."""
        self.backend.die(self.stores[which])
        self.stores[which] = new_store(self.location)
        self.model.die(which)

    @rule(
        which=st.integers(0, 1),
        exec_id=st.sampled_from(EXEC_IDS),
        owner=st.sampled_from(OWNERS),
        expires=_times,
    )
    def renew(self, which: int, exec_id: str, owner: str, expires: float) -> None:
        """Only the holder renews its lease."""
        held = self.model.leases.get(exec_id)
        mine = held is not None and held.owner == owner
        if mine:
            assert held is not None
            self.model.leases[exec_id] = Lease(
                exec_id, owner, held.host, held.pid, held.pid_started, expires
            )
        assert self.stores[which].renew(exec_id, owner, expires) == mine

    @rule(which=st.integers(0, 1), exec_id=st.sampled_from(EXEC_IDS), owner=st.sampled_from(OWNERS))
    def release(self, which: int, exec_id: str, owner: str) -> None:
        """Only the holder releases its lease; a store lets go of the locks it holds."""
        held = self.model.leases.get(exec_id)
        if held is not None and held.owner == owner:
            del self.model.leases[exec_id]
        self.model.release_locks(which, exec_id, owner)
        self.stores[which].release(exec_id, owner)

    @rule(which=st.integers(0, 1))
    def reopen(self, which: int) -> None:
        """The process opens the file again: it sees everything written so far."""
        self.stores[which].close()

    def _same(self, got: Lease | None, expected: Lease | None) -> bool:
        """Leases agree; on a server clock, expiry only up to a few seconds of skew."""
        if got is None or expected is None or not self.backend.server_clock:
            return got == expected
        return abs(got.expires_at - expected.expires_at) < 5 and msgspec.structs.replace(
            got, expires_at=0.0
        ) == msgspec.structs.replace(expected, expires_at=0.0)

    @invariant()
    def stores_agree_with_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        for store in self.stores:
            for exec_id in EXEC_IDS:
                expected = _outcome(lambda e=exec_id: self.model.read_events(e))
                assert _outcome(lambda s=store, e=exec_id: s.read_events(e)) == expected
                # What a resume folds: the same events, streamed a batch at a time.
                assert _outcome(lambda s=store, e=exec_id: list(s.stream_events(e))) == expected
                assert store.get_execution(exec_id) == self.model.row(exec_id)
                assert self._same(store.get_lease(exec_id), self.model.leases.get(exec_id))
                assert self._same(store.live_lease(exec_id), self.model.live_lease(exec_id))
            assert store.all_exec_ids() == sorted(
                {e for e, stored in self.model.events.items() if stored}
                | set(self.model.executions)
            )


@pytest.mark.slow  # hundreds of steps against real stores: run by --all (CI)
class TestStoreAgreesWithModel:
    def test_every_backend_behaves_as_the_model(self, store_backend: StoreBackend) -> None:
        """Random appends, reads and lease moves give the model's answers on every backend."""
        run_state_machine_as_test(
            lambda: StoreMachine(store_backend),
            settings=settings(settings.default, stateful_step_count=30, deadline=None),
        )

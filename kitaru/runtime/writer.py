"""The single writer of one execution's journal: sequence numbers and batching.

A completed call is appended with a durable commit before the flow body moves on.
A call's *start* is deferred: it rides along in the transaction of the next append
(usually the call's own completion), so a fast checkpoint costs one commit, not two,
and a start followed at once by its completion is written as one event
(``CallStartedAndCompleted``): one row per call for a resume to read back.
If the call runs longer than ``FLUSH_AFTER`` seconds, a background thread writes the
pending start on its own (without forcing it to disk; the next durable commit does),
so other processes see a long call as running.

This is the only path from a running execution to its journal: every append carries
the owner's lease token, and the store refuses it once the lease is someone else's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from kitaru.journal.events import Event, pair_starts
from kitaru.journal.store import MemoryRow, MemoryWrite, Store
from kitaru.runtime.ownership import Ownership

__all__ = ["FLUSH_AFTER", "JournalWriter"]

FLUSH_AFTER = 0.05


class JournalWriter:
    """Appends events for one execution; safe to use from several threads."""

    def __init__(self, store: Store, ownership: Ownership, last_seq: int):
        self.store = store
        self.ownership = ownership
        self.exec_id = ownership.exec_id
        self.owner = ownership.owner
        self._next_seq = last_seq + 1
        self._lock = threading.Lock()
        self._pending: list[tuple[Event, float]] = []
        self._pending_payloads: dict[str, bytes] = {}
        self._wake = threading.Condition(self._lock)
        self._flusher: threading.Thread | None = None
        self._parked = False
        """The flusher waits with no deadline: only a notify from ``defer`` wakes it."""
        self._closed = False
        self.flush_error: BaseException | None = None

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def closed(self) -> bool:
        """The execution was let go: nothing queued from now on is written."""
        return self._closed

    @property
    def parked(self) -> bool:
        """The flusher is waiting with no deadline, so only the next ``defer`` wakes it.

        Read under the writer's lock: ``True`` means the flusher is inside its wait.
        """
        with self._lock:
            return self._parked

    def append(
        self,
        events: Sequence[Event],
        payloads: Mapping[str, bytes] | None = None,
        *,
        sync: bool = True,
    ) -> None:
        """Append pending events and ``events`` in one transaction.

        Raises ``KitaruLeaseLostError`` without writing once the lease is lost.
        """
        self.ownership.check()
        now = time.time()
        with self._lock:
            batch = pair_starts([*self._pending, *((event, now) for event in events)])
            if self._pending_payloads:
                payloads = {**self._pending_payloads, **(payloads or {})}
            self.store.append(
                self.exec_id, self._next_seq, batch, payloads, owner=self.owner, sync=sync
            )
            self._next_seq += len(batch)
            self._pending.clear()
            self._pending_payloads.clear()

    def write_memory(self, write: MemoryWrite) -> MemoryRow | None:
        """Add a memory version on behalf of the execution, fenced by its lease like appends.

        Raises ``KitaruLeaseLostError`` without writing once the lease is lost.
        """
        self.ownership.check()
        return self.store.write_memory(write, owner=self.owner)

    def defer(self, event: Event, payloads: Mapping[str, bytes] | None = None) -> None:
        """Queue ``event`` for the next append (or the flusher, if that comes first)."""
        with self._lock:
            self._pending.append((event, time.time()))
            if payloads:
                self._pending_payloads.update(payloads)
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name=f"kitaru-journal-{self.exec_id[:8]}", daemon=True
                )
                self._flusher.start()
            elif self._parked:
                # Otherwise the flusher is on a timed wait that began before this event
                # and ends within FLUSH_AFTER, so it sees the event in time. Waking it for
                # every call would cost a thread switch per checkpoint.
                self._wake.notify()

    def _flush_loop(self) -> None:
        busy = True
        with self._lock:
            while not self._closed:
                if not self._pending:
                    if busy:
                        # Calls start and finish faster than FLUSH_AFTER, so each start
                        # is usually appended with its completion before this thread even
                        # runs. Look again after one interval rather than parking: a
                        # parked flusher needs a notify (a thread switch) per call.
                        busy = False
                        self._wake.wait(FLUSH_AFTER)
                        continue
                    self._parked = True
                    self._wake.wait()
                    self._parked = False
                    busy = True
                    continue
                busy = True
                age = time.time() - self._pending[0][1]
                if age < FLUSH_AFTER:
                    self._wake.wait(FLUSH_AFTER - age)
                    continue
                try:
                    self.ownership.check()
                    self.store.append(
                        self.exec_id,
                        self._next_seq,
                        list(self._pending),
                        dict(self._pending_payloads),
                        owner=self.owner,
                        sync=False,
                    )
                except BaseException as exc:  # the next append retries the same events
                    self.flush_error = exc
                    self._wake.wait(FLUSH_AFTER)
                    continue
                self._next_seq += len(self._pending)
                self._pending.clear()
                self._pending_payloads.clear()

    def close(self) -> None:
        """Stop the flusher. Pending starts are dropped: their calls never finished."""
        with self._lock:
            self._closed = True
            self._wake.notify()

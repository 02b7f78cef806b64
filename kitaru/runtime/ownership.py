"""Who may run an execution: one live owner at a time, and fencing for everyone else.

Whether a lease's holder is alive is the store's decision (the SQLite store asks the
kernel: see ``journal.locks``). This module gives each claim its identity, taken when
claiming (so a forked child is itself, never its parent), renews held leases from one
heartbeat thread, and notices when a lease was lost to another process. Appends are
fenced by the store itself: an owner that lost its lease cannot record anything.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid

from kitaru.errors import KitaruLeaseLostError, KitaruStateError, KitaruUsageError
from kitaru.journal.hosts import process_started, this_host
from kitaru.journal.store import Lease, Store

__all__ = [
    "DEFAULT_LEASE_TTL",
    "LEASE_TTL_ENV",
    "Ownership",
    "claim_execution",
    "lease_ttl",
    "process_started",
    "this_host",
]

LEASE_TTL_ENV = "KITARU_LEASE_TTL"
DEFAULT_LEASE_TTL = 30.0
"""Seconds a lease held from another machine is presumed alive without a renewal."""


def lease_ttl() -> float:
    """The lease time-to-live from ``KITARU_LEASE_TTL`` (seconds), else the default."""
    raw = os.environ.get(LEASE_TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_LEASE_TTL
    try:
        ttl = float(raw)
    except ValueError:
        ttl = -1.0
    if not 0.1 <= ttl <= 86_400:
        raise KitaruUsageError(
            f"{LEASE_TTL_ENV}={raw!r} is not a lease lifetime: give seconds between 0.1 and "
            f"86400 (default {DEFAULT_LEASE_TTL:g}), or unset it."
        )
    return ttl


class _Active:
    """Executions this process owns (for a clear message when it claims one twice)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.lock = threading.Lock()


_active = _Active()


class Ownership:
    """A held lease: renewed by the heartbeat until ``release``, or until it is lost."""

    def __init__(self, store: Store, exec_id: str, owner: str, ttl: float):
        self.store = store
        self.exec_id = exec_id
        self.owner = owner
        self.ttl = ttl
        self.lost = threading.Event()
        """Set when the heartbeat found the lease taken over by another process."""
        self.renew_at = time.monotonic() + ttl / 3

    def check(self) -> None:
        """Raise ``KitaruLeaseLostError`` if this process no longer owns the execution."""
        if self.lost.is_set():
            raise self.lost_error()

    def lost_error(self) -> KitaruLeaseLostError:
        return KitaruLeaseLostError(
            f"This process lost execution {self.exec_id}: its lease was not renewed within "
            f"{self.ttl:g} s (the process was paused, or its clock jumped) and another process "
            "took the execution over, so nothing more is recorded here. Check it with "
            f"`kitaru executions get {self.exec_id}`.",
            exec_id=self.exec_id,
            owner=self.owner,
        )

    def release(self) -> None:
        """Give the execution up. Call only once no thread can record anything for it."""
        with _active.lock:
            _active.ids.discard(self.exec_id)
        _heartbeat.forget(self)
        # A lease left behind is harmless: its kernel lock dies with this process.
        with contextlib.suppress(Exception):
            self.store.release(self.exec_id, self.owner)


def running_here(exec_id: str) -> bool:
    """Whether a run in this process owns ``exec_id`` right now."""
    with _active.lock:
        return exec_id in _active.ids


def claim_execution(store: Store, exec_id: str) -> Ownership:
    """Claim ``exec_id`` for this process, or raise ``KitaruStateError`` if a live one has it."""
    ttl = lease_ttl()
    host, pid = this_host(), os.getpid()
    owner = f"{host}/{pid}/{uuid.uuid4().hex[:12]}"
    lease = Lease(
        exec_id=exec_id,
        owner=owner,
        host=host,
        pid=pid,
        pid_started=process_started(pid) or "",
        expires_at=time.time() + ttl,
    )
    with _active.lock:
        if exec_id in _active.ids:
            raise KitaruStateError(
                f"Execution {exec_id} is already running in this process. Wait for it with "
                "its FlowHandle instead of resuming it again.",
                exec_id=exec_id,
                status="running",
            )
        holder = store.claim(lease)
        if holder is not None:
            raise KitaruStateError(
                f"Execution {exec_id} is being run by {describe_holder(holder)}. "
                "Wait for it to finish, or stop that process and resume again.",
                exec_id=exec_id,
                status="running",
            )
        _active.ids.add(exec_id)
    ownership = Ownership(store, exec_id, owner, ttl)
    _heartbeat.track(ownership)
    return ownership


def describe_holder(holder: Lease) -> str:
    """Say who holds a lease, for people: "process 123 on host web-1"."""
    if not holder.owner:
        return "another process (starting it right now)"
    name = holder.host.rpartition("#")[0] or holder.host
    where = "this host" if holder.host == this_host() else f"host {name}"
    return f"process {holder.pid} on {where}"


class _Heartbeat:
    """One daemon thread per process that renews every held lease at a third of its TTL."""

    def __init__(self) -> None:
        self._held: dict[str, Ownership] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def track(self, ownership: Ownership) -> None:
        with self._wake:
            self._held[ownership.exec_id] = ownership
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="kitaru-heartbeat", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def forget(self, ownership: Ownership) -> None:
        with self._wake:
            if self._held.get(ownership.exec_id) is ownership:
                del self._held[ownership.exec_id]

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                held = list(self._held.values())
                next_due = min((o.renew_at for o in held), default=now + 1.0)
                if next_due > now:
                    self._wake.wait(next_due - now)
                    continue
            for ownership in held:
                if ownership.renew_at <= now:
                    ownership.renew_at = now + ownership.ttl / 3
                    self._renew(ownership)

    def _renew(self, ownership: Ownership) -> None:
        try:
            renewed = ownership.store.renew(
                ownership.exec_id, ownership.owner, time.time() + ownership.ttl
            )
        except Exception:  # a missed renewal is retried at the next beat
            return
        if not renewed:
            ownership.lost.set()
            self.forget(ownership)

    def reset_after_fork(self) -> None:
        # The parent's heartbeat thread does not exist in the child, and the child
        # owns none of the parent's executions.
        self._held = {}
        self._wake = threading.Condition()
        self._thread = None


_heartbeat = _Heartbeat()


def _after_fork_in_child() -> None:
    _active.__init__()  # type: ignore[misc]
    _heartbeat.reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

"""Who may run an execution: leases held by one live process at a time.

On this machine a holder is alive while its process is (process id plus start time,
so a recycled pid does not count); a holder on another machine is presumed alive
until its lease expires. A process renews its leases from one heartbeat thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from kitaru.errors import KitaruStateError
from kitaru.journal.store import Lease, Store

__all__ = ["LEASE_SECONDS", "Ownership", "claim_execution", "is_stale", "this_host"]

LEASE_SECONDS = 30.0
_HEARTBEAT_SECONDS = LEASE_SECONDS / 3


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


_HOST = f"{socket.gethostname()}#{_boot_id()}"


def this_host() -> str:
    """This machine's identity (hostname plus boot id, so a reboot is a new host)."""
    return _HOST


def process_started(pid: int) -> str | None:
    """Return a token for when ``pid`` started, "" if unknowable, None if it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        stat = ""
    if stat:
        # Split after the parenthesised command name: field 3 is the state, field 22 the
        # start time in clock ticks.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            return None  # dead, only not yet reaped by its parent: it runs nothing
        return fields[19]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""
    return ""


_SELF_STARTED = process_started(os.getpid()) or ""
_active: set[str] = set()
_active_lock = threading.RLock()  # is_stale runs inside claim_execution, under this lock


def is_stale(lease: Lease) -> bool:
    """True if the lease's holder is gone, so the execution may be taken over."""
    if lease.host != _HOST:
        return lease.expires_at < time.time()
    if lease.pid == os.getpid():
        with _active_lock:
            return lease.exec_id not in _active
    started = process_started(lease.pid)
    if started is None:
        return True
    return bool(lease.pid_started and started and started != lease.pid_started)


class Ownership:
    """A held lease; renewed by the heartbeat until ``release``."""

    def __init__(self, store: Store, exec_id: str, owner: str):
        self.store = store
        self.exec_id = exec_id
        self.owner = owner

    def release(self) -> None:
        with _active_lock:
            _active.discard(self.exec_id)
        _heartbeat.forget(self)
        # A lease left behind is harmless: it is stale as soon as this process exits.
        with contextlib.suppress(Exception):
            self.store.release(self.exec_id, self.owner)


def claim_execution(store: Store, exec_id: str) -> Ownership:
    """Claim ``exec_id`` for this process, or raise ``KitaruStateError`` if a live one has it."""
    owner = f"{_HOST}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    lease = Lease(
        exec_id=exec_id,
        owner=owner,
        host=_HOST,
        pid=os.getpid(),
        pid_started=_SELF_STARTED,
        expires_at=time.time() + LEASE_SECONDS,
    )
    with _active_lock:
        if exec_id in _active:
            raise KitaruStateError(
                f"Execution {exec_id} is already running in this process. Wait for it with "
                "its FlowHandle instead of resuming it again.",
                exec_id=exec_id,
                status="running",
            )
        holder = store.claim(lease, is_stale)
        if holder is not None:
            where = "this machine" if holder.host == _HOST else f"host {holder.host.split('#')[0]}"
            raise KitaruStateError(
                f"Execution {exec_id} is being run by process {holder.pid} on {where}. "
                "Wait for it to finish, or stop that process and resume again.",
                exec_id=exec_id,
                status="running",
            )
        _active.add(exec_id)
    ownership = Ownership(store, exec_id, owner)
    _heartbeat.track(ownership)
    return ownership


class _Heartbeat:
    """One daemon thread per process that renews every held lease."""

    def __init__(self) -> None:
        self._held: dict[str, Ownership] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def track(self, ownership: Ownership) -> None:
        with self._lock:
            self._held[ownership.exec_id] = ownership
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="kitaru-heartbeat", daemon=True
                )
                self._thread.start()

    def forget(self, ownership: Ownership) -> None:
        with self._lock:
            if self._held.get(ownership.exec_id) is ownership:
                del self._held[ownership.exec_id]

    def _run(self) -> None:
        while True:
            time.sleep(_HEARTBEAT_SECONDS)
            with self._lock:
                held = list(self._held.values())
            for ownership in held:
                try:
                    ownership.store.renew(
                        ownership.exec_id, ownership.owner, time.time() + LEASE_SECONDS
                    )
                except Exception:  # noqa: S112  (a missed renewal is retried next beat)
                    continue


_heartbeat = _Heartbeat()

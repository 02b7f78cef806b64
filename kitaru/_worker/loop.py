"""The worker loop: claim, run on a thread each, park, hand back, and stop cleanly."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from types import FrameType
from typing import Any

from kitaru._logging import get_logger
from kitaru._stores import open_store
from kitaru.errors import (
    FlowImportError,
    KitaruBackendError,
    KitaruError,
    KitaruStateError,
    KitaruUsageError,
)
from kitaru.journal.read_model import ExecutionStatus
from kitaru.journal.store import Store, WorkQueue
from kitaru.runtime.interrupts import request_stop
from kitaru.runtime.ownership import lease_ttl, this_host
from kitaru.runtime.runner import resume_execution

__all__ = ["Worker", "WorkerSettings", "run_worker"]

_log = get_logger()
_HEARTBEAT_SECONDS = 1.0
_BUSY_RETRY_SECONDS = 0.2
"""Pause before handing back an execution another live process still holds."""
_IMPORT_RETRY_FIRST = 0.5
_IMPORT_RETRY_MAX = 30.0
"""An execution whose flow this worker cannot import is left to other workers for a
while, twice as long after each failed try, up to this many seconds."""


@dataclass(frozen=True)
class WorkerSettings:
    """What ``kitaru worker`` was told: where to claim from and how much to run at once."""

    store: str | None = None
    concurrency: int = 4
    queues: tuple[str, ...] = ("default",)
    import_paths: tuple[str, ...] = ()
    grace: float = 30.0
    """Seconds a stopping worker lets running calls finish before it hands them back."""
    poll: float = 0.1
    """Seconds between fallback looks at the queue when no notification arrives."""

    def __post_init__(self) -> None:
        _check(self)  # bad settings are refused before any store is opened


def _check(settings: WorkerSettings) -> None:
    poll = settings.poll
    if isinstance(poll, bool) or not isinstance(poll, int | float) or not 0 < poll < math.inf:
        raise KitaruUsageError(f"--poll must be seconds > 0, got {poll!r}; give e.g. --poll 0.5.")
    if isinstance(settings.concurrency, bool) or settings.concurrency < 1:
        raise KitaruUsageError(
            f"--concurrency must be a whole number >= 1, got {settings.concurrency!r}."
        )
    if settings.grace < 0:
        raise KitaruUsageError(f"--grace must be seconds >= 0, got {settings.grace!r}.")
    for name in settings.queues:
        if not name or "," in name:
            raise KitaruUsageError(f"Queue name {name!r} is not valid; use a name without ','.")


class Worker:
    """One worker process's loop over one store's run queue."""

    def __init__(self, settings: WorkerSettings, store: Store):
        _check(settings)
        if not isinstance(store, WorkQueue):
            raise KitaruUsageError(
                f"`kitaru worker` needs a store that worker processes share; {store.location} "
                "has no run queue. Give it a PostgreSQL store: --store postgresql://..."
            )
        self.settings = settings
        self.store = store
        self.queue: WorkQueue = store
        self.id = f"{this_host()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.stopping = False
        """Set once by ``stop`` (also from a signal handler, so it is a plain attribute:
        an Event's own lock may be held by the very thread the handler interrupts)."""
        self._running: dict[str, threading.Thread] = {}
        self._unsettled: dict[str, str] = {}
        """Queue entries this worker could not update (the store was away): exec id to
        what is still to be done with it, retried every round."""
        self._lock = threading.Lock()
        self._next_beat = 0.0
        self._claiming = threading.Lock()
        self._stale_after = 0.0
        self._unimportable: dict[str, tuple[float, float]] = {}
        """Executions whose flow this worker could not import: exec id to (the delay
        of the last back-off, when this worker may try again)."""

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def serve(self) -> None:
        """Claim and run executions until told to stop; then drain and hand back."""
        for folder in reversed(self.settings.import_paths):
            path = os.path.abspath(folder)
            if path not in sys.path:
                sys.path.insert(0, path)
        self._stale_after = lease_ttl()
        self.queue.register_worker(
            self.id,
            this_host(),
            os.getpid(),
            self.settings.queues,
            self.settings.concurrency,
        )
        _log.info("worker started", worker=self.id, queues=",".join(self.settings.queues))
        try:
            look_now, next_look = True, 0.0
            while not self.stopping:
                self._beat()
                self._retry_unsettled()
                try:
                    if look_now or time.monotonic() >= next_look:
                        # Listen before the look (once listening, this only takes a notice
                        # already here): after a start or a reconnect, a notice sent
                        # between the look and the first wait would be lost, and the next
                        # look be a --poll away.
                        self.queue.wait_for_work(0)
                        self._claim()
                        next_look = time.monotonic() + self.settings.poll
                    # Woken by the heartbeat too: a long --poll must not let this worker
                    # look dead to the others, who would take its executions.
                    pause = max(0.0, min(next_look, self._next_beat) - time.monotonic())
                    started = time.monotonic()
                    self.queue.wait_for_work(pause)
                    # Back before its time: a notice came (or the listening connection
                    # broke; then a look costs one query). A timeout alone is no news.
                    look_now = time.monotonic() - started < pause
                except KitaruBackendError as exc:
                    # The server went away: the next round reconnects; nothing claimed is lost
                    # (a claim either committed, or the entry is still queued).
                    _log.warning("worker cannot reach the store", error=str(exc))
                    time.sleep(min(self.settings.poll, _HEARTBEAT_SECONDS))
                    look_now = True
            self._drain()
        finally:
            with contextlib.suppress(KitaruError):
                self.queue.unregister_worker(self.id)

    def _claim(self) -> None:
        """Claim what fits under the limit and start it (one claim at a time here)."""
        with self._claiming:
            if self.stopping or len(self.running()) >= self.settings.concurrency:
                return
            for exec_id in self.queue.claim_queued(
                self.id,
                self.settings.queues,
                self.settings.concurrency,
                self._stale_after,
                skip=self._backing_off(),
            ):
                self._start(exec_id)

    def _backing_off(self) -> list[str]:
        """Executions this worker leaves to others for now (it cannot import their flow)."""
        now = time.monotonic()
        with self._lock:
            # An execution not met again long after its pause ended was taken by a
            # worker that could import it: forget it, so the table does not only grow.
            for gone in [e for e, (_, until) in self._unimportable.items() if until < now - 600]:
                del self._unimportable[gone]
            return [e for e, (_, until) in self._unimportable.items() if until > now]

    def _cannot_import(self, exec_id: str, exc: FlowImportError) -> None:
        """Back off from ``exec_id`` (growing delays); say why the first time only."""
        with self._lock:
            previous = self._unimportable.get(exec_id)
            delay = (
                _IMPORT_RETRY_FIRST if previous is None else min(previous[0] * 2, _IMPORT_RETRY_MAX)
            )
            self._unimportable[exec_id] = (delay, time.monotonic() + delay)
        if previous is None:
            _log.warning(
                f"worker cannot import module {exc.module} of flow {exc.qualname}; it leaves "
                f"execution {exec_id} to workers that can and tries again later (up to every "
                f"{_IMPORT_RETRY_MAX:.0f} s). Start this worker with --import-path DIR, the "
                f"folder {exc.module} is imported from.",
                exec_id=exec_id,
                flow_module=exc.module,
                error=str(exc),
            )

    def _beat(self) -> None:
        now = time.monotonic()
        if now < self._next_beat:
            return
        self._next_beat = now + _HEARTBEAT_SECONDS
        try:
            self.queue.worker_heartbeat(self.id, self.running())
        except KitaruBackendError:
            self._next_beat = now  # try again at the next round

    def _start(self, exec_id: str) -> None:
        thread = threading.Thread(
            target=self._run_one, args=(exec_id,), name=f"kitaru-worker-{exec_id[:8]}", daemon=True
        )
        with self._lock:
            self._running[exec_id] = thread
        thread.start()

    def _run_one(self, exec_id: str) -> None:
        verdict = "requeue"
        try:
            verdict = self._drive(exec_id)
            self._settle(exec_id, verdict)
        except BaseException as exc:  # a worker thread never takes the process down
            _log.error("worker could not run execution", exec_id=exec_id, error=str(exc))
            with self._lock:
                # Whatever happened, the journal says where it stands: a resume finds out.
                self._unsettled[exec_id] = "requeue"
        finally:
            with self._lock:
                if self._running.get(exec_id) is threading.current_thread():
                    self._running.pop(exec_id, None)
        # The thread that freed a slot fills it: no notice to every worker is needed.
        with contextlib.suppress(KitaruError):
            self._claim()

    def _retry_unsettled(self) -> None:
        with self._lock:
            pending = dict(self._unsettled)
        for exec_id, verdict in pending.items():
            try:
                self._settle(exec_id, verdict)
            except KitaruError:
                return  # still away; the next round tries again
            with self._lock:
                self._unsettled.pop(exec_id, None)

    def _drive(self, exec_id: str) -> str:
        """Run the execution; return what to do with its queue entry."""
        try:
            run = resume_execution(exec_id, mode="resume", background=False, store=self.store)
        except FlowImportError as exc:
            self._cannot_import(exec_id, exc)
            return "requeue"
        except KitaruStateError as exc:
            status = getattr(exc, "status", None)
            if status in (ExecutionStatus.RUNNING, ExecutionStatus.WAITING):
                # Another live process holds it (a worker that is stopping): try later.
                time.sleep(_BUSY_RETRY_SECONDS)
                return "requeue"
            return "dequeue"  # it ended (or was never started): nothing to run
        with self._lock:
            self._unimportable.pop(exec_id, None)
        run.ctx.park_waits = True
        outcome = run.drive()
        if outcome.suspended:
            return "park"
        # Interrupted, cut off from the journal, or its lease lost: it stays resumable,
        # and the journal (not this thread's outcome) says whether it is still running.
        row = self.store.get_execution(exec_id)
        still_running = row is not None and row.status == ExecutionStatus.RUNNING
        return "requeue" if still_running else "dequeue"

    def _settle(self, exec_id: str, verdict: str) -> None:
        if verdict == "park":
            self.queue.park(exec_id, self.id)
        elif verdict == "requeue":
            self.queue.requeue(exec_id, self.id)
        else:
            self.queue.dequeue(exec_id)

    def _hand_back(self, exec_id: str) -> None:
        # On failure the entry stays claimed by this worker: free once the process ends.
        with contextlib.suppress(KitaruError):
            self.queue.requeue(exec_id, self.id)

    def stop(self) -> None:
        """Stop claiming; running executions stop at their next durable call.

        Safe in a signal handler: it takes no lock the interrupted thread may hold.
        """
        self.stopping = True
        request_stop()

    def _drain(self) -> None:
        deadline = time.monotonic() + self.settings.grace
        while True:
            with self._lock:
                threads = list(self._running.values())
            if not threads:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._beat()
            threads[0].join(min(left, _HEARTBEAT_SECONDS))
        # Calls that outlived the grace period: hand their executions back and go. The
        # leases end with the process, so another worker continues them at once.
        for exec_id in self.running():
            self._hand_back(exec_id)
        _log.warning("worker stopped with calls still running", running=",".join(self.running()))
        try:
            self.queue.unregister_worker(self.id)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)


def run_worker(settings: WorkerSettings, *, on_start: Any = None) -> None:
    """Run a worker in this process until SIGTERM or SIGINT; then drain and return."""
    store = open_store(settings.store)
    worker = Worker(settings, store)
    signals = 0

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            # Asked twice: go at once. Nothing is handed back from here: the handler runs
            # on the main thread, which may hold the worker's lock or be inside a call on
            # the store's connection, and either would hang it. Nothing is lost: the
            # claims and leases of this process end with its session, and another
            # worker takes them at its next poll.
            os._exit(0)
        worker.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
    if on_start is not None:
        on_start(worker)
    worker.serve()

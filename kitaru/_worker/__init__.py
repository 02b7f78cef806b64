"""``kitaru worker``: a process that claims queued executions and runs them.

Executions of a stack created with ``--workers`` are recorded by ``.run()`` and put in
the store's run queue. A worker claims up to ``concurrency`` of them at a time (one
transaction, ``FOR UPDATE SKIP LOCKED``) and runs each on a thread of its own through
the runtime's resume path, so a worker that takes over after another died continues
from the journal and runs no completed call again. An execution that reaches a wait
without input is parked and leaves the worker; input or a cancel posted for it makes
it runnable again, and the store's notification wakes the workers at once.

The first SIGTERM (or SIGINT) stops claiming and asks the running executions to stop
at their next durable call; calls already running finish, up to ``grace`` seconds.
What has not stopped by then is handed back to the queue and the process exits 0: its
leases die with it, so another worker continues at once.
"""

from __future__ import annotations

from kitaru._worker.loop import Worker, WorkerSettings, run_worker

__all__ = ["Worker", "WorkerSettings", "run_worker"]

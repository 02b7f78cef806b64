"""Recovering every interrupted execution of a store, without knowing their ids."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kitaru.errors import KitaruError, KitaruStateError
from kitaru.journal.read_model import ExecutionStatus
from kitaru.journal.store import Store
from kitaru.runtime.runner import resume_execution

__all__ = ["RecoveryResult", "interrupted_executions", "recover_all"]


@dataclass(frozen=True)
class RecoveryResult:
    exec_id: str
    status: str
    """What the execution ended as: completed, failed, cancelled, waiting, or ``skipped``."""
    error: str | None = None


def interrupted_executions(store: Store) -> list[str]:
    """Executions marked running whose owning process is gone (waiting ones are left)."""
    found = []
    for row in store.list_executions(status=ExecutionStatus.RUNNING):
        if store.live_lease(row.exec_id) is None:
            found.append(row.exec_id)
    return found


def recover_all(
    store: Store,
    *,
    parallel: int = 4,
    on_result: Callable[[RecoveryResult], None] | None = None,
) -> list[RecoveryResult]:
    """Resume every interrupted execution once, ``parallel`` at a time, in this process.

    An execution another process takes over first is skipped, never run twice.
    """
    results: list[RecoveryResult] = []
    lock = threading.Lock()

    def recover(exec_id: str) -> None:
        try:
            run = resume_execution(exec_id, mode="resume", background=False, store=store)
        except KitaruStateError as exc:
            result = RecoveryResult(exec_id, "skipped", str(exc))
        except KitaruError as exc:
            result = RecoveryResult(exec_id, ExecutionStatus.FAILED, str(exc))
        else:
            outcome = run.drive()
            if outcome.suspended:
                result = RecoveryResult(exec_id, ExecutionStatus.WAITING)
            elif outcome.error is not None:
                status = getattr(outcome.error, "status", None) or ExecutionStatus.FAILED
                result = RecoveryResult(exec_id, status, str(outcome.error))
            else:
                result = RecoveryResult(exec_id, ExecutionStatus.COMPLETED)
        with lock:
            results.append(result)
            if on_result is not None:
                on_result(result)

    with ThreadPoolExecutor(
        max_workers=max(1, parallel), thread_name_prefix="kitaru-recover"
    ) as pool:
        list(pool.map(recover, interrupted_executions(store)))
    return results

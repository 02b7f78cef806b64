"""``kitaru worker`` on PostgreSQL: throughput, takeover after SIGKILL, input latency.

Three figures, each printed beside what it is compared with (nothing asserts on speed):

1. executions per second of a 10-checkpoint flow with 1, 2, 4 and 8 worker processes
   (``--concurrency 1`` each) claiming from one queue, beside the same flow run one
   after another in a single process on the same database (no queue, no workers).
   The workers are paused (SIGSTOP) while the executions are queued and the clock
   starts when they are let go;
2. the time from SIGKILL of a worker inside a checkpoint to the first checkpoint
   completed by another worker on the same host, beside ``KITARU_LEASE_TTL`` (what a
   takeover would wait if liveness were the lease's expiry alone). A dead worker sends
   no notice, so the others find its executions at their fallback look at the queue
   (``WorkerSettings.poll``, ``kitaru worker --poll``);
3. the time from posting a wait's input (``executions.input``) to the flow continuing
   on a worker, beside the 100 ms target. That worker's fallback look is set far apart
   (``INPUT_POLL_S``), so only the database's notification can wake it in time.

A throwaway PostgreSQL server is started for the section (the tests' ``pg_server``
helper: ``initdb`` + ``pg_ctl`` on a unix socket) and stopped at its end.
``python -m benchmarks.workers [--quick]`` runs this section alone.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import kitaru
from benchmarks.common import REPO_ROOT, BenchmarkError, Target, child_env, median, ms

__all__ = ["section"]

WORKER_COUNTS = (1, 2, 4, 8)
STEPS = 10
INPUT_POLL_S = 30.0
"""The input-latency worker's fallback look at the queue: far beyond any figure."""


@kitaru.checkpoint
def bump(i: int) -> int:
    return i + 1


@kitaru.flow
def ten(tag: str) -> int:
    """Ten trivial checkpoints in a row."""
    total = 0
    for i in range(STEPS):
        total += bump(i)
    return total


@kitaru.checkpoint
def held(i: int, hold: str, mark: str) -> int:
    """Step 1 stays inside its body while the ``hold`` file exists."""
    if i == 1:
        pathlib.Path(mark).write_text(str(os.getpid()))
        while pathlib.Path(hold).exists():
            time.sleep(0.005)
    return i


@kitaru.flow
def takeover(hold: str, mark: str) -> int:
    return sum(held(i, hold, mark) for i in range(3))


@kitaru.checkpoint
def stamp(path: str) -> float:
    now = time.time()
    pathlib.Path(path).write_text(repr(now))
    return now


@kitaru.flow
def answered(path: str) -> float:
    kitaru.wait(name="go", timeout=None)
    return stamp(path)


def _until(check: Callable[[], object], timeout: float = 120.0, poll: float = 0.002) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(poll)
    raise BenchmarkError(f"timed out after {timeout:g} s waiting for {check}")


@contextmanager
def _server() -> Iterator[object]:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.pg_server import running_server

    with running_server() as server:
        yield server


class _Pool:
    """Worker processes on one store, killed (by pid) when the pool closes."""

    def __init__(self, url: str, logs: pathlib.Path):
        self.url = url
        self.logs = logs
        """Folder for the workers' output, kept for a look when a figure is odd."""
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, count: int, *args: str) -> None:
        from kitaru.client import KitaruClient

        for _ in range(count):
            with open(self.logs / f"worker-{os.getpid()}-{time.time_ns()}.log", "wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "kitaru",
                            "worker",
                            "--store",
                            self.url,
                            "--concurrency",
                            "1",
                            *args,
                        ],
                        cwd=REPO_ROOT,
                        env=child_env(),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        _until(lambda: len(KitaruClient(self.url).workers.list()) >= len(self.procs))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


def _stack(url: str, name: str) -> str:
    from kitaru._stacks import create_stack

    create_stack(name, store=url, workers=True, activate=False)
    return name


def _throughput(server: object, executions: int, workdir: pathlib.Path) -> list[Target]:
    from kitaru._stacks import create_stack

    url = server.fresh_database()  # type: ignore[attr-defined]
    create_stack("inproc", store=url, activate=False)
    ten.run("warm", stack="inproc")  # tables created, code warm
    t0 = time.perf_counter()
    for n in range(executions):
        ten.run(f"in{n}", stack="inproc")
    baseline = executions / (time.perf_counter() - t0)
    print(f"  in one process, one after another: {baseline:.1f} executions/s")
    targets = []
    rates = {}
    for count in WORKER_COUNTS:
        url = server.fresh_database()  # type: ignore[attr-defined]
        stack = _stack(url, f"w{count}")
        pool = _Pool(url, workdir)
        try:
            pool.start(count)
            # Paused while the executions are queued, so the figure is the workers'
            # rate, not this one process's rate of submitting.
            for proc in pool.procs:
                proc.send_signal(signal.SIGSTOP)
            handles = [ten.run(f"w{n}", stack=stack) for n in range(executions)]
            t0 = time.perf_counter()
            for proc in pool.procs:
                proc.send_signal(signal.SIGCONT)
            for handle in handles:
                if handle.wait(timeout=300) != sum(range(1, STEPS + 1)):
                    raise BenchmarkError("a worker returned a wrong result")
            rate = executions / (time.perf_counter() - t0)
        finally:
            pool.close()
        rates[count] = rate
        print(
            f"  {count} worker(s): {rate:.1f} executions/s ({rate / baseline:.2f}x one process "
            f"without workers; {rate / rates[1]:.2f}x one worker)"
        )
        targets.append(
            Target(
                f"workers: {count} x 10-checkpoint executions/s",
                f"{rate:.1f}/s",
                f"one process without workers {baseline:.1f}/s",
                f"{rate / baseline:.2f}x",
                "figure only",
                None,
            )
        )
    best = max(rates, key=lambda c: rates[c])
    print(
        f"  the curve flattens at {best} worker(s): this machine has {os.cpu_count()} cores "
        "shared by the workers, the server and this submitting process, so past that many "
        "busy processes they take turns on the CPU."
    )
    return targets


def _completions(store: Any, exec_id: str) -> int:
    from kitaru.journal.events import CallCompleted, CallStartedAndCompleted

    completions = (CallCompleted, CallStartedAndCompleted)
    return sum(isinstance(e.event, completions) for e in store.read_events(exec_id))


def _sigkill_takeover(server: object, repeats: int, workdir: pathlib.Path) -> list[Target]:
    from kitaru._stores import open_store
    from kitaru._worker import WorkerSettings
    from kitaru.runtime.ownership import lease_ttl

    samples = []
    for n in range(repeats):
        url = server.fresh_database()  # type: ignore[attr-defined]
        stack = _stack(url, f"kill{n}")
        hold, mark = workdir / f"hold{n}", workdir / f"mark{n}"
        hold.touch()
        pool = _Pool(url, workdir)
        try:
            # Both workers are up and idle before the execution is queued, as in a
            # running deployment; whichever claims it is the one killed.
            pool.start(2)
            handle = takeover.run(str(hold), str(mark), stack=stack)
            _until(lambda m=mark: m.exists() and m.read_text())
            victim = next(p for p in pool.procs if p.pid == int(mark.read_text()))
            store = open_store(url)
            before = _completions(store, handle.exec_id)
            hold.unlink()
            victim.send_signal(signal.SIGKILL)
            t0 = time.perf_counter()
            # The killed worker may not have finished step 1: the first completion
            # recorded after the kill is the other worker's.
            _until(lambda s=store, h=handle, b=before: _completions(s, h.exec_id) > b, poll=0.001)
            samples.append(time.perf_counter() - t0)
            handle.wait(timeout=60)
        finally:
            pool.close()
    figure = median(samples)
    ttl = lease_ttl()
    print(
        f"  SIGKILL to the first checkpoint completed by another worker: median {ms(figure)} "
        f"over {repeats} (the other worker finds it at its fallback look at the queue, every "
        f"{ms(WorkerSettings.poll)}; vs KITARU_LEASE_TTL {ttl:g} s, the wait without session "
        "liveness)"
    )
    return [
        Target(
            "workers: SIGKILL to next checkpoint elsewhere",
            ms(figure),
            f"lease TTL {ttl:g} s",
            f"{figure / ttl:.3f}x",
            "figure only",
            None,
        )
    ]


def _input_latency(server: object, repeats: int, workdir: pathlib.Path) -> list[Target]:
    from kitaru._worker import WorkerSettings
    from kitaru.client import KitaruClient

    url = server.fresh_database()  # type: ignore[attr-defined]
    stack = _stack(url, "input")
    pool = _Pool(url, workdir)
    samples = []
    try:
        pool.start(1, "--poll", f"{INPUT_POLL_S:g}")
        client = KitaruClient(url)
        for n in range(repeats):
            path = workdir / f"stamp{n}"
            handle = answered.run(str(path), stack=stack)
            _until(lambda h=handle: h.status == "waiting")
            _until(lambda: not any(w.running for w in client.workers.list()), poll=0.01)
            t0 = time.time()
            client.executions.input(handle.exec_id, value=None)
            continued = float(_until(lambda p=path: p.exists() and p.read_text()))  # type: ignore[arg-type]
            samples.append(continued - t0)
            handle.wait(timeout=60)
    finally:
        pool.close()
    figure = median(samples)
    poll = WorkerSettings.poll
    print(
        f"  executions input to the flow continuing on a worker: median {ms(figure)} over "
        f"{repeats} (target <= 100 ms; the worker looks at the queue only every "
        f"{INPUT_POLL_S:g} s here, so the notification woke it; its default fallback look "
        f"is every {ms(poll)})"
    )
    return [
        Target(
            "workers: input to the flow continuing",
            ms(figure),
            f"default fallback poll {ms(poll)}",
            f"{figure / poll:.2f}x",
            "<= 100 ms",
            figure <= 0.1,
        )
    ]


def section(workdir: pathlib.Path, *, quick: bool, smoke: bool = False) -> list[Target]:
    """Run the three measurements on a PostgreSQL server of their own."""
    here = pathlib.Path(tempfile.mkdtemp(prefix="workers-", dir=workdir))
    with _server() as server:
        targets = _throughput(server, 3 if smoke else 12 if quick else 40, here)
        targets += _sigkill_takeover(server, 1 if smoke else 2 if quick else 5, here)
        targets += _input_latency(server, 1 if smoke else 3 if quick else 10, here)
    return targets


if __name__ == "__main__":
    work = pathlib.Path(tempfile.mkdtemp(prefix="kitaru-bench-workers-"))
    os.environ.setdefault("KITARU_CONFIG_PATH", str(work / "config"))
    os.environ.setdefault("KITARU_STORE", str(work / "kitaru.db"))
    try:
        for target in section(work, quick="--quick" in sys.argv):
            print(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

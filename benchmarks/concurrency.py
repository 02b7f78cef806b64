"""Many processes on one journal: throughput, and recovering a crowd of crashed runs.

Two figures, printed (nothing here asserts on speed):

1. executions completed per second with 1, 2, 4 and 8 worker processes sharing one
   SQLite journal. The same total of executions (each a chain of a few checkpoints)
   is split between the workers, released at once; the rate is the total over the
   time from the first worker's start to the last one's finish.
2. the time ``kitaru executions resume --all`` takes to recover 1,000 interrupted
   executions, from the command's start to its exit. They are built by crashing:
   worker processes start executions by the hundred and ``os._exit`` once every one is
   inside a checkpoint; each repeat recovers a byte-for-byte copy of that state.

Worker command lines (used by ``measure_*``), journal in ``KITARU_STORE``::

    python -m benchmarks.concurrency --worker run GO COUNT STEPS
    python -m benchmarks.concurrency --worker crash COUNT STEPS

``python -m benchmarks.concurrency [--quick]`` runs this section alone.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import kitaru
from benchmarks.common import REPO_ROOT, WORKER_TIMEOUT_S, BenchmarkError, Target, child_env

__all__ = ["RecoveryResult", "ThroughputResult", "measure_recovery", "measure_throughput"]

PROCESS_COUNTS = (1, 2, 4, 8)
STEPS = 4
"""Checkpoints per execution."""
_DEATH = 137
_DB_SUFFIXES = ("", "-wal", "-shm")


# --------------------------------------------------------------------------- the flow

_hold_at: int | None = None
"""In a crashing worker: the step input at which every execution stops for good."""
_held = threading.Semaphore(0)


@kitaru.checkpoint
def step(i: int) -> int:
    if i == _hold_at:
        _held.release()
        threading.Event().wait()  # until the process dies
    return i + 1


@kitaru.flow
def steps(n: int) -> int:
    value = 0
    for _ in range(n):
        value = step(value).load()
    return value


# --------------------------------------------------------------------------- workers


def _worker_run(go: str, count: int, n: int) -> None:
    ready = pathlib.Path(f"{go}.ready.{os.getpid()}")
    ready.touch()
    while not os.path.exists(go):
        time.sleep(0.0005)
    started = time.time()
    for _ in range(count):
        if steps.run(n).wait() != n:
            raise SystemExit("an execution returned a wrong result")
    print(json.dumps({"started": started, "ended": time.time()}), flush=True)


def _worker_crash(count: int, n: int) -> None:
    global _hold_at  # noqa: PLW0603  (set once, before any execution starts)
    _hold_at = n - 1
    for _ in range(count):
        steps.run(n, background=True)  # held at its last step until the process dies
    for _ in range(count):
        if not _held.acquire(timeout=WORKER_TIMEOUT_S):
            raise SystemExit("the executions never reached the held step")
    os._exit(_DEATH)


# --------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class ThroughputResult:
    executions: int
    per_second: dict[int, float]
    """Processes -> executions completed per second."""


def _env(journal: pathlib.Path) -> dict[str, str]:
    return child_env(KITARU_STORE=str(journal))


def _run_workers(journal: pathlib.Path, processes: int, total: int) -> float:
    go = journal.with_name("go")
    share = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.concurrency",
                "--worker",
                "run",
                str(go),
                str(count),
                str(STEPS),
            ],
            cwd=REPO_ROOT,
            env=_env(journal),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for count in share
    ]
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while len(list(journal.parent.glob("go.ready.*"))) < processes:
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            for worker in workers:
                worker.kill()
            raise BenchmarkError("a throughput worker did not start")
        time.sleep(0.01)
    go.touch()
    spans = []
    for worker in workers:
        out, err = worker.communicate(timeout=WORKER_TIMEOUT_S)
        if worker.returncode != 0 or "locked" in err:
            raise BenchmarkError(
                f"a throughput worker failed ({worker.returncode}):\n{err[-3000:]}"
            )
        spans.append(json.loads(out.strip().splitlines()[-1]))
    return max(s["ended"] for s in spans) - min(s["started"] for s in spans)


def measure_throughput(total: int, workdir: pathlib.Path) -> ThroughputResult:
    per_second = {}
    for processes in PROCESS_COUNTS:
        folder = workdir / f"throughput-{processes}"
        folder.mkdir(parents=True)
        seconds = _run_workers(folder / "kitaru.db", processes, total)
        per_second[processes] = total / seconds
    return ThroughputResult(total, per_second)


@dataclass(frozen=True)
class RecoveryResult:
    interrupted: int
    build_s: float
    seconds: dict[int, float]
    """``--parallel`` -> wall time of ``kitaru executions resume --all``."""


def _build_interrupted(journal: pathlib.Path, count: int, batch: int) -> None:
    """Crash workers until ``count`` executions are interrupted inside a checkpoint."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    sizes = [min(batch, count - done) for done in range(0, count, batch)]
    # Four crashing workers at a time: they contend for the journal like real ones.
    for first in range(0, len(sizes), 4):
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.concurrency",
                    "--worker",
                    "crash",
                    str(size),
                    str(STEPS),
                ],
                cwd=REPO_ROOT,
                env=_env(journal),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for size in sizes[first : first + 4]
        ]
        for worker in workers:
            _, err = worker.communicate(timeout=WORKER_TIMEOUT_S)
            if worker.returncode != _DEATH:
                raise BenchmarkError(
                    f"a crashing worker exited {worker.returncode}:\n{err[-3000:]}"
                )


def _copy(source: pathlib.Path, folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True)
    for suffix in _DB_SUFFIXES:
        part = source.with_name(source.name + suffix)
        if part.exists():
            shutil.copy2(part, folder / (source.name + suffix))
    return folder / source.name


def _recover(journal: pathlib.Path, parallel: int, expected: int) -> float:
    kitaru_cli = shutil.which("kitaru")
    command = (
        [kitaru_cli]
        if kitaru_cli
        else [sys.executable, "-c", "import sys; from kitaru.cli import main; sys.exit(main())"]
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [*command, "executions", "resume", "--all", "--parallel", str(parallel), "-o", "json"],
        cwd=journal.parent,
        env=_env(journal),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchmarkError(f"resume --all exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    recovered = [r for r in json.loads(proc.stdout) if r["status"] == "completed"]
    if len(recovered) != expected:
        raise BenchmarkError(f"resume --all recovered {len(recovered)} of {expected} executions")
    return seconds


def measure_recovery(
    count: int, workdir: pathlib.Path, parallels: tuple[int, ...] = (1, 4, 8)
) -> RecoveryResult:
    built = workdir / "recovery-build" / "kitaru.db"
    t0 = time.perf_counter()
    _build_interrupted(built, count, batch=100)
    build_s = time.perf_counter() - t0
    seconds = {
        parallel: _recover(_copy(built, workdir / f"recovery-{parallel}"), parallel, count)
        for parallel in parallels
    }
    return RecoveryResult(count, build_s, seconds)


# --------------------------------------------------------------------------- report


def section(workdir: pathlib.Path, *, quick: bool, smoke: bool = False) -> list[Target]:
    """Measure and print both figures; return them for the summary table."""
    total = 8 if smoke else 80 if quick else 800
    throughput = measure_throughput(total, workdir)
    single = throughput.per_second[1]
    print(f"  {total} executions of {STEPS} checkpoints each, split between the processes:")
    for processes, rate in throughput.per_second.items():
        print(
            f"    {processes} process{'es' if processes > 1 else '  '}: "
            f"{rate:8,.0f} executions/s   ({rate / single:.2f}x one process)"
        )
    count = 8 if smoke else 100 if quick else 1000
    recovery = measure_recovery(count, workdir, (4,) if quick else (1, 4, 8))
    print(
        f"  {count} interrupted executions (built by crashing workers in "
        f"{recovery.build_s:.1f} s), recovered by `kitaru executions resume --all`:"
    )
    for parallel, seconds in recovery.seconds.items():
        print(
            f"    --parallel {parallel}: {seconds:6.2f} s   "
            f"({seconds / count * 1e3:.2f} ms per execution, command start included)"
        )
    targets = [
        Target(
            name=f"executions/s, {processes} process{'es' if processes > 1 else ''}",
            figure=f"{rate:,.0f}/s",
            baseline=f"1 process {single:,.0f}/s",
            ratio=f"{rate / single:.2f}x",
            target="",
            met=None,
        )
        for processes, rate in throughput.per_second.items()
    ]
    default = 4 if 4 in recovery.seconds else next(iter(recovery.seconds))
    targets.append(
        Target(
            name=f"resume --all of {count} interrupted",
            figure=f"{recovery.seconds[default]:.2f} s",
            baseline=f"--parallel {default}",
            ratio="",
            target="",
            met=None,
        )
    )
    return targets


def main(argv: list[str]) -> int:
    if argv[:2] == ["--worker", "run"]:
        _worker_run(argv[2], int(argv[3]), int(argv[4]))
        return 0
    if argv[:2] == ["--worker", "crash"]:
        _worker_crash(int(argv[2]), int(argv[3]))
        return 1
    quick = "--quick" in argv
    workdir = pathlib.Path(tempfile.mkdtemp(prefix=".kitaru-bench-", dir=REPO_ROOT))
    try:
        os.environ["KITARU_CONFIG_PATH"] = str(workdir / "config")
        section(workdir, quick=quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

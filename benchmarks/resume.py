"""Target 2: resuming an execution that already has ``n`` completed checkpoints.

A worker process runs a chain of ``n + 1`` steps and SIGKILLs itself inside the body
of step ``n + 1``, leaving a crashed execution whose journal holds ``n`` completed
checkpoints. Each repeat resumes a byte-for-byte copy of that crash state (database,
WAL and shared-memory files) in a fresh worker process, which imports kitaru and the
flow module first and then times from ``KitaruClient().executions.resume(id)`` until
the body of step ``n + 1`` starts: reading and folding the journal, claiming the
execution, and replaying ``n`` recorded calls through the flow body. That time divided
by the number of recorded events is the figure.

Worker command lines (used by ``measure``)::

    python -m benchmarks.resume --worker build N
    python -m benchmarks.resume --worker resume EXEC_ID N [PROFILE_PATH]

Both use the journal that ``KITARU_STORE`` names.
"""

from __future__ import annotations

import cProfile
import os
import pathlib
import pstats
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass

from benchmarks.common import (
    REPO_ROOT,
    WORKER_TIMEOUT_S,
    BenchmarkError,
    child_env,
    emit_result,
    format_profile,
    median,
    run_worker,
)

TARGET_US_PER_EVENT = 10.0
_EXEC_ID_MARKER = "EXEC_ID "
_DB_SUFFIXES = ("", "-wal", "-shm")


@dataclass(frozen=True)
class ResumeResult:
    n: int
    events: int
    """Events recorded for the execution before the resume."""
    to_live: tuple[float, ...]
    """Seconds from ``resume(id)`` to the first live call, one per repeat."""
    prepare: tuple[float, ...]
    """Seconds from ``resume(id)`` until the flow body starts (read, fold, claim)."""
    db_bytes: int
    profile: str | None = None

    @property
    def to_live_s(self) -> float:
        return median(self.to_live)

    @property
    def per_event_s(self) -> float:
        return self.to_live_s / self.events

    @property
    def prepare_s(self) -> float:
        return median(self.prepare)


def _copy_journal(source: pathlib.Path, dest_dir: pathlib.Path) -> pathlib.Path:
    dest_dir.mkdir(parents=True)
    dest = dest_dir / source.name
    for suffix in _DB_SUFFIXES:
        part = source.with_name(source.name + suffix)
        if part.exists():
            shutil.copy2(part, dest.with_name(dest.name + suffix))
    return dest


def _build(n: int, workdir: pathlib.Path) -> tuple[pathlib.Path, str]:
    """Crash a worker inside checkpoint ``n + 1``; return its journal and execution id."""
    journal = workdir / "resume-build" / "kitaru.db"
    journal.parent.mkdir(parents=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.resume", "--worker", "build", str(n)],
            cwd=REPO_ROOT,
            env=child_env(KITARU_STORE=str(journal)),
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"building the resume journal timed out after {exc.timeout}s") from exc
    ids = [
        ln.removeprefix(_EXEC_ID_MARKER)
        for ln in proc.stdout.splitlines()
        if ln.startswith(_EXEC_ID_MARKER)
    ]
    killed = proc.returncode == -getattr(signal, "SIGKILL", signal.SIGTERM) or (
        os.name == "nt" and proc.returncode != 0
    )
    if not killed or len(ids) != 1:
        raise BenchmarkError(
            f"the build worker should have killed itself inside step {n + 1}; it exited "
            f"{proc.returncode}\nstderr tail:\n{proc.stderr[-4000:]}"
        )
    return journal, ids[0]


def _count(journal: pathlib.Path, exec_id: str, n: int, scratch: pathlib.Path) -> int:
    """Events recorded for ``exec_id``, read from a copy so the crash state stays as it is."""
    copy = _copy_journal(journal, scratch)
    with closing(sqlite3.connect(copy)) as conn:
        (events,) = conn.execute(
            "SELECT count(*) FROM events WHERE exec_id = ?", (exec_id,)
        ).fetchone()
        (completed,) = conn.execute(
            "SELECT count(*) FROM events WHERE exec_id = ? "
            "AND type IN ('call_completed', 'call_started_and_completed')",
            (exec_id,),
        ).fetchone()
        (status,) = conn.execute(
            "SELECT status FROM executions WHERE exec_id = ?", (exec_id,)
        ).fetchone()
    if completed != n or status != "running":
        raise BenchmarkError(
            f"the crashed execution has {completed}/{n} completed checkpoints, status {status}"
        )
    return int(events)


def measure(n: int, repeats: int, workdir: pathlib.Path, *, profile: bool = False) -> ResumeResult:
    journal, exec_id = _build(n, workdir)
    events = _count(journal, exec_id, n, workdir / "resume-count")
    to_live, prepare = [], []
    for i in range(repeats + (1 if profile else 0)):
        copy = _copy_journal(journal, workdir / f"resume-{i}")
        profiling = profile and i == repeats
        args = [exec_id, str(n)]
        profile_path = copy.parent / "resume.pstats"
        if profiling:
            args.append(str(profile_path))
        data = run_worker(
            "benchmarks.resume",
            ["--worker", "resume", *args],
            env=child_env(KITARU_STORE=str(copy)),
        )
        if profiling:
            continue
        to_live.append(float(data["to_live_s"]))
        prepare.append(float(data["prepare_s"]))
    profile_text = None
    if profile:
        profile_text = format_profile(pstats.Stats(str(profile_path)), per=events)
    return ResumeResult(
        n=n,
        events=events,
        to_live=tuple(to_live),
        prepare=tuple(prepare),
        db_bytes=sum(
            journal.with_name(journal.name + s).stat().st_size
            for s in _DB_SUFFIXES
            if journal.with_name(journal.name + s).exists()
        ),
        profile=profile_text,
    )


# --------------------------------------------------------------------------- workers


def _worker_build(n: int) -> None:
    from benchmarks import workloads

    workloads.resume_hooks.kill_at = n
    handle = workloads.resume_chain.run(n + 1, background=True)  # its id is printed first
    print(_EXEC_ID_MARKER + handle.exec_id, flush=True)
    handle.wait()
    raise SystemExit(f"step {n + 1} should have killed this process")


def _worker_resume(exec_id: str, n: int, profile_path: str | None) -> None:
    # Imports are done before the clock starts: a resume in a worker pays them once.
    from benchmarks import workloads
    from kitaru.client import KitaruClient

    hooks = workloads.resume_hooks
    hooks.mark_at = n
    main_profiler = body_profiler = None
    if profile_path is not None:
        main_profiler, body_profiler = cProfile.Profile(), cProfile.Profile()
        workloads.profiler = body_profiler
        main_profiler.enable()
    t0 = time.perf_counter()
    handle = KitaruClient().executions.resume(exec_id, background=True)
    if main_profiler is not None:
        main_profiler.disable()
    result = handle.wait()
    if result != n + 1 or len(hooks.marks) != 1 or len(hooks.body_started) != 1:
        raise SystemExit(
            f"resume returned {result!r} after {len(hooks.body_started)} body starts and "
            f"{len(hooks.marks)} live marks"
        )
    if main_profiler is not None and body_profiler is not None and profile_path is not None:
        pstats.Stats(main_profiler).add(body_profiler).dump_stats(profile_path)
    # The body starts on its own thread while resume() returns, so "prepare" ends where
    # the body begins, not where resume() returns.
    emit_result({"prepare_s": hooks.body_started[0] - t0, "to_live_s": hooks.marks[0] - t0})


def main(argv: list[str]) -> int:
    if argv[:2] == ["--worker", "build"]:
        _worker_build(int(argv[2]))
        return 1
    if argv[:2] == ["--worker", "resume"]:
        _worker_resume(argv[2], int(argv[3]), argv[4] if len(argv) > 4 else None)
        return 0
    print("usage: python -m benchmarks.resume --worker build N | resume EXEC_ID N", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

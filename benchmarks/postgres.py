"""Checkpoint overhead on the PostgreSQL journal, beside a bare commit and DBOS.

The section starts a throwaway PostgreSQL server of its own (``tests/pg_server.py``'s
``running_server``: ``initdb`` into a temporary folder, a unix socket, ``fsync=on``) and
measures, on that one server:

- kitaru: the wall time of an ``n``-step chain (``benchmarks/workloads.py``) run with
  ``KITARU_STORE=postgresql://...``, divided by ``n``;
- the baseline: one bare durable commit (``BEGIN``, one ``INSERT`` of a completion body
  kitaru wrote, ``COMMIT`` with ``synchronous_commit=on``) into a table with the
  journal's own columns and indexes, over the same socket, through psycopg;
- for the breakdown, a bare commit of kitaru's own transaction per checkpoint: the
  fencing ``SELECT ... FOR SHARE`` of the lease row, the start and completion rows;
- DBOS on the same server (its system database there), when the ``dbos`` package (the
  ``bench`` extra) is importable by this interpreter, or by the one
  ``KITARU_BENCH_DBOS_PYTHON`` names.

kitaru and the bare commits are measured alternately, repeat after repeat.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from benchmarks.common import (
    REPO_ROOT,
    RESULT_MARKER,
    WORKER_TIMEOUT_S,
    BenchmarkError,
    Target,
    median,
    runs,
    us,
    verdict,
)

TARGET_RATIO = 1.5
"""kitaru per checkpoint over a bare durable commit, at most."""
DBOS_TARGET = 3.0
"""DBOS per step over kitaru per checkpoint, at least."""
WARMUP_STEPS = 50
DBOS_PYTHON_ENV = "KITARU_BENCH_DBOS_PYTHON"


@dataclass(frozen=True)
class PgChainResult:
    n: int
    kitaru: tuple[float, ...]
    bare: tuple[float, ...]
    bare_txn: tuple[float, ...]
    row_bytes: int
    server: str

    @property
    def ratio(self) -> float:
        return median(self.kitaru) / median(self.bare)


@contextmanager
def _server() -> Iterator[Any]:
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    try:
        from pg_server import running_server  # tests/pg_server.py
    finally:
        sys.path.pop(0)
    with running_server() as server:
        yield server


@contextmanager
def _store_env(url: str) -> Iterator[None]:
    previous = os.environ.get("KITARU_STORE")
    os.environ["KITARU_STORE"] = url
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("KITARU_STORE", None)
        else:
            os.environ["KITARU_STORE"] = previous


def _run_chain(n: int) -> float:
    from benchmarks import workloads

    t0 = time.perf_counter()
    result = workloads.chain.run(n).wait()
    elapsed = time.perf_counter() - t0
    if result != n:
        raise BenchmarkError(f"kitaru chain of {n} on PostgreSQL returned {result!r}")
    return elapsed / n


class _BareJournal:
    """A table shaped like kitaru's events table, written with plain psycopg commits."""

    def __init__(self, url: str):
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE SCHEMA bare")
        self.conn.execute("CREATE TABLE bare.events (LIKE kitaru.events INCLUDING ALL)")
        self.conn.execute(
            "CREATE TABLE bare.leases (exec_id text PRIMARY KEY, owner text NOT NULL)"
        )
        self.sync = str(self.conn.execute("SHOW synchronous_commit").fetchone()[0])  # type: ignore[index]

    def commits(self, n: int, rows: tuple[tuple[str, bytes], ...], *, fence: bool) -> float:
        """Seconds per transaction of ``n`` transactions inserting ``rows``; with
        ``fence``, each first share-locks a lease row as kitaru's append does."""
        conn = self.conn
        exec_id = str(uuid.uuid4())
        owner = "bench/1"
        conn.execute("INSERT INTO bare.leases VALUES (%s, %s)", (exec_id, owner))
        insert = (
            "INSERT INTO bare.events(exec_id, seq, type, at, body, crc) "
            "VALUES (%s, %s, %s, %s, %s, 0)"
        )
        seq = 0
        t0 = time.perf_counter()
        for _ in range(n):
            with conn.transaction():
                if fence:
                    conn.execute(
                        "SELECT owner FROM bare.leases WHERE exec_id = %s FOR SHARE", (exec_id,)
                    ).fetchone()
                for kind, body in rows:
                    seq += 1
                    conn.execute(insert, (exec_id, seq, kind, time.time(), body))
        return (time.perf_counter() - t0) / n

    def close(self) -> None:
        self.conn.close()


def _kitaru_rows(url: str) -> tuple[bytes, bytes]:
    import psycopg

    with psycopg.connect(url) as conn:
        found = {}
        for kind in ("call_completed", "call_started"):
            row = conn.execute(
                "SELECT body FROM kitaru.events WHERE type = %s ORDER BY at DESC LIMIT 1", (kind,)
            ).fetchone()
            if row is None:
                raise BenchmarkError(f"kitaru's PostgreSQL journal has no {kind} event")
            found[kind] = bytes(row[0])
    return found["call_completed"], found["call_started"]


def measure(n: int, repeats: int, url: str, server: str) -> PgChainResult:
    with _store_env(url):
        _run_chain(min(n, WARMUP_STEPS))
        _run_chain(n)
        completed, started = _kitaru_rows(url)
        bare = _BareJournal(url)
        try:
            if bare.sync != "on":
                raise BenchmarkError(f"the server's synchronous_commit is {bare.sync}, not on")
            one_row = (("call_completed", completed),)
            txn = (("call_started", started), ("call_completed", completed))
            bare.commits(min(n, WARMUP_STEPS), one_row, fence=False)
            kitaru_s, bare_s, txn_s = [], [], []
            for _ in range(repeats):
                kitaru_s.append(_run_chain(n))
                bare_s.append(bare.commits(n, one_row, fence=False))
                txn_s.append(bare.commits(n, txn, fence=True))
        finally:
            bare.close()
    return PgChainResult(
        n=n,
        kitaru=tuple(kitaru_s),
        bare=tuple(bare_s),
        bare_txn=tuple(txn_s),
        row_bytes=len(completed),
        server=server,
    )


# --------------------------------------------------------------------------- DBOS


def _dbos_python() -> str | None:
    """An interpreter that can import dbos: this one, or the one the environment names."""
    if importlib.util.find_spec("dbos") is not None:
        return sys.executable
    named = os.environ.get(DBOS_PYTHON_ENV)
    return named or None


def dbos_seconds_per_step(
    python: str, n: int, repeats: int, url: str, workdir: pathlib.Path
) -> dict[str, Any]:
    """Run the DBOS chain in a fresh interpreter against ``url``; its result line."""
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [python, str(pathlib.Path(__file__).resolve()), "--dbos", str(n), str(repeats), url],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"the DBOS worker timed out after {exc.timeout} s") from exc
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or len(lines) != 1:
        raise BenchmarkError(
            f"the DBOS worker exited {proc.returncode}; stderr tail:\n{proc.stderr[-3000:]}"
        )
    data: dict[str, Any] = json.loads(lines[0].removeprefix(RESULT_MARKER))
    return data


def _dbos_worker(n: int, repeats: int, url: str) -> dict[str, Any]:
    """DBOS's own chain of ``n`` steps with its system database on the server ``url``."""
    import importlib.metadata

    import psycopg
    from dbos import DBOS, SetWorkflowID

    @DBOS.step()
    def increment(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    def chain(start: int, steps: int) -> int:
        value = start
        for _ in range(steps):
            value = increment(value)
        return value

    # SQLAlchemy spells the driver in the scheme; the socket folder stays a query option.
    sqlalchemy_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    DBOS(config={"name": "pg-bench", "system_database_url": sqlalchemy_url, "log_level": "WARNING"})
    DBOS.launch()
    try:

        def run(steps: int) -> tuple[str, int]:
            workflow_id = f"chain-{uuid.uuid4().hex}"
            with SetWorkflowID(workflow_id):
                return workflow_id, int(chain(0, steps))

        run(min(n, WARMUP_STEPS))
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            workflow_id, result = run(n)
            samples.append((time.perf_counter() - t0) / n)
            with psycopg.connect(url) as conn:
                (rows,) = conn.execute(  # type: ignore[misc]
                    "SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = %s",
                    (workflow_id,),
                ).fetchone()
            if result != n or rows != n:
                raise BenchmarkError(f"DBOS chain returned {result}, persisted {rows}/{n} steps")
    finally:
        DBOS.destroy()
    return {"version": importlib.metadata.version("dbos"), "samples": samples}


# --------------------------------------------------------------------------- section


def section(workdir: pathlib.Path, *, quick: bool, smoke: bool = False) -> list[Target]:
    n, repeats = (20, 1) if smoke else (200, 3) if quick else (1000, 7)
    with _server() as server:
        url = server.fresh_database()
        version = server.psql("SHOW server_version").strip()
        result = measure(n, repeats, url, version)
        kitaru_s, bare_s, txn_s = (median(x) for x in (result.kitaru, result.bare, result.bare_txn))
        met = result.ratio <= TARGET_RATIO
        print(f"  PostgreSQL {version}, own server on a unix socket, fsync=on, n={n}")
        print(f"  kitaru, KITARU_STORE=postgresql://...: median {us(kitaru_s)} per checkpoint")
        print(f"      runs (µs): {runs(result.kitaru)}")
        print(
            f"  baseline, bare durable commit (BEGIN + 1 INSERT of {result.row_bytes} B + COMMIT, "
            f"synchronous_commit=on): median {us(bare_s)}"
        )
        print(f"      runs (µs): {runs(result.bare)}")
        print(f"  ratio {result.ratio:.2f}x   target <= {TARGET_RATIO:.1f}x   {verdict(met)}")
        excess = median([k - t for k, t in zip(result.kitaru, result.bare_txn, strict=True)])
        paired = sorted(k / b for k, b in zip(result.kitaru, result.bare, strict=True))
        print(
            f"      per-repeat ratios: median {median(paired):.2f}x, "
            f"range {paired[0]:.2f}x to {paired[-1]:.2f}x"
        )
        print(
            f"  breakdown: a bare commit of kitaru's transaction per checkpoint (lease row FOR "
            f"SHARE, start + completion rows) takes {us(txn_s)}; kitaru's excess over it "
            f"(median per repeat), {us(excess)}, is its Python code and the read-model update"
        )
        targets = [
            Target(
                name=f"PostgreSQL checkpoint ({n}-step chain)",
                figure=f"{us(kitaru_s)}/ckpt",
                baseline=f"bare commit {us(bare_s)}",
                ratio=f"{result.ratio:.2f}x",
                target=f"<= {TARGET_RATIO:.1f}x",
                met=met,
            )
        ]
        python = _dbos_python()
        if python is None:
            print(
                f"  dbos: not importable here (pip install -e '.[bench]', or name an "
                f"interpreter that has it in {DBOS_PYTHON_ENV}); skipped"
            )
            targets.append(Target("dbos on PostgreSQL per step", "not installed", "", "", "", None))
            return targets
        dbos = dbos_seconds_per_step(python, n, repeats, server.fresh_database(), workdir / "dbos")
        dbos_s = median(dbos["samples"])
        speedup = dbos_s / kitaru_s
        dbos_met = speedup >= DBOS_TARGET
        print(
            f"  dbos {dbos['version']} on the same server: median {us(dbos_s)} per step = "
            f"{speedup:.2f}x kitaru   target >= {DBOS_TARGET:.0f}x   {verdict(dbos_met)}"
        )
        print(f"      runs (µs): {runs(dbos['samples'])}")
        targets.append(
            Target(
                name=f"dbos {dbos['version']} on PostgreSQL per step",
                figure=us(dbos_s),
                baseline=f"kitaru {us(kitaru_s)}",
                ratio=f"{speedup:.2f}x",
                target=f">= {DBOS_TARGET:.0f}x",
                met=dbos_met,
            )
        )
        return targets


if __name__ == "__main__":
    if sys.argv[1:2] == ["--dbos"]:
        steps, times, where = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        print(RESULT_MARKER + json.dumps(_dbos_worker(steps, times, where)), flush=True)

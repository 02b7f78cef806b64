"""Checkpoint overhead on the PostgreSQL journal, beside a bare commit and DBOS.

The section starts a throwaway PostgreSQL server of its own (``tests/pg_server.py``'s
``running_server``: ``initdb`` into a temporary folder, a unix socket, ``fsync=on``) and
measures, on that one server:

- kitaru: the time an ``n``-step chain (``benchmarks/workloads.py``'s ``timed_chain``)
  run with ``KITARU_STORE=postgresql://...`` spends in its steps (timed inside the flow
  body), divided by ``n``;
- the baseline: one bare durable commit (``BEGIN``, one ``INSERT`` of a completion body
  kitaru wrote, ``COMMIT`` with ``synchronous_commit=on``) into a table with the
  journal's own columns and indexes, over the same socket, through psycopg;
- for the breakdown, a bare commit of kitaru's own transaction per checkpoint: the
  fencing ``SELECT ... FOR SHARE`` of the lease row, the start and completion rows;
- DBOS on the same server (its system database there; its chain timed inside the
  workflow body too), when the ``dbos`` package (the
  ``bench`` extra) is importable by this interpreter, or by the one
  ``KITARU_BENCH_DBOS_PYTHON`` names.

The machine is shared and its disk's flush time wanders by several times within a
minute, so no two figures are taken far apart: the run is cut into short rounds, and
each round measures every contender once (kitaru, the bare commits and DBOS, the order
turned by one each round). DBOS runs in a process of its own that stays up between its
rounds. Both summaries are printed: the ratio of the medians, and the median of the
per-round ratios; the verdict is taken on the latter, whose two sides shared a round.
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
    child_env,
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
    """Checkpoints per round."""
    kitaru: tuple[float, ...]
    bare: tuple[float, ...]
    bare_txn: tuple[float, ...]
    dbos: tuple[float, ...]
    """Seconds per step, one per round; empty when DBOS is not measured."""
    dbos_version: str
    row_bytes: int
    server: str

    @property
    def ratio(self) -> float:
        """kitaru over the bare commit: the ratio of the medians."""
        return median(self.kitaru) / median(self.bare)

    @property
    def paired(self) -> list[float]:
        """kitaru over the bare commit of the same round, sorted."""
        return sorted(k / b for k, b in zip(self.kitaru, self.bare, strict=True))

    @property
    def dbos_paired(self) -> list[float]:
        """DBOS over kitaru of the same round, sorted."""
        return sorted(d / k for d, k in zip(self.dbos, self.kitaru, strict=True))


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
    """Seconds per checkpoint of an ``n``-step chain, timed inside the flow body: the
    execution's own start and end are left out, so short rounds measure checkpoints."""
    from benchmarks import workloads

    result = workloads.timed_chain.run(n).wait()
    if result["value"] != n:
        raise BenchmarkError(f"kitaru chain of {n} on PostgreSQL returned {result!r}")
    return float(result["seconds"]) / n


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
    """The body of a completion and the body of the one row kitaru wrote for a call."""
    import psycopg

    from kitaru.journal.events import CallStartedAndCompleted, decode_event, encode_event

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT type, body FROM kitaru.events WHERE type = 'call_started_and_completed' "
            "ORDER BY at DESC LIMIT 1"
        ).fetchone()
    if row is None:
        raise BenchmarkError("kitaru's PostgreSQL journal has no call_started_and_completed event")
    call = decode_event(row[0], bytes(row[1]))
    assert isinstance(call, CallStartedAndCompleted)
    return encode_event(call.completed), bytes(row[1])


def measure(
    n: int, rounds: int, url: str, server: str, dbos: _DbosProcess | None = None
) -> PgChainResult:
    """``rounds`` rounds of ``n`` checkpoints each, every contender once per round."""
    with _store_env(url):
        _run_chain(WARMUP_STEPS)
        completed, call = _kitaru_rows(url)
        bare = _BareJournal(url)
        try:
            if bare.sync != "on":
                raise BenchmarkError(f"the server's synchronous_commit is {bare.sync}, not on")
            one_row = (("call_completed", completed),)
            txn = (("call_started_and_completed", call),)
            bare.commits(WARMUP_STEPS, one_row, fence=False)
            samples: dict[str, list[float]] = {"kitaru": [], "bare": [], "txn": [], "dbos": []}
            contenders = {
                "kitaru": lambda: _run_chain(n),
                "bare": lambda: bare.commits(n, one_row, fence=False),
                "txn": lambda: bare.commits(n, txn, fence=True),
            }
            if dbos is not None:
                contenders["dbos"] = lambda: dbos.seconds_per_step(n)
            order = list(contenders)
            for turn in range(rounds):
                # Turned by one each round: no contender always follows the same one.
                for name in order[turn % len(order) :] + order[: turn % len(order)]:
                    samples[name].append(contenders[name]())
        finally:
            bare.close()
    return PgChainResult(
        n=n,
        kitaru=tuple(samples["kitaru"]),
        bare=tuple(samples["bare"]),
        bare_txn=tuple(samples["txn"]),
        dbos=tuple(samples["dbos"]),
        dbos_version=dbos.version if dbos is not None else "",
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


class _DbosProcess:
    """DBOS in an interpreter of its own, launched once; it runs one chain per request."""

    def __init__(self, python: str, url: str, workdir: pathlib.Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(workdir / "dbos.stderr", "w+", encoding="utf-8")  # noqa: SIM115
        # Started as a script from the work folder: only PYTHONPATH (the repository put
        # first) lets it import ``benchmarks.common``, whatever folder the run began in.
        self.proc = subprocess.Popen(
            [python, str(pathlib.Path(__file__).resolve()), "--dbos", url],
            cwd=workdir,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.version = str(self._answer()["version"])

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(RESULT_MARKER):
                data: dict[str, Any] = json.loads(line.removeprefix(RESULT_MARKER))
                return data
        self._stderr.seek(0)
        raise BenchmarkError(
            f"the DBOS process exited {self.proc.wait(WORKER_TIMEOUT_S)}; stderr tail:\n"
            f"{self._stderr.read()[-3000:]}"
        )

    def seconds_per_step(self, n: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return float(self._answer()["seconds_per_step"])

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # end of input: it shuts DBOS down and exits
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            self._stderr.close()


def _dbos_worker(url: str) -> None:
    """DBOS's own chain with its system database on the server ``url``: one chain of
    ``n`` steps for each line ``n`` read from stdin, its seconds per step printed."""
    import importlib.metadata

    import psycopg
    from dbos import DBOS, SetWorkflowID

    @DBOS.step()
    def increment(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    def chain(start: int, steps: int) -> list[float]:
        # Timed inside the body, as kitaru's chain is: the steps, not the workflow's
        # own start and end.
        value = start
        t0 = time.perf_counter()
        for _ in range(steps):
            value = increment(value)
        return [value, time.perf_counter() - t0]

    def run(steps: int) -> float:
        workflow_id = f"chain-{uuid.uuid4().hex}"
        with SetWorkflowID(workflow_id):
            value, seconds = chain(0, steps)
        result, elapsed = int(value), seconds / steps
        with psycopg.connect(url) as conn:
            (rows,) = conn.execute(  # type: ignore[misc]
                "SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = %s",
                (workflow_id,),
            ).fetchone()
        if result != steps or rows != steps:
            raise BenchmarkError(f"DBOS chain returned {result}, persisted {rows}/{steps} steps")
        return elapsed

    # SQLAlchemy spells the driver in the scheme; the socket folder stays a query option.
    sqlalchemy_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    DBOS(config={"name": "pg-bench", "system_database_url": sqlalchemy_url, "log_level": "WARNING"})
    DBOS.launch()
    try:
        run(WARMUP_STEPS)
        print(
            RESULT_MARKER + json.dumps({"version": importlib.metadata.version("dbos")}), flush=True
        )
        for line in sys.stdin:
            seconds = run(int(line))
            print(RESULT_MARKER + json.dumps({"seconds_per_step": seconds}), flush=True)
    finally:
        DBOS.destroy()


# --------------------------------------------------------------------------- section


def section(workdir: pathlib.Path, *, quick: bool, smoke: bool = False) -> list[Target]:
    n, rounds = (10, 3) if smoke else (20, 12) if quick else (25, 40)
    with _server() as server:
        url = server.fresh_database()
        version = server.psql("SHOW server_version").strip()
        python = _dbos_python()
        dbos = _DbosProcess(python, server.fresh_database(), workdir / "dbos") if python else None
        try:
            result = measure(n, rounds, url, version, dbos)
        finally:
            if dbos is not None:
                dbos.close()
    kitaru_s, bare_s, txn_s = (median(x) for x in (result.kitaru, result.bare, result.bare_txn))
    paired = result.paired
    met = median(paired) <= TARGET_RATIO
    print(f"  PostgreSQL {version}, own server on a unix socket, fsync=on")
    print(f"  {rounds} rounds of {n} checkpoints; each round measures every contender once")
    print(f"  kitaru, KITARU_STORE=postgresql://...: median {us(kitaru_s)} per checkpoint")
    print(f"      rounds (µs): {runs(result.kitaru)}")
    print(
        f"  baseline, bare durable commit (BEGIN + 1 INSERT of {result.row_bytes} B + COMMIT, "
        f"synchronous_commit=on): median {us(bare_s)}"
    )
    print(f"      rounds (µs): {runs(result.bare)}")
    print(
        f"  ratio: median of per-round ratios {median(paired):.2f}x "
        f"(range {paired[0]:.2f}x to {paired[-1]:.2f}x); ratio of medians {result.ratio:.2f}x"
        f"   target <= {TARGET_RATIO:.1f}x   {verdict(met)}"
    )
    excess = median([k - t for k, t in zip(result.kitaru, result.bare_txn, strict=True)])
    print(
        f"  breakdown: a bare commit of the rows kitaru writes per checkpoint (lease row FOR "
        f"SHARE, one row holding the start and completion) takes {us(txn_s)}; kitaru's "
        f"excess over it (median per round), {us(excess)}, is its Python code and the "
        f"read-model update"
    )
    targets = [
        Target(
            name=f"PostgreSQL checkpoint ({n}-step rounds)",
            figure=f"{us(kitaru_s)}/ckpt",
            baseline=f"bare commit {us(bare_s)}",
            ratio=f"{median(paired):.2f}x",
            target=f"<= {TARGET_RATIO:.1f}x",
            met=met,
        )
    ]
    if not result.dbos:
        print(
            f"  dbos: not importable here (pip install -e '.[bench]', or name an "
            f"interpreter that has it in {DBOS_PYTHON_ENV}); skipped"
        )
        targets.append(Target("dbos on PostgreSQL per step", "not installed", "", "", "", None))
        return targets
    dbos_s = median(result.dbos)
    dbos_paired = result.dbos_paired
    speedup = median(dbos_paired)
    dbos_met = speedup >= DBOS_TARGET
    print(
        f"  dbos {result.dbos_version} on the same server: median {us(dbos_s)} per step; "
        f"kitaru is faster by a median per-round {speedup:.2f}x (range {dbos_paired[0]:.2f}x "
        f"to {dbos_paired[-1]:.2f}x), ratio of medians {dbos_s / kitaru_s:.2f}x"
        f"   target >= {DBOS_TARGET:.0f}x   {verdict(dbos_met)}"
    )
    print(f"      rounds (µs): {runs(result.dbos)}")
    targets.append(
        Target(
            name=f"dbos {result.dbos_version} on PostgreSQL per step",
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
        _dbos_worker(sys.argv[2])

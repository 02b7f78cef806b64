"""Per-step cost of the same durable workload on peer libraries (DBOS, LangGraph).

The workload mirrors the Kitaru chain benchmark so a single run can report ratios:
a durable workflow runs ``n`` trivial steps one after another (each takes an int and
returns ``int + 1``; the workflow returns the final value), persisted to a SQLite file.

Public API::

    @dataclass(frozen=True)
    class PeerResult:
        name: str                     # "dbos" or "langgraph"
        version: str                  # installed distribution version of the peer
        seconds_per_step: float       # median whole-chain wall time / n
        samples: tuple[float, ...]    # every measured whole-chain wall time, in seconds
        notes: dict[str, str]         # durability settings in effect, verification counts

    def dbos_seconds_per_step(
        n: int, workdir: pathlib.Path, repeats: int = 3
    ) -> PeerResult | None

    def langgraph_seconds_per_step(
        n: int, workdir: pathlib.Path, repeats: int = 3
    ) -> PeerResult | None

    def measure_peers(
        n: int, workdir: pathlib.Path, repeats: int = 3
    ) -> list[PeerResult]             # only the peers that are installed

Both measuring functions return None when the peer's packages are not installed, and
raise ``PeerMeasurementError`` when a measurement cannot be trusted (wrong result,
steps missing from the database, worker crash), so a broken figure is never reported.

Each measurement runs in a fresh interpreter (``python peers.py --worker PEER N DIR
REPEATS``): DBOS can launch only once per process and both peers keep global state,
so isolating them makes repeated calls safe and keeps them out of the caller's process.
Every call gets its own fresh database directory under ``workdir``, which is left in
place for inspection; the caller owns ``workdir``.

Timing covers exactly one workflow invocation per sample, with a fresh workflow id /
thread id each time so all ``n`` steps really execute and persist. One-time setup
(launching DBOS, opening the saver, schema creation) and one short unmeasured warm-up
chain are excluded; verification happens after the clock stops.

Peers run with the durability settings they ship with; the SQLite PRAGMAs read back
from the peer's own connection and the peer-level durability mode are recorded in
``notes``.

Command line: ``python benchmarks/peers.py [n]`` (default n=1000) prints both results.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import json
import pathlib
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_N = 1000
# Long enough for slow disks at n in the thousands, short enough that a hung peer
# cannot stall a whole benchmark run indefinitely.
WORKER_TIMEOUT_S = 900.0
# Marks the one stdout line the parent parses; peers may log to stdout as well.
RESULT_MARKER = "PEER_RESULT "
# A short chain run once before timing, so first-use costs (pool connections, lazy
# schema setup, import-time caches) are not billed to the first measured sample.
WARMUP_STEPS = 10
START = 0

_SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


class PeerMeasurementError(RuntimeError):
    """A peer measurement could not be completed or failed verification."""


@dataclass(frozen=True)
class PeerResult:
    name: str
    version: str
    seconds_per_step: float
    samples: tuple[float, ...]
    notes: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- parent side


def _installed(*modules: str) -> bool:
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except ModuleNotFoundError:
            # find_spec imports parent packages, so a missing parent raises instead.
            return False
    return True


def _run_worker(peer: str, n: int, workdir: pathlib.Path, repeats: int) -> PeerResult:
    if n < 1 or repeats < 1:
        raise ValueError(f"n and repeats must be >= 1, got n={n} repeats={repeats}")
    workdir.mkdir(parents=True, exist_ok=True)
    # A fresh directory per call: a database grown by earlier calls would skew timings.
    rundir = pathlib.Path(tempfile.mkdtemp(prefix=f"{peer}-", dir=workdir)).resolve()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                str(pathlib.Path(__file__).resolve()),
                "--worker",
                peer,
                str(n),
                str(rundir),
                str(repeats),
            ],
            # Peers may drop files in the working directory; keep them with the run.
            cwd=rundir,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PeerMeasurementError(f"{peer}: worker timed out after {exc.timeout}s") from exc
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or len(lines) != 1:
        raise PeerMeasurementError(
            f"{peer}: worker exited {proc.returncode} with {len(lines)} result lines\n"
            f"stderr tail:\n{proc.stderr[-4000:]}"
        )
    data = json.loads(lines[0].removeprefix(RESULT_MARKER))
    return PeerResult(
        name=data["name"],
        version=data["version"],
        seconds_per_step=float(data["seconds_per_step"]),
        samples=tuple(float(s) for s in data["samples"]),
        notes={str(k): str(v) for k, v in data["notes"].items()},
    )


def dbos_seconds_per_step(n: int, workdir: pathlib.Path, repeats: int = 3) -> PeerResult | None:
    """Median seconds per step of an n-step DBOS workflow on a SQLite system database."""
    if not _installed("dbos"):
        return None
    return _run_worker("dbos", n, workdir, repeats)


def langgraph_seconds_per_step(
    n: int, workdir: pathlib.Path, repeats: int = 3
) -> PeerResult | None:
    """Median seconds per step of an n-task LangGraph entrypoint with a SqliteSaver."""
    if not _installed("langgraph.func", "langgraph.checkpoint.sqlite"):
        return None
    return _run_worker("langgraph", n, workdir, repeats)


def measure_peers(n: int, workdir: pathlib.Path, repeats: int = 3) -> list[PeerResult]:
    """Results for every installed peer, in a stable order."""
    results = [
        dbos_seconds_per_step(n, workdir, repeats),
        langgraph_seconds_per_step(n, workdir, repeats),
    ]
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------- worker side


@contextmanager
def _read_only(path: pathlib.Path) -> Iterator[sqlite3.Connection]:
    # A separate read-only connection proves the rows reached the database file
    # rather than living only in the peer's own connection or memory.
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        yield conn


def _pragma_notes(execute: Callable[[str], Any]) -> dict[str, str]:
    sync = int(execute("PRAGMA synchronous"))
    return {
        "journal_mode": str(execute("PRAGMA journal_mode")),
        "synchronous": f"{_SYNCHRONOUS_NAMES.get(sync, '?')} ({sync})",
        "busy_timeout_ms": str(execute("PRAGMA busy_timeout")),
    }


def _worker_dbos(n: int, rundir: pathlib.Path, repeats: int) -> dict[str, Any]:
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

    db_path = rundir / "dbos.sqlite"
    DBOS(
        config={
            "name": "peer-bench",
            "system_database_url": f"sqlite:///{db_path}",
            # Console logging is not part of the workload being compared.
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:
        notes = _dbos_pragmas()

        def run(steps: int) -> tuple[str, int]:
            workflow_id = f"chain-{uuid.uuid4().hex}"
            with SetWorkflowID(workflow_id):
                result = chain(START, steps)
            return workflow_id, int(result)

        workflow_id, result = run(min(n, WARMUP_STEPS))
        _verify_dbos(db_path, workflow_id, min(n, WARMUP_STEPS), result)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            workflow_id, result = run(n)
            samples.append(time.perf_counter() - t0)
            # Verified outside the timed interval, but before the sample is trusted.
            _verify_dbos(db_path, workflow_id, n, result)
    finally:
        DBOS.destroy()
    notes["steps_persisted_per_run"] = str(n)
    notes["persistence"] = "operation_outputs row per step, workflow_status SUCCESS"
    return {
        "name": "dbos",
        "version": importlib.metadata.version("dbos"),
        "samples": samples,
        "notes": notes,
    }


def _dbos_pragmas() -> dict[str, str]:
    # Read through DBOS's own engine: synchronous and busy_timeout are per-connection,
    # so a separate connection would show SQLite defaults, not what DBOS runs with.
    # This reaches into DBOS internals, so failure only loses the notes.
    try:
        from dbos._dbos import _get_dbos_instance

        engine = _get_dbos_instance()._sys_db.engine
        with engine.connect() as conn:
            notes = _pragma_notes(lambda sql: conn.exec_driver_sql(sql).scalar())
            dbapi = conn.connection.dbapi_connection
            notes["isolation_level"] = str(getattr(dbapi, "isolation_level", "?"))
            return notes
    except Exception as exc:  # diagnostics only: losing them must not fail the run
        return {"pragmas": f"unavailable ({type(exc).__name__}: {exc})"}


def _verify_dbos(db_path: pathlib.Path, workflow_id: str, steps: int, result: int) -> None:
    if result != START + steps:
        raise PeerMeasurementError(f"dbos: result {result} != {START + steps}")
    with _read_only(db_path) as conn:
        (rows,) = conn.execute(
            "SELECT count(*) FROM operation_outputs WHERE workflow_uuid = ?", (workflow_id,)
        ).fetchone()
        status = conn.execute(
            "SELECT status FROM workflow_status WHERE workflow_uuid = ?", (workflow_id,)
        ).fetchone()
    if rows != steps or status != ("SUCCESS",):
        raise PeerMeasurementError(
            f"dbos: {workflow_id} persisted {rows}/{steps} steps, status {status}"
        )


def _worker_langgraph(n: int, rundir: pathlib.Path, repeats: int) -> dict[str, Any]:
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.func import entrypoint, task
    from langgraph.pregel import Pregel

    @task
    def increment(x: int) -> int:
        return x + 1

    db_path = rundir / "langgraph.sqlite"
    # Same connection setup SqliteSaver.from_conn_string uses; the saver serialises
    # access with its own lock, and async durability writes from a worker thread.
    conn = sqlite3.connect(str(db_path), check_same_thread=False)
    try:
        saver = SqliteSaver(conn)

        @entrypoint(checkpointer=saver)
        def chain(inputs: dict[str, int]) -> int:
            value = inputs["start"]
            for _ in range(inputs["steps"]):
                value = increment(value).result()
            return value

        def run(steps: int) -> tuple[str, int]:
            thread_id = f"chain-{uuid.uuid4().hex}"
            # No durability argument: the library default is what users get.
            result = chain.invoke(
                {"start": START, "steps": steps},
                {"configurable": {"thread_id": thread_id}},
            )
            if not isinstance(result, int):
                raise PeerMeasurementError(f"langgraph: non-int result {result!r}")
            return thread_id, result

        thread_id, result = run(min(n, WARMUP_STEPS))
        _verify_langgraph(db_path, thread_id, min(n, WARMUP_STEPS), result)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            thread_id, result = run(n)
            samples.append(time.perf_counter() - t0)
            _verify_langgraph(db_path, thread_id, n, result)
        notes = _pragma_notes(lambda sql: conn.execute(sql).fetchone()[0])
    finally:
        conn.close()
    notes["durability"] = _langgraph_default_durability(Pregel.stream)
    notes["steps_persisted_per_run"] = str(n)
    notes["persistence"] = "writes row (channel __return__) per task"
    notes["checkpoint_sqlite_version"] = importlib.metadata.version("langgraph-checkpoint-sqlite")
    return {
        "name": "langgraph",
        "version": importlib.metadata.version("langgraph"),
        "samples": samples,
        "notes": notes,
    }


def _langgraph_default_durability(stream: Callable[..., Any]) -> str:
    # The default is resolved inside Pregel.stream, not exposed as a value; its
    # docstring states it, which beats hard-coding a value that may drift.
    doc = inspect.getdoc(stream) or ""
    match = re.search(r'durability mode[^`]*defaults to `"(\w+)"`', doc)
    mode = match.group(1) if match else "unknown"
    return f"{mode} (library default, not overridden)"


def _verify_langgraph(db_path: pathlib.Path, thread_id: str, steps: int, result: int) -> None:
    if result != START + steps:
        raise PeerMeasurementError(f"langgraph: result {result} != {START + steps}")
    with _read_only(db_path) as conn:
        (rows,) = conn.execute(
            "SELECT count(*) FROM writes WHERE thread_id = ? AND channel = '__return__'",
            (thread_id,),
        ).fetchone()
        (checkpoints,) = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = ?", (thread_id,)
        ).fetchone()
    if rows != steps or checkpoints == 0:
        raise PeerMeasurementError(
            f"langgraph: {thread_id} persisted {rows}/{steps} task results, "
            f"{checkpoints} checkpoints"
        )


_WORKERS: dict[str, Callable[[int, pathlib.Path, int], dict[str, Any]]] = {
    "dbos": _worker_dbos,
    "langgraph": _worker_langgraph,
}


def _worker_main(peer: str, n: int, rundir: pathlib.Path, repeats: int) -> None:
    data = _WORKERS[peer](n, rundir, repeats)
    samples: list[float] = data["samples"]
    data["seconds_per_step"] = statistics.median(samples) / n
    data["notes"]["sqlite_library"] = sqlite3.sqlite_version
    data["notes"]["n"] = str(n)
    print(RESULT_MARKER + json.dumps(data), flush=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        peer, n, rundir, repeats = argv[1:5]
        _worker_main(peer, int(n), pathlib.Path(rundir), int(repeats))
        return 0
    steps = int(argv[0]) if argv else DEFAULT_N
    with tempfile.TemporaryDirectory(prefix="kitaru-peers-") as tmp:
        workdir = pathlib.Path(tmp)
        for name, measure in (
            ("dbos", dbos_seconds_per_step),
            ("langgraph", langgraph_seconds_per_step),
        ):
            result = measure(steps, workdir)
            if result is None:
                print(f"{name}: not installed")
                continue
            print(
                f"{result.name} {result.version}: {result.seconds_per_step * 1e6:.1f} us/step "
                f"(n={steps}, runs {', '.join(f'{s:.3f}s' for s in result.samples)})"
            )
            print("  " + json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

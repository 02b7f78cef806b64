"""Section 8: the read path. Reading an execution back, listing many, retrying one.

Three figures, each beside a baseline measured in the same worker process:

- ``KitaruClient().executions.get(id)`` of an execution with ``n`` checkpoint calls
  (target: at most 50 ms for 10,000 calls), beside the bare read of its events
  (``store.read_events``: the SQL and the decoding, nothing built from them);
- ``kitaru executions list -o json`` of ``m`` executions (each with a stored output,
  a saved artifact, a model call and a large result), run in-process through the
  command, beside the bare read of every execution's events; the statements the
  store ran are traced, and the figure is valid only if none read a payload;
- ``KitaruClient().executions.retry(id)`` of an execution whose ``n``-th and last call
  failed, from the call to the result of ``wait()`` (target: at most 10 µs per
  recorded checkpoint), each repeat in a fresh process on a copy of the journal, beside
  the bare read of that journal's events in the same process; split where the flow
  body starts (before: reading and folding the journal and claiming the execution;
  after: the body replaying the recorded calls and running the last one).

Worker command lines (used by ``section``)::

    python -m benchmarks.readpath --worker build-chain N
    python -m benchmarks.readpath --worker build-reports M
    python -m benchmarks.readpath --worker get EXEC_ID REPEATS
    python -m benchmarks.readpath --worker list REPEATS
    python -m benchmarks.readpath --worker retry EXEC_ID N

Each uses the journal that ``KITARU_STORE`` names. Beside the wall-clock figures
(which the targets are judged on), the CPU time of the worker process is printed: on a
machine shared with other work it shows what the read path itself costs.
"""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import shutil
import sys
import time
from dataclasses import dataclass

from benchmarks.common import (
    Target,
    child_env,
    emit_result,
    median,
    ms,
    run_worker,
    runs,
    us,
    verdict,
)

TARGET_GET_S = 0.050
TARGET_RETRY_US_PER_CHECKPOINT = 10.0
_DB_SUFFIXES = ("", "-wal", "-shm")


@dataclass(frozen=True)
class Sizes:
    calls: int
    """Checkpoint calls of the execution read back and retried."""
    executions: int
    """Executions listed."""
    repeats: int


FULL = Sizes(10_000, 1000, 5)
QUICK = Sizes(1000, 50, 2)
SMOKE = Sizes(50, 5, 1)


def _copy(source: pathlib.Path, dest_dir: pathlib.Path) -> pathlib.Path:
    dest_dir.mkdir(parents=True)
    dest = dest_dir / source.name
    for suffix in _DB_SUFFIXES:
        part = source.with_name(source.name + suffix)
        if part.exists():
            shutil.copy2(part, dest.with_name(dest.name + suffix))
    return dest


def _worker(args: list[str], journal: pathlib.Path) -> dict[str, object]:
    return run_worker(
        "benchmarks.readpath",
        ["--worker", *args],
        env=child_env(KITARU_STORE=str(journal), KITARU_LLM_MOCK_RESPONSE="a short summary"),
    )


def section(workdir: pathlib.Path, *, quick: bool, smoke: bool = False) -> list[Target]:
    """Print section 8 and return its summary lines."""
    sizes = SMOKE if smoke else QUICK if quick else FULL
    n, m = sizes.calls, sizes.executions
    chain_journal = workdir / "readpath-chain" / "kitaru.db"
    chain_journal.parent.mkdir(parents=True)
    built = _worker(["build-chain", str(n)], chain_journal)
    exec_id = str(built["exec_id"])
    print(
        f"  execution: {n:,} checkpoint calls, the last one failed; "
        f"{built['events']:,} recorded events"
    )

    got = _worker(["get", exec_id, str(sizes.repeats * 4)], chain_journal)
    get_s, read_s = median(got["get"]), median(got["read"])  # type: ignore[arg-type]
    get_met = get_s <= TARGET_GET_S
    print(f"  executions.get(id): median {ms(get_s)}   (runs, ms: {runs(got['get'], 1e3, 1)})")  # type: ignore[arg-type]
    print(f"  baseline, bare read of its {built['events']:,} events: median {ms(read_s)}")
    print(
        f"      CPU time (what a busy machine does not inflate): get "
        f"{ms(median(got['cpu_get']))}, bare read {ms(median(got['cpu_read']))}"  # type: ignore[arg-type]
    )
    print(
        f"      get = {get_s / read_s:.2f}x the bare read   target <= {ms(TARGET_GET_S)}   "
        f"{verdict(get_met)}"
    )
    print(
        f"      then .checkpoints on first access: median {ms(median(got['checkpoints']))}"  # type: ignore[arg-type]
    )

    reports_journal = workdir / "readpath-list" / "kitaru.db"
    reports_journal.parent.mkdir(parents=True)
    _worker(["build-reports", str(m)], reports_journal)
    listed = _worker(["list", str(sizes.repeats)], reports_journal)
    list_s, bare_s = median(listed["list"]), median(listed["read"])  # type: ignore[arg-type]
    payload_reads = int(listed["payload_reads"])  # type: ignore[call-overload]
    list_met = payload_reads == 0
    print(
        f"  executions list -o json of {m:,} executions (each with a stored output, a saved "
        f"artifact, a model call, a large result): median {ms(list_s)}"
    )
    print(f"  baseline, bare read of every execution's events: median {ms(bare_s)}")
    print(
        f"      list = {list_s / bare_s:.2f}x the bare read; payloads read: {payload_reads}   "
        f"target none   {verdict(list_met)}"
    )

    retry_s, retry_read_s, retry_cpu, retry_read_cpu, prepare_s = [], [], [], [], []
    for i in range(sizes.repeats):
        copy = _copy(chain_journal, workdir / f"readpath-retry-{i}")
        data = _worker(["retry", exec_id, str(n)], copy)
        retry_s.append(float(data["retry"]))  # type: ignore[arg-type]
        prepare_s.append(float(data["prepare"]))  # type: ignore[arg-type]
        retry_read_s.append(float(data["read"]))  # type: ignore[arg-type]
        retry_cpu.append(float(data["cpu_retry"]))  # type: ignore[arg-type]
        retry_read_cpu.append(float(data["cpu_read"]))  # type: ignore[arg-type]
    retry_med, retry_read = median(retry_s), median(retry_read_s)
    per_call = retry_med / n
    retry_met = per_call * 1e6 <= TARGET_RETRY_US_PER_CHECKPOINT
    print(
        f"  executions.retry(id) to its result: median {ms(retry_med)}   "
        f"(runs, ms: {runs(retry_s, 1e3, 1)})"
    )
    body = median([total - prepared for total, prepared in zip(retry_s, prepare_s, strict=True)])
    print(
        f"      of which until the flow body starts (read and fold the journal, claim): "
        f"median {ms(median(prepare_s))}; the body replaying {n - 1:,} calls and running "
        f"the last: median {ms(body)} ({us(body / n)} per call)"
    )
    print(f"  baseline, bare read of its events: median {ms(retry_read)}")
    print(
        f"      CPU time: retry {ms(median(retry_cpu))} "
        f"({us(median(retry_cpu) / n)} per checkpoint), bare read {ms(median(retry_read_cpu))}"
    )
    print(
        f"  per recorded checkpoint {us(per_call)}   "
        f"target <= {TARGET_RETRY_US_PER_CHECKPOINT:.0f} µs   {verdict(retry_met)}"
    )
    return [
        Target(
            name=f"get ({n:,} calls)",
            figure=ms(get_s),
            baseline=f"bare read {ms(read_s)}",
            ratio=f"{get_s / read_s:.2f}x",
            target=f"<= {ms(TARGET_GET_S)}",
            met=get_met,
        ),
        Target(
            name=f"list -o json ({m:,} executions)",
            figure=f"{ms(list_s)}, {payload_reads} payload reads",
            baseline=f"bare read {ms(bare_s)}",
            ratio=f"{list_s / bare_s:.2f}x",
            target="no payload read",
            met=list_met,
        ),
        Target(
            name=f"retry ({n:,} ckpts)",
            figure=f"{us(per_call)}/ckpt",
            baseline=f"bare read {ms(retry_read)}",
            ratio=f"{retry_med / retry_read:.2f}x",
            target=f"<= {TARGET_RETRY_US_PER_CHECKPOINT:.0f} µs",
            met=retry_met,
        ),
    ]


# --------------------------------------------------------------------------- workers


def _worker_build_chain(n: int) -> None:
    from benchmarks import readpath_workloads as workloads
    from kitaru._stores import open_store
    from kitaru.errors import KitaruUserCodeError

    workloads.FAIL_AT["input"] = n - 1  # the n-th call gets n - 1
    handle = workloads.chain.run(n)
    with contextlib.suppress(KitaruUserCodeError):
        handle.wait()
    events = open_store().read_events(handle.exec_id)
    if handle.status != "failed":
        raise SystemExit(f"the chain should have failed at its last call; it is {handle.status}")
    emit_result({"exec_id": handle.exec_id, "events": len(events)})


def _worker_build_reports(m: int) -> None:
    from benchmarks import readpath_workloads as workloads

    for i in range(m):
        workloads.report.run(f"topic {i}").wait()
    emit_result({"executions": m})


def _worker_get(exec_id: str, repeats: int) -> None:
    from kitaru._stores import open_store
    from kitaru.client import KitaruClient

    client, store = KitaruClient(), open_store()
    client.executions.get(exec_id)  # opens the connection: once per process, not measured
    gets, reads, firsts, cpu_gets, cpu_reads = [], [], [], [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        execution = client.executions.get(exec_id)
        c1, t1 = time.process_time(), time.perf_counter()
        store.read_events(exec_id)
        c2, t2 = time.process_time(), time.perf_counter()
        calls = execution.checkpoints
        t3 = time.perf_counter()
        if len(calls) < 1 or execution.status != "failed":
            raise SystemExit(f"get gave {execution.status} with {len(calls)} calls")
        gets.append(t1 - t0)
        reads.append(t2 - t1)
        firsts.append(t3 - t2)
        cpu_gets.append(c1 - c0)
        cpu_reads.append(c2 - c1)
    emit_result(
        {
            "get": gets,
            "read": reads,
            "checkpoints": firsts,
            "cpu_get": cpu_gets,
            "cpu_read": cpu_reads,
        }
    )


def _worker_list(repeats: int) -> None:
    from kitaru._stores import open_store
    from kitaru.cli import main

    store = open_store()
    statements: list[str] = []
    # Every statement the store runs on this thread's connection, which the command
    # shares (one store per journal per process).
    store._conn().set_trace_callback(statements.append)
    lists, reads = [], []
    for _ in range(repeats):
        out = io.StringIO()
        statements.clear()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out):
            main.main(["executions", "list", "-o", "json"], standalone_mode=False)
        t1 = time.perf_counter()
        payload_reads = sum("FROM payloads" in sql for sql in statements)
        for row in store.list_executions():
            store.read_events(row.exec_id)
        t2 = time.perf_counter()
        listed = json.loads(out.getvalue())
        if not listed or any(e["status"] != "completed" for e in listed):
            raise SystemExit("the listing is not what was recorded")
        lists.append(t1 - t0)
        reads.append(t2 - t1)
    emit_result({"list": lists, "read": reads, "payload_reads": payload_reads})


def _worker_retry(exec_id: str, n: int) -> None:
    from benchmarks import readpath_workloads as workloads
    from kitaru._stores import open_store
    from kitaru.client import KitaruClient

    client = KitaruClient()
    workloads.FAIL_AT["input"] = None
    c0, t0 = time.process_time(), time.perf_counter()
    result = client.executions.retry(exec_id, background=True).wait()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if result != n or len(workloads.BODY_STARTED) != 1:
        raise SystemExit(f"the retry returned {result!r}, not {n}, in one run of the body")
    prepare = workloads.BODY_STARTED[0] - t0
    # After the retry, so it did not warm anything the retry then used.
    c1, t1 = time.process_time(), time.perf_counter()
    open_store().read_events(exec_id)
    emit_result(
        {
            "retry": elapsed,
            "prepare": prepare,
            "read": time.perf_counter() - t1,
            "cpu_retry": cpu,
            "cpu_read": time.process_time() - c1,
        }
    )


def main(argv: list[str]) -> int:
    if argv[:1] != ["--worker"] or len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    kind, rest = argv[1], argv[2:]
    if kind == "build-chain":
        _worker_build_chain(int(rest[0]))
    elif kind == "build-reports":
        _worker_build_reports(int(rest[0]))
    elif kind == "get":
        _worker_get(rest[0], int(rest[1]))
    elif kind == "list":
        _worker_list(int(rest[0]))
    elif kind == "retry":
        _worker_retry(rest[0], int(rest[1]))
    else:
        print(f"unknown worker {kind!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Section 7: what argument digests and copies add to a checkpoint call.

Every checkpoint call encodes each argument once; the bytes give the digest recorded
in the journal and, decoded, the body's own copy. For each argument shape this section
prints:

- the work that adds per call, measured alone (``capture_arguments`` + ``copies``,
  exactly what a live checkpoint call runs), many times over;
- a checkpoint call with that argument, end to end in a flow (``flow.run`` to
  ``wait``, divided by the number of calls);
- beside them, the baseline: one bare durable SQLite commit (WAL, synchronous=FULL,
  ``BEGIN IMMEDIATE`` + INSERT + ``COMMIT``) in a file next to kitaru's journal,
  measured in the same run, alternately with the end-to-end figure.

Figures only: there is no target. The added cost is what the copies and digests
cost; the end-to-end figure shows it against everything else a durable call does.
"""

from __future__ import annotations

import pathlib
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from benchmarks.common import BenchmarkError, Target, median, runs, us


def _added_seconds(args: tuple[Any, ...], repeat: int) -> float:
    """Seconds per call of the work digests and copies add, alone."""
    # Imported late, like kitaru itself (see chain.py).
    from benchmarks.argument_workloads import consume
    from kitaru.runtime.arguments import ArgumentLayout, capture_arguments

    layout = ArgumentLayout(consume.func)
    t0 = time.perf_counter()
    for _ in range(repeat):
        captured = capture_arguments(layout, args, {})
        captured.resolve()
        captured.copies()
    return (time.perf_counter() - t0) / repeat


def _call_seconds(n: int, shape: str) -> float:
    from benchmarks.argument_workloads import SHAPES, calls

    t0 = time.perf_counter()
    result = calls.run(n, shape).wait()
    elapsed = time.perf_counter() - t0
    if result != n * len(SHAPES[shape]()):
        raise BenchmarkError(f"the {shape} flow returned {result!r}")
    return elapsed / n


class _BareCommits:
    def __init__(self, path: pathlib.Path):
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, exec_id TEXT, "
            "seq INTEGER, type TEXT, at REAL, body BLOB, UNIQUE(exec_id, seq))"
        )

    def seconds(self, n: int, body: bytes) -> float:
        exec_id = str(uuid.uuid4())
        t0 = time.perf_counter()
        for seq in range(1, n + 1):
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO events(exec_id, seq, type, at, body) VALUES (?, ?, ?, ?, ?)",
                (exec_id, seq, "call_completed", time.time(), body),
            )
            self.conn.execute("COMMIT")
        return (time.perf_counter() - t0) / n


@dataclass(frozen=True)
class ShapeResult:
    shape: str
    encoded_bytes: int
    added: tuple[float, ...]
    call: tuple[float, ...]
    bare: tuple[float, ...]


def measure(workdir: pathlib.Path, *, quick: bool, smoke: bool = False) -> list[ShapeResult]:
    """Added cost, call time and bare commit time for every shape; ``KITARU_STORE`` set."""
    from benchmarks.argument_workloads import SHAPES
    from kitaru.runtime.values import encode_value

    repeats = 1 if smoke else 3 if quick else 5
    bare = _BareCommits(workdir / "arguments-bare-commit.db")
    results = []
    try:
        with closing(bare.conn):
            for shape, make in SHAPES.items():
                args = make()
                small = shape.startswith("small")
                n_calls = (100 if quick else 300) if small else (10 if quick else 30)
                n_added = (2000 if quick else 20_000) if small else (5 if quick else 20)
                if smoke:
                    n_calls, n_added = min(n_calls, 10), min(n_added, 20)
                _call_seconds(max(2, n_calls // 10), shape)  # warm-up
                added, call, commits = [], [], []
                for _ in range(repeats):
                    added.append(_added_seconds(args, n_added))
                    call.append(_call_seconds(n_calls, shape))
                    commits.append(bare.seconds(n_calls, b"\x00" * 112))
                size = sum(len(encode_value(a)) for a in args)
                results.append(ShapeResult(shape, size, tuple(added), tuple(call), tuple(commits)))
    finally:
        bare.conn.close()
    return results


def section(workdir: pathlib.Path, *, quick: bool, smoke: bool = False) -> list[Target]:
    """Print section 7 and return its summary lines."""
    targets = []
    for result in measure(workdir, quick=quick, smoke=smoke):
        added, call, bare = median(result.added), median(result.call), median(result.bare)
        print(f"  {result.shape} ({result.encoded_bytes:,} B encoded):")
        print(
            f"      digest + copy per call {us(added)}   (runs, µs: {runs(result.added, 1e6, 1)})"
        )
        print(f"      checkpoint call end to end {us(call)}   (runs, µs: {runs(result.call)})")
        print(f"      baseline, bare durable commit {us(bare)}   (runs, µs: {runs(result.bare)})")
        print(
            f"      digest + copy = {added / bare:.2f}x a bare commit, "
            f"{added / call:.0%} of the call"
        )
        targets.append(
            Target(
                name=f"digest + copy, {result.shape}",
                figure=f"{us(added)}/call",
                baseline=f"bare commit {us(bare)}",
                ratio=f"{added / bare:.2f}x",
                target="",
                met=None,
            )
        )
    return targets

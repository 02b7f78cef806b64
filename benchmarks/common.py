"""Helpers shared by the benchmark sections: statistics, formatting, profiles, workers."""

from __future__ import annotations

import io
import json
import os
import pathlib
import pstats
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULT_MARKER = "BENCH_RESULT "
# Long enough for a 10,000-step journal on a slow disk, short enough that a hung worker
# cannot stall the run indefinitely.
WORKER_TIMEOUT_S = 600.0


class BenchmarkError(RuntimeError):
    """A measurement could not be completed or failed verification."""


@dataclass(frozen=True)
class Target:
    """One line of the summary: a figure, what it is compared with, and the target."""

    name: str
    figure: str
    baseline: str
    ratio: str
    target: str
    met: bool | None
    """None for figures reported for information only."""


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def runs(samples: Sequence[float], unit: float = 1e6, digits: int = 0) -> str:
    """The individual samples, for judging the spread behind a median."""
    return ", ".join(f"{s * unit:.{digits}f}" for s in samples)


def verdict(met: bool | None) -> str:
    return {True: "MET", False: "MISSED", None: "info"}[met]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a worker: ours (already isolated), able to import benchmarks."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    env.update(extra)
    return env


def run_worker(module: str, args: Sequence[str], *, env: dict[str, str]) -> dict[str, Any]:
    """Run ``python -m module args`` and return the one result line it prints."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{module} {' '.join(args)} timed out after {exc.timeout}s") from exc
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or len(lines) != 1:
        raise BenchmarkError(
            f"{module} {' '.join(args)} exited {proc.returncode} with {len(lines)} result "
            f"lines\nstderr tail:\n{proc.stderr[-4000:]}"
        )
    data: dict[str, Any] = json.loads(lines[0].removeprefix(RESULT_MARKER))
    return data


def emit_result(data: dict[str, Any]) -> None:
    """Print a worker's result line (the only stdout line the parent parses)."""
    print(RESULT_MARKER + json.dumps(data), flush=True)


def format_profile(stats: pstats.Stats, per: int, top: int = 15) -> str:
    """The functions with the most own time, in µs per ``per`` units of work.

    Own time ("tottime") adds up to the whole, so the lines read as a breakdown.
    """
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    rows = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
    out = io.StringIO()
    out.write(f"    {'own µs':>8} {'share':>6} {'calls':>6}  function (per unit of work)\n")
    for (filename, line, name), (_cc, ncalls, tottime, _ct, _callers) in rows:
        where = _short_path(filename)
        label = f"{where}:{line}({name})" if line else name
        out.write(
            f"    {tottime / per * 1e6:8.2f} {tottime / total:6.1%} {ncalls / per:6.1f}  {label}\n"
        )
    out.write(f"    {total / per * 1e6:8.2f} {'100%':>6} {'':>6}  total profiled\n")
    return out.getvalue().rstrip("\n")


def _short_path(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return filename
    path = pathlib.Path(filename)
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return "/".join(path.parts[-2:])

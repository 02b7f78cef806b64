"""Section 8: ``kitaru ui`` server time on a large store.

A worker builds one journal holding ``executions`` small executions (one checkpoint
each) and one execution of ``calls`` checkpoints, the newest, so it is on the first
executions page. Each page is then served by a fresh ``kitaru ui`` on 127.0.0.1: its
first answer is the cold view (nothing read before in that process), and the page is
requested several times more for the warm median. The figures are the server's own
time for the answer (its ``Server-Timing`` header).

The baseline is what folding the large execution's journal costs (``executions.get``
and its calls, tokens and cost): what a listing paid for that row before the
executions table kept each execution's totals.

Targets: the executions page of a 10,000-execution store and the detail page of a
10,000-call execution, each at most 300 ms, first view and warm alike.

Worker command line::

    python -m benchmarks.ui --worker build EXECUTIONS CALLS

It uses the journal that ``KITARU_STORE`` names.
"""

from __future__ import annotations

import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from benchmarks.common import (
    REPO_ROOT,
    BenchmarkError,
    Target,
    child_env,
    emit_result,
    median,
    ms,
    run_worker,
    verdict,
)

TARGET_S = 0.300
REPEATS = 7


@dataclass(frozen=True)
class PageTiming:
    name: str
    first: float
    repeats: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return median(self.repeats)


def _build(executions: int, calls: int) -> None:
    from kitaru import checkpoint, flow

    @checkpoint
    def step(i: int) -> int:
        return i + 1

    @flow
    def small(i: int) -> int:
        return step(i).load()

    @flow
    def large(n: int) -> int:
        return sum(step(i).load() for i in range(n))

    for i in range(executions):
        small.run(i)
    big = large.run(calls)
    emit_result({"large": big.exec_id, "fold_s": _fold_seconds(big.exec_id)})


def _fold_seconds(exec_id: str) -> float:
    """Median time to fold the execution's journal into its calls, tokens and cost."""
    from kitaru.client import CostTotal, KitaruClient

    samples = []
    for _ in range(3):
        client = KitaruClient()
        t0 = time.perf_counter()
        execution = client.executions.get(exec_id)
        calls = len(execution.checkpoints)
        tokens = sum(c.total_tokens or 0 for c in execution.llm_calls)
        cost = CostTotal.of(execution.llm_calls)
        samples.append(time.perf_counter() - t0)
        if calls == 0 or tokens < 0 or cost.unpriced_requests < 0:
            raise BenchmarkError(f"the fold of {exec_id} found no calls")
    return median(samples)


def _server_ms(base: str, token: str, path: str) -> float:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=120) as response:  # loopback only
        response.read()
        timing = response.headers.get("server-timing", "")
    found = re.search(r"dur=([0-9.]+)", timing)
    if response.status != 200 or found is None:
        raise BenchmarkError(f"GET {path} answered {response.status} ({timing!r})")
    return float(found.group(1)) / 1e3


class _Server:
    """A ``kitaru ui`` process on the store, on a free loopback port."""

    def __init__(self, store: pathlib.Path):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kitaru",
                "ui",
                "--store",
                str(store),
                "--port",
                "0",
                "--no-open",
            ],
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "token=" not in line:
            self.stop()
            raise BenchmarkError(f"kitaru ui printed {line!r}")
        url = line.split(": ", 1)[1].strip()
        self.base, self.token = url.split("/?token=")

    def server_s(self, path: str) -> float:
        return _server_ms(self.base, self.token, path)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def measure(
    executions: int, calls: int, workdir: pathlib.Path
) -> tuple[list[PageTiming], float, float]:
    """Page timings, the build time and the baseline (one fold of the large journal)."""
    store = workdir / "ui" / "kitaru.db"
    store.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    built = run_worker(
        "benchmarks.ui",
        ["--worker", "build", str(executions), str(calls)],
        env=child_env(KITARU_STORE=str(store)),
    )
    build_s = time.perf_counter() - t0
    large = built["large"]
    timings = []
    for name, path in (
        ("executions page", "/"),
        ("executions page 2", "/?page=2"),
        ("execution detail", f"/executions/{large}"),
        ("execution detail, a middle calls page", f"/executions/{large}?calls={calls // 400}"),
        ("execution detail with a call open", f"/executions/{large}?call=step_{calls // 2}"),
    ):
        # A fresh server for each page: its first answer is a cold view.
        server = _Server(store)
        try:
            first = server.server_s(path)
            repeats = tuple(server.server_s(path) for _ in range(REPEATS))
        finally:
            server.stop()
        timings.append(PageTiming(name, first, repeats))
    return timings, build_s, float(built["fold_s"])


def section(workdir: pathlib.Path, *, quick: bool, smoke: bool = False) -> list[Target]:
    """Measure and print the page times; return the targets for the summary."""
    executions, calls = (60, 400) if smoke else (1000, 1000) if quick else (10_000, 10_000)
    timings, build_s, fold_s = measure(executions, calls, workdir)
    print(
        f"  store: {executions:,} one-checkpoint executions and one of {calls:,} checkpoints "
        f"(built in {build_s:.1f} s); server time per page (Server-Timing): the first "
        f"view from a fresh server, and the median of {REPEATS} views after it:"
    )
    for t in timings:
        print(f"    {t.name:<38} first {ms(t.first):>10}   median {ms(t.median_s):>10}")
    print(
        f"  baseline: folding the {calls:,}-call journal (what a listing read for that row "
        f"before the executions table kept totals): {ms(fold_s)}"
    )
    targets = []
    for t in timings:
        if t.name not in ("executions page", "execution detail"):
            continue
        size = f"{executions:,} executions" if t.name == "executions page" else f"{calls:,} calls"
        for view, seconds in (("first view", t.first), ("warm median", t.median_s)):
            met = seconds <= TARGET_S
            print(
                f"  {t.name} ({size}), {view}: {ms(seconds)}   baseline fold {ms(fold_s)}   "
                f"target <= 300 ms   {verdict(met)}"
            )
            targets.append(
                Target(
                    name=f"ui {t.name} ({size}), {view}",
                    figure=ms(seconds),
                    baseline=f"fold {ms(fold_s)}",
                    ratio=f"{seconds / fold_s:.2f}x",
                    target="<= 300 ms",
                    met=met,
                )
            )
    return targets


if __name__ == "__main__":
    if sys.argv[1:3] == ["--worker", "build"]:
        _build(int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit("usage: python -m benchmarks.ui --worker build EXECUTIONS CALLS")

"""Section 8: ``kitaru ui`` server time on a large store.

A worker builds one journal holding ``executions`` small executions (one checkpoint
each) and one execution of ``calls`` checkpoints. A real ``kitaru ui`` then serves it on
127.0.0.1, and each page is requested several times over HTTP; the figure is the
server's own time for the answer (its ``Server-Timing`` header), median of the repeats.
The first request of each page is printed apart: it reads what later ones find kept
(the executions on the page, the large execution's snapshot).

Targets: the executions page of a 10,000-execution store and the detail page of a
10,000-call execution, each at most 300 ms.

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
    emit_result({"large": big.exec_id})


def _server_ms(base: str, token: str, path: str) -> float:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=120) as response:  # loopback only
        response.read()
        timing = response.headers.get("server-timing", "")
    found = re.search(r"dur=([0-9.]+)", timing)
    if response.status != 200 or found is None:
        raise BenchmarkError(f"GET {path} answered {response.status} ({timing!r})")
    return float(found.group(1)) / 1e3


def measure(executions: int, calls: int, workdir: pathlib.Path) -> tuple[list[PageTiming], float]:
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "ui", "--store", str(store), "--port", "0", "--no-open"],
        cwd=REPO_ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "token=" not in line:
            raise BenchmarkError(f"kitaru ui printed {line!r}: {proc.stderr.read()[-2000:]}")
        url = line.split(": ", 1)[1].strip()
        base, token = url.split("/?token=")
        timings = []
        for name, path in (
            ("executions page", "/"),
            ("executions page 2", "/?page=2"),
            ("execution detail", f"/executions/{large}"),
            ("execution detail, a middle calls page", f"/executions/{large}?calls={calls // 400}"),
            ("execution detail with a call open", f"/executions/{large}?call=step_{calls // 2}"),
        ):
            first = _server_ms(base, token, path)
            repeats = tuple(_server_ms(base, token, path) for _ in range(REPEATS))
            timings.append(PageTiming(name, first, repeats))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    return timings, build_s


def section(workdir: pathlib.Path, *, quick: bool) -> list[Target]:
    """Measure and print the page times; return the two targets for the summary."""
    executions, calls = (1000, 1000) if quick else (10_000, 10_000)
    timings, build_s = measure(executions, calls, workdir)
    print(
        f"  store: {executions:,} one-checkpoint executions and one of {calls:,} checkpoints "
        f"(built in {build_s:.1f} s); server time per page (Server-Timing), "
        f"median of {REPEATS} after a first request:"
    )
    for t in timings:
        print(f"    {t.name:<36} median {ms(t.median_s):>10}   first {ms(t.first):>10}")
    targets = []
    for t in timings:
        if t.name not in ("executions page", "execution detail"):
            continue
        met = t.median_s <= TARGET_S
        size = f"{executions:,} executions" if t.name == "executions page" else f"{calls:,} calls"
        print(f"  {t.name} ({size}): {ms(t.median_s)}   target <= 300 ms   {verdict(met)}")
        targets.append(
            Target(
                name=f"ui {t.name} ({size})",
                figure=ms(t.median_s),
                baseline=f"first request {ms(t.first)}",
                ratio="",
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

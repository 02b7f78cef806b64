"""Target 4: what ``import kitaru`` costs a fresh interpreter.

The figure is the median wall time of ``python -c "import kitaru"`` minus the median
of ``python -c "pass"`` (interpreter start-up, site imports), the two run alternately.
``-X importtime`` then names the packages the import pulls in, with their own time
and the kitaru module that first brought them in. A separate interpreter checks that
no provider SDK (``openai``, ``anthropic``) is loaded by ``import kitaru`` alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

from benchmarks.common import BenchmarkError, child_env, median

TARGET_S = 0.150
HEAVY_MODULES = ("openai", "anthropic")


@dataclass(frozen=True)
class Offender:
    package: str
    self_s: float
    """Own import time of every module of the package that ``import kitaru`` loads."""
    modules: int
    via: str
    """The kitaru module whose import first loaded the package."""


@dataclass(frozen=True)
class ImportResult:
    runs: int
    kitaru: tuple[float, ...]
    bare: tuple[float, ...]
    offenders: tuple[Offender, ...]
    kitaru_self_s: float
    """Own import time of kitaru's own modules."""
    kitaru_heaviest: tuple[tuple[str, float], ...]
    """kitaru's modules with the most own import time, heaviest first."""
    heavy_loaded: tuple[str, ...]

    @property
    def import_s(self) -> float:
        return median(self.kitaru) - median(self.bare)


def _python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *flags, "-c", code],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchmarkError(f"python -c {code!r} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc


def _wall(code: str) -> float:
    t0 = time.perf_counter()
    _python(code)
    return time.perf_counter() - t0


def _importtime(code: str) -> list[tuple[int, str, float]]:
    """(depth, module, own seconds) for each line of ``-X importtime``, in print order."""
    rows = []
    for line in _python(code, "-X", "importtime").stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        # "import time:   410 |   5226 |   msgspec._core": one space after the bar, then
        # two per nesting level.
        head, _cumulative, name = line.split("|")
        own_us = int(head.removeprefix("import time:").strip())
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((depth, name.strip(), own_us / 1e6))
    return rows


def _offenders() -> tuple[tuple[Offender, ...], list[tuple[str, float]]]:
    baseline = {name for _, name, _ in _importtime("pass")}
    rows = _importtime("import kitaru")
    # importtime prints a module after everything it imported, one level deeper; walking
    # backwards, the latest shallower line is therefore the importer.
    importer: dict[str, str | None] = {}
    latest: dict[int, str] = {}
    for depth, name, _ in reversed(rows):
        importer[name] = latest.get(depth - 1)
        latest[depth] = name

    def via(name: str) -> str:
        seen = name
        while True:
            parent = importer.get(seen)
            if parent is None:
                return "(top level)"
            if parent.split(".")[0] == "kitaru" or parent.startswith("__editable__"):
                return parent
            seen = parent

    own: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    first: dict[str, str] = {}
    kitaru_own: list[tuple[str, float]] = []
    for _, name, seconds in rows:
        if name in baseline:
            continue
        package = name.split(".")[0]
        if package == "kitaru" or package.startswith("__editable__"):
            kitaru_own.append((name, seconds))
            continue
        own[package] += seconds
        count[package] += 1
        first.setdefault(package, name)
    offenders = sorted(
        (Offender(p, own[p], count[p], via(first[p])) for p in own),
        key=lambda o: o.self_s,
        reverse=True,
    )
    return tuple(offenders), sorted(kitaru_own, key=lambda item: item[1], reverse=True)


def measure(runs: int) -> ImportResult:
    _wall("import kitaru")  # unmeasured: fills the OS file cache, writes bytecode
    kitaru, bare = [], []
    for _ in range(runs):
        kitaru.append(_wall("import kitaru"))
        bare.append(_wall("pass"))
    offenders, kitaru_own = _offenders()
    probe = _python(
        "import json, sys, kitaru; "
        f"print(json.dumps([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]))"
    )
    heavy = tuple(json.loads(probe.stdout.strip().splitlines()[-1]))
    return ImportResult(
        runs=runs,
        kitaru=tuple(kitaru),
        bare=tuple(bare),
        offenders=offenders,
        kitaru_self_s=sum(seconds for _, seconds in kitaru_own),
        kitaru_heaviest=tuple(kitaru_own[:5]),
        heavy_loaded=heavy,
    )

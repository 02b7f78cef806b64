"""Target 4: what starting kitaru costs a fresh interpreter.

Four commands run alternately, each in a fresh interpreter, several rounds:
``python -c "pass"`` (interpreter start-up, site imports: the baseline),
``python -c "import kitaru"``, ``python -m kitaru --help`` and
``python -m kitaru model list``. Each figure is a median, printed as a ratio to the
baseline's median from the same rounds (targets: import at most 5x, the two commands
at most 8x), and the import also as the time it adds over the baseline.
``-X importtime`` then names the packages the import pulls in, with their own time
and the kitaru module that first brought them in. A separate interpreter checks that
``import kitaru`` alone loads no provider SDK (``openai``, ``anthropic``) and none of
the modules kept for first use (structlog, asyncio, sqlite3).
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
DEFERRED_MODULES = ("structlog", "asyncio", "sqlite3")
"""Loaded on first use (a logged event, an opened store), never by ``import kitaru``."""


@dataclass(frozen=True)
class Startup:
    """One command timed from a fresh interpreter, against ``python -c pass``."""

    label: str
    argv: tuple[str, ...]
    """Arguments after the interpreter."""
    target_ratio: float


@dataclass(frozen=True)
class Offender:
    package: str
    self_s: float
    """Own import time of every module of the package that ``import kitaru`` loads."""
    modules: int
    via: str
    """The kitaru module whose import first loaded the package."""


IMPORT = Startup("python -c 'import kitaru'", ("-c", "import kitaru"), 5.0)
HELP = Startup("kitaru --help", ("-m", "kitaru", "--help"), 8.0)
MODEL_LIST = Startup("kitaru model list", ("-m", "kitaru", "model", "list"), 8.0)
BARE: tuple[str, ...] = ("-c", "pass")


@dataclass(frozen=True)
class ImportResult:
    runs: int
    kitaru: tuple[float, ...]
    bare: tuple[float, ...]
    commands: tuple[tuple[Startup, tuple[float, ...]], ...]
    """The kitaru commands (import included) and their wall times, same rounds as bare."""
    offenders: tuple[Offender, ...]
    kitaru_self_s: float
    """Own import time of kitaru's own modules."""
    kitaru_heaviest: tuple[tuple[str, float], ...]
    """kitaru's modules with the most own import time, heaviest first."""
    heavy_loaded: tuple[str, ...]
    deferred_loaded: tuple[str, ...]

    @property
    def import_s(self) -> float:
        return median(self.kitaru) - median(self.bare)

    def ratio(self, samples: tuple[float, ...]) -> float:
        return median(samples) / median(self.bare)


def _python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return _interpreter(*flags, "-c", code)


def _interpreter(*argv: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *argv],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        shown = " ".join(argv)
        raise BenchmarkError(f"python {shown} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc


def _wall(argv: tuple[str, ...]) -> float:
    t0 = time.perf_counter()
    _interpreter(*argv)
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


def _loaded(modules: tuple[str, ...]) -> tuple[str, ...]:
    """Which of ``modules`` a fresh ``import kitaru`` has put in ``sys.modules``."""
    probe = _python(
        "import json, sys, kitaru; "
        f"print(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    )
    return tuple(json.loads(probe.stdout.strip().splitlines()[-1]))


def measure(runs: int) -> ImportResult:
    commands = (IMPORT, HELP, MODEL_LIST)
    for command in commands:
        _wall(command.argv)  # unmeasured: fills the OS file cache, writes bytecode
    bare: list[float] = []
    walls: dict[Startup, list[float]] = {command: [] for command in commands}
    # Alternating rounds: load on the shared machine drifts, and drift then shows in
    # every figure of a round alike instead of in one command's.
    for _ in range(runs):
        bare.append(_wall(BARE))
        for command in commands:
            walls[command].append(_wall(command.argv))
    offenders, kitaru_own = _offenders()
    return ImportResult(
        runs=runs,
        kitaru=tuple(walls[IMPORT]),
        bare=tuple(bare),
        commands=tuple((command, tuple(walls[command])) for command in commands),
        offenders=offenders,
        kitaru_self_s=sum(seconds for _, seconds in kitaru_own),
        kitaru_heaviest=tuple(kitaru_own[:5]),
        heavy_loaded=_loaded(HEAVY_MODULES),
        deferred_loaded=_loaded(DEFERRED_MODULES),
    )

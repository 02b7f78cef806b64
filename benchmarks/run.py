"""Benchmarks of kitaru's durable core: ``python -m benchmarks [--quick]``.

Sections, each printed next to the baseline it is compared with, measured in the
same run on the same disk:

1. overhead per checkpoint of a chain of trivial checkpoints, against one bare
   durable SQLite commit (target: at most 1.5x);
2. resume of an execution with many completed checkpoints, per recorded event
   (target: at most 10 µs);
3. the same chain on DBOS and LangGraph (``benchmarks/peers.py``), as ratios to
   kitaru's per-step time (skipped with a note when they are not installed);
4. ``import kitaru``, ``kitaru --help`` and ``kitaru model list`` against bare
   interpreter start-up (targets: at most 5x, 8x and 8x; the import also under 150 ms
   over it), the import's heaviest modules, and a check that it loads no provider SDK
   and none of the modules kept for first use;
5. ``kitaru.llm()`` (``benchmarks/llm.py``): bytes stored for a growing conversation
   against its unique messages (target: at most 1.2x), and the time a call adds over
   the bare ``openai`` SDK against a local server;
6. executions per second with 1, 2, 4 and 8 processes on one journal, and the time
   ``kitaru executions resume --all`` takes to recover 1,000 crashed executions
   (``benchmarks/concurrency.py``; figures only);
7. what argument digests and copies add per checkpoint call, for small and for 1 MB
   arguments, beside a bare durable commit (``benchmarks/arguments.py``; figures only);
8. the read path (``benchmarks/readpath.py``): ``executions.get`` of a 10,000-call
   execution (target: at most 50 ms), ``executions list -o json`` of 1,000 executions
   (target: no payload read), and ``executions.retry`` of a 10,000-checkpoint execution
   whose last call failed, per recorded checkpoint (target: at most 10 µs), each beside
   the bare read of the events.
9. ``kitaru ui`` server time for the executions page of a 10,000-execution store and
   the detail of a 10,000-call execution (``benchmarks/ui.py``; target: at most 300 ms).
10. the chain on the PostgreSQL journal, on a server the section starts itself, against a
   bare durable PostgreSQL commit (target: at most 1.5x) and DBOS on the same server
   (target: kitaru at least 3x faster) (``benchmarks/postgres.py``).
11. ``kitaru worker`` on PostgreSQL (``benchmarks/workers.py``): executions per second
   of a 10-checkpoint flow with 1, 2, 4 and 8 workers, SIGKILL of a worker to the first
   checkpoint completed by another, and ``executions input`` to the flow continuing
   (target: at most 100 ms).
12. an async 1,000-step chain (``await async_step(value)``) beside the sync chain and a
   bare durable commit, measured alternately (``benchmarks/async_chain.py``; target: at
   most 10% over sync per checkpoint).

Nothing here asserts on speed: figures are printed, with MET / MISSED beside each
target, then a summary table. The exit code is non-zero only if a measurement could
not be made or failed verification.

Everything runs in a fresh temporary directory (``--workdir`` picks its parent; the
default is the repository's own folder, so the journal sits on the same disk a
project's would): ``KITARU_STORE`` and ``KITARU_CONFIG_PATH`` point into it, so the
user's config and journal are never touched. It is removed at the end (``--keep``
leaves it for inspection).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import shutil
import sqlite3
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import (
    arguments,
    async_chain,
    chain,
    concurrency,
    imports,
    llm,
    peers,
    postgres,
    readpath,
    resume,
    ui,
    workers,
)
from benchmarks.common import REPO_ROOT, BenchmarkError, Target, median, ms, runs, us, verdict

SECTIONS = (
    "chain",
    "resume",
    "peers",
    "imports",
    "llm",
    "concurrency",
    "arguments",
    "readpath",
    "ui",
    "postgres",
    "workers",
    "async",
)
TITLES = {
    "chain": "1. Checkpoint overhead: chain of trivial checkpoints vs a bare durable commit",
    "resume": "2. Resume: time to the first live call, per recorded event",
    "peers": "3. Peers: the same chain on DBOS and LangGraph",
    "imports": "4. import kitaru and the kitaru command: start-up vs python -c pass",
    "llm": "5. kitaru.llm(): storage of a growing conversation, time added per call",
    "concurrency": "6. Concurrency: processes sharing one journal, and resume --all",
    "arguments": "7. Arguments: digest and copy per checkpoint call, small and 1 MB",
    "readpath": "8. Read path: get, list -o json and retry of large executions",
    "ui": "9. kitaru ui: server time of the executions page and a 10,000-call execution",
    "postgres": "10. PostgreSQL journal: checkpoint overhead vs a bare commit and DBOS",
    "workers": "11. kitaru worker on PostgreSQL: throughput, takeover after SIGKILL, input latency",
    "async": "12. Async chain: await async_step(value) vs the sync chain and a bare commit",
}


@dataclass(frozen=True)
class Counts:
    chain_steps: int
    chain_repeats: int
    resume_steps: int
    resume_repeats: int
    peer_steps: int
    peer_repeats: int
    import_runs: int


FULL = Counts(1000, 9, 10_000, 5, 1000, 3, 20)
QUICK = Counts(200, 3, 1000, 2, 200, 1, 5)
SMOKE = Counts(30, 1, 100, 1, 30, 1, 2)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of kitaru's durable core; prints figures beside their baselines.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts for a smoke run (well under a minute)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the least work that runs every section's code (the test suite's check; "
        "its figures mean nothing)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable; peers also runs chain, for its ratios)",
    )
    for name, meaning in (
        ("chain-steps", "checkpoints per chain execution (section 1)"),
        ("chain-repeats", "timed chain executions (section 1)"),
        ("resume-steps", "completed checkpoints in the resumed execution (section 2)"),
        ("resume-repeats", "timed resumes (section 2)"),
        ("peer-steps", "steps per peer workflow (section 3)"),
        ("peer-repeats", "timed workflows per peer (section 3)"),
        ("import-runs", "interpreters per import measurement (section 4)"),
    ):
        parser.add_argument(f"--{name}", type=int, metavar="N", help=meaning)
    parser.add_argument(
        "--workdir",
        type=pathlib.Path,
        help="parent of the temporary directory (default: the repository's folder)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile breakdown (own µs per checkpoint / per event)",
    )
    args = parser.parse_args(argv)
    args.quick = args.quick or args.smoke
    defaults = SMOKE if args.smoke else QUICK if args.quick else FULL
    counts = Counts(
        **{
            name: getattr(args, name) if getattr(args, name) is not None else default
            for name, default in vars(defaults).items()
        }
    )
    if min(vars(counts).values()) < 1:
        parser.error("every count must be at least 1")
    args.counts = counts
    return args


def _filesystem(path: pathlib.Path) -> str:
    """The mount and filesystem type holding ``path`` (tmpfs would flatter every figure)."""
    try:
        mounts = pathlib.Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    resolved, best = str(path.resolve()), ("", "unknown", "")
    for line in mounts:
        device, mount, fstype = line.split()[:3]
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best[0]):
            best = (mount, fstype, device)
    return f"{best[1]} on {best[2]} (mounted at {best[0]})"


def _header(workdir: pathlib.Path, counts: Counts, quick: bool) -> None:
    import importlib.metadata

    fs = _filesystem(workdir)
    print(
        "kitaru durable-core benchmarks"
        + (" (--quick: small counts, rough figures)" if quick else "")
    )
    print(
        f"  kitaru {importlib.metadata.version('kitaru')}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"  workdir {workdir} ({fs})")
    if fs.startswith("tmpfs"):
        print("  WARNING: tmpfs never reaches a disk; durable-commit figures will be meaningless")
    print(f"  counts {counts}")


# --------------------------------------------------------------------------- sections


def _section_chain(
    counts: Counts, workdir: pathlib.Path, profile: bool, keep: list[chain.ChainResult]
) -> list[Target]:
    result = chain.measure(counts.chain_steps, counts.chain_repeats, workdir, profile=profile)
    keep.append(result)
    n = result.n
    met = result.ratio <= chain.TARGET_RATIO
    sync = {"2": "FULL", "3": "EXTRA"}.get(result.settings["synchronous"], "?")
    print(
        f"  kitaru, flow.run() to handle.wait() / {n}: median {us(result.kitaru_s)} per checkpoint"
    )
    print(f"      runs (µs): {runs(result.kitaru)}")
    print(
        f"  baseline, bare durable commit (BEGIN IMMEDIATE + 1 INSERT of {result.row_bytes} B + "
        f"COMMIT): median {us(result.bare_s)}"
    )
    print(f"      runs (µs): {runs(result.bare)}")
    print(
        f"      both: WAL, synchronous={sync} ({result.settings['synchronous']}), same "
        "disk, events table DDL copied from kitaru's journal, measured alternately"
    )
    print(f"  ratio {result.ratio:.2f}x   target <= {chain.TARGET_RATIO:.1f}x   {verdict(met)}")
    paired = result.paired_ratios
    print(
        f"      per-repeat ratios: median {median(paired):.2f}x, "
        f"range {paired[0]:.2f}x to {paired[-1]:.2f}x"
    )
    overhead = result.python_s
    print(
        f"  breakdown: a bare commit of kitaru's own transaction per checkpoint (one "
        f"call_started_and_completed row, {result.txn_bytes} B) takes {us(result.bare_txn_s)}; "
        f"kitaru's "
        f"excess over it (median per repeat), {us(overhead)} per checkpoint, is its Python code"
    )
    if result.profile:
        print("  profile of the flow body's thread (cProfile inflates every figure):")
        print(result.profile)
    return [
        Target(
            name=f"checkpoint overhead ({n}-step chain)",
            figure=f"{us(result.kitaru_s)}/ckpt",
            baseline=f"bare commit {us(result.bare_s)}",
            ratio=f"{result.ratio:.2f}x",
            target=f"<= {chain.TARGET_RATIO:.1f}x",
            met=met,
        )
    ]


def _section_resume(counts: Counts, workdir: pathlib.Path, profile: bool) -> list[Target]:
    result = resume.measure(counts.resume_steps, counts.resume_repeats, workdir, profile=profile)
    per_event = result.per_event_s
    met = per_event * 1e6 <= resume.TARGET_US_PER_EVENT
    replay = result.to_live_s - result.prepare_s
    print(
        f"  execution: {result.n:,} completed checkpoints, {result.events:,} recorded events, "
        f"journal files {result.db_bytes / 1e6:.1f} MB, "
        f"crashed by SIGKILL inside step {result.n + 1:,}"
    )
    print(f"  resume(id) to first live call: median {ms(result.to_live_s)}")
    print(f"      runs (ms): {runs(result.to_live, 1e3, 1)}")
    print(
        f"      of which until the flow body starts (read + fold journal, claim): "
        f"{ms(result.prepare_s)}; "
        f"flow body replaying {result.n:,} calls: {ms(replay)} "
        f"({us(replay / result.n)} per call)"
    )
    print(
        f"  per recorded event {us(per_event)}   target <= {resume.TARGET_US_PER_EVENT:.0f} µs   "
        f"{verdict(met)}"
    )
    print(f"      ({us(result.to_live_s / result.n)} per completed checkpoint)")
    if result.profile:
        print("  profile of resume() and the replaying flow body (cProfile inflates every figure):")
        print(result.profile)
    return [
        Target(
            name=f"resume ({result.n:,} ckpts, {result.events:,} events)",
            figure=f"{us(per_event)}/event",
            baseline=f"total {ms(result.to_live_s)}",
            ratio="",
            target=f"<= {resume.TARGET_US_PER_EVENT:.0f} µs",
            met=met,
        )
    ]


def _section_peers(
    counts: Counts, workdir: pathlib.Path, kitaru: chain.ChainResult
) -> list[Target]:
    kitaru_s = kitaru.kitaru_s
    print(f"  kitaru (section 1, n={kitaru.n}): {us(kitaru_s)} per step")
    if counts.peer_steps != kitaru.n:
        print(f"  note: peers run n={counts.peer_steps}, kitaru ran n={kitaru.n}")
    targets = []
    peer_dir = workdir / "peers"
    for name, measure in (
        ("dbos", peers.dbos_seconds_per_step),
        ("langgraph", peers.langgraph_seconds_per_step),
    ):
        result = measure(counts.peer_steps, peer_dir, counts.peer_repeats)
        if result is None:
            print(f"  {name}: not installed, skipped (pip install -e '.[bench]')")
            targets.append(Target(f"{name} per step", "not installed", "", "", "", None))
            continue
        ratio = result.seconds_per_step / kitaru_s
        notes = result.notes
        settings = ", ".join(
            f"{key} {notes[key]}"
            for key in ("journal_mode", "synchronous", "durability")
            if key in notes
        )
        print(
            f"  {name} {result.version}: {us(result.seconds_per_step)} per step = "
            f"{ratio:.2f}x kitaru   (runs, s: {runs(result.samples, 1, 3)})"
        )
        print(f"      {settings}")
        targets.append(
            Target(
                name=f"{name} {result.version} per step",
                figure=us(result.seconds_per_step),
                baseline=f"kitaru {us(kitaru_s)}",
                ratio=f"{ratio:.2f}x",
                target="",
                met=None,
            )
        )
    return targets


def _section_imports(counts: Counts) -> list[Target]:
    result = imports.measure(counts.import_runs)
    bare = median(result.bare)
    targets: list[Target] = []
    print(f"  python -c 'pass': median {ms(bare)}   ({result.runs} runs of each, alternating)")
    for command, samples in result.commands:
        ratio = result.ratio(samples)
        met = ratio <= command.target_ratio
        print(
            f"  {command.label + ':':<27} median {ms(median(samples)):>9}   "
            f"{ratio:4.1f}x python -c pass   target <= {command.target_ratio:.0f}x   "
            f"{verdict(met)}"
        )
        print(f"      runs (ms): {runs(samples, unit=1e3)}")
        targets.append(
            Target(
                name=command.label.removeprefix("python -c ").strip("'"),
                figure=ms(median(samples)),
                baseline=f"python -c pass {ms(bare)}",
                ratio=f"{ratio:.1f}x",
                target=f"<= {command.target_ratio:.0f}x",
                met=met,
            )
        )
    print(f"      python -c pass runs (ms): {runs(result.bare, unit=1e3)}")
    met = result.import_s < imports.TARGET_S
    print(
        f"  import kitaru costs {ms(result.import_s)}   target < {imports.TARGET_S * 1e3:.0f} ms   "
        f"{verdict(met)}"
    )
    print(
        f"  -X importtime, own time of what import kitaru loads beyond a bare interpreter: "
        f"kitaru's own modules {ms(result.kitaru_self_s)}"
    )
    heaviest = ", ".join(f"{name} {ms(seconds)}" for name, seconds in result.kitaru_heaviest)
    print(f"      (heaviest: {heaviest}); then other packages:")
    for offender in result.offenders[:10]:
        print(
            f"      {offender.package:<22} {ms(offender.self_s):>9}  "
            f"{offender.modules:>3} modules, first via {offender.via}"
        )
    heavy_ok = not result.heavy_loaded
    loaded = ", ".join(result.heavy_loaded) or "none"
    print(
        f"  provider SDKs in sys.modules after import kitaru: {loaded}   "
        f"(want none of {', '.join(imports.HEAVY_MODULES)})   {verdict(heavy_ok)}"
    )
    deferred_ok = not result.deferred_loaded
    deferred = ", ".join(result.deferred_loaded) or "none"
    print(
        f"  first-use modules in sys.modules after import kitaru: {deferred}   "
        f"(want none of {', '.join(imports.DEFERRED_MODULES)})   {verdict(deferred_ok)}"
    )
    return [
        *targets,
        Target(
            name="import kitaru over bare start-up",
            figure=ms(result.import_s),
            baseline=f"python -c pass {ms(bare)}",
            ratio="",
            target=f"< {imports.TARGET_S * 1e3:.0f} ms",
            met=met,
        ),
        Target(
            name="no openai/anthropic after import",
            figure=f"loaded: {loaded}",
            baseline="",
            ratio="",
            target="none",
            met=heavy_ok,
        ),
        Target(
            name="no structlog/asyncio/sqlite3 after import",
            figure=f"loaded: {deferred}",
            baseline="",
            ratio="",
            target="none",
            met=deferred_ok,
        ),
    ]


def _summary(targets: list[Target]) -> None:
    header = Target("benchmark", "figure", "baseline (same run)", "ratio", "target", None)
    rows = [header, *targets]
    cells = [
        (
            t.name,
            t.figure,
            t.baseline,
            t.ratio,
            t.target,
            "result" if t is header else verdict(t.met),
        )
        for t in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(6)]
    print("\n== Summary ==")
    for i, row in enumerate(cells):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(("  " + line).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * width for width in widths))


# --------------------------------------------------------------------------- driver


def _isolate(workdir: pathlib.Path) -> None:
    """Point kitaru (here and in every worker) into ``workdir``, away from user settings."""
    os.environ["KITARU_CONFIG_PATH"] = str(workdir / "config")
    os.environ["KITARU_STORE"] = str(workdir / "chain" / "kitaru.db")
    for name in ("KITARU_MODEL_REGISTRY", "KITARU_DEFAULT_MODEL", "KITARU_LLM_MOCK_RESPONSE"):
        os.environ.pop(name, None)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915  (a few lines per section)
    args = _parse(sys.argv[1:] if argv is None else argv)
    counts: Counts = args.counts
    selected = set(args.only or SECTIONS)
    if "peers" in selected:
        selected.add("chain")  # the peers' ratios are to kitaru's figure of this run
    base = args.workdir if args.workdir is not None else REPO_ROOT
    base.mkdir(parents=True, exist_ok=True)
    prefix = ".kitaru-bench-" if args.workdir is None else "kitaru-bench-"
    workdir = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=base)).resolve()
    _isolate(workdir)
    _header(workdir, counts, args.quick)
    targets: list[Target] = []
    failures: list[str] = []
    chain_result: list[chain.ChainResult] = []

    def run_section(name: str, body: Callable[[], list[Target]]) -> None:
        if name not in selected:
            return
        print(f"\n== {TITLES[name]} ==")
        t0 = time.perf_counter()
        try:
            targets.extend(body())
        except (BenchmarkError, peers.PeerMeasurementError) as exc:
            failures.append(name)
            print(f"  FAILED: {exc}")
        except Exception:
            # One broken section must not hide the figures of the others.
            failures.append(name)
            print("  FAILED with an unexpected error:")
            print(textwrap.indent(traceback.format_exc().rstrip(), "    "))
        print(f"  ({time.perf_counter() - t0:.1f} s)")

    try:
        run_section("chain", lambda: _section_chain(counts, workdir, args.profile, chain_result))
        run_section("resume", lambda: _section_resume(counts, workdir, args.profile))
        if chain_result:
            run_section("peers", lambda: _section_peers(counts, workdir, chain_result[0]))
        elif "peers" in selected:
            print(f"\n== {TITLES['peers']} ==\n  skipped: section 1 gave no kitaru figure")
        run_section("imports", lambda: _section_imports(counts))
        run_section("llm", lambda: llm.section(workdir, quick=args.quick, smoke=args.smoke))
        run_section(
            "concurrency", lambda: concurrency.section(workdir, quick=args.quick, smoke=args.smoke)
        )
        run_section(
            "arguments", lambda: arguments.section(workdir, quick=args.quick, smoke=args.smoke)
        )
        run_section(
            "readpath", lambda: readpath.section(workdir, quick=args.quick, smoke=args.smoke)
        )
        run_section("ui", lambda: ui.section(workdir, quick=args.quick, smoke=args.smoke))
        run_section(
            "postgres", lambda: postgres.section(workdir, quick=args.quick, smoke=args.smoke)
        )
        run_section("workers", lambda: workers.section(workdir, quick=args.quick, smoke=args.smoke))
        run_section(
            "async",
            lambda: async_chain.section(counts.chain_steps, counts.chain_repeats, workdir),
        )
        _summary(targets)
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        print(f"\nfailed sections: {', '.join(failures)}")
        return 1
    return 0

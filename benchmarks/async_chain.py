"""Target: an async chain costs at most 10% more per checkpoint than the sync chain.

Three figures from the same run, measured alternately repeat after repeat so disk
hiccups and cache warm-up hit all alike:

- the async chain: ``async_chain.run(n)`` to ``handle.wait()`` over ``n``, where each
  step is ``value = await async_step(value)`` in an ``async def`` flow body;
- the sync chain of section 1 (``chain.run(n)``), the same trivial step as a sync
  checkpoint;
- one bare durable SQLite commit of a completion row (section 1's baseline).

For information, also the sync chain passing values (``step(value).load()``): section
1's chain passes output handles, whose arguments are digested by the producing call,
while an awaited call gives a value, digested by its encoding. Async over this one is
what driving a call through ``await`` costs, with the arguments alike.

The target is judged on the median of the per-repeat async/sync ratios: each pair ran
back to back on the same disk state, so a slow stretch of the shared disk (which moves
either chain's median by more than the 10% being measured) cancels out. The ratio of
the two medians is printed beside it, as is the CPU time per checkpoint of each chain
(all threads of this process; what kitaru's code costs, without the wait for fsync).
"""

from __future__ import annotations

import pathlib
import time
from dataclasses import dataclass

from benchmarks.chain import WARMUP_STEPS, _BareJournal, _kitaru_rows
from benchmarks.common import BenchmarkError, Target, median, runs, us, verdict

TARGET_RATIO = 1.10


@dataclass(frozen=True)
class AsyncChainResult:
    n: int
    async_s: tuple[float, ...]
    """Seconds per checkpoint of the async chain, one per repeat."""
    sync_s: tuple[float, ...]
    bare_s: tuple[float, ...]
    async_cpu: tuple[float, ...]
    """CPU seconds per checkpoint of the async chain (all threads), one per repeat."""
    sync_cpu: tuple[float, ...]
    values_s: tuple[float, ...]
    """Seconds per checkpoint of the sync chain passing values, one per repeat."""
    values_cpu: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """Median of the per-repeat ratios: what the target is judged on."""
        return median(self.paired_ratios)

    @property
    def ratio_of_medians(self) -> float:
        return median(self.async_s) / median(self.sync_s)

    @property
    def cpu_ratio(self) -> float:
        return median(self.async_cpu) / median(self.sync_cpu)

    @property
    def paired_ratios(self) -> list[float]:
        return sorted(a / s for a, s in zip(self.async_s, self.sync_s, strict=True))


def _run(which: str, n: int) -> tuple[float, float]:
    """Wall and CPU seconds per checkpoint of one ``n``-step execution, end to end."""
    from benchmarks import workloads

    program = {
        "async": workloads.async_chain,
        "sync": workloads.chain,
        "values": workloads.value_chain,
    }[which]
    t0, c0 = time.perf_counter(), time.process_time()
    result = program.run(n).wait()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if result != n:
        raise BenchmarkError(f"kitaru {which} chain of {n} returned {result!r}")
    return elapsed / n, cpu / n


def measure(n: int, repeats: int) -> AsyncChainResult:
    """The three per-checkpoint figures, measured alternately ``repeats`` times."""
    from kitaru._config import sqlite_file, store_url

    journal = sqlite_file(store_url())
    if journal is None:
        raise BenchmarkError(f"KITARU_STORE ({store_url()}) is not an SQLite journal")
    # Unmeasured warm-up of both paths (journal, connections, threads, imports).
    for which in ("sync", "async", "values"):
        _run(which, min(n, WARMUP_STEPS))
    completed, _, ddl = _kitaru_rows(journal)
    bare = _BareJournal(journal.parent / "bare-commit-async.db", ddl)
    try:
        one_row = (("call_completed", completed),)
        bare.commits(min(n, WARMUP_STEPS), one_row)
        wall: dict[str, list[float]] = {"async": [], "sync": [], "values": []}
        cpu: dict[str, list[float]] = {"async": [], "sync": [], "values": []}
        bare_s = []
        for index in range(repeats):
            # Alternate which chain goes first, so neither always follows the bare commits.
            order = ("async", "sync", "values")
            for which in order if index % 2 == 0 else order[::-1]:
                seconds, used = _run(which, n)
                wall[which].append(seconds)
                cpu[which].append(used)
            bare_s.append(bare.commits(n, one_row))
    finally:
        bare.close()
    return AsyncChainResult(
        n,
        tuple(wall["async"]),
        tuple(wall["sync"]),
        tuple(bare_s),
        tuple(cpu["async"]),
        tuple(cpu["sync"]),
        tuple(wall["values"]),
        tuple(cpu["values"]),
    )


def section(n: int, repeats: int, workdir: pathlib.Path) -> list[Target]:
    """Print the three figures and the async/sync ratio; return the summary line."""
    del workdir  # the journal is KITARU_STORE's, set by the driver inside the workdir
    result = measure(n, repeats)
    async_med, sync_med, bare_med = (
        median(result.async_s),
        median(result.sync_s),
        median(result.bare_s),
    )
    met = result.ratio <= TARGET_RATIO
    print(f"  async chain, await async_step(value) x {n}: median {us(async_med)} per checkpoint")
    print(f"      runs (µs): {runs(result.async_s)}")
    print(f"  sync chain, step(value) x {n}: median {us(sync_med)} per checkpoint")
    print(f"      runs (µs): {runs(result.sync_s)}")
    print(f"  bare durable commit (one completion row): median {us(bare_med)}")
    print(f"      runs (µs): {runs(result.bare_s)}")
    paired = result.paired_ratios
    print(
        f"  async / sync, median of per-repeat ratios {result.ratio:.3f}x "
        f"({(result.ratio - 1) * 100:+.1f}%)   target <= {TARGET_RATIO:.2f}x   {verdict(met)}"
    )
    print(
        f"      per-repeat range {paired[0]:.3f}x to {paired[-1]:.3f}x; ratio of the medians "
        f"{result.ratio_of_medians:.3f}x; async / bare commit {async_med / bare_med:.2f}x, "
        f"sync / bare {sync_med / bare_med:.2f}x"
    )
    print(
        f"  CPU per checkpoint (all threads): async {us(median(result.async_cpu))}, "
        f"sync {us(median(result.sync_cpu))}, ratio {result.cpu_ratio:.3f}x"
    )
    values_med = median(result.values_s)
    print(
        f"  for information, sync chain passing values (step(value).load()): median "
        f"{us(values_med)} per checkpoint, CPU {us(median(result.values_cpu))}; async / it: "
        f"{async_med / values_med:.3f}x wall, "
        f"{median(result.async_cpu) / median(result.values_cpu):.3f}x CPU"
    )
    return [
        Target(
            name=f"async checkpoint overhead ({n}-step chain)",
            figure=f"{us(async_med)}/ckpt",
            baseline=f"sync {us(sync_med)}, bare {us(bare_med)}",
            ratio=f"{result.ratio:.2f}x",
            target=f"<= {TARGET_RATIO:.2f}x of sync",
            met=met,
        )
    ]

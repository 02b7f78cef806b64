"""Many processes, one SQLite journal: nothing locks up, nothing runs twice.

- 8 processes, started at the same instant, each run many executions against one
  file: every execution completes, no "database is locked" reaches anyone, and
  ``kitaru store check`` passes;
- two processes released at the same instant race to resume one interrupted
  execution: exactly one runs it, the other is refused, and each unfinished call
  runs exactly once more;
- ``kitaru executions resume --all``, twice at once, recovers every interrupted
  execution exactly once and leaves executions waiting for input alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, TIMEOUT, child_env, journal_rows, kitaru_command, store_file
from prop_flows.crashing import DEATH_EXIT_CODE
from prop_flows.interpreter import interpret, side_effects

from kitaru import KitaruBackendError, KitaruStateError
from kitaru._store_check import check_store
from kitaru._stores import new_store
from kitaru.client import KitaruClient
from kitaru.journal.sqlite import SqliteStore

WORKER = [sys.executable, "-m", "tests.prop_flows.worker"]
STEPS = [["work", "a", 1, 0, 0.0], ["work", "b", 2, 0, 0.0], ["map", ["fan", "fan_2"], [3, 4]]]


def expected(steps: list[list[Any]]) -> Any:
    """The result of ``steps`` in a clean run, in this process, in a journal of its own."""
    return interpret.run(steps, str(store_file().with_suffix(".expected.log"))).wait(TIMEOUT)


def start(args: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*WORKER, *args],
        cwd=REPO,
        env=child_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for a worker; return its JSON line (it must exit 0 with no traceback)."""
    out, err = proc.communicate(timeout=TIMEOUT * 3)
    assert proc.returncode == 0, (proc.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    assert "locked" not in err, err[-3000:]
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return data


def journal_is_sound() -> None:
    store = new_store(str(store_file()))
    try:
        report = check_store(store)
    finally:
        store.close()
    assert report.ok, report.problems[:10]


def interrupt(count: int, steps: list[list[Any]], log: Path, hold: str) -> list[str]:
    """Leave ``count`` executions interrupted inside the call ``hold`` (its process died)."""
    proc = start(["hold", str(count), json.dumps(steps), str(log), hold])
    out, err = proc.communicate(timeout=TIMEOUT * 3)
    assert proc.returncode == DEATH_EXIT_CODE, err[-3000:]
    ids: list[str] = json.loads(out.strip().splitlines()[-1])["ids"]
    return ids


@pytest.fixture
def go(tmp_path: Path) -> Iterator[Path]:
    """The file whose creation releases every waiting worker at once."""
    path = tmp_path / "go"
    yield path
    path.touch()  # never leave a worker waiting


def open_when_all_wait(go: Path, workers: list[subprocess.Popen[str]]) -> None:
    """Create ``go`` once every worker has left its ready file at the gate."""
    deadline = time.monotonic() + TIMEOUT
    while len(list(go.parent.glob(f"{go.name}.ready-*"))) < len(workers):
        for worker in workers:
            if worker.poll() is not None:
                _, err = worker.communicate()
                pytest.fail(f"a worker ended ({worker.returncode}) before the gate:\n{err[-3000:]}")
        ready = len(list(go.parent.glob(f"{go.name}.ready-*")))
        assert time.monotonic() < deadline, f"{ready} of {len(workers)} workers reached the gate"
        time.sleep(0.01)
    go.touch()


class TestManyWritersOneFile:
    @pytest.mark.slow
    def test_eight_processes_running_many_executions_at_once(
        self, tmp_path: Path, go: Path
    ) -> None:
        """8 processes x 25 executions at once: all complete, nothing locked, journal sound."""
        processes, per_process = 8, 25
        log = tmp_path / "many.log"
        workers = [
            start(["many", str(go), str(per_process), json.dumps(STEPS), str(log)])
            for _ in range(processes)
        ]
        open_when_all_wait(go, workers)
        outcomes = [finish(worker) for worker in workers]
        want = expected(STEPS)
        ids = [exec_id for outcome in outcomes for exec_id in outcome["ids"]]
        assert [error for outcome in outcomes for error in outcome["errors"]] == []
        assert len(set(ids)) == processes * per_process
        assert all(result == want for outcome in outcomes for result in outcome["results"])
        statuses = Counter(e.status for e in KitaruClient().executions.list())
        assert statuses == Counter({"completed": processes * per_process + 1})
        total = processes * per_process
        assert side_effects(log) == Counter({"a": total, "b": total, "fan": total, "fan_2": total})
        journal_is_sound()


# Another process in the middle of creating the journal: it holds the write lock of a
# brand-new database file (still in rollback-journal mode) until told to let go.
CREATOR = """
import pathlib, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE half_made(x)")
pathlib.Path(sys.argv[2]).write_text("locked")
time.sleep(float(sys.argv[3]))
conn.execute("ROLLBACK")
"""


class TestFirstOpen:
    @pytest.mark.slow
    @pytest.mark.parametrize(("held", "timeout"), [(0.5, 10.0), (1.0, 0.3)])
    def test_opening_a_journal_another_process_is_creating_waits_for_it(
        self, tmp_path: Path, held: float, timeout: float
    ) -> None:
        """A store opened while another process creates the same journal waits for it (up to
        its busy timeout) instead of failing at once."""
        journal, locked = tmp_path / "fresh.db", tmp_path / "locked"
        creator = subprocess.Popen(
            [sys.executable, "-c", CREATOR, str(journal), str(locked), str(held)],
            env=child_env(),
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while not locked.exists():
                assert creator.poll() is None, "the creating process ended"
                assert time.monotonic() < deadline
                time.sleep(0.01)
            store = SqliteStore(journal, busy_timeout=timeout)
            started = time.monotonic()
            try:
                if held < timeout:
                    assert store.list_executions() == []
                    assert time.monotonic() - started >= held / 2
                else:
                    with pytest.raises(KitaruBackendError, match="stayed locked") as caught:
                        store.list_executions()
                    assert time.monotonic() - started >= timeout * 0.9, caught.value
            finally:
                store.close()
        finally:
            creator.wait(timeout=TIMEOUT)


class TestRacingResumes:
    @pytest.mark.slow
    def test_two_processes_released_at_once_run_an_interrupted_execution_once(
        self, tmp_path: Path, go: Path
    ) -> None:
        """Of two resumes started at the same instant, one runs the execution, one is refused."""
        log = tmp_path / "race.log"
        steps = [["work", "a", 1, 0, 0.0], ["work", "held", 2, 0, 0.0], ["work", "c", 3, 0, 0.0]]
        ids = interrupt(6, steps, log, "held")
        before = {exec_id: len(journal_rows(exec_id)) for exec_id in ids}
        racers = [start(["resume", str(go), exec_id]) for exec_id in ids for _ in range(2)]
        open_when_all_wait(go, racers)
        outcomes = [finish(racer) for racer in racers]
        want = expected(steps)
        for n, exec_id in enumerate(ids):
            pair = outcomes[2 * n : 2 * n + 2]
            assert sorted(o["outcome"] for o in pair) == ["completed", "refused"], pair
            winner = next(o for o in pair if o["outcome"] == "completed")
            assert winner["result"] == want
            kinds = [kind for _, kind, _ in journal_rows(exec_id)[before[exec_id] :]]
            assert kinds.count("execution_resumed") == 1, kinds
        assert side_effects(log) == Counter({"a": 6, "held": 12, "c": 6})
        journal_is_sound()


class TestRecoverAll:
    @pytest.mark.slow
    def test_two_recoveries_at_once_resume_each_interrupted_execution_once(
        self, tmp_path: Path
    ) -> None:
        """``resume --all`` twice at once: each interrupted execution recovered exactly once,
        waiting ones left alone, finished ones untouched."""
        log = tmp_path / "recover.log"
        steps = [["work", "a", 1, 0, 0.0], ["work", "held", 2, 0, 0.0], ["work", "c", 3, 0, 0.0]]
        interrupted = interrupt(30, steps, log, "held") + interrupt(30, steps, log, "held")
        waiting_steps = [["work", "w0", 1, 0, 0.0], ["wait", "w1"]]
        waiting = []
        for _ in range(5):
            handle = interpret.run(waiting_steps, str(log))
            with pytest.raises(KitaruStateError, match="waiting for input"):
                handle.wait(TIMEOUT)
            waiting.append(handle.exec_id)
        done = interpret.run(steps, str(log)).wait(TIMEOUT)
        untouched = {exec_id: journal_rows(exec_id) for exec_id in waiting}
        for exec_id in waiting:
            assert KitaruClient().executions.get(exec_id).status == "waiting"
        before = side_effects(log)

        recoveries = [
            subprocess.Popen(
                kitaru_command("executions", "resume", "--all", "--parallel", "4", "-o", "json"),
                cwd=tmp_path,
                env=child_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        reports = []
        for proc in recoveries:
            out, err = proc.communicate(timeout=TIMEOUT * 3)
            assert proc.returncode == 0, err[-3000:]
            assert "locked" not in err
            reports.append(json.loads(out))

        completed = [
            r["exec_id"] for report in reports for r in report if r["status"] == "completed"
        ]
        assert sorted(completed) == sorted(interrupted), "each recovered exactly once"
        others = [r for report in reports for r in report if r["status"] != "completed"]
        assert all(r["status"] == "skipped" and r["exec_id"] in interrupted for r in others)
        for exec_id in interrupted:
            assert KitaruClient().executions.get(exec_id).status == "completed"
        for exec_id, rows in untouched.items():
            assert journal_rows(exec_id) == rows, "a waiting execution was touched"
        after = side_effects(log)
        n = len(interrupted)
        assert after - before == Counter({"held": n, "c": n})
        assert done == expected(steps)
        journal_is_sound()

"""One execution, one runner: leases, races and the database's own refusals.

A live process that runs an execution keeps every other process off it; once that
process is dead, the execution can be taken over at once. Below the runtime, the
store refuses a second writer of the same event, and the database refuses to change
or remove stored events and payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import (
    REPO,
    TIMEOUT,
    OwnedStore,
    assert_clean_error,
    background,
    child_env,
    completed_calls,
    flow_command,
    journal_rows,
    kitaru,
    kitaru_command,
    only_exec_id,
    run_flow,
    side_effects,
    store_file,
    wait_for_file,
)

from kitaru import KitaruLeaseLostError, checkpoint, flow
from kitaru.client import KitaruClient
from kitaru.journal.events import ExecutionResumed
from kitaru.journal.store import JournalConflictError


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "side": tmp_path / "side-effects.txt",
        "block": tmp_path / "block",
        "elsewhere": tmp_path / "elsewhere",
    }
    paths["block"].mkdir()
    paths["elsewhere"].mkdir()
    return paths


def _resume(dirs: dict[str, Path], exec_id: str, **env: str) -> object:
    return kitaru(
        "executions",
        "resume",
        exec_id,
        cwd=dirs["elsewhere"],
        env=child_env(PIPELINE_SIDE=str(dirs["side"]), **env),
    )


class TestLiveRunnerKeepsOthersOut:
    @pytest.mark.slow
    def test_resume_of_a_running_execution_is_refused_naming_the_pid(
        self, dirs: dict[str, Path]
    ) -> None:
        """While a live process runs an execution, resume exits 1 and names that process."""
        env = child_env(PIPELINE_SIDE=str(dirs["side"]), PIPELINE_BLOCK=str(dirs["block"]))
        with background(flow_command("pipeline", "5"), cwd=REPO, env=env) as runner:
            wait_for_file(dirs["block"] / "ready", runner)
            exec_id = only_exec_id()
            _wait_until_running(exec_id, "offset")
            rows = journal_rows(exec_id)

            refused = _resume(dirs, exec_id)

            assert_clean_error(refused, f"process {runner.pid}", "is being run by")
            assert journal_rows(exec_id) == rows
            assert side_effects(dirs["side"])["offset"] == 1
            (dirs["block"] / "release").touch()
            _out, err = runner.communicate(timeout=TIMEOUT)
            assert runner.returncode == 0, err
        assert side_effects(dirs["side"]) == Counter(
            ["load_numbers", *(f"square:{x}" for x in range(1, 6)), "offset", "summarise"]
        )

    @pytest.mark.slow
    @pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
    def test_resume_works_at_once_after_the_runner_is_killed(
        self, dirs: dict[str, Path], reaped: bool
    ) -> None:
        """Once the runner is SIGKILLed (reaped or not yet), resume takes over without waiting."""
        env = child_env(PIPELINE_SIDE=str(dirs["side"]), PIPELINE_BLOCK=str(dirs["block"]))
        with background(flow_command("pipeline", "5"), cwd=REPO, env=env) as runner:
            wait_for_file(dirs["block"] / "ready", runner)
            exec_id = only_exec_id()
            os.kill(runner.pid, signal.SIGKILL)
            if reaped:
                runner.wait(timeout=TIMEOUT)
            else:
                # Dead but not yet waited for by its parent: a zombie holds no execution.
                _wait_until_zombie(runner.pid)

            started = time.monotonic()
            result = _resume(dirs, exec_id)
            elapsed = time.monotonic() - started

        assert result.returncode == 0, result.stderr
        assert elapsed < 15  # far below the lease's 30 s: the dead holder was recognised
        assert side_effects(dirs["side"])["offset"] == 2
        assert side_effects(dirs["side"])["load_numbers"] == 1


def _wait_until_running(exec_id: str, identity: str) -> None:
    """Wait until the runner has journaled the start of ``identity`` (it defers starts)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        calls = KitaruClient().executions.get(exec_id).checkpoints
        if any(c.invocation_id == identity and c.status == "running" for c in calls):
            return
        time.sleep(0.02)
    pytest.fail(f"the start of {identity} was never journaled")


def _wait_until_zombie(pid: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.01)
    pytest.fail(f"process {pid} did not become a zombie")


class TestRacingResumes:
    @pytest.mark.slow
    def test_two_resumes_at_once_run_the_execution_once(self, dirs: dict[str, Path]) -> None:
        """Two processes resuming the same interrupted execution: exactly one runs it."""
        side = dirs["side"]
        first = run_flow(
            "pipeline",
            "5",
            env=child_env(PIPELINE_SIDE=str(side), PIPELINE_KILL="inside:summarise"),
        )
        assert first.returncode == -9
        exec_id = only_exec_id()
        before = side_effects(side)
        command = kitaru_command("executions", "resume", exec_id)
        env = child_env(PIPELINE_SIDE=str(side), PIPELINE_SLOW="0.5")
        with (
            background(command, cwd=dirs["elsewhere"], env=env) as one,
            background(command, cwd=dirs["elsewhere"], env=env) as two,
        ):
            outs = [proc.communicate(timeout=TIMEOUT) for proc in (one, two)]
            codes = [one.returncode, two.returncode]

        assert sorted(codes) == [0, 1], (codes, outs)
        loser_err = outs[codes.index(1)][1]
        assert "Traceback" not in loser_err
        assert "is being run by process" in loser_err or "already completed" in loser_err
        after = side_effects(side)
        assert after["summarise"] == before["summarise"] + 1 == 2
        assert all(after[tag] == 1 for tag in after if tag != "summarise")
        assert completed_calls(exec_id) >= {"summarise", "offset"}
        kinds = [kind for _, kind, _ in journal_rows(exec_id)]
        assert kinds.count("execution_resumed") == 1
        assert kinds.count("execution_completed") == 1


class TestManyExecutionsAtOnce:
    @pytest.mark.slow
    def test_separate_executions_resume_side_by_side(self, tmp_path: Path) -> None:
        """Several interrupted executions resumed by parallel processes all complete."""
        sides = [tmp_path / f"side-{i}.txt" for i in range(3)]
        for side in sides:
            killed = run_flow(
                "pipeline", "5", env=child_env(PIPELINE_SIDE=str(side), PIPELINE_KILL="square:3")
            )
            assert killed.returncode == -9
        ids = [e.exec_id for e in reversed(KitaruClient().executions.list())]
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        with contextlib.ExitStack() as stack:
            procs = [
                stack.enter_context(
                    background(
                        kitaru_command("executions", "resume", exec_id),
                        cwd=elsewhere,
                        env=child_env(PIPELINE_SIDE=str(side)),
                    )
                )
                for exec_id, side in zip(ids, sides, strict=True)
            ]
            results = [(p.communicate(timeout=TIMEOUT), p.returncode) for p in procs]
        for (_out, err), code in results:
            assert code == 0, err
        for exec_id, side in zip(ids, sides, strict=True):
            assert KitaruClient().executions.get(exec_id).status == "completed"
            assert side_effects(side)["square:3"] == 2
            assert side_effects(side)["summarise"] == 1


def _gate_ready(gate: Path, count: int, proc: subprocess.Popen[str]) -> None:
    """Wait until ``count`` held bodies wait at ``gate``; fail at once if ``proc`` ends."""
    deadline = time.monotonic() + TIMEOUT
    while len(list(gate.glob("ready-*"))) < count:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended ({proc.returncode}) early:\n{out}\n{err}")
        assert time.monotonic() < deadline, f"fewer than {count} bodies at the gate"
        time.sleep(0.02)


def _wait_until_completed(exec_id: str, identities: set[str]) -> None:
    """Wait until the runner has journaled the completion of every call in ``identities``."""
    deadline = time.monotonic() + TIMEOUT
    while not identities <= completed_calls(exec_id):
        assert time.monotonic() < deadline, (identities, completed_calls(exec_id))
        time.sleep(0.02)


class TestAsyncFlowsKeepOneOwner:
    """``tests/flows/async_owners.py``: an async flow whose gathered, awaited checkpoints
    wait at a gate, run by a real process."""

    @pytest.fixture
    def env(self, dirs: dict[str, Path]) -> dict[str, str]:
        return child_env(ASYNC_OWNERS_SIDE=str(dirs["side"]), ASYNC_OWNERS_GATE=str(dirs["block"]))

    def test_resume_while_an_awaited_call_runs_is_refused_and_appends_nothing(
        self, dirs: dict[str, Path], env: dict[str, str]
    ) -> None:
        """While a process awaits checkpoints of an async flow, resume exits 1 naming it."""
        with background(flow_command("async_owners", "2"), cwd=REPO, env=env) as runner:
            _gate_ready(dirs["block"], 2, runner)
            exec_id = only_exec_id()
            _wait_until_completed(exec_id, {"prepare"})
            _wait_until_running(exec_id, "fetch")
            _wait_until_running(exec_id, "fetch_2")
            rows = journal_rows(exec_id)

            refused = kitaru("executions", "resume", exec_id, cwd=dirs["elsewhere"], env=env)

            assert_clean_error(refused, f"process {runner.pid}", "is being run by")
            assert journal_rows(exec_id) == rows
            (dirs["block"] / "release").touch()
            out, err = runner.communicate(timeout=TIMEOUT)
            assert runner.returncode == 0, err
        assert json.loads(out)["result"] == 0 + 1
        assert side_effects(dirs["side"]) == Counter(["prepare", "fetch:0", "fetch:1", "total"])

    def test_after_a_sigkill_mid_await_resume_reruns_only_the_unfinished_call(
        self, dirs: dict[str, Path], env: dict[str, str]
    ) -> None:
        """SIGKILL while one gathered call awaits: resume runs that call and what follows."""
        held = {**env, "ASYNC_OWNERS_HOLD": "1"}
        with background(flow_command("async_owners", "3"), cwd=REPO, env=held) as runner:
            _gate_ready(dirs["block"], 1, runner)
            exec_id = only_exec_id()
            _wait_until_completed(exec_id, {"prepare", "fetch", "fetch_3"})
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait(timeout=TIMEOUT)
        assert "fetch_2" not in completed_calls(exec_id)

        (dirs["block"] / "release").touch()
        resumed = kitaru(
            "executions", "resume", exec_id, "-o", "json", cwd=dirs["elsewhere"], env=env
        )

        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["status"] == "completed"
        assert KitaruClient().executions.get(exec_id).result() == 0 + 1 + 4
        assert side_effects(dirs["side"]) == Counter(
            {"prepare": 1, "fetch:0": 1, "fetch:1": 2, "fetch:2": 1, "total": 1}
        )


_HELD = threading.Event()
_LET_GO = threading.Event()


@checkpoint
async def _first(value: int) -> int:
    await asyncio.sleep(0)
    return value + 1


@checkpoint
async def _held(value: int) -> int:
    _HELD.set()
    while not _LET_GO.is_set():
        await asyncio.sleep(0.01)
    return value * 10


@checkpoint
async def _after(value: int) -> int:
    _AFTER_RAN.append(value)
    return value


_AFTER_RAN: list[int] = []


@flow
async def _taken_over(value: int) -> int:
    first = await _first(value)
    held = await _held(first)
    return await _after(held)


class TestAsyncFlowFencing:
    def test_a_flow_whose_lease_was_taken_over_records_nothing_more(self) -> None:
        """An async flow awaiting a call when another owner takes its lease gets
        KitaruLeaseLostError at its next durable call, and the journal gains no event."""
        _HELD.clear()
        _LET_GO.clear()
        _AFTER_RAN.clear()
        handle = _taken_over.run(1, background=True)
        try:
            assert _HELD.wait(TIMEOUT)
            _wait_until_completed(handle.exec_id, {"_first"})
            # Another process takes the execution over, as after an expired lease.
            with contextlib.closing(sqlite3.connect(store_file())) as conn:
                conn.execute(
                    "UPDATE leases SET owner = 'another/1' WHERE exec_id = ?", (handle.exec_id,)
                )
                conn.commit()
            rows = journal_rows(handle.exec_id)
        finally:
            _LET_GO.set()
        with pytest.raises(KitaruLeaseLostError) as lost:
            handle.wait(timeout=TIMEOUT)
        assert lost.value.exec_id == handle.exec_id
        assert journal_rows(handle.exec_id) == rows
        assert _AFTER_RAN == []


@checkpoint
def one_step() -> int:
    return 1


@flow
def tiny() -> int:
    return one_step()  # type: ignore[return-value]


def _completed_tiny() -> str:
    handle = tiny.run()
    handle.wait(timeout=TIMEOUT)
    return handle.exec_id


class TestStoreRefusesASecondWriter:
    def test_same_exec_id_and_seq_raises_a_conflict(self) -> None:
        """Two writers appending the same (exec_id, seq): the second gets JournalConflictError."""
        exec_id = _completed_tiny()
        recorded = journal_rows(exec_id)
        next_seq = recorded[-1][0] + 1
        # Both write under the same lease: only the sequence number can stop the second.
        writer_a, writer_b = OwnedStore(store_file(), keep=True), OwnedStore(store_file())
        try:
            writer_a.append(exec_id, next_seq, [(ExecutionResumed("resume", "a"), time.time())])
            with pytest.raises(JournalConflictError, match=f"seq {next_seq} is taken") as caught:
                writer_b.append(exec_id, next_seq, [(ExecutionResumed("resume", "b"), time.time())])
        finally:
            writer_a.release(exec_id, OwnedStore.owner)
            writer_a.close()
            writer_b.close()
        assert caught.value.exec_id == exec_id
        rows = journal_rows(exec_id)
        assert rows[:-1] == recorded
        assert len(rows) == len(recorded) + 1
        assert rows[-1][1] == "execution_resumed"
        assert rows[-1][2].endswith(b"a")  # writer a's event, not b's

    def test_a_conflicting_batch_is_written_not_at_all(self) -> None:
        """A batch whose later seq conflicts leaves none of its events behind."""
        exec_id = _completed_tiny()
        rows = journal_rows(exec_id)
        last = rows[-1][0]
        store = OwnedStore(store_file())
        try:
            batch = [(ExecutionResumed("resume", f"w{i}"), time.time()) for i in range(2)]
            with pytest.raises(JournalConflictError):
                store.append(exec_id, last, batch)  # last+0 is taken, last+1 is free
        finally:
            store.close()
        assert journal_rows(exec_id) == rows


class TestDatabaseRefusesChanges:
    @pytest.fixture
    def recorded(self) -> str:
        """A completed execution whose result is large enough to be stored as a payload."""
        handle = big.run()
        handle.wait(timeout=TIMEOUT)
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            assert conn.execute("SELECT count(*) FROM payloads").fetchone()[0] >= 1
        return handle.exec_id

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE events SET body = x'00'",
            "UPDATE events SET type = 'execution_failed' WHERE type = 'execution_completed'",
            "DELETE FROM events",
            "DELETE FROM events WHERE type = 'execution_completed'",
            "UPDATE payloads SET bytes = x'00'",
            "DELETE FROM payloads",
        ],
    )
    def test_update_and_delete_are_refused(self, recorded: str, statement: str) -> None:
        """Raw UPDATE and DELETE on events and payloads fail; every row stays as it was."""
        before = _dump()
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            with pytest.raises(sqlite3.IntegrityError, match="refused"):
                conn.execute(statement)
            conn.commit()
        assert _dump() == before

    def test_insert_or_replace_cannot_overwrite_an_event(self, recorded: str) -> None:
        """INSERT OR REPLACE over a stored event or payload is refused too."""
        before = _dump()
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            position, exec_id, seq = conn.execute(
                "SELECT position, exec_id, seq FROM events ORDER BY position LIMIT 1"
            ).fetchone()
            digest = conn.execute("SELECT hash FROM payloads LIMIT 1").fetchone()[0]
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(
                    "INSERT OR REPLACE INTO events(position, exec_id, seq, type, at, body) "
                    "VALUES (?, ?, ?, 'execution_cancelled', 0, x'00')",
                    (position, exec_id, seq),
                )
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(
                    "INSERT OR REPLACE INTO payloads(hash, bytes) VALUES (?, x'00')", (digest,)
                )
            conn.commit()
        assert _dump() == before


def _dump() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with contextlib.closing(sqlite3.connect(store_file())) as conn:
        events = conn.execute("SELECT * FROM events ORDER BY position").fetchall()
        payloads = conn.execute("SELECT * FROM payloads ORDER BY hash").fetchall()
    return events, payloads


@checkpoint
def large() -> str:
    return "x" * 4096


@flow
def big() -> str:
    return large()  # type: ignore[return-value]

"""Bad input and misuse: a clear message, exit code 1, no traceback, nothing lost.

Journals that are not journals, journals that cannot be written, ids that do not
exist, events from a newer kitaru, flows that moved away, values that cannot be
stored, and decorators used the wrong way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    FLOWS,
    assert_clean_error,
    child_env,
    completed_calls,
    journal_rows,
    kitaru,
    only_exec_id,
    run_flow,
    side_effects,
    store_file,
)

from kitaru import (
    KitaruBackendError,
    KitaruContextError,
    KitaruStateError,
    KitaruUsageError,
    KitaruUserCodeError,
    checkpoint,
    flow,
)
from kitaru.client import KitaruClient

KILLED = -9


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def kill_pipeline(tmp_path: Path, kill: str = "inside:offset") -> tuple[str, Path]:
    """Record a pipeline execution interrupted at ``kill``; return its id and trace file."""
    side = tmp_path / "side-effects.txt"
    killed = subprocess.run(
        [sys.executable, "-m", "tests.flows.pipeline", "3"],
        cwd=FLOWS.parents[1],
        env=child_env(PIPELINE_SIDE=str(side), PIPELINE_KILL=kill),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == KILLED, killed.stderr
    return only_exec_id(), side


class TestStoreThatIsNotAJournal:
    @pytest.mark.slow
    def test_a_file_that_is_not_a_database(self, tmp_path: Path, elsewhere: Path) -> None:
        """KITARU_STORE naming a non-database file is reported, and the file is left alone."""
        notes = tmp_path / "notes.txt"
        notes.write_bytes(b"my precious notes, not a database\n" * 200)
        before = digest(notes)
        result = kitaru("executions", "list", cwd=elsewhere, env=child_env(KITARU_STORE=str(notes)))
        assert_clean_error(result, str(notes), "not a kitaru journal")
        assert digest(notes) == before

    @pytest.mark.slow
    def test_a_database_of_another_application(self, tmp_path: Path, elsewhere: Path) -> None:
        """An SQLite file kitaru did not create is refused untouched."""
        other = tmp_path / "other.db"
        with contextlib.closing(sqlite3.connect(other)) as conn:
            conn.execute("CREATE TABLE invoices(id INTEGER PRIMARY KEY, amount REAL)")
            conn.execute("INSERT INTO invoices(amount) VALUES (12.5)")
            conn.commit()
        before = digest(other)
        result = kitaru("executions", "list", cwd=elsewhere, env=child_env(KITARU_STORE=str(other)))
        assert_clean_error(result, "kitaru did not create")
        assert digest(other) == before

    @pytest.mark.slow
    def test_a_directory(self, tmp_path: Path, elsewhere: Path) -> None:
        """KITARU_STORE naming a folder says so and suggests a file inside it."""
        folder = tmp_path / "journals"
        folder.mkdir()
        result = kitaru(
            "executions", "list", cwd=elsewhere, env=child_env(KITARU_STORE=str(folder))
        )
        assert_clean_error(result, "is a directory", str(folder / "kitaru.db"))
        assert list(folder.iterdir()) == []

    @pytest.mark.slow
    @pytest.mark.parametrize(
        ("value", "fragment"),
        [("mysql://localhost/kitaru", "'mysql' scheme"), ("sqlite:///", "no path")],
    )
    def test_an_unsupported_store_url(self, elsewhere: Path, value: str, fragment: str) -> None:
        """A store URL this version cannot use is a usage error naming KITARU_STORE."""
        result = kitaru("executions", "list", cwd=elsewhere, env=child_env(KITARU_STORE=value))
        assert_clean_error(result, "KITARU_STORE", fragment)

    @pytest.mark.slow
    def test_a_sqlite_url_means_the_same_file(self, tmp_path: Path, elsewhere: Path) -> None:
        """``sqlite:///PATH`` reads the same journal as the bare path."""
        exec_id, _ = kill_pipeline(tmp_path, "after:load_numbers")
        url = f"sqlite:///{store_file()}"
        result = kitaru(
            "executions", "get", exec_id, cwd=elsewhere, env=child_env(KITARU_STORE=url)
        )
        assert result.returncode == 0, result.stderr
        assert exec_id in result.stdout


@contextlib.contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make ``paths`` unwritable, even for root (immutable attribute), for the block."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root without chattr: nothing makes a file read-only for root")
    made: list[Path] = []
    try:
        for p in paths:
            done = subprocess.run([chattr, "+i", str(p)], capture_output=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
            made.append(p)
        yield
    finally:
        for p in made:
            subprocess.run([chattr, "-i", str(p)], capture_output=True, check=False)


class TestReadOnlyStore:
    @pytest.mark.slow
    def test_resume_on_a_read_only_journal_fails_cleanly_and_loses_nothing(
        self, tmp_path: Path, elsewhere: Path
    ) -> None:
        """Resume against an unwritable journal exits 1 saying so; later it resumes fine."""
        exec_id, side = kill_pipeline(tmp_path)
        rows = journal_rows(exec_id)
        traces = side_effects(side)
        env = child_env(PIPELINE_SIDE=str(side))
        journal_files = sorted(store_file().parent.glob(store_file().name + "*"))

        with read_only(*journal_files, store_file().parent):
            listed = kitaru("executions", "list", cwd=elsewhere, env=env)
            refused = kitaru("executions", "resume", exec_id, cwd=elsewhere, env=env)

        assert listed.returncode == 0, listed.stderr  # reading still works
        assert exec_id in listed.stdout
        assert_clean_error(refused, "read-only", "KITARU_STORE")
        assert journal_rows(exec_id) == rows
        assert side_effects(side) == traces
        resumed = kitaru("executions", "resume", exec_id, cwd=elsewhere, env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert side_effects(side)["load_numbers"] == 1
        assert side_effects(side)["offset"] == 2

    @pytest.mark.slow
    def test_a_journal_in_a_read_only_folder_cannot_be_created(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Starting a flow with the journal in an unwritable folder raises a clear error."""
        folder = tmp_path / "locked"
        folder.mkdir()
        monkeypatch.setenv("KITARU_STORE", str(folder / "kitaru.db"))
        with read_only(folder), pytest.raises(KitaruBackendError, match="KITARU_STORE"):
            simple.run(1)
        assert not (folder / "kitaru.db").exists()


class TestUnknownExecution:
    @pytest.mark.slow
    @pytest.mark.parametrize("command", ["get", "resume", "retry"])
    def test_an_unknown_id_is_reported(self, elsewhere: Path, command: str) -> None:
        """An id that matches no execution exits 1 and says how to list executions."""
        result = kitaru("executions", command, "no-such-execution", cwd=elsewhere)
        assert_clean_error(result, "No execution no-such-execution", "kitaru executions list")

    def test_the_client_raises_a_state_error(self) -> None:
        """``KitaruClient().executions.get`` of an unknown id raises KitaruStateError."""
        with pytest.raises(KitaruStateError, match="No execution nope"):
            KitaruClient().executions.get("nope")


class TestEventFromTheFuture:
    @pytest.fixture
    def future(self, tmp_path: Path) -> tuple[str, Path]:
        """An interrupted execution whose journal ends with an event type from a newer kitaru."""
        exec_id, side = kill_pipeline(tmp_path)
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            (last,) = conn.execute(
                "SELECT max(seq) FROM events WHERE exec_id = ?", (exec_id,)
            ).fetchone()
            conn.execute(
                "INSERT INTO events(exec_id, seq, type, at, body) VALUES (?, ?, ?, ?, ?)",
                (exec_id, last + 1, "from_the_future", time.time(), b"\x81\xa1k\xa1v"),
            )
            conn.commit()
        return exec_id, side

    @pytest.mark.slow
    @pytest.mark.parametrize("command", ["get", "resume", "retry"])
    def test_commands_name_the_unknown_event_type(
        self, future: tuple[str, Path], elsewhere: Path, command: str
    ) -> None:
        """get/resume/retry exit 1 naming the unknown type and asking for an upgrade."""
        exec_id, side = future
        rows, traces = journal_rows(exec_id), side_effects(side)
        env = child_env(PIPELINE_SIDE=str(side))
        result = kitaru("executions", command, exec_id, cwd=elsewhere, env=env)
        assert_clean_error(result, "'from_the_future'", "does not know", "Upgrade kitaru")
        assert journal_rows(exec_id) == rows
        assert side_effects(side) == traces

    @pytest.mark.slow
    def test_list_does_not_misread_it(self, future: tuple[str, Path], elsewhere: Path) -> None:
        """``list`` either names the unknown event cleanly or lists the execution unread."""
        result = kitaru("executions", "list", cwd=elsewhere)
        assert "Traceback" not in result.stderr
        if result.returncode == 0:
            assert future[0] in result.stdout
        else:
            assert_clean_error(result, "'from_the_future'")

    @pytest.mark.slow
    def test_the_client_raises_a_backend_error(self, future: tuple[str, Path]) -> None:
        """In Python the unknown event is a KitaruBackendError, never a silent skip."""
        with pytest.raises(KitaruBackendError, match="from_the_future"):
            KitaruClient().executions.get(future[0])


class TestFlowThatMovedAway:
    @pytest.mark.slow
    @pytest.mark.parametrize("mode", ["module", "script"])
    def test_resume_of_an_unimportable_flow_fails_cleanly_then_works_when_restored(
        self, tmp_path: Path, elsewhere: Path, mode: str
    ) -> None:
        """A flow whose module is gone: resume exits 1 naming it; restored, it resumes."""
        project = tmp_path / "project"
        project.mkdir()
        source = project / "my_agent.py"
        shutil.copyfile(FLOWS / "pipeline.py", source)
        side = tmp_path / "side-effects.txt"
        command = [sys.executable, *(["-m", "my_agent"] if mode == "module" else [str(source)])]
        killed = subprocess.run(
            [*command, "3"],
            cwd=project,
            env=child_env(PIPELINE_SIDE=str(side), PIPELINE_KILL="inside:offset"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert killed.returncode == KILLED, killed.stderr
        exec_id = only_exec_id()
        rows, traces = journal_rows(exec_id), side_effects(side)
        env = child_env(PIPELINE_SIDE=str(side))

        moved = source.rename(project / "my_agent_old.py")
        shutil.rmtree(project / "__pycache__", ignore_errors=True)
        refused = kitaru("executions", "resume", exec_id, cwd=elsewhere, env=env)

        module = "my_agent" if mode == "module" else "__main__"
        assert_clean_error(refused, f"Cannot import flow pipeline from module {module}")
        if mode == "script":
            assert str(source) in refused.stderr
        assert journal_rows(exec_id) == rows
        assert side_effects(side) == traces
        assert KitaruClient().executions.get(exec_id).status == "running"

        moved.rename(source)
        resumed = kitaru("executions", "resume", exec_id, cwd=elsewhere, env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert side_effects(side) == traces + Counter(["offset", "summarise"])
        assert completed_calls(exec_id) >= {"load_numbers", "offset", "summarise"}


@checkpoint
def simple_step(x: int) -> int:
    return x + 1


@flow
def simple(x: int) -> int:
    return simple_step(x)  # type: ignore[return-value]


@checkpoint
def make_lock() -> Any:
    return threading.Lock()


@flow
def returns_a_lock() -> Any:
    simple_step(1)
    return make_lock()


@flow
def flow_returns_a_lock() -> Any:
    simple_step(1)
    return threading.Lock()


class TestUnstorableValues:
    def test_a_checkpoint_returning_an_unstorable_value(self) -> None:
        """The error names the checkpoint and the type; earlier results stay recorded."""
        handle = returns_a_lock.run()
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=30)
        message = str(caught.value)
        assert "make_lock" in message
        assert "_thread.lock" in message
        assert caught.value.call == "make_lock"
        assert isinstance(caught.value.__cause__, KitaruUsageError)
        execution = KitaruClient().executions.get(handle.exec_id)
        calls = {c.invocation_id: c.status for c in execution.checkpoints}
        assert calls == {"simple_step": "completed", "make_lock": "failed"}

    def test_a_flow_returning_an_unstorable_value(self) -> None:
        """A flow result that cannot be stored fails the execution naming flow and type."""
        handle = flow_returns_a_lock.run()
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=30)
        assert "flow_returns_a_lock" in str(caught.value)
        assert "_thread.lock" in str(caught.value)
        assert completed_calls(handle.exec_id) == {"simple_step"}

    @pytest.mark.slow
    def test_retry_from_the_cli_names_the_checkpoint_and_type(
        self, tmp_path: Path, elsewhere: Path
    ) -> None:
        """Retrying while the output is still unstorable exits 1 cleanly; fixed, it completes."""
        side = tmp_path / "side-effects.txt"
        env = child_env(UNSTORABLE="1", UNSTORABLE_SIDE=str(side))
        first = run_flow("unstorable", env=env)
        assert_clean_error(first, "make_handle", "_thread.lock")
        exec_id = only_exec_id()

        again = kitaru("executions", "retry", exec_id, cwd=elsewhere, env=env)

        assert_clean_error(again, "make_handle", "_thread.lock")
        fixed = kitaru(
            "executions",
            "retry",
            exec_id,
            "-o",
            "json",
            cwd=elsewhere,
            env=child_env(UNSTORABLE_SIDE=str(side)),
        )
        assert fixed.returncode == 0, fixed.stderr
        assert json.loads(fixed.stdout)["result"] == "resource guarded by lock"
        assert side_effects(side) == Counter({"prepare": 1, "make_handle": 3})

    def test_unstorable_flow_arguments_are_refused_before_anything_is_recorded(self) -> None:
        """``run()`` with arguments that cannot be stored raises at once and records nothing."""
        with pytest.raises(KitaruUsageError) as caught:
            simple.run(threading.Lock())
        assert "simple" in str(caught.value)
        assert "_thread.lock" in str(caught.value)
        assert KitaruClient().executions.list() == []

    def test_a_class_defined_in_a_function_is_refused(self) -> None:
        """A value whose class cannot be imported again is refused, saying why."""

        @dataclasses.dataclass
        class Local:
            x: int

        with pytest.raises(KitaruUsageError, match="inside a function"):
            simple.run(Local(1))


@checkpoint
def inner() -> int:
    return 1


@checkpoint
def outer() -> str:
    try:
        inner()
    except KitaruContextError as exc:
        return str(exc)
    return "nested call was allowed"


@flow
def nests() -> str:
    return outer()  # type: ignore[return-value]


@flow
def duplicate_ids() -> str:
    simple_step(1, id="same")
    try:
        simple_step(2, id="same")
    except KitaruUsageError as exc:
        return str(exc)
    return "duplicate id was allowed"


@flow
def bad_map(kind: str) -> str:
    try:
        if kind == "id":
            simple_step.map([1, 2], id="x")
        elif kind == "lengths":
            simple_step.map([1, 2], [3])
        else:
            simple_step.map()
    except KitaruUsageError as exc:
        return str(exc)
    return "accepted"


class TestMisuse:
    def test_a_checkpoint_outside_a_flow(self) -> None:
        """Calling a checkpoint outside a flow raises KitaruContextError with the spec's text."""
        with pytest.raises(KitaruContextError) as caught:
            simple_step(1)
        assert str(caught.value) == "Checkpoints can only run inside a @flow."
        assert isinstance(caught.value, RuntimeError)

    def test_submit_and_map_outside_a_flow(self) -> None:
        """``.submit`` and ``.map`` outside a flow raise the same KitaruContextError."""
        with pytest.raises(KitaruContextError, match="inside a @flow"):
            simple_step.submit(1)
        with pytest.raises(KitaruContextError, match="inside a @flow"):
            simple_step.map([1, 2])

    def test_a_checkpoint_inside_a_checkpoint(self) -> None:
        """A checkpoint called inside another raises KitaruContextError there."""
        message = nests.run().wait(timeout=30)
        assert "inner" in message
        assert "cannot be nested" in message

    def test_calling_a_flow_directly(self) -> None:
        """``my_flow(...)`` raises KitaruUsageError pointing to ``.run(...)``."""
        with pytest.raises(KitaruUsageError, match=r"simple\.run\(") as caught:
            simple(1)
        assert isinstance(caught.value, ValueError)

    @pytest.mark.parametrize("retries", [-1, True, 1.5])
    def test_bad_retries_are_refused(self, retries: Any) -> None:
        """``retries`` must be a whole number >= 0 for checkpoints and flows."""
        with pytest.raises(KitaruUsageError, match="retries"):
            checkpoint(retries=retries)(lambda: None)
        with pytest.raises(KitaruUsageError, match="retries"):
            flow(retries=retries)

    def test_a_duplicate_call_id(self) -> None:
        """Reusing an explicit ``id=`` in one execution raises KitaruUsageError at the call."""
        message = duplicate_ids.run().wait(timeout=30)
        assert "'same' is already used" in message

    @pytest.mark.parametrize(
        ("kind", "fragment"),
        [("id", "id= is not accepted"), ("lengths", "different lengths"), ("none", "iterable")],
    )
    def test_bad_map_calls(self, kind: str, fragment: str) -> None:
        """``map`` refuses ``id=``, iterables of unequal length and no iterable at all."""
        assert fragment in bad_map.run(kind).wait(timeout=30)

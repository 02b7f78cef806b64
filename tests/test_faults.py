"""Storage faults: each gives a clear error, loses nothing recorded, and heals.

- the disk fills during an append (SQLite's ``max_page_count`` on the store's
  connections, lowered while a checkpoint runs);
- the database becomes read-only during a run (``PRAGMA query_only`` on the store's
  connections: the same SQLITE_READONLY a read-only file gives; permission bits do not
  stop root, so a real read-only file is tested only when not root);
- another process holds the write lock longer than the store's busy timeout;
- the file is truncated or damaged: ``kitaru store check`` finds it, and nothing reads
  it as a shorter journal;
- the journal was written by a newer kitaru (schema version, or an event type).

For the first three the execution stays resumable, and once the fault is gone it
completes with every call recorded before the fault kept (never run again).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, TIMEOUT, assert_clean_error, child_env, store_file
from helpers import kitaru as cli
from hypothesis import given
from hypothesis import strategies as st
from prop_flows.crashing import DEATH_EXIT_CODE
from strategies import costly

import kitaru._stores
from kitaru import KitaruBackendError, checkpoint, flow
from kitaru._store_check import check_store
from kitaru.client import KitaruClient
from kitaru.journal.migrations import SCHEMA_VERSION
from kitaru.journal.sqlite import SqliteStore


class FaultyStore(SqliteStore):
    """The SQLite store with a fault switch: PRAGMAs applied to every connection it hands out.

    ``fault = {"max_page_count": n}`` fills the disk at ``n`` pages, ``{"query_only": 1}``
    makes the database read-only. Applied on every use, so a connection opened before
    the fault (the usual case) gets it too.
    """

    def __init__(self, path: Path, **kwargs: Any):
        super().__init__(path, **kwargs)
        self.fault: dict[str, int] = {}

    def _conn(self, sync: bool = True) -> sqlite3.Connection:
        conn = super()._conn(sync)
        for pragma, value in self.fault.items():
            conn.execute(f"PRAGMA {pragma}={value}")
        return conn

    def page_count(self) -> int:
        return int(self._conn().execute("PRAGMA page_count").fetchone()[0])


# -- a flow whose third checkpoint brings the fault on, then returns a large value ------

_trigger: Callable[[], None] | None = None


def _record(log: str, key: str) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(key + "\n")


@checkpoint
def step(key: str, log: str) -> str:
    _record(log, key)
    return key


@checkpoint
def heavy(key: str, log: str) -> str:
    _record(log, key)
    if _trigger is not None:
        _trigger()
    return key * 100_000  # a payload of its own: the append needs new pages


@flow
def faulty(log: str) -> list[str]:
    return [step("a", log), step("b", log), heavy("c", log), step("d", log)]  # type: ignore[list-item]


EXPECTED = ["a", "b", "c" * 100_000, "d"]


@contextlib.contextmanager
def installed(store: SqliteStore) -> Iterator[SqliteStore]:
    """Make ``store`` the one this process opens for the test's journal."""
    key = store.url
    kitaru._stores._stores[key] = store
    try:
        yield store
    finally:
        kitaru._stores._stores.pop(key, None)
        store.close()


@contextlib.contextmanager
def fault_during_heavy(bring_on: Callable[[], None]) -> Iterator[None]:
    global _trigger  # noqa: PLW0603  (the flow's checkpoints read it at call time)
    _trigger = bring_on
    try:
        yield
    finally:
        _trigger = None


def side_effects(log: Path) -> Counter[str]:
    return Counter(log.read_text(encoding="utf-8").split())


def heal_and_resume(exec_id: str, log: Path) -> None:
    """With a healthy store, the execution completes; calls recorded before never rerun."""
    client = KitaruClient()
    assert client.executions.get(exec_id).status == "running"
    done = {
        c.invocation_id
        for c in client.executions.get(exec_id).checkpoints
        if c.status == "completed"
    }
    assert done == {"step", "step_2"}
    assert client.executions.resume(exec_id).wait(timeout=TIMEOUT) == EXPECTED
    assert side_effects(log) == Counter({"a": 1, "b": 1, "c": 2, "d": 1})
    report = check_store(kitaru._stores.open_store())
    assert report.ok, report.problems


def run_into_fault(bring_on: Callable[[], None], log: Path) -> tuple[str, KitaruBackendError]:
    """Run the flow until the fault ``bring_on`` causes strikes; return the id and the error."""
    with fault_during_heavy(bring_on):
        handle = faulty.run(str(log))
        with pytest.raises(KitaruBackendError) as caught:
            handle.wait(timeout=TIMEOUT)
    return handle.exec_id, caught.value


class TestDiskFull:
    def test_a_full_disk_fails_the_append_cleanly_and_a_resume_completes_later(
        self, tmp_path: Path
    ) -> None:
        """SQLITE_FULL in an append: a clear error, nothing lost, a resume completes."""
        log = tmp_path / "log"
        with installed(FaultyStore(store_file())) as store:
            exec_id, error = run_into_fault(
                lambda: store.fault.update(max_page_count=store.page_count()), log
            )
        assert "The disk holding the journal" in str(error)
        assert "Nothing was recorded by the failed write" in str(error)
        assert "resume" in str(error)
        heal_and_resume(exec_id, log)


class TestReadOnly:
    def test_a_database_turned_read_only_mid_run_fails_cleanly_and_heals(
        self, tmp_path: Path
    ) -> None:
        """Writes refused mid-run: a clear error, resume refused while it lasts, then completes."""
        log = tmp_path / "log"
        with installed(FaultyStore(store_file())) as store:
            exec_id, error = run_into_fault(lambda: store.fault.update(query_only=1), log)
            assert "is read-only" in str(error)
            rows = store.read_events(exec_id)
            with pytest.raises(KitaruBackendError, match="is read-only"):
                KitaruClient().executions.resume(exec_id)
            assert store.read_events(exec_id) == rows
        heal_and_resume(exec_id, log)

    @pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() == 0,
        reason="file permissions do not stop root",
    )
    def test_a_read_only_file_is_reported_by_the_cli(self, tmp_path: Path) -> None:
        """``kitaru executions resume`` on a read-only journal exits 1 with a clear message."""
        log = tmp_path / "log"
        with installed(FaultyStore(store_file())) as store:
            exec_id, _ = run_into_fault(lambda: store.fault.update(query_only=1), log)
        folder = store_file().parent
        modes = {p: p.stat().st_mode for p in [folder, *folder.glob("kitaru.db*")]}
        try:
            for path, mode in modes.items():
                path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            result = cli("executions", "resume", exec_id, cwd=tmp_path)
            assert_clean_error(result, str(store_file()))
            assert "read-only" in result.stderr or "Cannot open the journal" in result.stderr
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        heal_and_resume(exec_id, log)


LOCKER = """
import pathlib, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
pathlib.Path(sys.argv[2]).write_text("locked")
while not pathlib.Path(sys.argv[3]).exists():
    time.sleep(0.01)
conn.execute("ROLLBACK")
"""


class TestLockHeldTooLong:
    @pytest.mark.slow
    def test_a_lock_held_past_the_busy_timeout_fails_cleanly_and_heals(
        self, tmp_path: Path
    ) -> None:
        """Another process holding the write lock too long: a clear error, then completion."""
        log, locked, release = tmp_path / "log", tmp_path / "locked", tmp_path / "release"
        locker: list[subprocess.Popen[str]] = []

        def take_the_lock() -> None:
            locker.append(
                subprocess.Popen(
                    [sys.executable, "-c", LOCKER, str(store_file()), str(locked), str(release)],
                    env=child_env(),
                    text=True,
                )
            )
            while not locked.exists():
                assert locker[0].poll() is None, "the locking process ended"
                threading.Event().wait(0.01)

        try:
            with installed(SqliteStore(store_file(), busy_timeout=0.3)):
                exec_id, error = run_into_fault(take_the_lock, log)
            assert "stayed locked by another process for more than 0.3 s" in str(error)
            assert "database is locked" not in str(error)
        finally:
            release.touch()
            for proc in locker:
                proc.wait(timeout=TIMEOUT)
        heal_and_resume(exec_id, log)


# -- damaged files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sound_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal of several finished executions, fully checkpointed into the main file."""
    folder = tmp_path_factory.mktemp("sound")
    path = folder / "kitaru.db"
    env = child_env(KITARU_STORE=str(path), KITARU_CONFIG_PATH=str(folder / "config"))
    script = (
        "import sys\n"
        "from tests.prop_flows.interpreter import interpret\n"
        "for i in range(12):\n"
        "    steps = [['work', f'a{i}', i, 0, 0.0], ['work', f'b{i}', i, 1, 0.0],"
        " ['map', ['fan', 'fan_2'], [i, 3]], ['doomed', f'd{i}']]\n"
        "    interpret.run(steps, sys.argv[1]).wait()\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(folder / "log")],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _everything(path: Path) -> dict[str, list[Any]]:
    store = SqliteStore(path)
    try:
        return {e: store.read_events(e) for e in store.all_exec_ids()}
    finally:
        store.close()


_damages = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0, exclude_max=True), st.just(0)),
    st.tuples(st.just("zero page"), st.floats(0.0, 1.0, exclude_max=True), st.just(0)),
    st.tuples(
        st.just("garbage page"), st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 2**32)
    ),
)


class TestDamagedFile:
    # On the class: a decorator on the test would change the examples derandomized
    # Hypothesis draws (they are keyed on the test function's source).
    pytestmark = pytest.mark.slow

    @costly(0.6)
    @given(damage=_damages)
    def test_damage_is_reported_never_read_as_a_shorter_journal(
        self, sound_journal: Path, tmp_path: Path, damage: tuple[str, float, int]
    ) -> None:
        """A truncated or overwritten file fails ``store check``, or reads back whole."""
        kind, where, seed = damage
        original = sound_journal.read_bytes()
        data = bytearray(original)
        page = 4096
        if kind == "truncate":
            data = data[: max(1, int(where * len(data)))]
        else:
            start = int(where * len(data)) // page * page
            filler = bytes(page) if kind == "zero page" else random_page(seed, page)
            data[start : start + page] = filler
        damaged = tmp_path / f"damaged-{os.urandom(4).hex()}.db"
        damaged.write_bytes(bytes(data))
        store = SqliteStore(damaged)
        try:
            report = check_store(store)
            readable: dict[str, list[Any]] | None
            try:
                readable = {e: store.read_events(e) for e in store.all_exec_ids()}
            except KitaruBackendError:
                readable = None
            streamed: dict[str, list[Any]] | None
            try:
                # What a resume folds, a batch at a time: damage is found there too.
                streamed = {e: list(store.stream_events(e)) for e in store.all_exec_ids()}
            except KitaruBackendError:
                streamed = None
        finally:
            store.close()
        whole = _everything(sound_journal)
        if report.ok:
            assert readable == whole, "store check passed a journal that lost events"
            assert streamed == whole, "store check passed a journal that streams short"
        else:
            assert readable is None or readable == whole, "a damaged journal read as shorter"
            assert streamed is None or streamed == whole, "a damaged journal streamed short"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{damaged}{suffix}").unlink(missing_ok=True)

    @pytest.mark.slow
    def test_the_cli_reports_a_truncated_journal(self, sound_journal: Path, tmp_path: Path) -> None:
        """``kitaru store check`` exits 1 naming the damage; other commands fail cleanly."""
        damaged = tmp_path / "kitaru.db"
        data = sound_journal.read_bytes()
        damaged.write_bytes(data[: len(data) * 2 // 3])
        env = child_env(KITARU_STORE=str(damaged))
        check = cli("store", "check", cwd=tmp_path, env=env)
        assert check.returncode == 1, check.stdout
        assert "problem" in check.stdout
        assert "Traceback" not in check.stderr
        listing = cli("executions", "list", cwd=tmp_path, env=env)
        if listing.returncode != 0:
            assert_clean_error(listing, "damaged")


def random_page(seed: int, size: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


# -- newer journals --------------------------------------------------------------------


INTERRUPTED_STEPS = [["work", key, n, 0, 0.0] for n, key in enumerate("abcd")]


def _interrupted(tmp_path: Path) -> tuple[str, Path]:
    """An execution whose process died (``os._exit``) inside its third checkpoint."""
    log = tmp_path / "log"
    command = [sys.executable, "-m", "tests.prop_flows.interpreter", "run"]
    died = subprocess.run(
        [*command, json.dumps(INTERRUPTED_STEPS), str(log), "--crash", "body:3"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert died.returncode == DEATH_EXIT_CODE, died.stderr
    (execution,) = KitaruClient().executions.list()
    assert side_effects(log) == Counter("abc")
    return execution.exec_id, log


class TestNewerJournal:
    @pytest.mark.slow
    def test_a_newer_schema_is_refused_clearly_and_left_untouched(self, tmp_path: Path) -> None:
        """Every command refuses a newer schema's journal, saying to upgrade; nothing changes."""
        exec_id, log = _interrupted(tmp_path)
        for store in kitaru._stores._stores.values():
            store.close()
        kitaru._stores._stores.clear()
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = store_file().read_bytes()
        for command in (
            ("executions", "resume", exec_id),
            ("executions", "get", exec_id),
            ("executions", "resume", "--all"),
        ):
            assert_clean_error(cli(*command, cwd=tmp_path), "newer kitaru", "upgrade kitaru")
        check = cli("store", "check", cwd=tmp_path)
        assert check.returncode == 1
        assert "newer kitaru" in check.stdout
        assert store_file().read_bytes() == before
        # A kitaru that knows the schema (here: the version set back) resumes it.
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        result = cli("executions", "resume", exec_id, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert side_effects(log) == Counter("abccd")

    @pytest.mark.slow
    def test_an_unknown_event_type_stops_a_resume_and_is_never_skipped(
        self, tmp_path: Path
    ) -> None:
        """An event of a type a newer kitaru wrote makes resume fail clearly, appending nothing."""
        exec_id, log = _interrupted(tmp_path)
        with contextlib.closing(sqlite3.connect(store_file(), isolation_level=None)) as conn:
            (last,) = conn.execute(
                "SELECT max(seq) FROM events WHERE exec_id = ?", (exec_id,)
            ).fetchone()
            conn.execute(
                "INSERT INTO events(exec_id, seq, type, at, body) VALUES (?, ?, ?, 0, ?)",
                (exec_id, last + 1, "memory_written", b"\x80"),
            )
        result = cli("executions", "resume", exec_id, cwd=tmp_path)
        assert_clean_error(result, "memory_written", "newer kitaru", "Upgrade kitaru")
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM events WHERE exec_id = ?", (exec_id,)
            ).fetchone()
        assert count == last + 1
        assert side_effects(log) == Counter("abc")
        check = cli("store", "check", cwd=tmp_path)
        assert check.returncode == 1
        assert "memory_written" in check.stdout


def test_a_journal_truncated_to_a_few_bytes_is_not_taken_for_a_new_one(tmp_path: Path) -> None:
    """SQLite opens a 1-byte file as empty; kitaru refuses it instead of journaling over it."""
    path = tmp_path / "kitaru.db"
    path.write_bytes(b"S")
    store = SqliteStore(path)
    try:
        report = check_store(store)
        with pytest.raises(KitaruBackendError, match="too short for an SQLite database"):
            store.list_executions()
    finally:
        store.close()
    assert not report.ok
    assert "1 bytes long" in report.problems[0]
    assert path.read_bytes() == b"S"

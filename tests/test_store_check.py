"""``kitaru store check`` finds damage instead of reading a journal as shorter."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import REPO, child_env, kitaru, run_flow

from kitaru import checkpoint, flow
from kitaru._store_check import check_store
from kitaru._stores import open_store
from kitaru.cli import main


@checkpoint
def grow(text: str) -> str:
    return text * 100


@flow
def two_steps(text: str) -> str:
    first = grow(text)
    return grow(first.load()[:10]).load()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    two_steps.run("ab").wait(timeout=30)
    two_steps.run("cd").wait(timeout=30)
    path = tmp_path / "kitaru.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


class TestCheck:
    def test_sound_journal_passes(self, journal: Path) -> None:
        """A journal written normally checks clean, counting what it holds."""
        result = CliRunner().invoke(main, ["store", "check"])
        assert result.exit_code == 0, result.output
        # Each: started, two calls (a start and its completion, one event each), completed.
        assert "2 executions, 8 events" in result.output
        assert "OK" in result.output

    def test_lost_payload_is_reported(self, journal: Path) -> None:
        """A payload that went missing is named with the event that needs it."""
        conn = sqlite3.connect(journal)
        conn.execute("DROP TRIGGER payloads_refuse_delete")
        conn.execute("DELETE FROM payloads WHERE rowid = (SELECT min(rowid) FROM payloads)")
        conn.commit()
        report = check_store(open_store())
        assert not report.ok
        assert any("missing payload" in p for p in report.problems)

    def test_removed_event_is_a_gap_not_a_shorter_journal(self, journal: Path) -> None:
        """An event deleted behind kitaru's back is reported as missing."""
        conn = sqlite3.connect(journal)
        conn.execute("DROP TRIGGER events_refuse_delete")
        conn.execute("DELETE FROM events WHERE seq = 2")
        conn.commit()
        result = CliRunner().invoke(main, ["store", "check", "-o", "json"])
        assert result.exit_code == 1
        assert "missing events" in result.output

    def test_corrupted_file_is_reported(self, journal: Path) -> None:
        """Overwritten pages are reported, with exit code 1 and no traceback."""
        size = journal.stat().st_size
        with open(journal, "r+b") as fh:
            fh.seek(size // 2)
            fh.write(b"\xff" * 4096)
        result = CliRunner().invoke(main, ["store", "check"])
        assert result.exit_code == 1
        assert "problem" in result.output
        assert "Traceback" not in result.output

    def test_status_mismatch_is_reported(self, journal: Path) -> None:
        """A read model that disagrees with the events is reported."""
        conn = sqlite3.connect(journal)
        conn.execute("UPDATE executions SET status = 'running'")
        conn.commit()
        report = check_store(open_store())
        assert any("executions table says running" in p for p in report.problems)

    def test_totals_that_disagree_with_the_events_are_reported(self, journal: Path) -> None:
        """Calls, tokens or cost in the executions table that the events do not give
        are reported."""
        assert check_store(open_store()).problems == []
        conn = sqlite3.connect(journal)
        conn.execute("UPDATE executions SET calls = calls + 1, tokens = 7")
        conn.commit()
        report = check_store(open_store())
        assert any("executions table counts calls, tokens and cost" in p for p in report.problems)


class TestEventChecksums:
    def test_a_flipped_byte_inside_an_event_is_caught(self, journal: Path) -> None:
        """Damage inside an event's body is reported, never decoded as another event."""
        conn = sqlite3.connect(journal)
        conn.execute("DROP TRIGGER events_refuse_update")
        (body,) = conn.execute("SELECT body FROM events WHERE seq = 3 LIMIT 1").fetchone()
        damaged = bytearray(body)
        damaged[-1] ^= 0x01
        conn.execute(
            "UPDATE events SET body = ? "
            "WHERE rowid = (SELECT min(rowid) FROM events WHERE seq = 3)",
            (bytes(damaged),),
        )
        conn.commit()
        report = check_store(open_store())
        assert any("damaged" in problem for problem in report.problems)
        result = CliRunner().invoke(main, ["store", "check"])
        assert result.exit_code == 1


# -- the write-ahead log ---------------------------------------------------------------

WAL_HEADER, FRAME_HEADER = 32, 24


@pytest.fixture
def killed_journal(tmp_path: Path) -> Path:
    """A journal whose writer was SIGKILLed, so its -wal file was never checkpointed."""
    store = tmp_path / "killed" / "kitaru.db"
    store.parent.mkdir()
    env = child_env(KITARU_STORE=str(store), PIPELINE_KILL="inside:summarise")
    result = run_flow("pipeline", "5", env=env)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert Path(f"{store}-wal").stat().st_size > 10 * FRAME_HEADER
    return store


def store_check(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH names the kitaru under test, wherever the console script came from.
    env = child_env(KITARU_STORE=str(store), PYTHONPATH=str(REPO))
    return kitaru("store", "check", *args, cwd=store.parent, env=env)


def frame_offset(store: Path, index: int) -> int:
    """Where frame ``index`` (from 1) starts in the -wal file."""
    (page_size,) = struct.unpack(">I", Path(f"{store}-wal").read_bytes()[8:12])
    return WAL_HEADER + (index - 1) * (FRAME_HEADER + page_size)


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def frames_sqlite_keeps(store: Path, tmp_path: Path) -> int:
    """How many WAL frames SQLite itself accepts, asked of a copy of the journal."""
    copy = tmp_path / "sqlite-view"
    copy.mkdir()
    shutil.copyfile(store, copy / "kitaru.db")
    shutil.copyfile(f"{store}-wal", copy / "kitaru.db-wal")
    with contextlib.closing(sqlite3.connect(copy / "kitaru.db")) as conn:
        _, log_frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(log_frames)


class TestWriteAheadLog:
    @pytest.mark.slow
    def test_a_sound_log_of_a_killed_writer_checks_clean(
        self, killed_journal: Path, tmp_path: Path
    ) -> None:
        """Every frame of an uncheckpointed log is verified and kept; the check passes."""
        result = store_check(killed_journal, "-o", "json")
        assert result.returncode == 0, result.stdout + result.stderr
        wal = json.loads(result.stdout)["wal"]
        assert wal["frames"] == wal["kept"] > 10
        assert wal["broken_frame"] is None
        text = store_check(killed_journal).stdout
        assert "1 executions" in text
        assert "OK: no problems found." in text

    @pytest.mark.slow
    def test_a_flipped_byte_in_a_frame_is_reported_with_what_sqlite_drops(
        self, killed_journal: Path, tmp_path: Path
    ) -> None:
        """A damaged frame is named with the frames, commits and pages SQLite would drop."""
        wal_file = Path(f"{killed_journal}-wal")
        original = wal_file.read_bytes()
        frames = (len(original) - WAL_HEADER) // (frame_offset(killed_journal, 2) - WAL_HEADER)
        broken = frames // 2
        flip(wal_file, frame_offset(killed_journal, broken) + FRAME_HEADER + 100)
        kept_by_sqlite = frames_sqlite_keeps(killed_journal, tmp_path)
        assert kept_by_sqlite < broken

        result = store_check(killed_journal, "-o", "json")
        assert result.returncode == 1, result.stdout + result.stderr
        report = json.loads(result.stdout)
        wal = report["wal"]
        assert wal["frames"] == frames
        assert wal["kept"] == kept_by_sqlite
        assert wal["broken_frame"] == broken
        assert wal["dropped_frames"] == list(range(broken, frames + 1))
        assert wal["lost_commits"] >= 1
        assert wal["dropped_pages"]
        [problem] = [p for p in report["problems"] if p.startswith("wal:")]
        assert f"frame {broken} " in problem
        assert f"{frames - kept_by_sqlite} frame(s)" in problem
        assert "committed transaction(s)" in problem
        assert any("cannot see damage inside frames it keeps" in n for n in report["notes"])
        # The evidence survives the check: SQLite discards the frames once it opens the file.
        assert Path(wal["saved_copy"]).read_bytes()[:100] == original[:100]

    @pytest.mark.slow
    def test_the_text_report_says_what_is_lost(self, killed_journal: Path) -> None:
        """Without -o json the command prints the problem and exits 1, with no traceback."""
        flip(Path(f"{killed_journal}-wal"), frame_offset(killed_journal, 10) + FRAME_HEADER + 7)
        result = store_check(killed_journal)
        assert result.returncode == 1
        assert "Traceback" not in result.stdout + result.stderr
        assert "frame 10 " in result.stdout
        assert "SQLite ignores it and everything after it" in result.stdout
        assert "OK" not in result.stdout

    @pytest.mark.slow
    def test_a_damaged_salt_is_a_break_not_a_leftover(
        self, killed_journal: Path, tmp_path: Path
    ) -> None:
        """A frame whose salt was damaged, with current frames after it, is reported."""
        flip(Path(f"{killed_journal}-wal"), frame_offset(killed_journal, 12) + 9)
        kept_by_sqlite = frames_sqlite_keeps(killed_journal, tmp_path)
        result = store_check(killed_journal, "-o", "json")
        assert result.returncode == 1
        wal = json.loads(result.stdout)["wal"]
        assert wal["broken_frame"] == 12
        assert wal["kept"] == kept_by_sqlite

    @pytest.mark.slow
    def test_a_damaged_header_loses_every_frame(self, killed_journal: Path, tmp_path: Path) -> None:
        """A damaged log header makes SQLite ignore the whole log; the check says so."""
        flip(Path(f"{killed_journal}-wal"), 17)  # inside salt-1
        assert frames_sqlite_keeps(killed_journal, tmp_path) == 0
        result = store_check(killed_journal, "-o", "json")
        assert result.returncode == 1
        report = json.loads(result.stdout)
        assert report["wal"]["header_damaged"] is True
        assert any("header" in p and "ignores all" in p for p in report["problems"])

    @pytest.mark.slow
    def test_a_transaction_cut_short_is_not_damage(
        self, killed_journal: Path, tmp_path: Path
    ) -> None:
        """Frames after the last commit, as a crash mid-transaction leaves them, lose nothing."""
        wal_file = Path(f"{killed_journal}-wal")
        data = wal_file.read_bytes()
        step = frame_offset(killed_journal, 2) - WAL_HEADER
        frames = (len(data) - WAL_HEADER) // step
        # Cut the log just before its last frame (a commit frame): the frames of that
        # last transaction stay, but its commit never happened.
        wal_file.write_bytes(data[: WAL_HEADER + (frames - 1) * step])
        kept_by_sqlite = frames_sqlite_keeps(killed_journal, tmp_path)
        result = store_check(killed_journal, "-o", "json")
        report = json.loads(result.stdout)
        assert result.returncode == 0, report["problems"]
        assert report["wal"]["kept"] == kept_by_sqlite
        if kept_by_sqlite < frames - 1:
            assert any("never committed" in note for note in report["notes"])

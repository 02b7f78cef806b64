"""``kitaru store check`` finds damage instead of reading a journal as shorter."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kitaru import checkpoint, flow
from kitaru.cli import main
from kitaru.journal import open_store
from kitaru.journal.integrity import check_store


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
        assert "2 executions, 12 events" in result.output
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

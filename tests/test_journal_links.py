"""A journal file reached through a second hard link is refused; a symlink works.

SQLite keeps a database's WAL and lock table in files named after the name the database
was opened under, so two processes using one file through two hard links would each
write their own WAL over the same pages.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import (
    REPO,
    assert_clean_error,
    background,
    child_env,
    flow_command,
    kitaru,
    wait_for_file,
)

from kitaru import KitaruBackendError
from kitaru.errors import BackendFailure
from kitaru.journal.sqlite import SqliteStore


def _env(store: Path, **changes: str) -> dict[str, str]:
    # PYTHONPATH names the kitaru under test, wherever the console script came from.
    return child_env(KITARU_STORE=str(store), PYTHONPATH=str(REPO), **changes)


class TestHardLinks:
    @pytest.mark.slow
    def test_a_second_process_using_a_hard_link_is_refused(self, tmp_path: Path) -> None:
        """While one process writes real.db, another opening it as alias.db gets one clear line."""
        real, alias, block = tmp_path / "real.db", tmp_path / "alias.db", tmp_path / "block"
        block.mkdir()
        env = _env(real, PIPELINE_BLOCK=str(block))
        with background(flow_command("pipeline", "3"), cwd=REPO, env=env) as writer:
            wait_for_file(block / "ready", writer)
            os.link(real, alias)
            try:
                refused = kitaru("executions", "list", cwd=tmp_path, env=_env(alias))
            finally:
                alias.unlink()
            (block / "release").write_text("")
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, (out, err)
        assert_clean_error(refused, "2 hard links", str(alias))
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        check = kitaru("store", "check", cwd=tmp_path, env=_env(real))
        assert check.returncode == 0, check.stdout + check.stderr

    def test_the_store_refuses_to_open_a_linked_file(self, tmp_path: Path) -> None:
        """Opening a journal with two links raises KitaruBackendError naming the link count."""
        real = tmp_path / "real.db"
        SqliteStore(real).all_exec_ids()
        os.link(real, tmp_path / "alias.db")
        with pytest.raises(KitaruBackendError, match="hard links") as caught:
            SqliteStore(real).all_exec_ids()
        assert caught.value.failure is BackendFailure.CANNOT_OPEN
        assert caught.value.detail == "2 hard links"


class TestSymlinks:
    @pytest.mark.slow
    def test_a_journal_used_through_a_symlink_works(self, tmp_path: Path) -> None:
        """A flow writing through a symlink completes and the real file checks clean."""
        real, link = tmp_path / "real.db", tmp_path / "link.db"
        SqliteStore(real).all_exec_ids()
        link.symlink_to(real)
        env = _env(link)
        ran = kitaru("executions", "list", cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stderr
        with background(flow_command("pipeline", "3"), cwd=REPO, env=env) as writer:
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, (out, err)
        listed = kitaru("executions", "list", cwd=tmp_path, env=_env(real))
        assert "completed" in listed.stdout, listed.stdout + listed.stderr
        assert not (tmp_path / "link.db-wal").exists()
        check = kitaru("store", "check", cwd=tmp_path, env=_env(real))
        assert check.returncode == 0, check.stdout + check.stderr

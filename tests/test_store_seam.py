"""The store seam: ``open_store`` picks a backend by URL, and the layers below load none."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import REPO, child_env
from store_backends import StoreBackend

from kitaru._config import store_url
from kitaru._stores import JournalNotFoundError, new_store, open_store
from kitaru.errors import (
    BackendFailure,
    KitaruBackendError,
    KitaruUsageError,
)


def _loaded_after(statement: str) -> set[str]:
    """The kitaru and database modules a fresh interpreter holds after ``statement``."""
    code = (
        f"import sys\n{statement}\n"
        "print(' '.join(m for m in sys.modules if m.startswith(('kitaru', 'sqlite'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=child_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(result.stdout.split())


class TestImportsLoadNoBackend:
    @pytest.mark.parametrize(
        "statement",
        ["import kitaru.journal", "import kitaru.replay", "import kitaru.replay.state"],
    )
    def test_the_journal_and_replay_do_not_load_sqlite(self, statement: str) -> None:
        """Importing the journal package or the pure replay loads neither sqlite3 nor the store."""
        loaded = _loaded_after(statement)
        assert "sqlite3" not in loaded
        assert "kitaru.journal.sqlite" not in loaded

    def test_opening_a_sqlite_store_loads_its_backend(self, tmp_path: Path) -> None:
        """The SQLite backend is imported when a store of it is opened, not before."""
        loaded = _loaded_after(
            f"from kitaru._stores import open_store; open_store({str(tmp_path / 'j.db')!r})"
        )
        assert {"sqlite3", "kitaru.journal.sqlite"} <= loaded


class TestNoUpwardImports:
    def test_the_journal_imports_nothing_above_it(self) -> None:
        """No module under kitaru/journal imports replay, runtime, the store opener or the check."""
        above = ("kitaru.replay", "kitaru.runtime", "kitaru._stores", "kitaru._store_check")
        offenders = []
        for path in sorted((REPO / "kitaru" / "journal").glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                offenders += [f"{path.name}: {n}" for n in names if n.startswith(above)]
        assert offenders == []


class TestOpenStore:
    def test_a_path_and_its_sqlite_url_are_one_store(self, tmp_path: Path) -> None:
        """A plain path and ``sqlite:///`` + that path open the same store, named by its file."""
        journal = tmp_path / "team.db"
        by_path = open_store(str(journal))
        assert open_store(f"sqlite:///{journal}") is by_path
        assert by_path.url == f"sqlite:///{journal}"
        assert by_path.location == str(journal)

    def test_relative_locations_are_resolved_against_the_current_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``rel.db`` and ``sqlite:///rel.db`` both mean rel.db in the current folder."""
        monkeypatch.chdir(tmp_path)
        assert store_url("rel.db") == store_url("sqlite:///rel.db")
        assert store_url("rel.db") == f"sqlite:///{tmp_path / 'rel.db'}"
        assert open_store("sqlite:///rel.db").location == str(tmp_path / "rel.db")

    def test_the_environment_names_a_relative_store(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``KITARU_STORE`` with a relative path is handed over as an absolute sqlite URL."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("KITARU_STORE", "here.db")
        assert store_url() == f"sqlite:///{tmp_path / 'here.db'}"

    def test_postgresql_without_a_server_is_one_clear_error(self, tmp_path: Path) -> None:
        """A postgresql:// store whose server is not running says so on one line."""
        store = open_store(f"postgresql://nobody@/kitaru?host={tmp_path}")
        with pytest.raises(KitaruBackendError, match="Cannot reach the PostgreSQL") as caught:
            store.list_executions()
        assert caught.value.failure is BackendFailure.CANNOT_OPEN
        assert "\n" not in str(caught.value)

    def test_an_unknown_scheme_is_a_one_line_usage_error(self) -> None:
        """A scheme no backend serves says which locations work."""
        with pytest.raises(KitaruUsageError, match="'mysql' scheme") as caught:
            open_store("mysql://db.example/kitaru")
        assert "sqlite:///PATH" in str(caught.value)
        assert "\n" not in str(caught.value)

    def test_a_password_in_the_url_is_not_shown(self, tmp_path: Path) -> None:
        """A store URL is named in errors without its password."""
        store = open_store(f"postgresql://agent:hunter2@/kitaru?host={tmp_path}")
        with pytest.raises(KitaruBackendError) as caught:
            store.list_executions()
        assert "hunter2" not in str(caught.value)
        assert "postgresql://agent:***@/kitaru" in str(caught.value)

    def test_reading_a_missing_journal_names_the_file(self, tmp_path: Path) -> None:
        """``create=False`` on a missing SQLite journal raises naming the file, creating nothing."""
        missing = tmp_path / "none.db"
        with pytest.raises(JournalNotFoundError, match=str(missing)):
            open_store(f"sqlite:///{missing}", create=False)
        assert not missing.exists()


class TestMailboxWakeUp:
    def test_posted_input_wakes_the_waiter(
        self, tmp_path: Path, store_backend: StoreBackend
    ) -> None:
        """``wait_for_mail`` returns soon after another process's store posts input."""
        location = store_backend.location(tmp_path)
        waiter, poster = new_store(location), new_store(location)
        try:
            waiter.list_executions()  # the journal exists before the wait starts
            posting = threading.Timer(
                0.2, lambda: poster.post_wait_input("e1", "approve", b"1", aborted=False)
            )
            posting.start()
            began = time.monotonic()
            waiter.wait_for_mail("e1", 10.0)
            waited = time.monotonic() - began
            posting.join()
            assert 0.15 < waited < 5.0
            assert "approve" in waiter.wait_inputs("e1")
        finally:
            waiter.close()
            poster.close()

    def test_without_mail_it_waits_out_the_timeout(
        self, tmp_path: Path, store_backend: StoreBackend
    ) -> None:
        """With nothing posted, ``wait_for_mail`` returns once the timeout has passed."""
        store = new_store(store_backend.location(tmp_path))
        try:
            store.list_executions()
            began = time.monotonic()
            store.wait_for_mail("e1", 0.3)
            assert time.monotonic() - began >= 0.3
        finally:
            store.close()


def test_child_processes_import_this_tree() -> None:
    """The subprocess tests above import the kitaru of this checkout, not another one."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import kitaru; print(kitaru.__file__)"],
        env=child_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(loaded.stdout.strip()).parent == REPO / "kitaru"

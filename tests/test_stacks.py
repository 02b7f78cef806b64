"""Stacks: the built-in local stack, stacks with stores of their own, the active stack
kept in the config dir, which store an execution goes to, ``kitaru.connect`` and the
``kitaru stack`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import REPO, TIMEOUT, child_env

import kitaru as kt
from kitaru import (
    KitaruClient,
    KitaruError,
    KitaruFeatureNotAvailableError,
    KitaruStateError,
    KitaruUsageError,
    checkpoint,
    flow,
)
from kitaru._run_config import configure, runtime_layer
from kitaru.cli import main


@pytest.fixture(autouse=True)
def _restore_configure() -> Iterator[None]:
    before = runtime_layer()
    yield
    configure(stack=before.stack, image=before.image, cache=before.cache, retries=before.retries)


@pytest.fixture
def no_store_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Unset KITARU_STORE, so the active stack decides; return the local stack's journal."""
    monkeypatch.delenv("KITARU_STORE")
    return tmp_path / "kitaru-config" / "kitaru.db"


@checkpoint
def add_one(x: int) -> int:
    return x + 1


@flow
def counter(x: int) -> int:
    return add_one(x).load()


@flow(stack="team")
def team_flow(x: int) -> int:
    return add_one(x).load()


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def ids_in(store: Path) -> list[str]:
    return [e.exec_id for e in KitaruClient(str(store)).executions.list()]


class TestLocalStack:
    def test_local_is_the_default_and_cannot_be_removed(self) -> None:
        """With nothing created, ``local`` is the only stack and the active one."""
        assert [(s.name, s.is_active, s.is_managed) for s in kt.list_stacks()] == [
            ("local", True, False)
        ]
        assert kt.current_stack().name == "local"
        with pytest.raises(KitaruUsageError, match="cannot be deleted"):
            kt.delete_stack("local")
        with pytest.raises(KitaruUsageError, match="built-in stack"):
            kt.create_stack("local")


class TestCreateAndUse:
    def test_a_created_stack_is_listed_activated_and_found_by_id(self, tmp_path: Path) -> None:
        """create_stack activates the stack; use_stack takes a name or an id."""
        team = kt.create_stack("team", store=f"sqlite:///{tmp_path / 'team.db'}")
        assert (team.name, team.is_active, team.is_managed) == ("team", True, True)
        assert team.store == f"sqlite:///{tmp_path / 'team.db'}"
        assert kt.current_stack().name == "team"
        assert kt.use_stack("local").is_active
        assert kt.use_stack(team.id).name == "team"
        assert [s.name for s in kt.list_stacks() if s.is_active] == ["team"]

    def test_a_relative_store_path_is_kept_absolute(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """sqlite:///rel.db is resolved against the folder the stack was created in."""
        monkeypatch.chdir(tmp_path)
        info = kt.create_stack("rel", store="sqlite:///rel.db", activate=False)
        assert info.store == f"sqlite:///{tmp_path / 'rel.db'}"
        assert not info.is_active

    def test_bad_names_duplicates_and_unknown_stacks_are_refused(self, tmp_path: Path) -> None:
        """Each mistake raises one clear error that says what to do."""
        with pytest.raises(KitaruUsageError, match="is not valid"):
            kt.create_stack("no spaces")
        kt.create_stack("team", store=str(tmp_path / "team.db"))
        with pytest.raises(KitaruStateError, match="already exists"):
            kt.create_stack("team")
        with pytest.raises(KitaruUsageError, match=r"No stack 'nope'\. Stacks: local, team"):
            kt.use_stack("nope")
        with pytest.raises(KitaruUsageError, match="'ftp' scheme"):
            kt.create_stack("odd", store="ftp://host/x")

    @pytest.mark.slow
    def test_the_active_stack_is_kept_for_other_processes(self, tmp_path: Path) -> None:
        """A new process sees the stack this one activated (saved in the config dir)."""
        kt.create_stack("team", store=str(tmp_path / "team.db"))
        seen = subprocess.run(
            [sys.executable, "-c", "import kitaru; print(kitaru.current_stack().name)"],
            env=child_env(PYTHONPATH=str(REPO)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        assert seen.stdout.strip() == "team"

    def test_deleting_the_active_stack_needs_force_and_keeps_the_journal(
        self, tmp_path: Path, no_store_env: Path
    ) -> None:
        """The active stack is deleted only with force; its journal file stays."""
        journal = tmp_path / "team.db"
        kt.create_stack("team", store=str(journal))
        counter.run(1)
        with pytest.raises(KitaruStateError, match="is the active stack"):
            kt.delete_stack("team")
        kt.delete_stack("team", force=True)
        assert kt.current_stack().name == "local"
        assert journal.exists()
        assert len(ids_in(journal)) == 1


class TestWhereExecutionsGo:
    def test_the_active_stack_receives_executions(self, tmp_path: Path, no_store_env: Path) -> None:
        """With KITARU_STORE unset, a run goes to the active stack's store and records it."""
        journal = tmp_path / "team.db"
        kt.create_stack("team", store=f"sqlite:///{journal}")
        handle = counter.run(1)
        assert handle.get() == 2
        assert ids_in(journal) == [handle.exec_id]
        assert KitaruClient().executions.get(handle.exec_id).frozen_execution_spec is not None
        spec = KitaruClient().executions.get(handle.exec_id).frozen_execution_spec
        assert spec is not None
        assert (spec.resolved_execution.stack, spec.store) == ("team", str(journal))
        kt.use_stack("local")
        assert not no_store_env.exists(), "the local stack's journal was not touched"

    def test_kitaru_store_beats_the_active_stack(self, tmp_path: Path) -> None:
        """An explicit KITARU_STORE wins over the stack saved as active."""
        kt.create_stack("team", store=str(tmp_path / "team.db"))
        handle = counter.run(1)
        assert ids_in(tmp_path / "kitaru.db") == [handle.exec_id]
        assert not (tmp_path / "team.db").exists()
        spec = KitaruClient().executions.get(handle.exec_id).frozen_execution_spec
        assert spec is not None
        assert spec.resolved_execution.stack == "local"

    @pytest.mark.parametrize("how", ["invocation", "decorator", "configure", "environment"])
    def test_a_stack_named_for_the_run_receives_it(
        self, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """stack= on the run or flow, configure(stack=) and KITARU_STACK all pick the store."""
        journal = tmp_path / "team.db"
        kt.create_stack("team", store=str(journal), activate=False)
        if how == "invocation":
            handle = counter.run(1, stack="team")
        elif how == "decorator":
            handle = team_flow.run(1)
        elif how == "configure":
            kt.configure(stack="team")
            handle = counter.run(1)
        else:
            monkeypatch.setenv("KITARU_STACK", "team")
            handle = counter.run(1)
        assert handle.get() == 2
        assert ids_in(journal) == [handle.exec_id]
        assert handle.exec_id not in ids_in(tmp_path / "kitaru.db")

    def test_an_unknown_stack_is_refused_before_anything_runs(self) -> None:
        """A run on a stack that does not exist raises KitaruUsageError naming the stacks."""
        with pytest.raises(KitaruUsageError, match=r"No stack 'ghost'\. Stacks: local"):
            counter.run(1, stack="ghost")

    def test_a_replay_finds_its_source_on_another_stack(self, tmp_path: Path) -> None:
        """Replaying an execution recorded on a non-active stack runs in that stack's store."""
        journal = tmp_path / "team.db"
        kt.create_stack("team", store=str(journal), activate=False)
        source = counter.run(4, stack="team")
        replay = counter.replay(source.exec_id, from_="add_one")
        assert replay.get() == 5
        assert set(ids_in(journal)) == {source.exec_id, replay.exec_id}
        with pytest.raises(KitaruUsageError, match="recorded in the journal of the execution"):
            counter.replay(source.exec_id, from_="add_one", stack="local")


class TestPostgresStacks:
    def test_a_postgresql_stack_records_there(self, no_store_env: Path, pg_url: str) -> None:
        """A stack created with a postgresql:// store runs and lists executions there."""
        info = kt.create_stack("pg", store=pg_url)
        assert info.store == pg_url
        handle = counter.run(1)
        assert handle.get() == 2
        result = cli("executions", "list", "-o", "json")
        assert result.exit_code == 0, result.stderr
        assert [row["exec_id"] for row in json.loads(result.stdout)] == [handle.exec_id]
        assert cli("stack", "use", "local").exit_code == 0
        assert KitaruClient().executions.list() == []

    def test_status_and_info_show_a_postgresql_store_masked(
        self, no_store_env: Path, pg_url: str
    ) -> None:
        """status/info on a PostgreSQL stack: the URL with its password masked, its
        executions, and the journal file named as SQLite-only."""
        user, _, rest = pg_url.partition("://")[2].partition("@")
        # The test server trusts its socket, so the password is carried but never checked.
        kt.create_stack("pg", store=f"postgresql://{user}:hunter2@{rest}")
        assert counter.run(1).get() == 2

        result = cli("status", "-o", "json")
        assert result.exit_code == 0, result.stderr
        status = json.loads(result.stdout)
        assert status["stack"] == "pg"
        assert status["store"] == f"postgresql://{user}:***@{rest}"
        assert status["store_backend"] == "postgresql"
        assert status["journal"] is None
        assert status["sqlite_only"] == ["journal"]
        assert (status["journal_executions"], status["journal_by_status"]) == (
            1,
            {"completed": 1},
        )

        text = cli("status")
        assert text.exit_code == 0, text.stderr
        assert f"Store       postgresql://{user}:***@{rest}" in text.stdout
        assert "1 executions (1 completed)" in text.stdout
        assert "journal: SQLite stores only" in text.stdout

        info = cli("info", "-o", "json")
        assert info.exit_code == 0, info.stderr
        assert {key: json.loads(info.stdout)[key] for key in status} == status
        for shown in (result.stdout, text.stdout, info.stdout):
            assert "hunter2" not in shown

    def test_clean_keeps_to_sqlite_stores(self, no_store_env: Path, pg_url: str) -> None:
        """clean on a PostgreSQL stack exits 1 naming the store kind it needs: it removes
        files, and a shared database is not one (init creates the tables there)."""
        kt.create_stack("pg", store=pg_url)
        result = cli("clean", "global", "--dry-run")
        assert result.exit_code == 1
        assert "an SQLite journal file only" in result.stderr
        assert "Traceback" not in result.stderr
        created = cli("init")
        assert created.exit_code == 0, created.stderr
        assert "Created the journal postgresql://" in created.stdout

    def test_an_unreachable_server_is_one_clear_error(
        self, no_store_env: Path, tmp_path: Path
    ) -> None:
        """A stack whose PostgreSQL server is not running fails with one line, exit 1."""
        kt.create_stack("down", store=f"postgresql://nobody@/kitaru?host={tmp_path}")
        result = cli("executions", "list")
        assert result.exit_code == 1
        assert "Cannot reach the PostgreSQL journal" in result.stderr
        assert "Traceback" not in result.stderr


class TestConnect:
    def test_a_store_url_selects_a_stack_for_it(self, tmp_path: Path) -> None:
        """connect(sqlite URL) creates and activates a stack once, then reuses it."""
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        first = kt.connect(url)
        assert (first.name, first.is_active, first.store) == ("shared", True, url)
        kt.use_stack("local")
        again = kt.connect(url)
        assert again.id == first.id
        assert [s.name for s in kt.list_stacks()] == ["local", "shared"]

    @pytest.mark.parametrize("url", ["https://kitaru.example.com", "http://127.0.0.1:8080"])
    def test_a_server_url_is_not_available(self, url: str) -> None:
        """A Kitaru server URL raises KitaruFeatureNotAvailableError naming the store URL."""
        with pytest.raises(KitaruFeatureNotAvailableError) as caught:
            kt.connect(url)
        assert "kitaru.connect('sqlite:///" in str(caught.value)
        assert isinstance(caught.value, KitaruError)
        assert [s.name for s in kt.list_stacks()] == ["local"]

    def test_something_else_is_a_usage_error(self) -> None:
        """A string that is no URL at all raises KitaruUsageError."""
        with pytest.raises(KitaruUsageError, match="is not a store URL"):
            kt.connect("team.db")


class TestStackCommand:
    def test_create_list_use_current_delete(self, tmp_path: Path) -> None:
        """The stack commands manage stacks; -o json gives id, name, is_active, is_managed."""
        created = cli("stack", "create", "team", "--store", f"sqlite:///{tmp_path / 't.db'}")
        assert created.exit_code == 0, created.stderr
        assert "Created stack team" in created.stdout
        listed = json.loads(cli("stack", "list", "-o", "json").stdout)
        assert [(s["name"], s["is_active"], s["is_managed"]) for s in listed] == [
            ("local", False, False),
            ("team", True, True),
        ]
        assert {"id", "name", "is_active", "is_managed", "store"} <= set(listed[1])
        assert json.loads(cli("stack", "current", "-o", "json").stdout)["name"] == "team"
        assert "KITARU_STORE is set" in cli("stack", "current").stdout
        assert cli("stack", "use", "local").exit_code == 0
        assert "* local" in cli("stack", "list").stdout
        deleted = cli("stack", "delete", "team")
        assert deleted.exit_code == 0, deleted.stderr
        assert [s["name"] for s in json.loads(cli("stack", "list", "-o", "json").stdout)] == [
            "local"
        ]

    def test_errors_are_one_line_and_exit_1(self) -> None:
        """An unknown stack or a bad name exits 1 with one error line and no traceback."""
        for args in (("stack", "use", "nope"), ("stack", "create", "bad name")):
            result = cli(*args)
            assert result.exit_code == 1
            assert result.stderr.startswith("Error: ")
            assert len(result.stderr.strip().splitlines()) == 1

    @pytest.mark.slow
    def test_the_installed_command_persists_the_active_stack(self, tmp_path: Path) -> None:
        """``kitaru stack create`` in one process, ``kitaru stack current`` in another."""
        env = child_env(PYTHONPATH=str(REPO))
        # The same entry point the installed script calls, from this worktree's code.
        command = [sys.executable, "-c", "from kitaru.cli import main; main()"]
        made = subprocess.run(
            [*command, "stack", "create", "team", "--store", str(tmp_path / "t.db")],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        shown = subprocess.run(
            [*command, "stack", "current", "-o", "json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert json.loads(shown.stdout)["name"] == "team"

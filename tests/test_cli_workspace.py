"""``kitaru -V``, ``status``, ``info``, ``init`` and ``clean``: where kitaru keeps its
state, creating it, and removing it (never under a live execution)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import REPO, TIMEOUT, background, child_env, kitaru_command

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.cli import main


def cli(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def run_kitaru(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@checkpoint
def one() -> int:
    return 1


@flow
def tiny() -> int:
    return one()  # type: ignore[return-value]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "kitaru.db"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "kitaru-config"


class TestVersion:
    @pytest.mark.parametrize("flag", ["-V", "--version"])
    def test_python_m_kitaru_prints_the_version(self, tmp_path: Path, flag: str) -> None:
        """``python -m kitaru -V`` prints the installed version and exits 0."""
        from importlib.metadata import version

        done = run_kitaru(flag, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"kitaru, version {version('kitaru')}"


class TestStatus:
    def test_status_names_stack_journal_and_config_dir_and_creates_nothing(
        self, journal: Path, config: Path
    ) -> None:
        """Before anything ran, status shows the local stack and both paths, creating none."""
        data = json.loads(cli("status", "-o", "json").stdout)
        assert data["stack"] == "local"
        assert data["journal"] == str(journal)
        assert data["journal_from"] == "KITARU_STORE"
        assert data["journal_exists"] is False
        assert data["config_dir"] == str(config)
        assert not journal.exists()
        assert not config.exists()
        text = cli("status").stdout
        assert f"Journal     {journal} (from KITARU_STORE): not created yet" in text
        assert "Stack       local" in text

    def test_status_counts_executions(self) -> None:
        """Once flows ran, status counts the journal's executions by status."""
        tiny.run().wait(timeout=TIMEOUT)
        tiny.run().wait(timeout=TIMEOUT)
        data = json.loads(cli("status", "-o", "json").stdout)
        assert (data["journal_executions"], data["journal_by_status"]) == (2, {"completed": 2})
        assert "2 executions (2 completed)" in cli("status").stdout


class TestInfo:
    def test_info_shows_versions(self, tmp_path: Path) -> None:
        """``info`` adds Python, SQLite and package versions to what status shows."""
        from importlib.metadata import version

        data = json.loads(cli("info", "-o", "json").stdout)
        assert data["python_version"] == ".".join(map(str, sys.version_info[:3]))
        assert data["packages"]["click"] == version("click")
        assert data["stack"] == "local"

    def test_info_writes_a_file(self, tmp_path: Path) -> None:
        """``info --file x.json`` writes the same data; other extensions are refused."""
        target = tmp_path / "debug.json"
        assert cli("info", "--file", str(target)).exit_code == 0
        assert json.loads(target.read_text())["stack"] == "local"
        refused = cli("info", "--file", str(tmp_path / "debug.yaml"))
        assert refused.exit_code == 1
        assert "only .json" in refused.stderr


class TestInit:
    def test_init_creates_config_dir_and_journal_then_leaves_them(
        self, journal: Path, config: Path
    ) -> None:
        """``init`` creates both and says so; a second ``init`` says they exist."""
        first = cli("init")
        assert first.exit_code == 0
        assert f"Created the config dir {config}." in first.stdout
        assert f"Created the journal {journal}." in first.stdout
        assert config.is_dir()
        assert journal.is_file()
        again = json.loads(cli("init", "-o", "json").stdout)
        assert (again["config_dir_created"], again["journal_created"]) == (False, False)
        assert "already exists" in cli("init").stdout


class TestClean:
    def test_clean_lists_the_files_and_removes_them_after_yes(self, journal: Path) -> None:
        """``clean`` names the journal and its side files, asks, and removes exactly those."""
        tiny.run().wait(timeout=TIMEOUT)
        present = [p for p in journal.parent.iterdir() if p.name.startswith("kitaru.db")]
        assert journal in present
        declined = cli("clean", stdin="n\n")
        assert declined.exit_code == 1
        assert "Nothing was removed." in declined.stderr
        assert journal.exists()
        for path in present:
            assert str(path) in declined.stderr
        done = cli("clean", stdin="y\n")
        assert done.exit_code == 0, done.stderr
        assert not any(p.name.startswith("kitaru.db") for p in journal.parent.iterdir())
        assert KitaruClient().executions.list() == []

    def test_yes_skips_the_question_and_dry_run_removes_nothing(
        self, journal: Path, config: Path
    ) -> None:
        """``--dry-run`` only lists; ``--yes --config`` removes the config dir as well."""
        cli("init")
        dry = json.loads(cli("clean", "--dry-run", "--config", "-o", "json").stdout)
        first, *side, last = dry["would_remove"]
        assert (first, last) == (str(journal), str(config))
        assert {Path(p).name for p in side} <= {"kitaru.db-wal", "kitaru.db-shm"}
        assert journal.exists()
        assert config.exists()
        done = cli("clean", "--yes", "--config")
        assert done.exit_code == 0
        assert not journal.exists()
        assert not config.exists()
        assert "Nothing to remove" in cli("clean", "--yes").stdout

    @pytest.mark.slow
    @pytest.mark.parametrize(
        "command", [["clean", "--yes"], ["clean", "global", "--yes", "--force"]]
    )
    def test_clean_refuses_while_an_execution_runs_in_a_live_process(
        self, tmp_path: Path, journal: Path, config: Path, command: list[str]
    ) -> None:
        """While another process runs an execution, ``clean`` removes nothing, exit 1."""
        with background(
            [sys.executable, "-m", "tests.mgmt_flows.noisy"],
            cwd=REPO,
            env=child_env(NOISY_TIMEOUT="60"),
        ) as proc:
            assert proc.stdout is not None
            exec_id = json.loads(proc.stdout.readline())["exec_id"]
            while KitaruClient().executions.get(exec_id).status != "waiting":
                pass
            done = run_kitaru(*command, cwd=tmp_path)
            assert done.returncode == 1
            assert f"Execution {exec_id} is waiting in live process {proc.pid}" in done.stderr
            assert "Traceback" not in done.stderr
            assert journal.exists()
        assert os.path.exists(journal)
        assert not config.with_name(config.name + "-backups").exists()


def kitaru_cli(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The real ``kitaru`` command, run as a user runs it, on this test's journal."""
    return subprocess.run(
        kitaru_command(*args),
        cwd=cwd,
        env=child_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


class TestCleanScopes:
    """Kitaru's `kitaru clean project|global|all`, as its troubleshooting guide runs them."""

    def test_clean_project_says_what_to_use_instead(
        self, tmp_path: Path, journal: Path, config: Path
    ) -> None:
        """``clean project --yes`` exits 1 with one line naming `kitaru clean` and `global`."""
        tiny.run().wait(timeout=TIMEOUT)
        done = kitaru_cli("clean", "project", "--yes", cwd=tmp_path)
        assert done.returncode == 1
        (line,) = done.stderr.strip().splitlines()
        assert "kitaru keeps no per-project .kitaru/ folder" in line
        assert f"the journal {journal}" in line
        assert "`kitaru clean`" in line
        assert "`kitaru clean global`" in line
        assert journal.exists()

    def test_clean_global_removes_journal_and_config_after_backing_up(
        self, tmp_path: Path, journal: Path, config: Path
    ) -> None:
        """``clean global --yes`` removes the journal and config dir; a backup keeps the runs."""
        exec_id = tiny.run().exec_id
        kitaru.create_stack("team", activate=False)
        KitaruClient().close()
        done = kitaru_cli("clean", "global", "--yes", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert not journal.exists()
        assert not config.exists()
        (stamp,) = config.with_name(config.name + "-backups").iterdir()
        assert f"Backup: {stamp}/" in done.stdout
        backed_up = KitaruClient(str(stamp / "kitaru.db"), create=False)
        assert [row.exec_id for row in backed_up.executions.list()] == [exec_id]
        backed_up.close()

    def test_clean_global_touches_nothing_outside_kitarus_files(
        self, tmp_path: Path, journal: Path, config: Path
    ) -> None:
        """A file beside the journal and a stack's journal outside the config dir stay."""
        tiny.run().wait(timeout=TIMEOUT)
        elsewhere = tmp_path / "elsewhere" / "team.db"
        done = kitaru_cli(
            "stack", "create", "team", "--store", f"sqlite:///{elsewhere}", cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        team = KitaruClient(f"sqlite:///{elsewhere}")
        assert team.executions.list() == []  # the first query creates the journal
        team.close()
        assert elsewhere.exists()
        notes = tmp_path / "notes.txt"
        notes.write_text("mine")
        (config / "mine.txt").write_text("inside")
        done = kitaru_cli("clean", "all", "--yes", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert not journal.exists()
        assert not config.exists()
        assert notes.read_text() == "mine"
        assert elsewhere.exists()

    def test_model_aliases_need_force(self, tmp_path: Path, journal: Path, config: Path) -> None:
        """With a model alias registered, ``clean global --yes`` exits 1 unless --force."""
        tiny.run().wait(timeout=TIMEOUT)
        registered = kitaru_cli(
            "model", "register", "fast", "--model", "openai/gpt-4o-mini", cwd=tmp_path
        )
        assert registered.returncode == 0, registered.stderr
        refused = kitaru_cli("clean", "global", "--yes", cwd=tmp_path)
        assert refused.returncode == 1
        assert "would remove the model aliases registered in" in refused.stderr
        assert "(fast)" in refused.stderr
        assert "Pass --force" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert journal.exists()
        assert (config / "models.json").exists()
        done = kitaru_cli("clean", "global", "--yes", "--force", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert not config.exists()

    def test_dry_run_lists_and_removes_nothing(
        self, tmp_path: Path, journal: Path, config: Path
    ) -> None:
        """``clean all --dry-run -o json`` names the journal, the config dir and the backup."""
        cli("init")
        tiny.run().wait(timeout=TIMEOUT)
        done = kitaru_cli("clean", "all", "--dry-run", "-o", "json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert shown["scope"] == "all"
        assert shown["would_remove"][0] == str(journal)
        assert shown["would_remove"][-1] == str(config)
        assert shown["backup"].startswith(str(config) + "-backups/")
        assert journal.exists()
        assert config.exists()
        assert not config.with_name(config.name + "-backups").exists()

    @pytest.mark.parametrize("stdin", ["n\n", ""])
    def test_unconfirmed_global_removes_nothing(
        self, tmp_path: Path, journal: Path, config: Path, stdin: str
    ) -> None:
        """Answering no (or nothing) to the question exits 1 and removes nothing."""
        cli("init")
        tiny.run().wait(timeout=TIMEOUT)
        done = kitaru_cli("clean", "global", cwd=tmp_path, stdin=stdin)
        assert done.returncode == 1
        assert "This removes, for good:" in done.stderr
        assert "Nothing was removed. Pass --yes" in done.stderr
        assert "Traceback" not in done.stderr
        assert journal.exists()
        assert config.exists()

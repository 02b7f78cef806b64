"""The command line as a new user meets it: clean JSON, waits that say how to answer
them, reading that creates nothing, one answer per wait, and printed commands that work
from another shell.

Commands run as real processes (``python -m kitaru``) where it matters what reaches
stdout and stderr, or which environment the other shell has.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import REPO, TIMEOUT, background, child_env

import kitaru
from kitaru import KitaruClient, KitaruStateError, KitaruUserCodeError, flow
from kitaru.cli import main


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run_kitaru(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m kitaru ARGS`` in a new process (this checkout's kitaru)."""
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        cwd=cwd,
        env=env if env is not None else child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def parked_noisy() -> str:
    """An execution of ``tests.mgmt_flows.noisy`` left waiting at ``go_on``, no process on it."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.mgmt_flows.noisy"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert rows[-1] == {"status": "waiting"}, done.stderr
    exec_id: str = rows[0]["exec_id"]
    return exec_id


@pytest.fixture
def other_shell(tmp_path: Path) -> dict[str, str]:
    """The environment of another terminal: none of this one's KITARU_* settings, and
    ``kitaru`` on PATH runs this checkout's code."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "kitaru"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m kitaru "$@"\n')
    shim.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    return child_env(
        KITARU_STORE=None,
        KITARU_CONFIG_PATH=None,
        XDG_CONFIG_HOME=None,
        HOME=str(home),
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    )


def in_shell(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


class TestJsonAloneOnStdout:
    @pytest.mark.slow
    def test_resume_json_holds_only_json_and_prints_still_go_to_the_journal(
        self, tmp_path: Path
    ) -> None:
        """``resume -o json > f.json`` gives a parsable file; checkpoint prints go to stderr
        and are journaled as stdout lines all the same."""
        exec_id = parked_noisy()
        KitaruClient().executions.input(exec_id, value=True)
        done = run_kitaru("executions", "resume", exec_id, "-o", "json", cwd=REPO)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["status"] == "completed"
        assert "step 2 running" in done.stderr
        lines = KitaruClient().executions.logs(exec_id)
        assert [(line.source, line.message) for line in lines] == [
            ("stdout", "step 1 running"),
            ("stdout", "step 2 running"),
        ]

    @pytest.mark.slow
    def test_replay_json_holds_only_json(self) -> None:
        """``replay -o json`` prints its progress and the checkpoints' prints to stderr."""
        exec_id = parked_noisy()
        KitaruClient().executions.input(exec_id, value=True)
        assert run_kitaru("executions", "resume", exec_id, cwd=REPO).returncode == 0
        done = run_kitaru(
            "executions", "replay", exec_id, "--from", "step_2", "-o", "json", cwd=REPO
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["original_exec_id"] == exec_id
        assert "step 2 running" in done.stderr
        assert "Replaying" in done.stderr


class TestWaitNotice:
    @pytest.mark.slow
    def test_resume_says_at_once_what_it_waits_for_and_the_command_works_elsewhere(
        self, tmp_path: Path, other_shell: dict[str, str]
    ) -> None:
        """A resumed execution that reaches a wait prints the question, the schema and the
        exact answering command (with KITARU_STORE) at once; run from another shell, that
        command lets the resume finish."""
        exec_id = parked_noisy()
        err_file = tmp_path / "resume.err"
        env = child_env(NOISY_TIMEOUT="60")
        with (
            err_file.open("w") as err,
            subprocess.Popen(
                [sys.executable, "-m", "kitaru", "executions", "resume", exec_id],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            ) as resuming,
        ):
            try:
                deadline = time.monotonic() + 15
                while "--value" not in err_file.read_text() and time.monotonic() < deadline:
                    time.sleep(0.05)
                notice = err_file.read_text()
                assert "Question: Go on to step 2?" in notice
                assert 'Expects:  {"type": "boolean"}' in notice
                store = os.environ["KITARU_STORE"]
                command = f"KITARU_STORE={store} kitaru executions input {exec_id} --value true"
                assert command in notice
                answered = in_shell(command, other_shell, tmp_path)
                assert answered.returncode == 0, answered.stderr
                out, _ = resuming.communicate(timeout=TIMEOUT)
            finally:
                resuming.kill()
        assert resuming.returncode == 0, err_file.read_text()
        assert "Status     completed" in out

    def test_the_default_store_needs_no_kitaru_store_in_the_command(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With the default journal, the printed command is plain ``kitaru ...``."""
        from kitaru.cli.waits import kitaru_command

        monkeypatch.delenv("KITARU_STORE")
        monkeypatch.delenv("KITARU_CONFIG_PATH")
        assert kitaru_command("executions", "get", "abc", store="/x/kitaru.db") == (
            "kitaru executions get abc"
        )


class TestReadingCreatesNothing:
    @pytest.mark.slow
    @pytest.mark.parametrize(
        "args",
        [
            ("executions", "list"),
            ("executions", "get", "abc"),
            ("executions", "logs", "abc"),
            ("executions", "verify", "--all"),
            ("status",),
        ],
    )
    def test_no_journal_is_created_and_the_resolved_path_is_named(
        self, tmp_path: Path, args: tuple[str, ...]
    ) -> None:
        """A read-only command with a relative KITARU_STORE and no journal creates no file
        or folder, and names the absolute path it looked at."""
        work = tmp_path / "work"
        work.mkdir()
        env = child_env(KITARU_STORE="data/journal.db")
        done = run_kitaru(*args, cwd=work, env=env)
        assert list(work.iterdir()) == []
        assert not Path(os.environ["KITARU_CONFIG_PATH"]).exists()
        shown = done.stdout + done.stderr
        assert str(work / "data" / "journal.db") in shown
        assert "Traceback" not in shown

    @pytest.mark.slow
    def test_list_says_there_are_no_executions(self, tmp_path: Path) -> None:
        """``list`` with no journal exits 0 saying there are none, and where it looked."""
        done = run_kitaru("executions", "list", cwd=tmp_path)
        assert done.returncode == 0
        assert done.stdout.strip() == (
            f"No executions: there is no journal at {tmp_path / 'kitaru.db'}."
        )
        as_json = run_kitaru("executions", "list", "-o", "json", cwd=tmp_path)
        assert json.loads(as_json.stdout) == []

    @pytest.mark.slow
    def test_get_of_a_missing_journal_is_one_error_line(self, tmp_path: Path) -> None:
        """``get`` with no journal is one line on stderr naming the file, exit 1."""
        done = run_kitaru("executions", "get", "abc", cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr.strip() == (
            f"Error: No execution abc: there is no journal at {tmp_path / 'kitaru.db'}. "
            "Point KITARU_STORE at the journal that holds it (`kitaru executions list` "
            "shows what a journal holds), or run a flow first."
        )


class TestOneAnswerPerWait:
    @pytest.mark.slow
    def test_the_cli_refuses_a_second_answer(self) -> None:
        """A second ``input`` for an answered wait is one error line and exit 1; the first
        answer stands."""
        exec_id = parked_noisy()
        assert cli("executions", "input", exec_id, "--value", "false").exit_code == 0
        again = cli("executions", "input", exec_id, "--value", "true")
        assert again.exit_code == 1
        assert "already has an answer" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
        handle = KitaruClient().executions.resume(exec_id)
        assert handle.wait(timeout=TIMEOUT) == {"approved": False}

    @pytest.mark.slow
    def test_the_client_refuses_a_second_answer(self) -> None:
        """``executions.input`` twice raises ``KitaruStateError`` naming the wait."""
        exec_id = parked_noisy()
        KitaruClient().executions.input(exec_id, value=True)
        with pytest.raises(KitaruStateError, match=r"Wait 'go_on' .* already has an answer"):
            KitaruClient().executions.input(exec_id, value=False)

    @pytest.mark.slow
    def test_two_racing_answers_store_one(self) -> None:
        """The journal itself keeps one answer per wait: a second post is refused."""
        from kitaru._stores import open_store
        from kitaru.errors import WaitAlreadyAnsweredError

        store = open_store()
        exec_id = parked_noisy()
        store.post_wait_input(exec_id, "go_on", b"first", aborted=False)
        with pytest.raises(WaitAlreadyAnsweredError):
            store.post_wait_input(exec_id, "go_on", b"second", aborted=False)
        assert store.wait_inputs(exec_id) == {"go_on": (b"first", False)}


class TestUnknownCheckpoint:
    @pytest.mark.slow
    def test_logs_names_the_checkpoints_there_are(self) -> None:
        """``logs --checkpoint nosuch`` says there is none, lists the real ones, exits 1."""
        exec_id = parked_noisy()
        result = cli("executions", "logs", exec_id, "--checkpoint", "nosuch")
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            f"Error: Execution {exec_id} has no checkpoint 'nosuch'. Its checkpoints: step. "
            "Give one of those to --checkpoint."
        )


@flow
def asks_fast() -> str:
    return kitaru.llm("hello", model="fast")  # type: ignore[return-value]


@flow
def asks_nobody() -> str:
    return kitaru.llm("hello")  # type: ignore[return-value]


class TestMockModelNames:
    def test_any_model_name_works_with_the_mock(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With the mock on, ``model="fast"`` works before any alias ``fast`` exists."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "mocked")
        handle = asks_fast.run()
        assert handle.wait(timeout=TIMEOUT) == "mocked"
        call = KitaruClient().executions.get(handle.exec_id).checkpoints[0].llm_calls[0]
        assert (call.requested_model, call.resolved_model) == ("fast", "mock/fast")

    def test_no_model_at_all_is_still_an_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With the mock on but no model anywhere, the "No model to call" error stays."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "mocked")
        with pytest.raises(KitaruUserCodeError, match="No model to call"):
            asks_nobody.run().wait(timeout=TIMEOUT)


def _wait_for_line(proc: subprocess.Popen[str], needle: str) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never printed; got {seen}")


class TestExampleCommands:
    @pytest.mark.slow
    def test_approval_wait_manual_prints_commands_that_answer_it(
        self, tmp_path: Path, other_shell: dict[str, str]
    ) -> None:
        """``approval_wait.py --manual`` prints commands that, typed in another shell,
        answer its waits; the example then finishes."""
        # The example makes its own journal folder; TMPDIR keeps it inside this test's.
        env = child_env(KITARU_STORE=None, PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path))
        script = str(REPO / "examples" / "approval_wait.py")
        with background([sys.executable, script, "--manual"], cwd=tmp_path, env=env) as proc:
            printed = _wait_for_line(proc, "--abort")
            commands = [line.strip() for line in printed if "--value" in line]
            assert len(commands) == 2, printed
            review = in_shell(commands[0], other_shell, tmp_path)
            assert review.returncode == 0, review.stderr
            deadline = time.monotonic() + TIMEOUT
            while True:  # the second wait comes up once the first answer is picked up
                confirm = in_shell(commands[1], other_shell, tmp_path)
                if confirm.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert confirm.returncode == 0, confirm.stderr
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err
        assert "published: We are pleased to announce kitaru 1.0" in out

    @pytest.mark.slow
    def test_replay_with_overrides_prints_a_command_that_works(
        self, tmp_path: Path, other_shell: dict[str, str]
    ) -> None:
        """The inspect command ``replay_with_overrides.py`` prints works from another shell."""
        done = subprocess.run(
            [sys.executable, str(REPO / "examples" / "replay_with_overrides.py")],
            cwd=tmp_path,
            env=child_env(KITARU_STORE=None, TMPDIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        match = re.search(r"Inspect it with: (.+)$", done.stdout, re.MULTILINE)
        assert match is not None, done.stdout
        shown = in_shell(match.group(1), other_shell, tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "Status     completed" in shown.stdout

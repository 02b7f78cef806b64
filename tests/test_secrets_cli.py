"""``kitaru secrets``: set, list, show and delete, through the real CLI entry point."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import termios
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import REPO, TIMEOUT, child_env, kitaru_command

from kitaru._llm.registry import register_model
from kitaru._secrets import get_secret, list_secrets
from kitaru.cli import main

VALUE = "sk-cli-value-6a0f"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run_ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def assert_clean_failure(result: Result, fragment: str) -> None:
    """Exit code 1, one 'Error:' message on stderr containing ``fragment``, no traceback."""
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert fragment in result.stderr
    assert "Traceback" not in result.output


class TestSet:
    def test_set_stores_keys_and_prints_no_values(self) -> None:
        """set stores every --KEY=VALUE and prints the key names only."""
        result = run_ok("secrets", "set", "openai-creds", f"--OPENAI_API_KEY={VALUE}", "--ORG=o1")
        assert result.stdout == "Saved secret 'openai-creds' (keys: OPENAI_API_KEY, ORG).\n"
        assert get_secret("openai-creds") == {"OPENAI_API_KEY": VALUE, "ORG": "o1"}

    def test_values_may_contain_equals_signs(self) -> None:
        """Only the first '=' separates key from value."""
        run_ok("secrets", "set", "creds", "--TOKEN=a=b==")
        assert get_secret("creds") == {"TOKEN": "a=b=="}

    def test_set_updates_and_json_lists_all_keys(self) -> None:
        """A second set merges keys, and -o json lists all of them."""
        run_ok("secrets", "set", "creds", "--A=1")
        data = json.loads(run_ok("secrets", "set", "creds", "--B=2", "-o", "json").stdout)
        assert data == {"name": "creds", "keys": ["A", "B"]}

    @pytest.mark.parametrize(
        ("args", "fragment"),
        [
            ([], "at least one key"),
            ([f"--OPENAI_API_KEY {VALUE}"], "Argument 1 after the secret name"),
            (["--OPENAI_API_KEY", VALUE], "Argument 2 after the secret name"),
            ([VALUE], "Argument 1 after the secret name"),
            (["--A=1", f"-K={VALUE}"], "Argument 2 after the secret name"),
            (["--=x"], "not --KEY=VALUE"),
            (["--A=1", "--A=2"], "given twice"),
            (["--1BAD=x"], "Invalid key '1BAD'"),
            (["--EMPTY="], "non-empty text value"),
        ],
    )
    def test_malformed_assignments_fail_cleanly(self, args: list[str], fragment: str) -> None:
        """Anything but --KEY=VALUE exits 1, stores nothing and never echoes a value."""
        result = run("secrets", "set", "creds", *args)
        assert_clean_failure(result, fragment)
        assert VALUE not in result.output
        assert list_secrets() == {}

    def test_bad_secret_name_fails_cleanly(self) -> None:
        """An invalid secret name exits 1 with the naming rule."""
        assert_clean_failure(run("secrets", "set", "bad name", "--A=1"), "Invalid secret name")


class TestListShowDelete:
    def test_list_text_and_json(self) -> None:
        """list shows names with their keys, as text and as JSON, never values."""
        run_ok("secrets", "set", "b-creds", f"--K2={VALUE}", "--K1=x")
        run_ok("secrets", "set", "a-creds", "--K=y")
        text = run_ok("secrets", "list").stdout
        assert text == "a-creds: K\nb-creds: K1, K2\n"
        data = json.loads(run_ok("secrets", "list", "-o", "json").stdout)
        assert data == [
            {"name": "a-creds", "keys": ["K"]},
            {"name": "b-creds", "keys": ["K1", "K2"]},
        ]

    def test_empty_list_says_how_to_add(self) -> None:
        """With no secrets, list says how to store one."""
        assert "kitaru secrets set NAME --KEY=VALUE" in run_ok("secrets", "list").stdout

    def test_show_masks_values_by_default(self) -> None:
        """show prints keys with masked values unless --show-values is given."""
        run_ok("secrets", "set", "creds", f"--OPENAI_API_KEY={VALUE}")
        masked = run_ok("secrets", "show", "creds")
        assert masked.stdout == "Secret 'creds':\n  OPENAI_API_KEY = ********\n"
        data = json.loads(run_ok("secrets", "show", "creds", "-o", "json").stdout)
        assert data == {"name": "creds", "values": {"OPENAI_API_KEY": "********"}}

    def test_show_values_reveals_them(self) -> None:
        """--show-values prints the real values."""
        run_ok("secrets", "set", "creds", f"--OPENAI_API_KEY={VALUE}")
        data = json.loads(run_ok("secrets", "show", "creds", "--show-values", "-o", "json").stdout)
        assert data["values"] == {"OPENAI_API_KEY": VALUE}
        assert VALUE in run_ok("secrets", "show", "creds", "--show-values").stdout

    def test_delete_removes_and_lists_aliases_still_linking_it(self) -> None:
        """delete removes the secret and names aliases that still link it."""
        run_ok("secrets", "set", "creds", "--OPENAI_API_KEY=x")
        register_model("fast", "openai/gpt-5-nano", secret="creds")
        data = json.loads(run_ok("secrets", "delete", "creds", "-o", "json").stdout)
        assert data == {"deleted": "creds", "linked_aliases": ["fast"]}
        assert list_secrets() == {}

    @pytest.mark.parametrize("command", ["show", "delete"])
    def test_unknown_secret_fails_cleanly(self, command: str) -> None:
        """show or delete of an unknown secret exits 1 saying how to create it."""
        assert_clean_failure(run("secrets", command, "nope"), "kitaru secrets set nope")


def set_command(*args: str) -> list[str]:
    return kitaru_command("secrets", "set", *args)


def this_checkout() -> dict[str, str]:
    """The environment for a ``kitaru`` process that imports this checkout's kitaru."""
    return child_env(PYTHONPATH=str(REPO))


class TestValuesOffTheCommandLine:
    @pytest.mark.slow
    def test_values_are_read_from_standard_input_in_order(self) -> None:
        """Bare --KEY values come from stdin, one line each in order; --KEY=VALUE still works."""
        result = subprocess.run(
            set_command("creds", "--OPENAI_API_KEY", "--ORG=o1", "--PROJECT"),
            input=f"{VALUE}\r\nproj-2\n",
            env=this_checkout(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "Saved secret 'creds' (keys: OPENAI_API_KEY, ORG, PROJECT).\n"
        assert VALUE not in result.stdout + result.stderr
        assert get_secret("creds") == {"OPENAI_API_KEY": VALUE, "ORG": "o1", "PROJECT": "proj-2"}

    @pytest.mark.slow
    def test_the_value_never_appears_in_the_process_arguments(self) -> None:
        """While kitaru waits for the value, its command line (what ps shows) lacks it."""
        proc = subprocess.Popen(
            set_command("creds", "--OPENAI_API_KEY"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=this_checkout(),
            cwd=REPO,
            text=True,
        )
        try:
            # Read the command line the running interpreter shows (as ps would).
            deadline = time.monotonic() + TIMEOUT
            cmdline = ""
            while "python" not in cmdline and time.monotonic() < deadline:
                time.sleep(0.02)
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
            out, err = proc.communicate(f"{VALUE}\n", timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert "--OPENAI_API_KEY" in cmdline
        assert VALUE not in cmdline + out + err
        assert get_secret("creds") == {"OPENAI_API_KEY": VALUE}

    @pytest.mark.slow
    def test_input_that_ends_early_stores_nothing(self) -> None:
        """Fewer lines than bare keys is one clear error naming the key, and nothing is saved."""
        result = subprocess.run(
            set_command("creds", "--A", "--B"),
            input="only-one\n",
            env=this_checkout(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert result.returncode == 1
        assert result.stderr.startswith("Error: Standard input ended before the value for B")
        assert "Traceback" not in result.stderr
        assert list_secrets() == {}

    @pytest.mark.slow
    def test_a_terminal_is_asked_without_echo(self) -> None:
        """On a terminal kitaru asks for the value and the typed value is not echoed."""
        pid, fd = pty.fork()
        if pid == 0:  # the child: its terminal is the pty
            env = this_checkout()
            os.execve(kitaru_command()[0], set_command("creds", "--OPENAI_API_KEY"), env)
        seen = b""
        try:
            seen += _read_until(fd, b"Value for OPENAI_API_KEY")
            # Type only once the prompt has turned echo off: it does so with TCSAFLUSH,
            # which throws away anything typed before.
            _wait_for_echo_off(fd)
            os.write(fd, f"{VALUE}\n".encode())
            seen += _read_until(fd, b"Saved secret")
        finally:
            status = _reap(pid)
            os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, seen
        assert VALUE.encode() not in seen
        assert get_secret("creds") == {"OPENAI_API_KEY": VALUE}

    def test_help_explains_the_bare_key_form(self) -> None:
        """`--help` says how to keep a value off the command line."""
        result = run_ok("secrets", "set", "--help")
        assert "Give --KEY alone" in result.stdout
        assert "standard input" in result.stdout


def _reap(pid: int) -> int:
    """The child's wait status; a child still running after a few seconds is killed."""
    deadline = time.monotonic() + 5
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.02)


def _wait_for_echo_off(fd: int) -> None:
    """Wait until the terminal's echo is off (the master side reads the slave's modes)."""
    deadline = time.monotonic() + TIMEOUT
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        assert time.monotonic() < deadline, "the prompt never turned echo off"
        time.sleep(0.01)


def _read_until(fd: int, marker: bytes) -> bytes:
    """Read the terminal's output until ``marker`` shows up (or fail after TIMEOUT)."""
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    # poll, not select: late in a long run the pty's descriptor can be past select's limit.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while marker not in seen:
        assert time.monotonic() < deadline, seen
        if poller.poll(100):
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen

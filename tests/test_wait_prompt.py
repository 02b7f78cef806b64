"""A flow started from a terminal asks its waits' questions there, as Kitaru's local runs do.

Each test runs a real program on a real pseudo-terminal (stdin and stdout a TTY), reads
what it shows and types answers; answers from another process go through the real
``kitaru`` command.
"""

from __future__ import annotations

import os
import pty
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TIMEOUT, child_env, kitaru_command

from kitaru import KitaruClient

_PROGRAM = """
import sys
import time
import pydantic
import kitaru
from kitaru import checkpoint, flow


class Release(pydantic.BaseModel):
    notes: str
    major_version: int


@checkpoint
def draft(topic: str) -> str:
    return f"draft about {topic}"


@flow
def gate(topic: str) -> str:
    text = draft(topic)
    approved = kitaru.wait(name="approve", schema=bool, question=f"Publish {topic}?", timeout=60)
    return f"{text}: {'published' if approved else 'held'}"


@flow
def details() -> str:
    release = kitaru.wait(name="release", schema=Release, question="Which release?", timeout=60)
    title = kitaru.wait(name="title", schema=str, question="Its title?", timeout=60)
    return f"v{release.major_version} {title}: {release.notes}"


if __name__ == "__main__":
    chosen = {"gate": gate, "details": details}[sys.argv[1]]
    handle = chosen.run(*sys.argv[2:3])
    try:
        print("RESULT", "completed", handle.wait())
    except kitaru.KitaruExecutionError as exc:
        print("RESULT", exc.status)
    if "--then-read" in sys.argv:  # the program's own use of the terminal afterwards
        time.sleep(1)  # a line typed meanwhile waits for input(), unless someone eats it
        print("READ", input())
"""


class Terminal:
    """A program running on a pseudo-terminal: read what it shows, type at it."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self._fd, child = pty.openpty()
        self.proc = subprocess.Popen(
            args, stdin=child, stdout=child, stderr=child, env=env, cwd=cwd, close_fds=True
        )
        os.close(child)
        self.shown = ""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)

    def read_until(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.shown)) is None:
            left = deadline - time.monotonic()
            assert left > 0, f"never shown: {pattern!r}; shown so far:\n{self.shown}"
            if self._selector.select(timeout=min(left, 0.2)):
                try:
                    chunk = os.read(self._fd, 4096)
                except OSError:  # the program ended and closed the terminal
                    chunk = b""
                if not chunk:
                    assert found, f"ended before showing {pattern!r}:\n{self.shown}"
                self.shown += chunk.decode(errors="replace").replace("\r\n", "\n")
        return found

    def type(self, line: str) -> None:
        os.write(self._fd, (line + "\n").encode())

    def finish(self) -> int:
        self.read_until(r"RESULT .*\n")
        return self.proc.wait(timeout=TIMEOUT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._fd >= 0:
            self._selector.close()
            os.close(self._fd)
            self._fd = -1


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "release.py"
    path.write_text(_PROGRAM)
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return child_env(
        KITARU_STORE=str(tmp_path / "kitaru.db"),
        KITARU_CONFIG_PATH=str(tmp_path / "config"),
        KITARU_WAIT_PROMPT=None,
    )


def _start(program: Path, env: dict[str, str], which: str, *more: str) -> Terminal:
    args = [which, "tides", *more] if which == "gate" else [which, *more]
    return Terminal([sys.executable, str(program), *args], env, program.parent)


class TestAskedAtTheTerminal:
    def test_a_yes_no_wait_takes_y_and_the_flow_finishes(
        self, program: Path, env: dict[str, str]
    ) -> None:
        """The question is shown at the terminal; a wrong answer is asked again, y continues."""
        terminal = _start(program, env, "gate")
        try:
            terminal.read_until(r"Publish tides\?\n  Answer y or n\.\n.*\n> ")
            terminal.type("maybe")
            terminal.read_until(r"Answer y or n\.\n> ")
            terminal.type("y")
            assert terminal.finish() == 0
        finally:
            terminal.close()
        assert "Answer recorded." in terminal.shown
        assert "RESULT completed draft about tides: published" in terminal.shown

    def test_structured_answers_are_checked_and_text_needs_no_quotes(
        self, program: Path, env: dict[str, str]
    ) -> None:
        """A pydantic wait names the missing field and asks again; a str wait takes plain text."""
        terminal = _start(program, env, "details")
        try:
            terminal.read_until(r"Which release\?\n.*\n.*\n> ")
            terminal.type('{"notes": "fixes"}')
            terminal.read_until(r"major_version: Field required.*\n> ")
            terminal.type('{"notes": "fixes", "major_version": 2}')
            terminal.read_until(r"Its title\?\n  Answer with text\.\n.*\n> ")
            terminal.type("Spring tide")
            assert terminal.finish() == 0
        finally:
            terminal.close()
        assert "RESULT completed v2 Spring tide: fixes" in terminal.shown

    def test_abort_refuses_the_wait_and_the_execution_is_cancelled(
        self, program: Path, env: dict[str, str]
    ) -> None:
        """Typing abort refuses the wait, as `executions input --abort` does."""
        terminal = _start(program, env, "gate")
        try:
            terminal.read_until(r"> ")
            terminal.type("abort")
            assert terminal.finish() == 0
        finally:
            terminal.close()
        assert "RESULT cancelled" in terminal.shown


class TestAnsweredFromElsewhere:
    def test_an_answer_from_another_shell_wins_and_the_terminal_is_let_go(
        self, program: Path, env: dict[str, str], tmp_path: Path
    ) -> None:
        """Input from another process continues the flow; the prompt stops reading stdin."""
        terminal = _start(program, env, "gate", "--then-read")
        try:
            exec_id = terminal.read_until(r"Execution (\S+) waits at 'approve'").group(1)
            terminal.read_until(r"> ")
            answered = subprocess.run(
                kitaru_command("executions", "input", exec_id, "--value", "false"),
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
            assert answered.returncode == 0, answered.stderr
            terminal.read_until(r"RESULT .*\n")
            # Typed before the program reads it: it must reach the program's input(), not
            # a prompt left reading the terminal.
            terminal.type("after the wait")
            terminal.read_until(r"READ after the wait\n")
            assert terminal.proc.wait(timeout=TIMEOUT) == 0
        finally:
            terminal.close()
        assert "RESULT completed draft about tides: held" in terminal.shown
        assert "Answer recorded." not in terminal.shown


class TestNotAsked:
    @pytest.mark.parametrize("how", ["piped stdin", "KITARU_WAIT_PROMPT=0"])
    def test_no_question_without_a_terminal_or_when_turned_off(
        self, program: Path, env: dict[str, str], how: str
    ) -> None:
        """Piped input, or the switch turned off, leaves the wait to other shells."""
        if how == "piped stdin":
            proc = subprocess.Popen(
                [sys.executable, str(program), "gate", "tides"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                text=True,
            )
            shown = _answer_while_waiting(proc, env)
        else:
            env = {**env, "KITARU_WAIT_PROMPT": "0"}
            terminal = _start(program, env, "gate")
            try:
                _answer_when_waiting(env)
                terminal.type("y")  # typed, but nobody asked: it must not be taken
                assert terminal.finish() == 0
            finally:
                terminal.close()
            shown = terminal.shown
        assert "waits at" not in shown
        assert "RESULT completed draft about tides: held" in shown


def _waiting_exec_id(env: dict[str, str]) -> str:
    client = KitaruClient(env["KITARU_STORE"], create=True)
    deadline = time.monotonic() + TIMEOUT
    while True:
        waiting = client.executions.list(status="waiting")
        if waiting:
            return waiting[0].exec_id
        assert time.monotonic() < deadline, "the flow never reached its wait"
        time.sleep(0.05)


def _answer_when_waiting(env: dict[str, str]) -> None:
    exec_id = _waiting_exec_id(env)
    KitaruClient(env["KITARU_STORE"]).executions.input(exec_id, wait="approve", value=False)


def _answer_while_waiting(proc: subprocess.Popen[str], env: dict[str, str]) -> str:
    try:
        _answer_when_waiting(env)
        out, _ = proc.communicate(input="y\n", timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    return out


class TestTheKitaruCommandDoesNotAsk:
    def test_a_resume_at_a_terminal_says_how_to_answer_and_does_not_prompt(
        self, program: Path, env: dict[str, str]
    ) -> None:
        """`kitaru executions resume` prints how to answer the wait; it never reads stdin."""
        first = subprocess.Popen(
            [sys.executable, str(program), "gate", "tides"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            exec_id = _waiting_exec_id(env)
        finally:
            first.kill()
            first.wait()
        terminal = Terminal(kitaru_command("executions", "resume", exec_id), env, program.parent)
        try:
            terminal.read_until(r"Execution \S+ is waiting at 'approve'")
            terminal.read_until(r"or refuse it with: .*\n")
            terminal.type("y")  # nobody asks: this line is not an answer
            KitaruClient(env["KITARU_STORE"]).executions.input(exec_id, value=False)
            terminal.read_until(r"held")
            assert terminal.proc.wait(timeout=TIMEOUT) == 0
        finally:
            terminal.close()
        assert "> " not in terminal.shown
        assert "Answer recorded." not in terminal.shown

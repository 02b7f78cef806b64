"""``kitaru-mcp``: the MCP server, driven by the official SDK's own client over stdio.

Each test runs real flows (``tests/mcp_flows/desk.py``) into its own journal, leaving
a completed, a failed and a waiting execution, then starts the server as a real
subprocess (``python -m kitaru._mcp``, or the installed ``kitaru-mcp`` console script)
on that journal and talks to it with ``mcp.ClientSession``. The SDK's client checks
every structured result against the tool's output schema, so a result that does not
match its schema fails the test.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from helpers import REPO, child_env
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp_flows import desk

from kitaru import KitaruError
from kitaru.cli import main
from kitaru.client import KitaruClient

TESTS = REPO / "tests"
TOOL_NAMES = {
    "list_executions",
    "get_execution",
    "follow_execution",
    "answer_wait",
    "abort_wait",
    "resume_execution",
    "retry_execution",
    "cancel_execution",
    "replay_execution",
    "kitaru_status",
    "kitaru_info",
    "kitaru_clean_preview",
    "manage_stack",
}


def _finish(run: Callable[[], Any]) -> None:
    # Failed, or left waiting: that is the execution the test wants.
    with contextlib.suppress(KitaruError):
        run()


def make_desk(tmp_path: Path) -> dict[str, str]:
    """A completed, a failed and a waiting execution in the test's journal, by role."""
    greeting = desk.greet.run("Ada")
    greeting.wait()
    ticket = desk.ticket.run(str(tmp_path / "service-up"))
    _finish(ticket.wait)
    release = desk.release.run("1.0")
    _finish(release.wait)
    return {"completed": greeting.exec_id, "failed": ticket.exec_id, "waiting": release.exec_id}


@asynccontextmanager
async def connected(
    tmp_path: Path, *options: str, server: StdioServerParameters | None = None
) -> AsyncIterator[ClientSession]:
    """A client session with a fresh ``kitaru-mcp`` subprocess on the test's journal
    (``python -m kitaru._mcp`` unless ``server`` says how to start it)."""
    if server is None:
        server = StdioServerParameters(
            command=sys.executable,
            args=["-m", "kitaru._mcp", "--import-path", str(TESTS), *options],
            env=child_env(),
            cwd=tmp_path,
        )
    with open(tmp_path / "server-stderr.txt", "w", encoding="utf-8") as errlog:
        async with (
            stdio_client(server, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def talk(
    tmp_path: Path,
    scenario: Callable[[ClientSession], Awaitable[None]],
    server: StdioServerParameters | None = None,
) -> None:
    """Run ``scenario`` against a server on the test's journal."""

    async def main() -> None:
        async with connected(tmp_path, server=server) as session:
            await scenario(session)

    try:
        anyio.run(main)
    except BaseExceptionGroup as group:
        # The SDK's task groups wrap the scenario's own failure; show that one.
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        if "Connection closed" in str(leaf):
            # The server went away: what it printed says why.
            stderr = (tmp_path / "server-stderr.txt").read_text(encoding="utf-8")
            said = f"the server closed the connection; it printed:\n{stderr}"
            raise AssertionError(said) from None
        raise leaf from None


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured result of a call that must succeed."""
    result = await session.call_tool(tool, arguments)
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    assert not result.is_error, text
    assert result.structured_content is not None
    assert json.loads(text) == result.structured_content
    return result.structured_content


async def fail(session: ClientSession, tool: str, **arguments: Any) -> str:
    """The one-line message of a call that must be a tool error."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result
    message: str = result.content[0].text  # type: ignore[union-attr]
    assert "\n" not in message
    assert "Traceback" not in message
    return message


async def until_finished(session: ClientSession, exec_id: str) -> dict[str, Any]:
    """Follow ``exec_id`` (status changes and lines) until it ends; its last report and lines."""
    cursor: dict[str, int] = {}
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report = await call(
            session, "follow_execution", exec_id=exec_id, cursor=cursor, wait_seconds=5
        )
        lines += report["lines"]
        cursor = report["next_cursor"]
        if report["finished"]:
            return {**report, "lines": lines}
    raise AssertionError(f"execution {exec_id} did not finish within 60 s")


def _plain(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


class TestTools:
    def test_every_action_is_a_tool_with_schemas(self, tmp_path: Path) -> None:
        """The server lists one tool per client action, each with input and output schemas."""

        async def scenario(session: ClientSession) -> None:
            listed = (await session.list_tools()).tools
            assert {tool.name for tool in listed} == TOOL_NAMES
            for tool in listed:
                assert tool.input_schema["type"] == "object", tool.name
                assert tool.output_schema is not None, tool.name
                assert tool.output_schema["type"] == "object", tool.name
                assert tool.description, tool.name

        talk(tmp_path, scenario)


def installed_script(name: str) -> str:
    """The path of console script ``name``: the test interpreter's own first, else PATH."""
    found = shutil.which(name, path=sysconfig.get_path("scripts")) or shutil.which(name)
    if found is None:
        pytest.fail(
            f"the {name} console script is not installed: pyproject.toml declares it, so "
            f"reinstall kitaru (`pip install -e '.[dev]'` in {REPO}) to create it."
        )
    return found


class TestConsoleScript:
    def test_pyproject_declares_kitaru_mcp_as_the_servers_main(self) -> None:
        """pyproject.toml's kitaru-mcp script names kitaru._mcp:main, which exists."""
        with open(REPO / "pyproject.toml", "rb") as file:
            scripts = tomllib.load(file)["project"]["scripts"]
        assert scripts["kitaru-mcp"] == "kitaru._mcp:main"
        module, _, attribute = scripts["kitaru-mcp"].partition(":")
        target = getattr(importlib.import_module(module), attribute)
        assert callable(target)

    def test_the_installed_command_serves_over_stdio(self, tmp_path: Path) -> None:
        """The installed kitaru-mcp command lists every tool and answers a read tool."""
        command = installed_script("kitaru-mcp")
        made = make_desk(tmp_path)
        # The installed script imports whatever kitaru is first on the path: this checkout.
        server = StdioServerParameters(
            command=command,
            args=["--import-path", str(TESTS)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=tmp_path,
        )

        async def scenario(session: ClientSession) -> None:
            listed = (await session.list_tools()).tools
            assert {tool.name for tool in listed} == TOOL_NAMES
            got = await call(session, "get_execution", exec_id=made["completed"])
            assert got["status"] == "completed"
            assert got["result"] == "Hello, Ada! -- the desk"

        talk(tmp_path, scenario, server)


class TestReading:
    def test_list_shows_every_execution_as_the_cli_prints_it(self, tmp_path: Path) -> None:
        """list_executions gives the completed, failed and waiting executions as to_dict()."""
        made = make_desk(tmp_path)
        expected = [_plain(e.to_dict()) for e in KitaruClient().executions.list()]

        async def scenario(session: ClientSession) -> None:
            listed = (await call(session, "list_executions"))["executions"]
            assert listed == expected
            assert {e["exec_id"]: e["status"] for e in listed} == {
                exec_id: status for status, exec_id in made.items()
            }
            failed = await call(session, "list_executions", status="failed")
            assert [e["exec_id"] for e in failed["executions"]] == [made["failed"]]

        talk(tmp_path, scenario)

    def test_get_gives_one_execution_with_its_wait_schema(self, tmp_path: Path) -> None:
        """get_execution, by an id prefix, is the to_dict() of the execution, waits included."""
        made = make_desk(tmp_path)
        expected = _plain(KitaruClient().executions.get(made["waiting"]).to_dict())

        async def scenario(session: ClientSession) -> None:
            got = await call(session, "get_execution", exec_id=made["waiting"][:13])
            assert got == expected
            assert got["status"] == "waiting"
            (wait,) = got["pending_waits"]
            assert wait["name"] == "approve"
            assert set(wait["schema"]["$defs"]["Approval"]["properties"]) == {
                "approved",
                "reviewer",
            }

        talk(tmp_path, scenario)


class TestStatus:
    def test_status_is_listed_read_only_and_answers_as_the_cli_prints(self, tmp_path: Path) -> None:
        """kitaru_status is a read-only tool whose result is `kitaru status -o json`."""
        make_desk(tmp_path)
        printed = CliRunner().invoke(main, ["status", "-o", "json"], catch_exceptions=False)
        assert printed.exit_code == 0, printed.stderr

        async def scenario(session: ClientSession) -> None:
            listed = {tool.name: tool for tool in (await session.list_tools()).tools}
            annotations = listed["kitaru_status"].annotations
            assert annotations is not None
            assert annotations.read_only_hint is True
            status = await call(session, "kitaru_status")
            assert status == json.loads(printed.stdout)
            assert status["journal_by_status"] == {"completed": 1, "failed": 1, "waiting": 1}

        talk(tmp_path, scenario)


class TestSecrets:
    def test_results_and_lines_never_show_a_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A provider key that reached a result and a printed line is blanked in every output."""
        key = "sk-test-4f1c9a2b7d3e8f60"
        monkeypatch.setenv("OPENAI_API_KEY", key)
        greeting = desk.greet.run(key)
        greeting.wait()

        async def scenario(session: ClientSession) -> None:
            got = await call(session, "get_execution", exec_id=greeting.exec_id)
            assert got["result"] == "Hello, [redacted]! -- the desk"
            listed = await call(session, "list_executions")
            followed = await call(session, "follow_execution", exec_id=greeting.exec_id)
            assert followed["lines"][0]["message"] == "greeting [redacted]"
            for shown in (got, listed, followed):
                assert key[3:15] not in json.dumps(shown)

        talk(tmp_path, scenario)


class TestAnswer:
    def test_answered_wait_completes_after_resume(self, tmp_path: Path) -> None:
        """The wait's schema refuses a wrong answer; a right one, then resume, completes it."""
        made = make_desk(tmp_path)
        exec_id = made["waiting"]

        async def scenario(session: ClientSession) -> None:
            refused = await fail(
                session, "answer_wait", exec_id=exec_id, value={"approved": "maybe"}
            )
            assert "approve" in refused
            assert "reviewer" in refused or "approved" in refused
            answered = await call(
                session,
                "answer_wait",
                exec_id=exec_id,
                value={"approved": True, "reviewer": "lin"},
            )
            assert answered["pending_waits"][0]["input_received"] is True
            started = await call(session, "resume_execution", exec_id=exec_id)
            assert started["exec_id"] == exec_id
            assert started["status"] in ("running", "completed")
            ended = await until_finished(session, exec_id)
            assert ended["status"] == "completed"
            assert "shipping 1.0" in [line["message"] for line in ended["lines"]]
            got = await call(session, "get_execution", exec_id=exec_id)
            assert got["result"] == "1.0 shipped, approved by lin"

        talk(tmp_path, scenario)


class TestCancel:
    def test_cancel_ends_a_waiting_execution_once(self, tmp_path: Path) -> None:
        """cancel_execution cancels the waiting execution; cancelling it again says it ended."""
        made = make_desk(tmp_path)

        async def scenario(session: ClientSession) -> None:
            cancelled = await call(session, "cancel_execution", exec_id=made["waiting"])
            assert cancelled["status"] == "cancelled"
            again = await fail(session, "cancel_execution", exec_id=made["waiting"])
            assert again.startswith("KitaruStateError: ")
            assert "already cancelled" in again

        talk(tmp_path, scenario)
        assert KitaruClient().executions.status(made["waiting"]) == "cancelled"


class TestRetry:
    def test_retry_after_fixing_the_cause_completes(self, tmp_path: Path) -> None:
        """retry_execution runs the failed call again in the server and the execution completes."""
        made = make_desk(tmp_path)
        (tmp_path / "service-up").touch()

        async def scenario(session: ClientSession) -> None:
            started = await call(session, "retry_execution", exec_id=made["failed"])
            assert started == {
                "exec_id": made["failed"],
                "status": started["status"],
                "original_exec_id": None,
                "flow_name": "ticket",
            }
            ended = await until_finished(session, made["failed"])
            assert ended["status"] == "completed"
            got = await call(session, "get_execution", exec_id=made["failed"])
            assert got["result"] == 43
            (lookup,) = got["checkpoints"]
            assert [a["status"] for a in lookup["attempts"]] == ["failed", "completed"]

        talk(tmp_path, scenario)


class TestReplay:
    def test_replay_with_an_override_starts_a_new_execution(self, tmp_path: Path) -> None:
        """replay_execution from 'sign' with salutation overridden gives a new, changed result."""
        made = make_desk(tmp_path)

        async def scenario(session: ClientSession) -> None:
            started = await call(
                session,
                "replay_execution",
                exec_id=made["completed"],
                **{"from": "sign", "overrides": {"checkpoint.salutation": "Howdy, Grace"}},
            )
            assert started["original_exec_id"] == made["completed"]
            assert started["exec_id"] != made["completed"]
            ended = await until_finished(session, started["exec_id"])
            assert ended["status"] == "completed"
            got = await call(session, "get_execution", exec_id=started["exec_id"])
            assert got["result"] == "Howdy, Grace! -- the desk"
            assert [line["message"] for line in ended["lines"]] == ["signing 'Howdy, Grace'"]

        talk(tmp_path, scenario)

    def test_replay_with_new_flow_inputs(self, tmp_path: Path) -> None:
        """flow_inputs change the flow's arguments for the calls that run again."""
        made = make_desk(tmp_path)

        async def scenario(session: ClientSession) -> None:
            started = await call(
                session,
                "replay_execution",
                exec_id=made["completed"],
                flow_inputs={"name": "Grace"},
                **{"from": "salutation"},
            )
            await until_finished(session, started["exec_id"])
            got = await call(session, "get_execution", exec_id=started["exec_id"])
            assert got["result"] == "Hello, Grace! -- the desk"
            refused = await fail(
                session,
                "replay_execution",
                exec_id=made["completed"],
                flow_inputs={"overrides": 1},
                **{"from": "salutation"},
            )
            assert "flow_inputs names 'overrides'" in refused

        talk(tmp_path, scenario)


class TestFollow:
    def test_cursor_gives_each_line_once(self, tmp_path: Path) -> None:
        """Lines past the cursor come once; the runner source gives the lifecycle."""
        made = make_desk(tmp_path)

        async def scenario(session: ClientSession) -> None:
            first = await call(session, "follow_execution", exec_id=made["completed"])
            assert [line["message"] for line in first["lines"]] == [
                "greeting Ada",
                "signing 'Hello, Ada'",
            ]
            assert first["finished"] is True
            again = await call(
                session,
                "follow_execution",
                exec_id=made["completed"],
                cursor=first["next_cursor"],
            )
            assert again["lines"] == []
            runner = await call(
                session, "follow_execution", exec_id=made["completed"], source="runner"
            )
            messages = [line["message"] for line in runner["lines"]]
            assert messages[0].startswith("execution started: flow greet")
            assert messages[-1] == "execution completed"

        talk(tmp_path, scenario)

    def test_wait_for_a_status_change_is_bounded(self, tmp_path: Path) -> None:
        """A wait on an execution whose status stays the same ends timed_out at the bound."""
        made = make_desk(tmp_path)

        async def scenario(session: ClientSession) -> None:
            began = time.monotonic()
            report = await call(
                session,
                "follow_execution",
                exec_id=made["waiting"],
                seen_status="waiting",
                wait_seconds=0.6,
            )
            assert 0.5 <= time.monotonic() - began < 10
            assert report["timed_out"] is True
            assert report["status"] == "waiting"
            assert report["lines"] == []

        talk(tmp_path, scenario)

    def test_wait_ends_when_the_status_changes(self, tmp_path: Path) -> None:
        """A follow waiting on a waiting execution returns as soon as it is cancelled."""
        made = make_desk(tmp_path)
        exec_id = made["waiting"]
        reports: list[dict[str, Any]] = []

        async def scenario(session: ClientSession) -> None:
            async def watch() -> None:
                reports.append(
                    await call(
                        session,
                        "follow_execution",
                        exec_id=exec_id,
                        seen_status="waiting",
                        wait_seconds=30,
                    )
                )

            began = time.monotonic()
            async with anyio.create_task_group() as group:
                group.start_soon(watch)
                await anyio.sleep(0.5)
                await call(session, "cancel_execution", exec_id=exec_id)
            assert time.monotonic() - began < 20
            (report,) = reports
            assert report["status"] == "cancelled"
            assert report["finished"] is True
            assert report["timed_out"] is False

        talk(tmp_path, scenario)


class TestBadInput:
    def test_bad_arguments_are_tool_errors_that_say_what_to_do(self, tmp_path: Path) -> None:
        """Schema violations, unknown ids and unknown tools come back as one-line tool errors."""
        make_desk(tmp_path)

        async def scenario(session: ClientSession) -> None:
            message = await fail(session, "list_executions", limit=0)
            assert message.startswith("Bad arguments for list_executions: limit: 0 is less")
            assert "Call it with (flow?: string, status?: " in message
            message = await fail(session, "get_execution")
            assert "'exec_id' is a required property" in message
            assert "exec_id: string" in message
            message = await fail(session, "get_execution", exec_id="x", verbose=True)
            assert "'verbose' was unexpected" in message
            message = await fail(session, "get_execution", exec_id="no-such-execution")
            assert message.startswith("KitaruStateError: No execution no-such-execution")
            assert "List executions with" in message
            message = await fail(session, "follow_execution", exec_id="x", wait_seconds=600)
            assert "wait_seconds: 600 is greater than the maximum of 60" in message
            message = await fail(session, "delete_execution", exec_id="x")
            assert "There is no tool 'delete_execution'; use one of list_executions" in message

        talk(tmp_path, scenario)

    def test_missing_journal_is_reported_per_call(self, tmp_path: Path) -> None:
        """With no journal yet, the server keeps serving and each call says how to get one."""

        async def scenario(session: ClientSession) -> None:
            message = await fail(session, "list_executions")
            assert "There is no journal at" in message
            assert "Run a flow first" in message
            assert len((await session.list_tools()).tools) == len(TOOL_NAMES)

        talk(tmp_path, scenario)
        assert not (tmp_path / "kitaru.db").exists()

    def test_bad_import_path_exits_1_with_one_line(self, tmp_path: Path) -> None:
        """An --import-path that is not a folder stops the server at once with exit code 1."""
        done = subprocess.run(
            [sys.executable, "-m", "kitaru._mcp", "--import-path", str(tmp_path / "nowhere")],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 1
        assert "is not a folder; give the folder that holds your flow modules" in done.stderr
        assert "Traceback" not in done.stderr
        assert done.stdout == ""

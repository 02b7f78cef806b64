"""``kitaru executions list`` and ``get``: what people and programs read about executions.

Executions are recorded by real flows into the test's journal; the commands run
in-process through click's runner, and once through the installed ``kitaru`` script.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import OwnedStore, child_env, kitaru, run_flow

from kitaru import KitaruUserCodeError, checkpoint, flow
from kitaru._stores import open_store
from kitaru.cli import main
from kitaru.journal import make_ref
from kitaru.journal.events import ExecutionStarted, FlowRef
from kitaru.runtime.values import encode_value


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def cli_json(*args: str) -> Any:
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@checkpoint(type="tool_call")
def shout(name: str) -> str:
    return name.upper()


@checkpoint
def punctuate(text: str) -> str:
    return text + "!"


@flow
def greet(name: str) -> str:
    return punctuate(shout(name))  # type: ignore[return-value]


@checkpoint
def explode() -> None:
    raise OSError("disk on fire")


@flow
def doomed() -> None:
    shout("before")
    explode()


def _greet(name: str) -> str:
    handle = greet.run(name)
    handle.wait(timeout=30)
    return handle.exec_id


def _doomed() -> str:
    handle = doomed.run()
    with pytest.raises(KitaruUserCodeError):
        handle.wait(timeout=30)
    return handle.exec_id


@pytest.fixture
def recorded() -> dict[str, str]:
    """Three executions, oldest first: greet (completed), doomed (failed), greet (completed)."""
    ids = {"first": _greet("ada")}
    time.sleep(0.01)  # distinct start times keep "newest first" unambiguous
    ids["failed"] = _doomed()
    time.sleep(0.01)
    ids["last"] = _greet("bob")
    return ids


class TestList:
    def test_text_lists_every_execution_newest_first(self, recorded: dict[str, str]) -> None:
        """The text table has a header and one row per execution, newest first."""
        result = cli("executions", "list")
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["ID", "FLOW", "STATUS", "STARTED", "ENDED"]
        rows = lines[1:]
        assert [row.split()[0] for row in rows] == [
            recorded["last"],
            recorded["failed"],
            recorded["first"],
        ]
        assert rows[0].split()[1:3] == ["greet", "completed"]
        assert rows[1].split()[1:3] == ["doomed", "failed"]

    def test_json_describes_executions_with_calls_attempts_and_timings(
        self, recorded: dict[str, str]
    ) -> None:
        """``-o json`` parses and carries ids, flow, status, result and each call's attempts."""
        data = cli_json("executions", "list")
        assert [e["exec_id"] for e in data] == [
            recorded["last"],
            recorded["failed"],
            recorded["first"],
        ]
        last = data[0]
        assert last["flow_name"] == "greet"
        assert last["status"] == "completed"
        assert last["result"] == "BOB!"
        assert last["started_at"] <= last["ended_at"]
        assert [c["invocation_id"] for c in last["checkpoints"]] == ["shout", "punctuate"]
        shout_call = last["checkpoints"][0]
        assert shout_call["checkpoint_type"] == "tool_call"
        assert shout_call["status"] == "completed"
        (attempt,) = shout_call["attempts"]
        assert attempt["attempt"] == 1
        assert attempt["status"] == "completed"
        assert attempt["duration_ms"] >= 0
        assert attempt["started_at"] <= attempt["ended_at"]

    def test_filter_by_flow(self, recorded: dict[str, str]) -> None:
        """``--flow`` keeps only executions of that flow."""
        data = cli_json("executions", "list", "--flow", "greet")
        assert [e["exec_id"] for e in data] == [recorded["last"], recorded["first"]]

    def test_filter_by_status(self, recorded: dict[str, str]) -> None:
        """``--status`` keeps only executions in that status."""
        data = cli_json("executions", "list", "--status", "failed")
        assert [e["exec_id"] for e in data] == [recorded["failed"]]

    def test_limit_keeps_the_newest(self, recorded: dict[str, str]) -> None:
        """``--limit N`` gives the N newest executions."""
        data = cli_json("executions", "list", "--limit", "2")
        assert [e["exec_id"] for e in data] == [recorded["last"], recorded["failed"]]

    def test_filters_combine(self, recorded: dict[str, str]) -> None:
        """Flow, status and limit filters apply together."""
        data = cli_json(
            "executions", "list", "--flow", "greet", "--status", "completed", "--limit", "1"
        )
        assert [e["exec_id"] for e in data] == [recorded["last"]]
        assert cli_json("executions", "list", "--flow", "doomed", "--status", "completed") == []

    def test_empty_journal(self, tmp_path: Path) -> None:
        """With no executions, text says so, naming the journal, and JSON is an empty list."""
        assert open_store().list_executions() == []  # creates an empty journal
        result = cli("executions", "list")
        assert result.exit_code == 0
        assert result.stdout.strip() == f"No executions in the journal {tmp_path / 'kitaru.db'}."
        assert cli_json("executions", "list") == []

    @pytest.mark.slow
    def test_an_interrupted_execution_is_marked(self, tmp_path: Path) -> None:
        """An execution whose process was killed shows as running (interrupted)."""
        killed = run_flow(
            "pipeline",
            "3",
            env=child_env(
                PIPELINE_SIDE=str(tmp_path / "side.txt"), PIPELINE_KILL="inside:summarise"
            ),
        )
        assert killed.returncode == -9
        result = cli("executions", "list")
        assert "running (interrupted)" in result.stdout
        (data,) = cli_json("executions", "list")
        assert data["status"] == "running"
        assert data["interrupted"] is True
        text = cli("executions", "get", data["exec_id"]).stdout
        assert f"kitaru executions resume {data['exec_id']}" in text


class TestGet:
    def test_text_shows_status_result_and_calls(self, recorded: dict[str, str]) -> None:
        """``get`` shows the execution, its flow, status, result and each call."""
        result = cli("executions", "get", recorded["first"])
        assert result.exit_code == 0, result.stderr
        out = result.stdout
        assert f"Execution  {recorded['first']}" in out
        assert "greet" in out
        assert "Status     completed" in out
        assert "Result     'ADA!'" in out
        assert "Calls      2" in out
        assert "shout" in out
        assert "[tool_call]" in out
        assert "punctuate" in out

    def test_text_of_a_failure_names_the_error_and_the_retry_command(
        self, recorded: dict[str, str]
    ) -> None:
        """A failed execution shows the error, the call it came from and how to retry."""
        out = cli("executions", "get", recorded["failed"]).stdout
        assert "Status     failed" in out
        assert "OSError" in out
        assert "disk on fire" in out
        assert "explode" in out
        assert f"kitaru executions retry {recorded['failed']}" in out

    def test_json_of_a_failure(self, recorded: dict[str, str]) -> None:
        """``get -o json`` of a failed execution has its failure and the failed call."""
        data = cli_json("executions", "get", recorded["failed"])
        assert data["exec_id"] == recorded["failed"]
        assert data["status"] == "failed"
        assert data["failure"]["exception_type"] == "OSError"
        assert data["failure"]["call"] == "explode"
        assert "result" not in data or data["result"] is None
        explode_call = data["checkpoints"][-1]
        assert explode_call["invocation_id"] == "explode"
        assert explode_call["status"] == "failed"
        assert explode_call["attempts"][0]["failure"]["message"] == "disk on fire"

    def test_a_unique_prefix_selects_the_execution(self, recorded: dict[str, str]) -> None:
        """Any unambiguous prefix of an id works wherever an id does."""
        full = recorded["failed"]
        prefix = full[:8]
        assert not any(recorded[k].startswith(prefix) for k in ("first", "last"))
        assert cli_json("executions", "get", prefix)["exec_id"] == full
        assert cli("executions", "get", prefix).stdout.startswith(f"Execution  {full}")

    def test_an_ambiguous_prefix_is_refused_listing_the_matches(self) -> None:
        """A prefix shared by several executions exits 1 and names them."""
        ids = ["cafe0001-0000-4000-8000-000000000000", "cafe0002-0000-4000-8000-000000000000"]
        for exec_id in ids:
            _record_started(exec_id)
        result = cli("executions", "get", "cafe")
        assert result.exit_code == 1
        assert "matches several executions" in result.stderr
        for exec_id in ids:
            assert exec_id in result.stderr
        assert cli_json("executions", "get", "cafe0002")["exec_id"] == ids[1]


def _record_started(exec_id: str) -> None:
    """Journal the start of an execution under a chosen id, as the runtime writes it."""
    payloads: dict[str, bytes] = {}
    started = ExecutionStarted(
        flow_name="greet",
        flow=FlowRef(module=__name__, qualname="greet"),
        inputs=make_ref(encode_value([["x"], {}]), payloads),
        kitaru_version="test",
    )
    OwnedStore(Path(open_store().location)).append(exec_id, 1, [(started, time.time())], payloads)


class TestInstalledCommand:
    @pytest.mark.slow
    def test_json_goes_to_stdout_and_logs_to_stderr(
        self, recorded: dict[str, str], tmp_path: Path
    ) -> None:
        """The real ``kitaru`` command prints parseable JSON on stdout and nothing else there."""
        result = kitaru("executions", "get", recorded["last"][:13], "-o", "json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["exec_id"] == recorded["last"]
        assert data["result"] == "BOB!"
        listed = kitaru("executions", "list", "--status", "failed", "-o", "json", cwd=tmp_path)
        assert [e["exec_id"] for e in json.loads(listed.stdout)] == [recorded["failed"]]

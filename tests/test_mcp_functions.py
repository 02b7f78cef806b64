"""``kitaru.mcp.server``: the MCP tools as importable functions, each calling KitaruClient on
the test's journal and returning plain, JSON-ready values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp_flows.desk import greet, release, ticket

from kitaru import KitaruFeatureNotAvailableError, KitaruUsageError
from kitaru.client import KitaruClient
from kitaru.mcp import server

TIMEOUT = 30.0


def finished(exec_id: str) -> Any:
    """Wait for a background execution to end; return its result."""
    return KitaruClient().executions.get(exec_id).wait(timeout=TIMEOUT)


def plain(value: Any) -> Any:
    """``value`` after a JSON round trip: what a JSON-ready value survives unchanged."""
    return json.loads(json.dumps(value))


@pytest.fixture
def greeted() -> str:
    handle = greet.run("Ada")
    assert handle.wait(timeout=TIMEOUT) == "Hello, Ada! -- the desk"
    return handle.exec_id


@pytest.mark.usefixtures("cancel_leftover_executions")
class TestReadingExecutions:
    def test_list_get_and_latest_describe_executions_as_plain_dicts(self, greeted: str) -> None:
        """list/get/latest return the client's JSON descriptions, filtered as asked."""
        listed = server.kitaru_executions_list(flow="greet", status="completed", limit=5)
        got = server.kitaru_executions_get(greeted)
        latest = server.kitaru_executions_latest(flow="greet")

        assert [e["exec_id"] for e in listed] == [greeted]
        assert plain(listed) == listed
        assert got["result"] == "Hello, Ada! -- the desk"
        assert [c["invocation_id"] for c in got["checkpoints"]] == ["salutation", "sign"]
        assert plain(got) == got
        assert latest["exec_id"] == greeted
        assert server.kitaru_executions_list(flow="ticket") == []

    def test_the_stack_filter_keeps_executions_of_that_stack(self, greeted: str) -> None:
        """stack= keeps only executions that ran on the named stack."""
        assert [e["exec_id"] for e in server.kitaru_executions_list(stack="local")] == [greeted]
        assert server.kitaru_executions_list(stack="elsewhere") == []
        assert server.kitaru_executions_latest(stack="local")["exec_id"] == greeted
        with pytest.raises(KitaruUsageError, match="No execution ran on stack 'elsewhere'"):
            server.kitaru_executions_latest(stack="elsewhere")

    def test_logs_come_back_as_lines_naming_their_call(self, greeted: str) -> None:
        """get_execution_logs gives one line per printed line, with its call and level."""
        text = server.get_execution_logs(greeted)
        only_sign = server.get_execution_logs(greeted, checkpoint="sign", limit=1)

        assert text.splitlines() == [
            "[salutation] INFO greeting Ada",
            "[sign] INFO signing 'Hello, Ada'",
        ]
        assert only_sign == "[sign] INFO signing 'Hello, Ada'"
        with pytest.raises(KitaruUsageError, match="limit must be a whole number >= 1"):
            server.get_execution_logs(greeted, limit=0)

    def test_artifacts_are_listed_without_and_fetched_with_their_value(self, greeted: str) -> None:
        """artifacts_list gives metadata; artifacts_get adds the loaded value."""
        listed = server.kitaru_artifacts_list(greeted, producing_call="sign")
        (output,) = listed
        fetched = server.kitaru_artifacts_get(output["artifact_id"])

        assert "value" not in output
        assert fetched["value"] == "Hello, Ada! -- the desk"
        assert plain(fetched) == fetched


@pytest.mark.usefixtures("cancel_leftover_executions")
class TestChangingExecutions:
    def test_run_starts_a_flow_named_by_module_and_returns_at_once(self) -> None:
        """executions_run imports module:flow, starts it in the background, returns its id."""
        started = server.kitaru_executions_run("mcp_flows.desk:greet", {"name": "Lin"})

        assert started["flow_name"] == "greet"
        assert started["target"] == "mcp_flows.desk:greet"
        assert finished(started["exec_id"]) == "Hello, Lin! -- the desk"

    def test_run_loads_a_flow_from_a_file(self, tmp_path: Path) -> None:
        """A path/to/file.py:flow target imports the file by its name from its folder."""
        source = tmp_path / "adp_file_flow.py"
        source.write_text(
            "from kitaru import flow\n\n@flow\ndef doubled(n: int) -> int:\n    return n * 2\n"
        )

        started = server.kitaru_executions_run(f"{source}:doubled", {"n": 21})

        assert finished(started["exec_id"]) == 42

    @pytest.mark.parametrize(
        ("target", "message"),
        [
            ("no_colon", "target must be 'module:flow'"),
            ("mcp_flows.nowhere:greet", "Cannot import 'mcp_flows.nowhere'"),
            ("mcp_flows.desk:Approval", "is not a @flow"),
            ("/no/such/file.py:f", "No file /no/such/file.py"),
        ],
    )
    def test_run_refuses_a_target_that_is_not_a_flow(self, target: str, message: str) -> None:
        """A bad target is a usage error saying what to give."""
        with pytest.raises(KitaruUsageError, match=message):
            server.kitaru_executions_run(target)

    def test_input_answers_a_wait_and_the_flow_goes_on(self) -> None:
        """executions_input delivers the value to the named wait."""
        handle = release.run("1.2")
        assert KitaruClient().executions.get(handle.exec_id).status == "waiting"

        answered = server.kitaru_executions_input(
            handle.exec_id, "approve", {"approved": True, "reviewer": "Kim"}
        )

        assert answered["exec_id"] == handle.exec_id
        # The run that paused at the wait is still this process's: it takes the input.
        assert handle.wait(timeout=TIMEOUT) == "1.2 shipped, approved by Kim"

    def test_cancel_ends_a_waiting_execution(self) -> None:
        """executions_cancel returns the execution, now cancelled."""
        handle = release.run("2.0")

        cancelled = server.kitaru_executions_cancel(handle.exec_id)

        assert cancelled["status"] == "cancelled"

    def test_retry_runs_the_failed_call_again(self, tmp_path: Path) -> None:
        """executions_retry continues a failed execution; its failed call now succeeds."""
        marker = tmp_path / "up"
        handle = ticket.run(str(marker))
        with pytest.raises(Exception, match="ticket service unavailable"):
            handle.wait(timeout=TIMEOUT)
        marker.touch()

        retried = server.kitaru_executions_retry(handle.exec_id)

        assert retried["exec_id"] == handle.exec_id
        assert finished(handle.exec_id) == 43

    def test_replay_starts_a_new_execution_with_an_override(self, greeted: str) -> None:
        """executions_replay reuses calls before from_ and applies overrides."""
        replayed = server.kitaru_executions_replay(
            greeted, from_="sign", overrides={"checkpoint.salutation": "Hi, Bo"}
        )

        assert replayed["available"] is True
        assert replayed["operation"] == "replay"
        new_id = replayed["execution"]["exec_id"]
        assert new_id != greeted
        assert finished(new_id) == "Hi, Bo! -- the desk"
        with pytest.raises(KitaruUsageError, match="flow_inputs must be an object"):
            server.kitaru_executions_replay(greeted, from_="sign", flow_inputs=["x"])  # type: ignore[arg-type]


class TestMemories:
    def test_set_get_list_history_delete_and_purge(self) -> None:
        """The memory functions write, read and prune one scope, returning plain dicts."""
        scope: dict[str, Any] = {"scope": "desk", "scope_type": "namespace"}
        first = server.kitaru_memory_set("tone", {"style": "brief"}, **scope)
        server.kitaru_memory_set("tone", {"style": "warm"}, **scope)
        server.kitaru_memory_set("topic", "tides", **scope)

        got = server.kitaru_memory_get("tone", **scope)
        old = server.kitaru_memory_get("tone", **scope, version=first["version"])
        listed = server.kitaru_memory_list(**scope, prefix="to")
        history = server.kitaru_memory_history("tone", **scope)
        purged = server.kitaru_memory_purge("tone", **scope, keep=1)
        deleted = server.kitaru_memory_delete("topic", **scope)

        assert got is not None
        assert got["value"] == {"style": "warm"}
        assert old is not None
        assert old["value"] == {"style": "brief"}
        assert [e["key"] for e in listed] == ["tone", "topic"]
        assert [e["version"] for e in history] == [2, 1]
        assert purged["versions_deleted"] == 1
        assert deleted is not None
        assert deleted["is_deleted"] is True
        assert server.kitaru_memory_get("topic", **scope) is None
        assert server.kitaru_memory_get("never", **scope) is None
        assert [r["operation"] for r in server.kitaru_memory_compaction_log(**scope)] == ["purge"]
        assert plain(history) == history
        client_side = KitaruClient().memories.value("tone", scope="desk", scope_type="namespace")
        assert client_side == {"style": "warm"}

    def test_purge_scope_prunes_every_key(self) -> None:
        """memory_purge_scope keeps the newest `keep` versions of each key."""
        scope: dict[str, Any] = {"scope": "desk", "scope_type": "namespace"}
        for value in ("a", "b", "c"):
            server.kitaru_memory_set("one", value, **scope)
            server.kitaru_memory_set("two", value, **scope)

        result = server.kitaru_memory_purge_scope(**scope, keep=1)

        assert result["versions_deleted"] == 4


class TestStacksAndWhatIsNotHere:
    def test_stacks_list_names_the_active_stack(self) -> None:
        """kitaru_stacks_list gives each stack as a dict, the active one marked."""
        stacks = server.kitaru_stacks_list()

        assert [s["name"] for s in stacks if s["is_active"]] == ["local"]

    @pytest.mark.parametrize(
        ("name", "points_to"),
        [
            ("kitaru_start_local_server", "kitaru ui"),
            ("kitaru_stop_local_server", "kitaru ui"),
            ("kitaru_status", "kitaru status -o json"),
            ("kitaru_info", "kitaru info -o json"),
            ("kitaru_clean_preview", "kitaru clean --dry-run"),
            ("manage_stack", "kitaru.create_stack()"),
            ("mcp", "kitaru-mcp"),
            ("main", "kitaru-mcp"),
        ],
    )
    def test_tools_without_a_counterpart_say_what_to_use(self, name: str, points_to: str) -> None:
        """Importing a tool this version has no counterpart for names what to use instead."""
        with pytest.raises(KitaruFeatureNotAvailableError) as raised:
            getattr(server, name)
        assert points_to in str(raised.value)

    def test_an_unknown_name_is_a_plain_attribute_error(self) -> None:
        """A misspelt name is an AttributeError listing the tools there are."""
        with pytest.raises(AttributeError, match="kitaru_executions_list"):
            server.kitaru_executions_lst  # noqa: B018

"""``kitaru.mcp.server``: the MCP tools as importable functions, each calling KitaruClient on
the test's journal and returning plain, JSON-ready values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import child_env
from mcp_flows.desk import greet, release, ticket

from kitaru import KitaruFeatureNotAvailableError, KitaruStateError, KitaruUsageError
from kitaru.cli import main
from kitaru.client import KitaruClient
from kitaru.mcp import server

TIMEOUT = 30.0


def finished(exec_id: str) -> Any:
    """Wait for a background execution to end; return its result."""
    return KitaruClient().executions.get(exec_id).wait(timeout=TIMEOUT)


def plain(value: Any) -> Any:
    """``value`` after a JSON round trip: what a JSON-ready value survives unchanged."""
    return json.loads(json.dumps(value))


def cli_json(*args: str) -> Any:
    """What ``kitaru ARGS -o json`` prints, parsed; the command must succeed."""
    result = CliRunner().invoke(main, [*args, "-o", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


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


# A program as Kitaru's MCP documentation writes one: the tools imported as functions,
# called in a script, and one JSON document printed.
QUERY_PROGRAM = """\
import json

from kitaru.mcp.server import kitaru_executions_list, kitaru_stacks_list, kitaru_status

snapshot = {
    "status": kitaru_status(),
    "stacks": kitaru_stacks_list(),
    "waiting": kitaru_executions_list(status="waiting", limit=5),
}
print(json.dumps(snapshot, indent=2, sort_keys=True))
"""


@pytest.mark.usefixtures("cancel_leftover_executions")
class TestStatusAndInfo:
    def test_a_documented_query_program_runs_and_prints_json(
        self, greeted: str, tmp_path: Path
    ) -> None:
        """A script importing kitaru_status, stacks_list and executions_list prints one JSON."""
        waiting = release.run("3.1")
        script = tmp_path / "query_tools.py"
        script.write_text(QUERY_PROGRAM)

        done = subprocess.run(
            [sys.executable, str(script)],
            env=child_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

        assert done.returncode == 0, done.stderr
        snapshot = json.loads(done.stdout)
        assert snapshot["status"]["stack"] == "local"
        assert snapshot["status"]["journal"] == str(tmp_path / "kitaru.db")
        assert snapshot["status"]["journal_by_status"] == {"completed": 1, "waiting": 1}
        assert [s["name"] for s in snapshot["stacks"]] == ["local"]
        assert [e["exec_id"] for e in snapshot["waiting"]] == [waiting.exec_id]

    def test_status_is_what_kitaru_status_prints(self, greeted: str) -> None:
        """kitaru_status() returns the same data as `kitaru status -o json`."""
        assert plain(server.kitaru_status()) == cli_json("status")

    def test_status_before_any_run_creates_nothing(self, tmp_path: Path) -> None:
        """On a fresh machine the status says so, and no journal or config dir appears."""
        status = server.kitaru_status()

        assert (status["journal_exists"], status["config_dir_exists"]) == (False, False)
        assert not (tmp_path / "kitaru.db").exists()
        assert not (tmp_path / "kitaru-config").exists()

    def test_info_is_what_kitaru_info_prints(self, greeted: str) -> None:
        """kitaru_info() matches `kitaru info -o json`, and its package options match -p/-a."""
        assert plain(server.kitaru_info()) == cli_json("info")
        assert plain(server.kitaru_info(packages=["pytest"])) == cli_json("info", "-p", "pytest")
        every = server.kitaru_info(all=True)
        assert plain(every) == cli_json("info", "--all")
        assert "pytest" in every["packages"]
        assert server.kitaru_info(all_packages=True)["packages"] == every["packages"]

    def test_bad_packages_are_a_usage_error(self) -> None:
        """packages given as one string is refused with the form to use."""
        with pytest.raises(KitaruUsageError, match=r"packages=\['openai'\]"):
            server.kitaru_info(packages="openai")  # type: ignore[arg-type]


@pytest.mark.usefixtures("cancel_leftover_executions")
class TestCleanPreview:
    def test_global_preview_lists_what_the_dry_run_lists_and_removes_nothing(
        self, greeted: str, tmp_path: Path
    ) -> None:
        """kitaru_clean_preview('global') is `clean global --dry-run -o json`; files stay."""
        config = tmp_path / "kitaru-config"
        config.mkdir(exist_ok=True)
        (config / "settings.txt").write_text("kept")

        preview = server.kitaru_clean_preview("global")
        printed = cli_json("clean", "global", "--dry-run")

        assert preview["would_remove"] == printed["would_remove"]
        assert str(tmp_path / "kitaru.db") in preview["would_remove"]
        assert str(config) in preview["would_remove"]
        assert (preview["scope"], preview["dry_run"], preview["removed"]) == ("global", True, [])
        # The backup folder is named for the second it is planned in.
        assert Path(preview["backup"]).parent == Path(printed["backup"]).parent
        assert (tmp_path / "kitaru.db").exists()
        assert (config / "settings.txt").read_text() == "kept"
        assert not Path(preview["backup"]).parent.exists()
        assert [e["exec_id"] for e in server.kitaru_executions_list()] == [greeted]

    def test_all_is_global(self, greeted: str) -> None:
        """Scope 'all' previews the same files as 'global'."""
        assert (
            server.kitaru_clean_preview("all")["would_remove"]
            == server.kitaru_clean_preview("global")["would_remove"]
        )

    def test_project_raises_what_the_command_raises(self) -> None:
        """Scope 'project' (the default) raises the same error as `kitaru clean project`."""
        with pytest.raises(KitaruFeatureNotAvailableError) as raised:
            server.kitaru_clean_preview()
        result = CliRunner().invoke(main, ["clean", "project"])
        assert result.exit_code == 1
        assert " ".join(str(raised.value).split()) in " ".join(result.stderr.split())
        assert "kitaru clean global" in str(raised.value)

    def test_an_unknown_scope_is_a_usage_error(self) -> None:
        """A scope that is none of project, global, all names the ones there are."""
        with pytest.raises(KitaruUsageError, match="project, global, all"):
            server.kitaru_clean_preview("everything")  # type: ignore[arg-type]


class TestManageStack:
    def test_create_then_delete_shows_in_the_stack_list(self, tmp_path: Path) -> None:
        """manage_stack creates a stack on a store URL, listed, then deletes it."""
        store = f"sqlite:///{tmp_path / 'team.db'}"

        created = server.manage_stack("create", "team", store=store, activate=False)

        assert (created["name"], created["store"], created["is_active"]) == ("team", store, False)
        assert (created["stack_type"], created["previous_active_stack"]) == ("local", "local")
        listed = {s["name"]: s for s in server.kitaru_stacks_list()}
        assert listed["team"]["id"] == created["id"]

        deleted = server.manage_stack("delete", "team")

        assert deleted == {
            "deleted_stack": "team",
            "components_deleted": [],
            "new_active_stack": "local",
            "recursive": False,
        }
        assert [s["name"] for s in server.kitaru_stacks_list()] == ["local"]

    def test_the_active_stack_needs_force_to_delete(self) -> None:
        """A stack created active is deleted only with force; local becomes active."""
        server.manage_stack("create", "solo")
        assert [s["name"] for s in server.kitaru_stacks_list() if s["is_active"]] == ["solo"]

        with pytest.raises(KitaruStateError, match="--force"):
            server.manage_stack("delete", "solo")
        deleted = server.manage_stack("delete", "solo", force=True)

        assert deleted["new_active_stack"] == "local"

    @pytest.mark.parametrize(
        ("options", "named"),
        [
            ({"stack_type": "kubernetes"}, "stack_type='kubernetes'"),
            ({"region": "eu-west-1", "cluster": "prod"}, "cluster=..., region=..."),
            ({"extra": {"image": "x"}}, "extra=..."),
        ],
    )
    def test_remote_stacks_say_what_to_create_instead(
        self, options: dict[str, Any], named: str
    ) -> None:
        """A remote stack type or field raises naming it and the store-backed alternative."""
        with pytest.raises(KitaruFeatureNotAvailableError) as raised:
            server.manage_stack("create", "cloud", **options)
        assert named in str(raised.value)
        assert "store='sqlite:///PATH'" in str(raised.value)
        assert [s["name"] for s in server.kitaru_stacks_list()] == ["local"]

    def test_bad_actions_and_names_are_usage_errors(self) -> None:
        """An unknown action, or deleting a stack that does not exist, says what to do."""
        with pytest.raises(KitaruUsageError, match="'create' or 'delete'"):
            server.manage_stack("update", "team")  # type: ignore[arg-type]
        with pytest.raises(KitaruUsageError, match="No stack 'ghost'"):
            server.manage_stack("delete", "ghost")

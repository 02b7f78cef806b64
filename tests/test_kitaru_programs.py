"""Programs written the way Kitaru's documentation writes them run here unchanged.

Each class takes one behaviour such a program relies on and uses it as that program
does; the flows run in this process against the test's own journal.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

import kitaru
from kitaru import (
    KitaruClient,
    KitaruStateError,
    KitaruUsageError,
    checkpoint,
    flow,
    memory,
)
from kitaru.cli import main
from kitaru.config import ResolvedModelSelection, resolve_model_selection


@pytest.fixture(autouse=True)
def _no_process_scope() -> Iterator[None]:
    """Each test starts without a memory scope set outside a flow, as a new process does."""
    before = memory._process.scope
    memory._process.scope = None
    yield
    memory._process.scope = before


@checkpoint
def _summarise(topic: str) -> str:
    return f"summary of {topic}"


@flow
def notes_agent(topic: str) -> None:
    memory.configure(scope_type="flow")
    memory.set("summaries/latest", _summarise(topic))


@flow
def scoped_by_id(flow_id: str) -> str | None:
    memory.configure(scope=flow_id, scope_type="flow")
    value: str | None = memory.get("summaries/latest")
    return value


@flow
def publish_gate(topic: str) -> str:
    draft = _summarise(topic)
    approved = kitaru.wait(name="approve_publish", schema=bool, question="Publish?")
    return f"{draft}: {'published' if approved else 'held'}"


def _until_waiting(client: KitaruClient, exec_id: str) -> None:
    """Block until the execution's run, started on its own thread, reaches its wait."""
    deadline = time.monotonic() + 30
    while client.executions.get(exec_id).status != "waiting":
        assert time.monotonic() < deadline, f"{exec_id} never reached its wait"
        time.sleep(0.02)


class TestInputThenResumeInOneProcess:
    @pytest.mark.usefixtures("cancel_leftover_executions")
    def test_resume_after_input_continues_the_waiting_run(self) -> None:
        """`input` then `resume` from the process whose `.run()` stopped at the wait finishes it."""
        exec_id = publish_gate.run("tides").exec_id
        client = kitaru.KitaruClient()
        assert client.executions.get(exec_id).status == "waiting"

        client.executions.input(exec_id, wait="approve_publish", value=True)
        execution = client.executions.resume(exec_id)

        assert execution.exec_id == exec_id
        assert execution.wait(timeout=30) == "summary of tides: published"
        assert client.executions.get(exec_id).status == "completed"


class TestCancelThenReplayInOneProcess:
    @pytest.mark.usefixtures("cancel_leftover_executions")
    def test_cancel_returns_a_cancelled_execution_that_can_be_replayed(self) -> None:
        """`cancel()` on a run this process owns returns it cancelled, so `replay()` may follow."""
        exec_id = publish_gate.run("reefs").exec_id
        client = kitaru.KitaruClient()

        cancelled = client.executions.cancel(exec_id)
        assert cancelled.status == "cancelled"

        replayed = cancelled.replay(from_="_summarise")
        _until_waiting(client, replayed.exec_id)
        client.executions.input(replayed.exec_id, wait="approve_publish", value=False)
        assert replayed.wait(timeout=30) == "summary of reefs: held"


_DRAFT_SERVICE = {"down": False}
_DRAFT_GATE = threading.Event()


@checkpoint
def research(topic: str) -> str:
    return f"notes on {topic}"


@checkpoint
def write_draft(notes: str) -> str:
    if _DRAFT_SERVICE["down"]:
        raise RuntimeError("draft service down")
    return f"draft from {notes}"


@checkpoint
def gated_draft(notes: str) -> str:
    if _DRAFT_SERVICE["down"]:
        raise RuntimeError("draft service down")
    assert _DRAFT_GATE.wait(30), "the test never opened the gate"
    return f"draft from {notes}"


@flow
def content_pipeline(topic: str) -> str:
    return write_draft(research(topic))


@flow
def gated_pipeline(topic: str) -> str:
    return gated_draft(research(topic))


@flow
def reviewed_pipeline(topic: str) -> str:
    draft = write_draft(research(topic))
    first = kitaru.wait(name="first_review", schema=bool, question="Keep going?", timeout=0)
    second = kitaru.wait(name="second_review", schema=bool, question="Publish?", timeout=30)
    return f"{draft}: {first} {second}"


@flow
def deploy_pipeline(topic: str) -> str:
    draft = write_draft(research(topic))
    ok = kitaru.wait(name="approve_deploy", schema=bool, question="Deploy?", timeout=30)
    return f"{draft} deployed={ok}"


@pytest.fixture
def failed_draft() -> Iterator[str]:
    """A `content_pipeline` execution that failed in `write_draft`; the service is back up."""
    _DRAFT_SERVICE["down"] = True
    try:
        handle = content_pipeline.run("tides")
    finally:
        _DRAFT_SERVICE["down"] = False
    assert KitaruClient().executions.get(handle.exec_id).status == "failed"
    return handle.exec_id


class TestClientActionsReturnOnceEnded:
    def test_retry_returns_the_execution_ended(self, failed_draft: str) -> None:
        """`client.executions.retry(id)` returns once the retried execution has ended."""
        retried = KitaruClient().executions.retry(failed_draft)
        assert retried.status == "completed"
        assert retried.result() == "draft from notes on tides"

    def test_retry_then_replay_as_the_guide_chains_them(self, failed_draft: str) -> None:
        """The guide's retry, replay with overrides, then cancel run in one program."""
        client = KitaruClient()
        retried = client.executions.retry(failed_draft)
        replayed = client.executions.replay(
            failed_draft,
            from_="write_draft",
            overrides={"checkpoint.research": "Edited notes"},
            topic="New topic",
        )
        assert retried.status == "completed"
        assert replayed.status == "completed"
        assert replayed.original_exec_id == failed_draft
        assert replayed.result() == "draft from Edited notes"
        with pytest.raises(KitaruStateError, match="already completed"):
            client.executions.cancel(failed_draft)

    def test_execution_methods_chain_the_same_way(self, failed_draft: str) -> None:
        """`execution.retry()` then `execution.replay(...)` on one snapshot both end first."""
        execution = KitaruClient().executions.get(failed_draft)
        retried = execution.retry()
        replayed = execution.replay(from_="write_draft", overrides={"checkpoint.research": "n"})
        assert (retried.status, replayed.status) == ("completed", "completed")
        assert replayed.result() == "draft from n"
        assert execution.status == "failed"  # a snapshot: the actions return new ones

    @pytest.mark.usefixtures("cancel_leftover_executions")
    def test_retry_replay_cancel_of_an_execution_that_waits(self) -> None:
        """Retry stops at the wait, the waiting execution is replayed, then cancelled."""
        _DRAFT_SERVICE["down"] = True
        try:
            exec_id = deploy_pipeline.run("tides").exec_id
        finally:
            _DRAFT_SERVICE["down"] = False
        client = KitaruClient()
        retried = client.executions.retry(exec_id)
        replayed = client.executions.replay(
            exec_id,
            from_="write_draft",
            overrides={"checkpoint.research": "Edited notes"},
            topic="New topic",
        )
        cancelled = client.executions.cancel(exec_id)
        assert retried.status == "waiting"
        assert replayed.status == "waiting"
        assert cancelled.status == "cancelled"
        client.executions.input(replayed.exec_id, wait="approve_deploy", value=True)
        assert replayed.wait(timeout=30) == "draft from Edited notes deployed=True"

    @pytest.mark.usefixtures("cancel_leftover_executions")
    def test_resume_returns_at_the_next_wait_and_keeps_waiting_there(self) -> None:
        """`resume` returns once the execution waits again; an input then finishes that run."""
        client = KitaruClient()
        exec_id = reviewed_pipeline.run("tides").exec_id
        assert client.executions.live_owner(exec_id) is None  # the first wait let it go
        client.executions.input(exec_id, wait="first_review", value=True)

        started = time.monotonic()
        resumed = client.executions.resume(exec_id)
        assert time.monotonic() - started < 20  # not the second wait's 30 s
        assert resumed.status == "waiting"
        assert [w.name for w in resumed.pending_waits] == ["second_review"]

        client.executions.input(exec_id, wait="second_review", value=False)
        assert resumed.wait(timeout=30) == "draft from notes on tides: True False"

    def test_resume_after_input_returns_the_execution_completed(self) -> None:
        """The wait guide's `input` then `resume` gives a completed execution at once."""
        client = KitaruClient()
        exec_id = reviewed_pipeline.run("reefs").exec_id
        client.executions.input(exec_id, wait="first_review", value=False)
        client.executions.resume(exec_id)
        client.executions.input(exec_id, wait="second_review", value=True)
        assert client.executions.resume(exec_id).status == "completed"


class TestClientActionsInBackground:
    @pytest.mark.usefixtures("cancel_leftover_executions")
    def test_background_retry_returns_while_it_runs(self) -> None:
        """`retry(id, background=True)` returns while it runs; `wait()` gives the result."""
        _DRAFT_SERVICE["down"] = True
        try:
            exec_id = gated_pipeline.run("tides").exec_id
        finally:
            _DRAFT_SERVICE["down"] = False
        client = KitaruClient()
        _DRAFT_GATE.clear()
        try:
            retried = client.executions.retry(exec_id, background=True)
            assert retried.status == "running"
            assert client.executions.get(exec_id).status == "running"
        finally:
            _DRAFT_GATE.set()
        assert retried.wait(timeout=30) == "draft from notes on tides"

    def test_background_must_be_a_bool(self, failed_draft: str) -> None:
        """A `background` that is not True, False or None is refused before anything runs."""
        client = KitaruClient()
        with pytest.raises(KitaruUsageError, match="background must be True or False"):
            client.executions.retry(failed_draft, background="yes")  # type: ignore[arg-type]
        assert client.executions.get(failed_draft).status == "failed"


class TestFlowIdAsMemoryScope:
    def test_client_reads_flow_memory_through_execution_flow_id(self) -> None:
        """`scope=execution.flow_id, scope_type="flow"` reaches what the flow body wrote."""
        handle = notes_agent.run("tides")
        handle.wait()
        client = KitaruClient()
        execution = client.executions.get(handle.exec_id)
        assert execution.flow_id.endswith(":notes_agent")

        entries = client.memories.list(scope=execution.flow_id, scope_type="flow")
        assert [entry.key for entry in entries] == ["summaries/latest"]
        entry = client.memories.get("summaries/latest", scope=execution.flow_id, scope_type="flow")
        assert entry is not None
        assert entry.scope == "notes_agent"
        assert client.memories.value(
            "summaries/latest", scope=execution.flow_id, scope_type="flow"
        ) == ("summary of tides")

    def test_flow_body_configures_a_flow_id_scope(self) -> None:
        """A flow body may name another flow's scope by that flow's id."""
        first = notes_agent.run("reefs")
        first.wait()
        flow_id = KitaruClient().executions.get(first.exec_id).flow_id
        assert scoped_by_id.run(flow_id).wait() == "summary of reefs"

    def test_flow_id_is_only_a_scope_for_flow_scopes(self) -> None:
        """A colon stays refused in namespace scopes, naming what to do."""
        with pytest.raises(KitaruUsageError, match=r"no colons.*rename it"):
            KitaruClient().memories.list(scope="pkg.mod:agent", scope_type="namespace")


class TestResolveModelSelection:
    def test_mock_accepts_any_model_name(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With the mock on, a name that is no alias resolves, as a model probe expects."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "ok")
        selection = resolve_model_selection("default")
        assert selection == ResolvedModelSelection(
            requested_model="default", alias=None, resolved_model="mock/default", secret=None
        )

    def test_raw_provider_model_resolves(self) -> None:
        """A `provider/model` string resolves to itself."""
        selection = resolve_model_selection("openai/gpt-4o")
        assert (selection.alias, selection.resolved_model) == (None, "openai/gpt-4o")

    def test_unknown_name_without_mock_is_a_usage_error(self) -> None:
        """Without the mock, an unregistered name fails with the command that registers it."""
        with pytest.raises(KitaruUsageError, match="kitaru model register default"):
            resolve_model_selection("default")


class TestRemoteStackKinds:
    @pytest.mark.parametrize("kind", ["kubernetes", "vertex", "sagemaker", "azureml"])
    def test_remote_stack_create_names_the_store_alternative(self, kind: str) -> None:
        """`stack create NAME --type KIND ...` exits 1 and says to create a store-backed stack."""
        done = CliRunner().invoke(
            main,
            ["stack", "create", "prod", "--type", kind, "--region", "eu-west-1"],
        )
        assert done.exit_code == 1
        assert "is not available here" in done.output
        assert "kitaru stack create prod --store sqlite:///PATH" in done.output
        assert "Traceback" not in done.output
        assert [stack.name for stack in kitaru.list_stacks()] == ["local"]

    def test_stack_file_is_refused_the_same_way(self) -> None:
        """`kitaru stack create -f stack.yaml` is refused with the same advice."""
        done = CliRunner().invoke(main, ["stack", "create", "-f", "stack.yaml", "prod"])
        assert done.exit_code == 1
        assert "from stack.yaml is not available here" in done.output

    def test_local_stack_rejects_remote_flags(self) -> None:
        """Flags of remote kinds on a local stack are a usage error, not silently ignored."""
        done = CliRunner().invoke(main, ["stack", "create", "dev", "--cluster", "c1"])
        assert done.exit_code == 1
        assert "Unexpected arguments for a local stack: --cluster c1" in done.output


class TestServerCommands:
    @pytest.mark.parametrize(
        "args",
        [
            ["login", "http://localhost:8080"],
            ["login", "--url", "https://kitaru.example.com", "--api-key", "k"],
            ["logout"],
        ],
    )
    def test_server_commands_name_the_shared_store_alternative(self, args: list[str]) -> None:
        """`kitaru login`/`logout` exit 1 and point at a stack on a shared store."""
        done = CliRunner().invoke(main, args)
        assert done.exit_code == 1
        assert "There is no Kitaru server in this version" in done.output
        assert "kitaru stack create NAME --store sqlite:///PATH" in done.output

    def test_log_store_points_at_executions_logs(self) -> None:
        """`kitaru log-store show` exits 1 and names `kitaru executions logs`."""
        done = CliRunner().invoke(main, ["log-store", "show"])
        assert done.exit_code == 1
        assert "`kitaru log-store show` is not available" in done.output
        assert "kitaru executions logs EXEC_ID" in done.output


class TestStackShow:
    def test_show_describes_one_stack(self) -> None:
        """`kitaru stack show NAME -o json` gives the stack's id, store and activity."""
        kitaru.create_stack("team", activate=False)
        done = CliRunner().invoke(main, ["stack", "show", "team", "-o", "json"])
        assert done.exit_code == 0
        shown = json.loads(done.output)
        assert (shown["name"], shown["is_active"]) == ("team", False)
        assert shown["store"].endswith("team.db")

    def test_show_of_an_unknown_stack_lists_the_known_ones(self) -> None:
        """An unknown name exits 1 naming the stacks that exist."""
        done = CliRunner().invoke(main, ["stack", "show", "nope"])
        assert done.exit_code == 1
        assert "No stack 'nope'. Stacks: local." in done.output

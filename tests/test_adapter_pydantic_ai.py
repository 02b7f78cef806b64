"""``kitaru.adapters.pydantic_ai.wrap``: a PydanticAI agent whose model requests and tool
calls are durable calls of the flow, run with PydanticAI's own OpenAI model and the real
openai SDK against the loopback test server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, TIMEOUT, child_env, side_effects, unpaired
from helpers import kitaru as cli
from llm_server import FakeLLMServer
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel

from kitaru import KitaruUsageError, checkpoint, flow
from kitaru.adapters import pydantic_ai as kp
from kitaru.client import KitaruClient

KILLED = -9


@pytest.fixture
def server(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    llm_server.point_providers_here(monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-adapter")
    return llm_server


@pytest.fixture
def trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "side_effects.txt"
    monkeypatch.setenv("ADAPTERFLOW_SIDE_EFFECTS", str(path))
    return path


def plan_replies(server: FakeLLMServer, steps: list[str], final: str) -> None:
    """Queue one tool call per step, then the final answer."""
    for step in steps:
        server.reply_tool_calls([("record_step", {"step": step})], once=True)
    server.reply_text(final, once=True)


def run_flow(prompt: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.llm_flows.pydantic_agent", prompt, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def only_exec_id() -> str:
    executions = KitaruClient().executions.list()
    assert len(executions) == 1
    return executions[0].exec_id


def calls(exec_id: str) -> list[tuple[str, str]]:
    execution = KitaruClient().executions.get(exec_id)
    return [(c.invocation_id, str(c.status.value)) for c in execution.checkpoints]


class TestDurableCalls:
    @pytest.mark.slow
    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_each_model_request_and_tool_call_is_a_completed_durable_call(
        self, server: FakeLLMServer, trace: Path, mode: str
    ) -> None:
        """run_sync() and asyncio.run(run()) in a flow record every request and tool call."""
        plan_replies(server, ["fetch", "write"], "all done")

        result = run_flow("do the plan", mode, env=child_env())

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["output"] == "all done"
        assert server.count == 3
        assert side_effects(trace) == {"fetch": 1, "write": 1}
        assert calls(only_exec_id()) == [
            ("model_request", "completed"),
            ("tool_record_step", "completed"),
            ("model_request_2", "completed"),
            ("tool_record_step_2", "completed"),
            ("model_request_3", "completed"),
        ]

    @pytest.mark.parametrize("flow_name", ["plan", "plan_async"], ids=["sync", "async"])
    def test_in_this_process_the_calls_are_recorded_in_order(
        self, server: FakeLLMServer, trace: Path, flow_name: str
    ) -> None:
        """`agent.run_sync(...)` in a flow, and `await agent.run(...)` in an `async def`
        flow, record each call as it completes."""
        import llm_flows.pydantic_agent as flows

        plan_replies(server, ["only"], "finished")

        handle = getattr(flows, flow_name).run("one step")

        assert handle.wait(timeout=TIMEOUT)["output"] == "finished"
        assert server.count == 2
        assert side_effects(trace) == {"only": 1}
        assert [name for name, _ in calls(handle.exec_id)] == [
            "model_request",
            "tool_record_step",
            "model_request_2",
        ]

    def test_outside_a_flow_the_wrapped_agent_runs_plainly(
        self, server: FakeLLMServer, trace: Path
    ) -> None:
        """Without a flow the agent answers as usual and nothing is journaled."""
        from llm_flows.pydantic_agent import record_step

        plan_replies(server, ["alone"], "fine")

        assert openai_agent(record_step).run_sync("go").output == "fine"
        assert side_effects(trace) == {"alone": 1}
        assert KitaruClient().executions.list() == []


class TestResumeAfterSigkill:
    @pytest.mark.slow
    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_resume_sends_no_completed_request_and_repeats_no_tool_call(
        self, server: FakeLLMServer, trace: Path, tmp_path: Path, mode: str
    ) -> None:
        """After a SIGKILL in the second tool call, resume asks only for the final answer."""
        plan_replies(server, ["fetch", "write"], "all done")

        crashed = run_flow("do the plan", mode, env=child_env(ADAPTERFLOW_KILL_AT="write"))

        assert crashed.returncode == KILLED, crashed.stderr
        assert server.count == 2
        assert side_effects(trace) == {"fetch": 1}
        exec_id = only_exec_id()
        assert [c for c in calls(exec_id) if c[1] == "completed"] == [
            ("model_request", "completed"),
            ("tool_record_step", "completed"),
            ("model_request_2", "completed"),
        ]
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        resumed = cli(
            "executions", "resume", exec_id, "-o", "json",
            cwd=elsewhere, env=child_env(PYTHONPATH=str(REPO)),
        )  # fmt: skip

        assert resumed.returncode == 0, resumed.stderr
        data = json.loads(resumed.stdout)
        assert data["status"] == "completed"
        assert data["result"]["output"] == "all done"
        # One new request: the one after the last tool call; the two before were replayed.
        assert server.count == 3
        last = server.requests[-1].body["messages"]
        assert [m["content"] for m in last if m["role"] == "tool"] == [
            "done: fetch",
            "done: write",
        ]
        assert side_effects(trace) == {"fetch": 1, "write": 1}

    @pytest.mark.slow
    def test_several_tool_calls_of_one_response_resume_in_the_recorded_order(
        self, server: FakeLLMServer, trace: Path, tmp_path: Path
    ) -> None:
        """Two tool calls asked for at once run one by one; resume reuses the first."""
        server.reply_tool_calls(
            [("record_step", {"step": "first"}), ("record_step", {"step": "second"})], once=True
        )
        server.reply_text("both done", once=True)

        crashed = run_flow("do both", env=child_env(ADAPTERFLOW_KILL_AT="second"))

        assert crashed.returncode == KILLED, crashed.stderr
        assert side_effects(trace) == {"first": 1}
        exec_id = only_exec_id()
        resumed = cli(
            "executions", "resume", exec_id, "-o", "json",
            cwd=tmp_path, env=child_env(PYTHONPATH=str(REPO)),
        )  # fmt: skip

        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["result"]["output"] == "both done"
        assert server.count == 2
        assert side_effects(trace) == {"first": 1, "second": 1}
        assert [name for name, _ in calls(exec_id)] == [
            "model_request",
            "tool_record_step",
            "tool_record_step_2",
            "model_request_2",
        ]

    @pytest.mark.slow
    def test_a_tool_that_asked_the_model_to_retry_asks_again_on_resume(
        self, server: FakeLLMServer, trace: Path, tmp_path: Path
    ) -> None:
        """A recorded ModelRetry is raised again on resume, so the replayed run matches."""
        plan_replies(server, ["bad-step", "fetch", "write"], "all done")

        crashed = run_flow("do the plan", env=child_env(ADAPTERFLOW_KILL_AT="write"))

        assert crashed.returncode == KILLED, crashed.stderr
        assert server.count == 3
        exec_id = only_exec_id()
        assert calls(exec_id)[1] == ("tool_record_step", "failed")
        resumed = cli(
            "executions", "resume", exec_id, "-o", "json",
            cwd=tmp_path, env=child_env(PYTHONPATH=str(REPO)),
        )  # fmt: skip

        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["result"]["output"] == "all done"
        assert server.count == 4
        retry_prompts = [
            m["content"] for m in server.requests[-1].body["messages"] if m["role"] == "tool"
        ]
        assert "bad-step is not a step of the plan" in retry_prompts[0]
        assert side_effects(trace) == {"fetch": 1, "write": 1}

    @pytest.mark.slow
    def test_a_changed_agent_is_refused_at_the_first_request_that_differs(
        self, server: FakeLLMServer, trace: Path, tmp_path: Path
    ) -> None:
        """Resuming with other instructions stops with a divergence instead of mixing runs."""
        plan_replies(server, ["fetch", "write"], "all done")
        crashed = run_flow("do the plan", env=child_env(ADAPTERFLOW_KILL_AT="write"))
        assert crashed.returncode == KILLED, crashed.stderr

        resumed = cli(
            "executions", "resume", only_exec_id(), "-o", "json", cwd=tmp_path,
            env=child_env(PYTHONPATH=str(REPO), ADAPTERFLOW_INSTRUCTIONS="Do it all at once."),
        )  # fmt: skip

        assert resumed.returncode == 1
        assert "Traceback" not in resumed.stderr
        assert "model_request" in resumed.stderr
        assert "diverge" in resumed.stderr.lower()
        assert server.count == 2
        assert side_effects(trace) == {"fetch": 1}


def openai_agent(*tools: object) -> kp.DurableAgent:
    """A wrapped agent on OpenAI's chat API, built now so it sees the test server's URL."""
    return kp.wrap(Agent(OpenAIChatModel("gpt-4o-mini", provider="openai"), tools=tools))


@kp.hitl_tool(question="Publish this summary?", schema=bool)
def approve(summary: str) -> bool:
    """Ask whether the summary may be published.

    Args:
        summary: The summary to publish.
    """
    raise AssertionError("the body of a question tool does not run in a flow")


@kp.hitl_tool(question="Ship it?", schema=bool, timeout=0.1)
def approve_quickly(summary: str) -> bool:
    """Ask whether the summary may ship, waiting only briefly.

    Args:
        summary: The summary to ship.
    """
    raise AssertionError("the body of a question tool does not run in a flow")


@flow
def quick_approval_flow(topic: str) -> str:
    return openai_agent(approve_quickly).run_sync(f"Summarise {topic} and ship it").output


@flow
def approval_flow(topic: str) -> str:
    return openai_agent(approve).run_sync(f"Summarise {topic} and ask before publishing").output


@checkpoint
def agent_inside_checkpoint(prompt: str) -> str:
    return openai_agent().run_sync(prompt).output


@flow
def checkpointed_flow(prompt: str) -> str:
    return agent_inside_checkpoint(prompt).load()


class TestToolCapture:
    def test_kitarus_documented_capture_settings_are_accepted(self) -> None:
        """wrap() takes Kitaru's documented tool_capture_config and per-name overrides."""
        agent = kp.wrap(
            Agent(OpenAIChatModel("gpt-4o-mini", provider="openai")),
            tool_capture_config={"mode": "full"},
            tool_capture_config_by_name={
                "quick_check": {"mode": "metadata_only"},
                "noop": {"mode": "off"},
            },
        )
        assert agent.capture == kp.ToolCapture("full")
        assert agent.capture_by_name == {
            "quick_check": kp.ToolCapture("metadata_only"),
            "noop": kp.ToolCapture("off"),
        }

    @pytest.mark.parametrize(
        ("config", "says"),
        [
            ({"mode": "everything"}, "has mode 'everything'"),
            ({"depth": 3}, "unknown keys ['depth']"),
            ("full", "must be a dict"),
        ],
    )
    def test_a_bad_capture_setting_is_refused_in_one_line(self, config: object, says: str) -> None:
        """An unknown mode, key or type is refused before anything runs, saying what to use."""
        with pytest.raises(KitaruUsageError, match=re.escape(says)) as caught:
            kp.wrap(Agent("test"), tool_capture_config=config)  # type: ignore[arg-type]
        assert "\n" not in str(caught.value)

    def test_metadata_only_records_the_call_without_its_arguments(
        self, server: FakeLLMServer, trace: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A metadata_only tool is still a durable call, but its argument preview is not kept."""
        from llm_flows.pydantic_agent import plan

        monkeypatch.setenv(
            "ADAPTERFLOW_CAPTURE", json.dumps({"record_step": {"mode": "metadata_only"}})
        )
        plan_replies(server, ["secret-step"], "finished")

        handle = plan.run("one step")

        assert handle.wait(timeout=TIMEOUT)["output"] == "finished"
        assert [name for name, _ in calls(handle.exec_id)] == [
            "model_request",
            "tool_record_step",
            "model_request_2",
        ]
        previews = tool_previews(handle.exec_id)
        assert previews == {"tool_record_step": [""]}

    def test_full_capture_keeps_the_argument_preview(
        self, server: FakeLLMServer, trace: Path
    ) -> None:
        """By default the recorded tool call shows the arguments it was called with."""
        from llm_flows.pydantic_agent import plan

        plan_replies(server, ["visible-step"], "finished")

        handle = plan.run("one step")

        assert handle.wait(timeout=TIMEOUT)["output"] == "finished"
        assert "visible-step" in tool_previews(handle.exec_id)["tool_record_step"][0]

    @pytest.mark.slow
    def test_an_off_tool_is_not_recorded_and_runs_again_on_resume(
        self, server: FakeLLMServer, trace: Path
    ) -> None:
        """With mode off the tool is a plain call: model requests stay durable, the tool
        is not in the journal, and a resumed run calls it again."""
        plan_replies(server, ["first", "second"], "all done")
        capture = json.dumps({"record_step": {"mode": "off"}})

        died = run_flow(
            "do the plan", env=child_env(ADAPTERFLOW_CAPTURE=capture, ADAPTERFLOW_KILL_AT="second")
        )

        assert died.returncode == KILLED, died.stderr
        exec_id = only_exec_id()
        assert [name for name, _ in calls(exec_id)] == ["model_request", "model_request_2"]
        assert server.count == 2

        resumed = cli(
            "executions", "resume", exec_id,
            cwd=REPO, env=child_env(PYTHONPATH=str(REPO), ADAPTERFLOW_CAPTURE=capture),
        )  # fmt: skip

        assert resumed.returncode == 0, resumed.stderr
        assert server.count == 3  # the two recorded requests were replayed
        # Not recorded, the first tool call ran again; the second ran once, after the kill.
        assert side_effects(trace) == {"first": 2, "second": 1}
        assert [name for name, _ in calls(exec_id)] == [
            "model_request",
            "model_request_2",
            "model_request_3",
        ]


def tool_previews(exec_id: str) -> dict[str, list[str]]:
    """The recorded argument previews of each tool call, by call identity."""
    from kitaru._stores import open_store
    from kitaru.journal.events import CallStarted

    found: dict[str, list[str]] = {}
    for event in unpaired([stored.event for stored in open_store().read_events(exec_id)]):
        if isinstance(event, CallStarted) and event.identity.startswith("tool_"):
            found.setdefault(event.identity, []).extend(a.preview for a in event.arguments)
    return found


class TestQuestionTools:
    def test_a_hitl_tool_waits_for_an_answer_that_becomes_the_tool_result(
        self, server: FakeLLMServer
    ) -> None:
        """The model's call to a hitl_tool is a kitaru.wait; the answer goes back as its result."""
        server.reply_tool_calls([("approve", {"summary": "short"})], once=True)
        server.reply_text("published", once=True)
        handle = approval_flow.run("tides")
        client = KitaruClient()
        deadline = time.monotonic() + TIMEOUT
        while not client.executions.pending_waits(handle.exec_id):
            assert time.monotonic() < deadline, "the flow never asked"
            time.sleep(0.02)
        (pending,) = client.executions.pending_waits(handle.exec_id)

        client.executions.input(handle.exec_id, value=True)

        assert handle.wait(timeout=TIMEOUT) == "published"
        assert pending.name == "approve"
        assert pending.question == "Publish this summary?"
        tool_messages = [m for m in server.requests[-1].body["messages"] if m["role"] == "tool"]
        assert [m["content"] for m in tool_messages] == ["true"]

    def test_an_unanswered_question_leaves_the_execution_waiting_until_answered(
        self, server: FakeLLMServer
    ) -> None:
        """A timed-out question parks the run; the answer finishes it without resending."""
        server.reply_tool_calls([("approve_quickly", {"summary": "short"})], once=True)
        server.reply_text("shipped", once=True)
        client = KitaruClient()

        handle = quick_approval_flow.run("tides")

        assert client.executions.get(handle.exec_id).status == "waiting"
        assert server.count == 1
        client.executions.input(handle.exec_id, value=True)
        assert handle.wait(timeout=TIMEOUT) == "shipped"
        assert server.count == 2
        assert [name for name, _ in calls(handle.exec_id)] == [
            "model_request",
            "approve_quickly",
            "model_request_2",
        ]


class TestBoundaries:
    def test_inside_a_checkpoint_only_the_checkpoint_is_recorded(
        self, server: FakeLLMServer
    ) -> None:
        """An agent run in a checkpoint makes plain requests; the checkpoint is the record."""
        server.reply_text("inner")

        handle = checkpointed_flow.run("hello")

        assert handle.wait(timeout=TIMEOUT) == "inner"
        assert calls(handle.exec_id) == [("agent_inside_checkpoint", "completed")]

    def test_wrap_refuses_what_is_not_an_agent(self) -> None:
        """wrap() names what it needs when given something else."""
        with pytest.raises(KitaruUsageError, match=r"takes a pydantic_ai\.Agent"):
            kp.wrap("openai:gpt-4o-mini")  # type: ignore[arg-type]

    def test_streaming_in_a_flow_is_refused_with_what_to_use(self, server: FakeLLMServer) -> None:
        """run_stream() in a flow body fails with a message pointing at run()/run_sync()."""

        @flow
        def streaming() -> str:
            async def go() -> str:
                async with openai_agent().run_stream("hi") as stream:
                    return await stream.get_output()

            import asyncio

            return asyncio.run(go())

        with pytest.raises(Exception, match="cannot stream inside a flow body"):
            streaming.run().wait(timeout=TIMEOUT)


class TestExample:
    def run_example(self, tmp_path: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "examples" / "pydantic_ai_agent.py")],
            cwd=tmp_path,
            env=child_env(PYTHONPATH=str(REPO), **env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    @pytest.mark.slow
    def test_against_the_provider_resume_sends_only_the_last_request(
        self, server: FakeLLMServer, tmp_path: Path
    ) -> None:
        """With a key, the example's crash and resume reach the provider three times in all."""
        server.reply_tool_calls([("search", {"query": "durable agents"})], once=True)
        server.reply_tool_calls([("save_note", {"text": "journals"})], once=True)
        server.reply_text("Report: journals make agents durable.", once=True)

        result = self.run_example(tmp_path)

        assert result.returncode == 0, result.stderr
        assert "completed: Report: journals make agents durable." in result.stdout
        assert "search             body ran 1 time(s)" in result.stdout
        assert "save_note          body ran 2 time(s)" in result.stdout
        assert server.count == 3

    @pytest.mark.slow
    def test_without_a_key_it_runs_offline_and_says_so(
        self, server: FakeLLMServer, tmp_path: Path
    ) -> None:
        """Without a key the example runs on its scripted model and sends nothing."""
        result = self.run_example(tmp_path, OPENAI_API_KEY=None)

        assert result.returncode == 0, result.stderr
        assert "Running offline" in result.stdout
        assert "model_request_3    completed" in result.stdout
        assert "search             body ran 1 time(s)" in result.stdout
        assert server.count == 0

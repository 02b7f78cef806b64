"""``kitaru.adapters.openai_agents.wrap``: an OpenAI Agents SDK agent whose model responses
and function tool calls are durable calls of the flow, run by the SDK's own Runner and
chat-completions model with the real openai SDK against the loopback test server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from helpers import REPO, TIMEOUT, child_env, side_effects
from helpers import kitaru as cli
from llm_server import FakeLLMServer
from openai import AsyncOpenAI

from kitaru import KitaruUsageError, checkpoint, flow
from kitaru.adapters import openai_agents as ka
from kitaru.client import KitaruClient

KILLED = -9

set_tracing_disabled(True)


@pytest.fixture
def server(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    llm_server.point_providers_here(monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-adapter")
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
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
        [sys.executable, "-m", "tests.llm_flows.openai_agent", prompt, *args],
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


def plain_agent() -> Agent[None]:
    """An unwrapped agent with no tools, its client made now (so it sees the test server)."""
    model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=AsyncOpenAI())
    return Agent(name="plain", instructions="Answer briefly.", model=model)


class TestDurableCalls:
    @pytest.mark.slow
    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_each_model_response_and_tool_call_is_a_completed_durable_call(
        self, server: FakeLLMServer, trace: Path, mode: str
    ) -> None:
        """Runner.run_sync() and asyncio.run(Runner.run()) in a flow record every call."""
        plan_replies(server, ["fetch", "write"], "all done")

        result = run_flow("do the plan", mode, env=child_env())

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["output"] == "all done"
        assert server.count == 3
        assert side_effects(trace) == {"fetch": 1, "write": 1}
        assert calls(only_exec_id()) == [
            ("model_response", "completed"),
            ("tool_record_step", "completed"),
            ("model_response_2", "completed"),
            ("tool_record_step_2", "completed"),
            ("model_response_3", "completed"),
        ]

    @pytest.mark.parametrize("flow_name", ["plan", "plan_async"], ids=["sync", "async"])
    def test_in_this_process_the_calls_are_recorded_in_order(
        self, server: FakeLLMServer, trace: Path, flow_name: str
    ) -> None:
        """`Runner.run_sync(...)` in a flow, and `await Runner.run(...)` in an `async def`
        flow, record each call as it completes."""
        import llm_flows.openai_agent as flows

        plan_replies(server, ["only"], "finished")

        handle = getattr(flows, flow_name).run("one step")

        assert handle.wait(timeout=TIMEOUT)["output"] == "finished"
        assert server.count == 2
        assert side_effects(trace) == {"only": 1}
        assert [name for name, _ in calls(handle.exec_id)] == [
            "model_response",
            "tool_record_step",
            "model_response_2",
        ]

    def test_outside_a_flow_the_wrapped_agent_runs_plainly(
        self, server: FakeLLMServer, trace: Path
    ) -> None:
        """Without a flow the agent answers as usual and nothing is journaled."""
        server.reply_text("fine")

        result = Runner.run_sync(ka.wrap(plain_agent()), "go")

        assert result.final_output == "fine"
        assert KitaruClient().executions.list() == []

    def test_a_durable_model_provider_records_the_models_it_gives(
        self, server: FakeLLMServer
    ) -> None:
        """DurableModelProvider makes the models a RunConfig picks by name durable."""
        from agents import RunConfig
        from agents.models.openai_provider import OpenAIProvider

        server.reply_text("by name")
        provider = ka.DurableModelProvider(OpenAIProvider(use_responses=False))

        @flow
        def by_name() -> str:
            agent = Agent(name="named", instructions="Answer.", model="gpt-4o-mini")
            run = Runner.run_sync(agent, "hi", run_config=RunConfig(model_provider=provider))
            return str(run.final_output)

        handle = by_name.run()

        assert handle.wait(timeout=TIMEOUT) == "by name"
        assert calls(handle.exec_id) == [("model_response", "completed")]


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
            ("model_response", "completed"),
            ("tool_record_step", "completed"),
            ("model_response_2", "completed"),
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
    def test_several_tool_calls_of_one_turn_resume_in_the_recorded_order(
        self, server: FakeLLMServer, trace: Path, tmp_path: Path
    ) -> None:
        """A turn's two concurrent calls resume in the recorded order; the first is reused."""
        server.reply_tool_calls(
            [("record_step", {"step": "first"}), ("record_step", {"step": "second"})], once=True
        )
        server.reply_text("both done", once=True)

        # The tools run concurrently: the second starts once the first is recorded, so
        # its kill loses nothing but itself.
        crashed = run_flow(
            "do both",
            env=child_env(
                ADAPTERFLOW_KILL_AT="second", ADAPTERFLOW_START_DELAY=json.dumps({"second": 0.5})
            ),
        )

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

    @pytest.mark.slow
    def test_concurrent_tools_that_start_in_another_order_on_resume_keep_their_records(
        self, server: FakeLLMServer, trace: Path, tmp_path: Path
    ) -> None:
        """Tools of one turn that start in one order, then in the other after a SIGKILL,
        are matched by the model's order: nothing diverges and no tool runs twice."""
        server.reply_tool_calls(
            [("record_step", {"step": "first"}), ("record_step", {"step": "second"})], once=True
        )
        server.reply_tool_calls([("record_step", {"step": "third"})], once=True)
        server.reply_text("all three done", once=True)

        crashed = run_flow(
            "do three",
            env=child_env(
                ADAPTERFLOW_KILL_AT="third", ADAPTERFLOW_START_DELAY=json.dumps({"first": 0.4})
            ),
        )

        assert crashed.returncode == KILLED, crashed.stderr
        assert side_effects(trace) == {"first": 1, "second": 1}
        assert trace.read_text().split() == ["second", "first"]  # second started first
        exec_id = only_exec_id()
        resumed = cli(
            "executions", "resume", exec_id, "-o", "json",
            cwd=tmp_path,
            env=child_env(
                PYTHONPATH=str(REPO), ADAPTERFLOW_START_DELAY=json.dumps({"second": 0.4})
            ),
        )  # fmt: skip

        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["result"]["output"] == "all three done"
        assert server.count == 3
        assert side_effects(trace) == {"first": 1, "second": 1, "third": 1}


@checkpoint
def agent_inside_checkpoint(prompt: str) -> str:
    return str(Runner.run_sync(ka.wrap(plain_agent()), prompt).final_output)


@flow
def checkpointed_flow(prompt: str) -> str:
    return agent_inside_checkpoint(prompt).load()


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
        with pytest.raises(KitaruUsageError, match=r"takes an agents\.Agent"):
            ka.wrap("gpt-4o-mini")  # type: ignore[arg-type]

    def test_streaming_in_a_flow_is_refused_with_what_to_use(self, server: FakeLLMServer) -> None:
        """Runner.run_streamed() in a flow body fails with a message pointing at Runner.run()."""

        @flow
        def streaming() -> str:
            import asyncio

            async def go() -> str:
                run = Runner.run_streamed(ka.wrap(plain_agent()), "hi")
                async for _ in run.stream_events():
                    pass
                return str(run.final_output)

            return asyncio.run(go())

        with pytest.raises(Exception, match="cannot stream inside a flow body"):
            streaming.run().wait(timeout=TIMEOUT)

    def test_handoff_agents_are_wrapped_too(self) -> None:
        """wrap() gives every agent reachable by handoff a durable model, cycles included."""
        writer = Agent(name="writer", model="gpt-4o-mini")
        editor = Agent(name="editor", model="gpt-4o-mini", handoffs=[writer])
        writer.handoffs = [editor]

        wrapped = ka.wrap(editor)

        (writer_copy,) = wrapped.handoffs
        assert isinstance(writer_copy, Agent)
        assert isinstance(wrapped.model, ka.DurableModel)
        assert isinstance(writer_copy.model, ka.DurableModel)
        assert writer_copy.handoffs == [wrapped]
        assert editor.model == "gpt-4o-mini"

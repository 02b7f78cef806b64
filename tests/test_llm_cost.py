"""Every model request records its estimated cost, and totals count what was paid once.

Prices come from the maintained ``genai-prices`` table; the real openai SDK talks to the
loopback fake provider, which reports the usage the test chooses. A model the table
does not list, and a mock answer, have no cost (None), never a guessed one.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from llm_server import FakeLLMServer

import kitaru
from kitaru import KitaruUserCodeError, checkpoint, flow
from kitaru._llm.pricing import estimate_cost
from kitaru.cli import main
from kitaru.client import KitaruClient

GPT_4O_COST = 0.0035
"""1,000 input tokens at $2.50 and 100 output tokens at $10 per million (gpt-4o)."""

_failures: Counter[str] = Counter()


@pytest.fixture
def server(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """The fake provider, answering every request with 1,000 input and 100 output tokens."""
    llm_server.point_providers_here(monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cost-1a2b3c")
    llm_server.reply_text("priced answer", input_tokens=1000, output_tokens=100)
    return llm_server


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@checkpoint
def summarise(text: str, model: str) -> str:
    return str(kitaru.llm(f"Summarise: {text}", model=model))


@checkpoint
def publish(summary: str) -> str:
    if _failures["publish"] == 0:
        _failures["publish"] += 1
        raise ConnectionError("publisher unavailable")
    return summary.upper()


@flow
def two_calls(model: str) -> str:
    draft = kitaru.llm("Draft a line", model=model)
    return summarise(draft, model)  # type: ignore[return-value]


@flow
def call_then_publish(model: str) -> str:
    answer = kitaru.llm("Say something", model=model)
    return publish(answer)  # type: ignore[return-value]


class TestRecordedCost:
    def test_each_request_records_its_cost_from_the_price_table(
        self, server: FakeLLMServer
    ) -> None:
        """A priced model's requests carry their cost and source; the execution sums them."""
        handle = two_calls.run("openai/gpt-4o")
        handle.wait()
        execution = KitaruClient().executions.get(handle.exec_id)
        assert [c.estimated_cost for c in execution.llm_calls] == [
            pytest.approx(GPT_4O_COST),
            pytest.approx(GPT_4O_COST),
        ]
        assert all((c.cost_source or "").startswith("genai-prices ") for c in execution.llm_calls)
        assert not any(c.cost_reused for c in execution.llm_calls)
        assert execution.cost.estimated_usd == pytest.approx(2 * GPT_4O_COST)
        assert execution.cost.unpriced_requests == 0

    def test_a_model_the_table_does_not_list_has_no_cost(self, server: FakeLLMServer) -> None:
        """An unknown model's cost is None and counted as unpriced, not guessed."""
        handle = two_calls.run("openai/house-model-7")
        handle.wait()
        execution = KitaruClient().executions.get(handle.exec_id)
        assert [c.estimated_cost for c in execution.llm_calls] == [None, None]
        assert execution.cost.estimated_usd is None
        assert execution.cost.unpriced_requests == 2

    def test_a_mock_answer_has_no_cost(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A call the mock provider answers reached no provider: its cost is unknown."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "mocked")
        handle = two_calls.run("openai/gpt-4o")
        handle.wait()
        execution = KitaruClient().executions.get(handle.exec_id)
        assert [c.estimated_cost for c in execution.llm_calls] == [None, None]
        assert [c.credential_source for c in execution.llm_calls] == ["mock", "mock"]

    def test_a_request_that_never_left_costs_nothing(self) -> None:
        """A request that provably never reached the provider is estimated at zero."""
        estimate = estimate_cost("openai", "gpt-4o", None, None, reached_provider=False)
        assert estimate.usd == 0.0


class TestPaidOnce:
    def test_a_retried_execution_does_not_pay_for_its_recorded_call_again(
        self, server: FakeLLMServer
    ) -> None:
        """Retrying reuses the recorded model call: no request, no new cost."""
        _failures.clear()
        handle = call_then_publish.run("openai/gpt-4o")
        with pytest.raises(KitaruUserCodeError):
            handle.wait()
        client = KitaruClient()
        assert client.executions.retry(handle.exec_id, background=False).status == "completed"
        execution = client.executions.get(handle.exec_id)
        assert server.count == 1
        assert execution.cost.estimated_usd == pytest.approx(GPT_4O_COST)

    def test_a_replay_marks_reused_calls_and_leaves_them_out_of_its_total(
        self, server: FakeLLMServer
    ) -> None:
        """A replay's copied model call is marked reused; only its new call counts."""
        handle = two_calls.run("openai/gpt-4o")
        handle.wait()
        client = KitaruClient()
        replayed = client.executions.replay(handle.exec_id, from_="summarise", background=False)
        replay = client.executions.get(replayed.exec_id)
        reused = sorted((c.parent or "", c.cost_reused) for c in replay.llm_calls)
        assert reused == [("", True), ("summarise", False)]
        assert server.count == 3
        assert replay.cost.estimated_usd == pytest.approx(GPT_4O_COST)
        assert replay.cost.reused_usd == pytest.approx(GPT_4O_COST)
        assert client.executions.cost("two_calls").estimated_usd == pytest.approx(3 * GPT_4O_COST)


class TestShown:
    def test_get_shows_the_total_and_each_request_cost(self, server: FakeLLMServer) -> None:
        """``executions get`` prints the execution's cost and each request's; JSON has both."""
        handle = two_calls.run("openai/gpt-4o")
        handle.wait()
        text = cli("executions", "get", handle.exec_id).stdout
        assert "Cost       est. $0.007\n" in text
        assert text.count("est. $0.0035") == 2
        data = json.loads(cli("executions", "get", handle.exec_id, "-o", "json").stdout)
        assert data["cost"] == {
            "estimated_usd": pytest.approx(2 * GPT_4O_COST),
            "unpriced_requests": 0,
            "reused_usd": 0.0,
        }
        assert [c["estimated_cost"] for c in data["llm_calls"]] == [
            pytest.approx(GPT_4O_COST),
            pytest.approx(GPT_4O_COST),
        ]

    def test_get_says_when_the_cost_is_unknown(self, server: FakeLLMServer) -> None:
        """For a model without a price, ``executions get`` says the cost is unknown."""
        handle = two_calls.run("openai/house-model-7")
        handle.wait()
        text = cli("executions", "get", handle.exec_id).stdout
        assert "Cost       unknown\n" in text
        assert "cost unknown" in text


class TestDashboardCost:
    def test_the_dashboard_shows_costs_of_calls_executions_and_flows(
        self, server: FakeLLMServer, tmp_path: Path
    ) -> None:
        """The API gives each model call's cost, the execution's total and the flow's."""
        pytest.importorskip("starlette")
        from ui_support import dashboard

        handle = two_calls.run("openai/gpt-4o")
        handle.wait()
        KitaruClient().close()
        with dashboard(tmp_path) as ui:
            detail = ui.request(f"/api/executions/{handle.exec_id}")[1]
            call = ui.request(f"/api/executions/{handle.exec_id}/calls/summarise")[1]
            flows = ui.request("/api/flows")[1]["flows"]
        assert detail["cost"] == pytest.approx(2 * GPT_4O_COST)
        assert [c["cost"] for c in call["llm_calls"]] == [pytest.approx(GPT_4O_COST)]
        (mine,) = [f for f in flows if f["flow_name"] == "two_calls"]
        assert mine["cost"] == pytest.approx(2 * GPT_4O_COST)


_EXIT_RIGHT_AFTER_A_MODEL_CALL = """
import atexit, sys
import kitaru
from kitaru import flow
from kitaru._llm import pricing

# Runs after the interpreter has joined its non-daemon threads, just before it shuts
# down: whatever still runs on another thread then is cut off mid-work.
atexit.register(lambda: print("prices loaded at exit:", pricing._loaded.is_set()))

@flow
def ask() -> str:
    return kitaru.llm("Say hello.", model="fast", name="hello")

print(ask.run().wait())
"""


class TestExitWhilePricesLoad:
    def test_a_program_ending_right_after_a_model_call_lets_the_price_table_finish(
        self, tmp_path: Path
    ) -> None:
        """The price table's background load is finished, not cut off, when a program ends.

        A load cut off by the interpreter's shutdown ends the thread inside compiled
        code, which aborts the process (SIGABRT) after the program has done its work.
        """
        import subprocess

        from helpers import TIMEOUT, child_env

        script = tmp_path / "ask.py"
        script.write_text(_EXIT_RIGHT_AFTER_A_MODEL_CALL)
        env = child_env(
            KITARU_STORE=str(tmp_path / "kitaru.db"),
            KITARU_CONFIG_PATH=str(tmp_path / "config"),
            KITARU_LLM_MOCK_RESPONSE="hello",
        )
        done = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["hello", "prices loaded at exit: True"]

"""``kitaru.llm()`` with ``tools=`` and ``response_format=``, for every provider.

The real ``openai`` and ``anthropic`` SDKs talk to the fake provider on 127.0.0.1, which
answers with tool calls in each provider's wire format and with structured JSON, and
counts every request. Crash tests run ``tests/llm_flows/agent.py`` in its own process,
kill it with SIGKILL and resume it with the real ``kitaru`` command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import msgspec
import pydantic
import pytest
from helpers import REPO, TIMEOUT, child_env, only_exec_id, store_file
from helpers import kitaru as cli
from llm_flows.agent import TASK
from llm_flows.agent import agent as agent_flow
from llm_server import ANTHROPIC_PATH, OPENAI_PATH, FakeLLMServer

import kitaru
from kitaru import (
    KitaruError,
    KitaruUsageError,
    LLMFinishReason,
    LLMResponse,
    LLMToolCall,
    LLMToolDefinition,
    LLMUsage,
    checkpoint,
    flow,
)
from kitaru._llm.tools import tool_definition, tool_definitions
from kitaru.client import KitaruClient
from kitaru.journal.events import LlmCallRecorded, decode_event

KILLED = -9
PROVIDERS = {
    "openai": "openai/gpt-4o",
    "anthropic": "anthropic/claude-sonnet-4",
    "ollama": "ollama/llama3.1",
    "openrouter": "openrouter/mistral-large",
}
SDK_PROVIDERS = ("openai", "anthropic")
"""One provider per SDK, for the slower tests."""
FORECAST = {"city": "Paris", "summary": "Sunny and mild", "temperature_c": 21.5}


@pytest.fixture
def server(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """The fake server, with every provider aimed at it and every key set."""
    llm_server.point_providers_here(monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-tools-1a2b")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-tools-3c4d")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-tools-5e6f")
    return llm_server


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, Any]:
    """Look up the current weather in a city.

    Args:
        city: The city to look up.
        unit: Celsius ("c") or Fahrenheit ("f").
    """
    return {"city": city, "temperature": 21.5, "unit": unit}


WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"description": "The city to look up.", "type": "string"},
        "unit": {
            "description": 'Celsius ("c") or Fahrenheit ("f").',
            "enum": ["c", "f"],
            "default": "c",
        },
    },
    "required": ["city"],
}


# -- the three kinds of structured output ---------------------------------------------


class PydanticForecast(pydantic.BaseModel):
    city: str
    summary: str
    temperature_c: float


@dataclasses.dataclass
class DataclassForecast:
    city: str
    summary: str
    temperature_c: float


class StructForecast(msgspec.Struct):
    city: str
    summary: str
    temperature_c: float


class LooseForecast(msgspec.Struct):
    city: str
    summary: str = ""


FORMATS = {"pydantic": PydanticForecast, "dataclass": DataclassForecast, "struct": StructForecast}


# -- flows -------------------------------------------------------------------------------


@flow
def ask(model: str, tools: list[Any] | None, response_format: type | None) -> Any:
    return kitaru.llm(
        "What is the weather in Paris?", model=model, tools=tools, response_format=response_format
    ).load()


@flow
def plain(model: str) -> Any:
    return kitaru.llm("Say hello.", model=model).load()


@checkpoint
def plan_inside(model: str) -> LLMResponse:
    response: LLMResponse = kitaru.llm("Plan the trip.", model=model, tools=[get_weather])
    return response


@flow
def planner(model: str) -> Any:
    return plan_inside(model).load()


def llm_events(exec_id: str) -> list[LlmCallRecorded]:
    """The execution's ``llm_call`` events, in order, decoded from the journal file."""
    with contextlib.closing(sqlite3.connect(store_file())) as conn:
        rows = conn.execute(
            "SELECT type, body FROM events WHERE exec_id = ? AND type = 'llm_call' ORDER BY seq",
            (exec_id,),
        ).fetchall()
    return [decode_event(str(kind), bytes(body)) for kind, body in rows]  # type: ignore[misc]


def payload(digest: str) -> bytes:
    with contextlib.closing(sqlite3.connect(store_file())) as conn:
        (data,) = conn.execute("SELECT bytes FROM payloads WHERE hash = ?", (digest,)).fetchone()
    return bytes(data)


# -- schemas -----------------------------------------------------------------------------


def search_docs(query: str, limit: int = 5, tags: list[str] | None = None) -> list[str]:
    """Search the documentation.

    Returns the best matches first.

    :param query: Words to look for.
    :param int limit: How many matches to return
        at most.
    :returns: the matching titles.
    """
    return []


def convert(amount: float, currency: str) -> float:
    """Convert an amount of money.

    Parameters
    ----------
    amount : float
        How much money.
    currency : str
        The ISO code to convert to.

    Returns
    -------
    float
    """
    return amount


def takes_anything(*values: int) -> None:
    """Takes any number of values."""


def takes_a_lock(lock: threading.Lock) -> None:
    """Takes a lock."""


BAD_TOOLS: dict[str, Any] = {
    "a function, not a list": get_weather,
    "a lambda": [lambda city: city],
    "*args": [takes_anything],
    "a name twice": [get_weather, get_weather],
    "an unknown type hint": [takes_a_lock],
    "a schema that is not an object": [{"name": "x", "parameters": {"type": "string"}}],
    "a string": ["get_weather"],
}


@flow
def ask_with_bad_tools(key: str) -> Any:
    return kitaru.llm("Weather?", model="openai/gpt-4o", tools=BAD_TOOLS[key]).load()


class TestToolSchemas:
    def test_a_function_is_described_by_its_type_hints_and_google_docstring(self) -> None:
        """Name, docstring summary, hinted types, defaults and Args descriptions make the tool."""
        assert tool_definition(get_weather) == LLMToolDefinition(
            name="get_weather",
            description="Look up the current weather in a city.",
            parameters=WEATHER_PARAMETERS,
        )

    def test_rest_and_numpy_docstrings_describe_the_parameters(self) -> None:
        """``:param x:`` and NumPy ``Parameters`` sections give descriptions too."""
        search = tool_definition(search_docs)
        assert search.description == "Search the documentation. Returns the best matches first."
        assert search.parameters["properties"]["query"] == {
            "description": "Words to look for.",
            "type": "string",
        }
        assert search.parameters["properties"]["limit"]["description"] == (
            "How many matches to return at most."
        )
        assert search.parameters["properties"]["tags"]["anyOf"] == [
            {"type": "array", "items": {"type": "string"}},
            {"type": "null"},
        ]
        assert search.parameters["required"] == ["query"]
        money = tool_definition(convert)
        assert money.description == "Convert an amount of money."
        assert {k: v["description"] for k, v in money.parameters["properties"].items()} == {
            "amount": "How much money.",
            "currency": "The ISO code to convert to.",
        }

    def test_json_schema_dicts_in_plain_openai_or_anthropic_form_are_accepted(self) -> None:
        """A dict tool may be plain, OpenAI's {"type": "function", ...} or use input_schema."""
        plain = {"name": "get_weather", "description": "Weather.", "parameters": WEATHER_PARAMETERS}
        openai_form = {"type": "function", "function": plain}
        anthropic_form = {
            "name": "get_weather",
            "description": "Weather.",
            "input_schema": WEATHER_PARAMETERS,
        }
        expected = LLMToolDefinition(
            name="get_weather", description="Weather.", parameters=WEATHER_PARAMETERS
        )
        assert tool_definitions([plain]) == (expected,)
        assert tool_definitions([openai_form]) == (expected,)
        assert tool_definitions([anthropic_form]) == (expected,)

    @pytest.mark.parametrize(
        ("key", "message"),
        [
            ("a function, not a list", "tools= must be a list of tools"),
            ("a lambda", "Tool name '<lambda>' is not allowed"),
            ("*args", "takes *values"),
            ("a name twice", "Two tools are named 'get_weather'"),
            ("an unknown type hint", "cannot derive a JSON schema for tool 'takes_a_lock'"),
            ("a schema that is not an object", "must be a JSON schema of type 'object'"),
            ("a string", "A tool is a str, not a function"),
        ],
    )
    def test_tools_that_cannot_be_described_are_refused_before_any_request(
        self, server: FakeLLMServer, key: str, message: str
    ) -> None:
        """A bad tool raises KitaruUsageError naming the problem, and nothing is sent."""
        with pytest.raises(KitaruUsageError) as direct:
            tool_definitions(BAD_TOOLS[key])
        assert message in str(direct.value)

        with pytest.raises(KitaruError) as raised:
            ask_with_bad_tools.run(key).wait(timeout=TIMEOUT)

        assert message in str(raised.value)
        assert server.count == 0
        assert llm_events(only_exec_id()) == []

    def test_a_response_format_that_is_not_a_model_class_is_refused(
        self, server: FakeLLMServer
    ) -> None:
        """response_format= takes a class; an instance or a dict gets a clear error."""
        with pytest.raises(KitaruError) as raised:
            ask.run("openai/gpt-4o", None, {"type": "object"}).wait(timeout=TIMEOUT)  # type: ignore[arg-type]
        assert "response_format= must be a pydantic model, dataclass or msgspec Struct" in str(
            raised.value
        )
        assert server.count == 0


# -- the wire --------------------------------------------------------------------------


class TestWireFormat:
    @pytest.mark.parametrize("provider", list(PROVIDERS))
    def test_tools_and_schema_go_out_and_tool_calls_come_back_in_the_providers_form(
        self, server: FakeLLMServer, provider: str
    ) -> None:
        """Each provider gets its own tools and schema fields and its tool calls are read."""
        (call_id,) = server.reply_tool_calls(
            [("get_weather", {"city": "Paris", "unit": "c"})], text="Checking."
        )

        response = ask.run(PROVIDERS[provider], [get_weather], PydanticForecast).wait(
            timeout=TIMEOUT
        )

        body = server.last_request.body
        schema = {**PydanticForecast.model_json_schema(), "additionalProperties": False}
        description = "Look up the current weather in a city."
        if provider == "anthropic":
            assert server.last_request.path == ANTHROPIC_PATH
            assert body["tools"] == [
                {
                    "name": "get_weather",
                    "description": description,
                    "input_schema": WEATHER_PARAMETERS,
                }
            ]
            assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
        else:
            assert server.last_request.path == OPENAI_PATH
            assert body["tools"] == [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": description,
                        "parameters": WEATHER_PARAMETERS,
                    },
                }
            ]
            assert body["response_format"] == {
                "type": "json_schema",
                "json_schema": {"name": "PydanticForecast", "schema": schema, "strict": True},
            }
        assert response == LLMResponse(
            text="Checking.",
            tool_calls=(
                LLMToolCall(
                    id=call_id, name="get_weather", arguments={"city": "Paris", "unit": "c"}
                ),
            ),
            parsed=None,
            finish_reason=LLMFinishReason.TOOL_CALLS,
            usage=LLMUsage(input_tokens=12, output_tokens=7, total_tokens=19),
            model=PROVIDERS[provider],
        )

    @pytest.mark.parametrize("provider", list(PROVIDERS))
    def test_a_plain_call_still_returns_text_and_sends_no_tool_fields(
        self, server: FakeLLMServer, provider: str
    ) -> None:
        """Without tools= or response_format=, a call returns text and sends what it always did."""
        server.reply_text("Hello!")

        assert plain.run(PROVIDERS[provider]).wait(timeout=TIMEOUT) == "Hello!"

        body = server.last_request.body
        assert not {"tools", "response_format", "output_config", "tool_choice"} & set(body)
        (event,) = llm_events(only_exec_id())
        assert (event.tool_calls, event.request_extras, event.finish_reason) == ((), None, "stop")

    def test_strict_is_asked_for_only_when_openai_can_enforce_the_schema(
        self, server: FakeLLMServer
    ) -> None:
        """A class with an optional field is sent with strict false, every field closed."""
        server.reply_text(json.dumps({"city": "Paris"}))

        response = ask.run("openai/gpt-4o", None, LooseForecast).wait(timeout=TIMEOUT)

        sent = server.last_request.body["response_format"]["json_schema"]
        assert sent["strict"] is False
        assert sent["schema"]["additionalProperties"] is False
        assert response.parsed == LooseForecast(city="Paris")

    def test_a_call_inside_a_checkpoint_returns_the_response_itself(
        self, server: FakeLLMServer
    ) -> None:
        """In a checkpoint, kitaru.llm(tools=...) returns an LLMResponse, recorded as a child."""
        server.reply_tool_calls([("get_weather", {"city": "Oslo"})])

        response = planner.run("anthropic/claude-sonnet-4").wait(timeout=TIMEOUT)

        assert isinstance(response, LLMResponse)
        assert [(c.name, c.arguments) for c in response.tool_calls] == [
            ("get_weather", {"city": "Oslo"})
        ]
        (event,) = llm_events(only_exec_id())
        assert event.parent == "plan_inside"
        assert [(c.name, json.loads(c.arguments)) for c in event.tool_calls] == [
            ("get_weather", {"city": "Oslo"})
        ]


# -- the agent loop ----------------------------------------------------------------------


class TestToolRoundTrip:
    @pytest.mark.parametrize("provider", list(PROVIDERS))
    def test_tool_results_go_back_and_the_final_answer_is_parsed(
        self,
        server: FakeLLMServer,
        provider: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A tool call, its result sent back in the provider's form, then a parsed answer."""
        tool_log = tmp_path / "tools.log"
        monkeypatch.setenv("AGENT_TOOL_LOG", str(tool_log))
        (call_id,) = server.reply_tool_calls(
            [("get_weather", {"city": "Paris"})], text="Let me check.", once=True
        )
        server.reply_text(json.dumps(FORECAST))

        result = agent_flow.run(PROVIDERS[provider]).wait(timeout=TIMEOUT)

        assert result == {"forecast": FORECAST, "steps": 2, "finish_reason": "stop"}
        assert tool_log.read_text() == "get_weather Paris\n"
        assert server.count == 2
        tool_result = json.dumps(
            {"city": "Paris", "temperature": 21.5, "unit": "c", "sky": "clear"}
        )
        messages = server.last_request.body["messages"]
        if provider == "anthropic":
            assert messages == [
                {"role": "user", "content": TASK},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me check."},
                        {
                            "type": "tool_use",
                            "id": call_id,
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": call_id, "content": tool_result}
                    ],
                },
            ]
        else:
            assert messages == [
                {"role": "user", "content": TASK},
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": json.dumps({"city": "Paris"}),
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call_id, "content": tool_result},
            ]

    def test_several_tool_results_share_one_anthropic_user_turn(
        self, server: FakeLLMServer
    ) -> None:
        """Results of parallel tool calls go back together, in the order they were asked."""
        first, second = server.reply_tool_calls(
            [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})], once=True
        )
        server.reply_text(json.dumps(FORECAST))

        agent_flow.run("anthropic/claude-sonnet-4").wait(timeout=TIMEOUT)

        assistant, results = server.last_request.body["messages"][1:]
        assert [block["id"] for block in assistant["content"]] == [first, second]
        assert results["role"] == "user"
        assert [block["tool_use_id"] for block in results["content"]] == [first, second]

    def test_the_request_is_recorded_with_its_tools_schema_and_tool_messages(
        self, server: FakeLLMServer
    ) -> None:
        """The llm_call events hold the tools, the schema, the tool messages and the calls."""
        (call_id,) = server.reply_tool_calls([("get_weather", {"city": "Paris"})], once=True)
        server.reply_text(json.dumps(FORECAST))

        agent_flow.run("openai/gpt-4o").wait(timeout=TIMEOUT)

        first, second = llm_events(only_exec_id())
        assert [(c.id, c.name, json.loads(c.arguments)) for c in first.tool_calls] == [
            (call_id, "get_weather", {"city": "Paris"})
        ]
        assert (first.finish_reason, second.finish_reason) == ("tool_calls", "stop")
        assert second.tool_calls == ()
        assert second.request_extras is not None
        assert second.request_extras.hash is not None
        extras = msgspec.msgpack.decode(payload(second.request_extras.hash))
        assert extras["tools"] == [
            {
                "name": "get_weather",
                "description": "Look up the current weather in a city.",
                "parameters": WEATHER_PARAMETERS,
            }
        ]
        assert extras["response_format"]["name"] == "Forecast"
        assert extras["response_format"]["schema"]["required"] == [
            "city",
            "summary",
            "temperature_c",
        ]
        assert extras["messages"] == {
            1: {
                "tool_calls": [
                    {"id": call_id, "name": "get_weather", "arguments": {"city": "Paris"}}
                ]
            },
            2: {"tool_call_id": call_id, "name": "get_weather"},
        }


# -- structured output -----------------------------------------------------------------


class TestStructuredOutput:
    @pytest.mark.parametrize("kind", list(FORMATS))
    @pytest.mark.parametrize("provider", SDK_PROVIDERS)
    def test_the_answer_is_parsed_into_the_class(
        self, server: FakeLLMServer, kind: str, provider: str
    ) -> None:
        """A pydantic model, dataclass or msgspec Struct comes back as an instance of itself."""
        cls = FORMATS[kind]
        server.reply_text(json.dumps(FORECAST))

        response = ask.run(PROVIDERS[provider], None, cls).wait(timeout=TIMEOUT)

        assert type(response.parsed) is cls
        assert response.parsed == cls(**FORECAST)
        assert response.text == json.dumps(FORECAST)
        assert response.finish_reason is LLMFinishReason.STOP
        body = server.last_request.body
        sent = (
            body["output_config"]["format"]["schema"]
            if provider == "anthropic"
            else body["response_format"]["json_schema"]["schema"]
        )
        assert sent["required"] == ["city", "summary", "temperature_c"]
        assert sent["additionalProperties"] is False

    @pytest.mark.parametrize(
        ("answer", "problem"),
        [
            ("Sunny, about 21 degrees.", "the answer is not JSON"),
            (json.dumps({"city": "Paris", "summary": "Sunny"}), "temperature_c"),
        ],
    )
    @pytest.mark.parametrize("kind", list(FORMATS))
    def test_an_answer_that_does_not_fit_fails_the_call_with_a_clear_error(
        self, server: FakeLLMServer, answer: str, problem: str, kind: str
    ) -> None:
        """The call fails (invalid_output) naming the class, the problem and the answer."""
        server.reply_text(answer)

        with pytest.raises(KitaruError) as raised:
            ask.run("openai/gpt-4o", None, FORMATS[kind]).wait(timeout=TIMEOUT)

        message = str(raised.value)
        assert f"openai/gpt-4o answered with output that does not fit {FORMATS[kind].__name__}" in (
            message
        )
        assert problem in message
        assert repr(answer) in message
        assert "Traceback" not in message
        (event,) = llm_events(only_exec_id())
        assert event.error is not None
        assert event.error.type == "kitaru.errors.ProviderError"
        assert event.usage.input_tokens == 10  # the answer was paid for, and is recorded

    def test_retry_after_an_invalid_answer_asks_again_and_completes(
        self, server: FakeLLMServer
    ) -> None:
        """A retried execution sends the call again and parses the new answer."""
        server.reply_text("not json")
        with pytest.raises(KitaruError):
            ask.run("openai/gpt-4o", None, StructForecast).wait(timeout=TIMEOUT)
        server.reply_text(json.dumps(FORECAST))

        retried = KitaruClient().executions.retry(only_exec_id(), background=False)

        assert retried.status == "completed"
        assert server.count == 2


# -- the mock provider ------------------------------------------------------------------


class TestMockProvider:
    def test_offered_tools_the_mock_answers_its_text_without_tool_calls(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With KITARU_LLM_MOCK_RESPONSE, tools= gives an LLMResponse that ends the loop."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "All done.")

        response = ask.run("openai/gpt-4o", [get_weather], None).wait(timeout=TIMEOUT)

        assert response.text == "All done."
        assert response.tool_calls == ()
        assert response.finish_reason is LLMFinishReason.STOP
        assert response.usage.output_tokens == 2

    def test_mock_json_is_parsed_into_the_response_format(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The mock text is the answer parsed into response_format=."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", json.dumps(FORECAST))

        response = ask.run("openai/gpt-4o", None, DataclassForecast).wait(timeout=TIMEOUT)

        assert response.parsed == DataclassForecast(**FORECAST)

    def test_mock_text_that_does_not_fit_fails_like_a_real_answer(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Mock text that is not the class's JSON fails the call with the same clear error."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "hello")

        with pytest.raises(KitaruError, match="does not fit StructForecast"):
            ask.run("openai/gpt-4o", None, StructForecast).wait(timeout=TIMEOUT)


# -- durability --------------------------------------------------------------------------


def run_agent(model: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``tests/llm_flows/agent.py`` from the repository root, to its end or its death."""
    return subprocess.run(
        [sys.executable, "-m", "tests.llm_flows.agent", model],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder with no flow code in it, for the resuming process."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


@pytest.fixture
def tool_log(tmp_path: Path) -> Path:
    return tmp_path / "tools.log"


@pytest.mark.slow
class TestResumeAfterSigkill:
    @pytest.mark.parametrize("provider", SDK_PROVIDERS)
    def test_a_tool_call_answered_before_the_kill_is_not_asked_for_again(
        self, server: FakeLLMServer, provider: str, elsewhere: Path, tool_log: Path
    ) -> None:
        """Killed after the model asked for a tool, resume runs the tool and sends one request."""
        (call_id,) = server.reply_tool_calls([("get_weather", {"city": "Paris"})], once=True)
        server.reply_text(json.dumps(FORECAST))
        env = child_env(AGENT_TOOL_LOG=str(tool_log))

        crashed = run_agent(PROVIDERS[provider], {**env, "AGENT_KILL_AFTER": "1"})

        assert crashed.returncode == KILLED, crashed.stderr
        assert server.count == 1
        assert not tool_log.exists()
        exec_id = only_exec_id()

        resumed = cli("executions", "resume", exec_id, "-o", "json", cwd=elsewhere, env=env)

        assert resumed.returncode == 0, resumed.stderr
        data = json.loads(resumed.stdout)
        assert data["status"] == "completed"
        assert data["result"] == {"forecast": FORECAST, "steps": 2, "finish_reason": "stop"}
        # Only the second model call was sent; it carries the recorded tool call's result.
        assert server.count == 2
        tool_ids = [m.get("tool_call_id") for m in server.last_request.body["messages"]] + [
            block.get("tool_use_id")
            for m in server.last_request.body["messages"]
            if isinstance(m["content"], list)
            for block in m["content"]
        ]
        assert call_id in tool_ids
        assert tool_log.read_text() == "get_weather Paris\n"

    def test_a_final_answer_recorded_before_the_kill_is_returned_without_a_request(
        self, server: FakeLLMServer, elsewhere: Path, tool_log: Path
    ) -> None:
        """Killed after the last model call, resume sends nothing and rebuilds the parsed answer."""
        server.reply_tool_calls([("get_weather", {"city": "Paris"})], once=True)
        server.reply_text(json.dumps(FORECAST))
        env = child_env(AGENT_TOOL_LOG=str(tool_log))

        crashed = run_agent("openai/gpt-4o", {**env, "AGENT_KILL_AFTER": "2"})

        assert crashed.returncode == KILLED, crashed.stderr
        assert server.count == 2
        server.reply_text(json.dumps({**FORECAST, "summary": "Changed"}))

        resumed = cli("executions", "resume", only_exec_id(), "-o", "json", cwd=elsewhere, env=env)

        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["result"]["forecast"] == FORECAST
        assert server.count == 2
        assert tool_log.read_text() == "get_weather Paris\n"


class TestReplay:
    def test_a_replay_reuses_recorded_responses_and_runs_only_what_follows(
        self, server: FakeLLMServer, tool_log: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Replayed from the final call, the recorded tool-call response is reused, not re-asked."""
        monkeypatch.setenv("AGENT_TOOL_LOG", str(tool_log))
        server.reply_tool_calls([("get_weather", {"city": "Paris"})], once=True)
        server.reply_text(json.dumps(FORECAST))
        source = agent_flow.run("openai/gpt-4o")
        source.wait(timeout=TIMEOUT)
        server.reply_text(json.dumps({**FORECAST, "summary": "Windy"}))

        replayed = KitaruClient().executions.replay(source.exec_id, from_="llm_2", background=False)

        assert replayed.status == "completed"
        assert replayed.result()["forecast"] == {**FORECAST, "summary": "Windy"}
        assert server.count == 3
        assert tool_log.read_text() == "get_weather Paris\n"


class TestOldJournals:
    def test_an_llm_call_event_without_the_new_fields_still_decodes(self) -> None:
        """An llm_call body written before tool calling decodes, with empty tool fields."""
        old_body = msgspec.msgpack.encode(
            {
                "type": "llm_call",
                "name": "llm_1",
                "parent": None,
                "prompt": "ab" * 32,
                "message_count": 1,
                "response": [b"\xa2hi"],
                "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
                "latency_ms": 1.5,
                "requested_model": "openai/gpt-4o",
                "alias": None,
                "resolved_model": "openai/gpt-4o",
                "credential_source": "env",
            }
        )

        event = decode_event("llm_call", old_body)

        assert isinstance(event, LlmCallRecorded)
        assert (event.tool_calls, event.finish_reason, event.request_extras) == ((), None, None)

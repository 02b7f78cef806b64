"""Each provider end to end: the real openai and anthropic SDKs against a local fake server."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest
from llm_server import ANTHROPIC_PATH, OPENAI_PATH, FakeLLMServer

from kitaru._llm.call import CONNECT_RETRIES, FailedAttempt, perform_llm_call, prepare_llm_call
from kitaru._llm.providers import ProviderError, ollama_base_url
from kitaru._llm.providers.protocol import TIMEOUT_SECONDS, public_url
from kitaru.errors import KitaruBackendError, KitaruUsageError

OPENAI_KEY = "sk-openai-test-5d1e"
ANTHROPIC_KEY = "sk-ant-test-8c2f"
OPENROUTER_KEY = "sk-or-test-3b9a"


@pytest.fixture
def server(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """The fake server, with every provider aimed at it and every key set."""
    llm_server.point_providers_here(monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENROUTER_API_KEY", OPENROUTER_KEY)
    return llm_server


def auth_header(headers: dict[str, str]) -> str:
    return headers.get("x-api-key") or headers.get("authorization", "")


class TestOpenAI:
    def test_request_and_result(self, server: FakeLLMServer) -> None:
        """openai/* goes through chat completions with model, messages, options and the key."""
        server.reply_text("Paris.", input_tokens=12, output_tokens=2)
        result = perform_llm_call(
            "Capital of France?",
            model="openai/gpt-4o",
            system="Answer in one word.",
            temperature=0.3,
            max_tokens=50,
        )
        request = server.last_request
        assert request.path == OPENAI_PATH
        assert request.body == {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "Capital of France?"},
            ],
            "temperature": 0.3,
            "max_completion_tokens": 50,
        }
        assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert (result.text, result.input_tokens, result.output_tokens, result.total_tokens) == (
            "Paris.",
            12,
            2,
            14,
        )
        assert (result.resolved_model, result.credential_source) == ("openai/gpt-4o", "environment")
        assert result.latency_ms > 0

    def test_options_left_out_are_not_sent(self, server: FakeLLMServer) -> None:
        """Without temperature or max_tokens the request carries neither."""
        perform_llm_call("Hi", model="openai/gpt-4o")
        assert set(server.last_request.body) == {"model", "messages"}

    def test_message_list_is_sent_as_given(self, server: FakeLLMServer) -> None:
        """A chat history reaches OpenAI in order, with every role kept."""
        history = [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "U1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "U2"},
        ]
        perform_llm_call(history, model="openai/gpt-4o")
        assert server.last_request.body["messages"] == history


class TestAnthropic:
    def test_request_and_result(self, server: FakeLLMServer) -> None:
        """anthropic/* goes through messages with system=, default max_tokens 4096 and the key."""
        server.reply_text("Bonjour", input_tokens=9, output_tokens=3)
        result = perform_llm_call(
            [{"role": "user", "content": "Say hello in French"}],
            model="anthropic/claude-sonnet-4",
            system="Be brief.",
            temperature=0.5,
        )
        request = server.last_request
        assert request.path == ANTHROPIC_PATH
        assert request.body == {
            "model": "claude-sonnet-4",
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Say hello in French"}],
            "max_tokens": 4096,
            "temperature": 0.5,
        }
        assert ANTHROPIC_KEY in auth_header(request.headers)
        assert (result.text, result.input_tokens, result.output_tokens, result.total_tokens) == (
            "Bonjour",
            9,
            3,
            12,
        )
        # The recorded prompt is the whole normalised list, system message included.
        assert result.messages[0] == {"role": "system", "content": "Be brief."}

    def test_explicit_max_tokens_is_sent(self, server: FakeLLMServer) -> None:
        """max_tokens= replaces the 4096 default."""
        perform_llm_call("Hi", model="anthropic/claude-sonnet-4", max_tokens=77)
        assert server.last_request.body["max_tokens"] == 77

    def test_no_system_means_no_system_field(self, server: FakeLLMServer) -> None:
        """Without system messages the request has no system field."""
        perform_llm_call("Hi", model="anthropic/claude-sonnet-4")
        assert "system" not in server.last_request.body

    def test_several_leading_system_messages_are_joined(self, server: FakeLLMServer) -> None:
        """Leading system messages are joined by blank lines into system=."""
        perform_llm_call(
            [
                {"role": "system", "content": "One."},
                {"role": "system", "content": "Two."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Bye"},
            ],
            model="anthropic/claude-sonnet-4",
        )
        body = server.last_request.body
        assert body["system"] == "One.\n\nTwo."
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]

    @pytest.mark.parametrize(
        ("messages", "fragment"),
        [
            (
                [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Late"}],
                "system message after a non-system one",
            ),
            # "tool" is a tool result now (see test_llm_tools.py); other roles stay refused.
            ([{"role": "function", "content": "x"}], "role 'function'"),
            ([{"role": "system", "content": "Only"}], "only system messages"),
        ],
    )
    def test_messages_anthropic_cannot_take_are_refused_before_sending(
        self, server: FakeLLMServer, messages: list[dict[str, str]], fragment: str
    ) -> None:
        """Late system messages, unknown roles and system-only prompts never reach the server."""
        with pytest.raises(KitaruUsageError, match=fragment):
            perform_llm_call(messages, model="anthropic/claude-sonnet-4")
        assert server.count == 0


class TestOllama:
    def test_request_goes_to_ollama_host_without_a_key(self, server: FakeLLMServer) -> None:
        """ollama/* uses OLLAMA_HOST + /v1 with no key needed and max_tokens as the field."""
        server.reply_text("local answer", input_tokens=4, output_tokens=2)
        result = perform_llm_call("Hi", model="ollama/llama3.1:8b", max_tokens=30)
        request = server.last_request
        assert request.path == OPENAI_PATH
        assert request.body == {
            "model": "llama3.1:8b",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 30,
        }
        assert OPENAI_KEY not in request.headers["authorization"]
        assert (result.text, result.credential_source) == ("local answer", "none")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, "http://localhost:11434"),
            ("", "http://localhost:11434"),
            ("gpu-box", "http://gpu-box:11434"),
            ("gpu-box:8080", "http://gpu-box:8080"),
            ("0.0.0.0", "http://0.0.0.0:11434"),
            ("https://ollama.example.com/", "https://ollama.example.com"),
            ("[::1]", "http://[::1]:11434"),
        ],
    )
    def test_ollama_host_is_read_like_ollama_reads_it(
        self, monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str
    ) -> None:
        """A bare host gets http:// and port 11434; a full URL is used as given."""
        if value is None:
            monkeypatch.delenv("OLLAMA_HOST", raising=False)
        else:
            monkeypatch.setenv("OLLAMA_HOST", value)
        assert ollama_base_url() == expected


class TestOpenRouter:
    def test_request_uses_openrouter_key_and_full_model_name(self, server: FakeLLMServer) -> None:
        """openrouter/* keeps the rest of the name (with its slash) and sends OPENROUTER_API_KEY."""
        server.reply_text("routed")
        result = perform_llm_call("Hi", model="openrouter/anthropic/claude-3.5-sonnet")
        request = server.last_request
        assert request.path == OPENAI_PATH
        assert request.body["model"] == "anthropic/claude-3.5-sonnet"
        assert request.headers["authorization"] == f"Bearer {OPENROUTER_KEY}"
        assert (result.text, result.resolved_model) == (
            "routed",
            "openrouter/anthropic/claude-3.5-sonnet",
        )


PROVIDER_MODELS = ["openai/gpt-4o", "anthropic/claude-sonnet-4", "openrouter/x/y", "ollama/m"]


class TestErrorMapping:
    @pytest.mark.parametrize("model", PROVIDER_MODELS)
    def test_unauthorised_says_check_the_key_without_showing_it(
        self, server: FakeLLMServer, model: str
    ) -> None:
        """HTTP 401 becomes an authentication error naming where the key came from, not the key."""
        server.reply_status(401, f"Incorrect API key provided: {OPENAI_KEY}")
        with pytest.raises(ProviderError) as info:
            perform_llm_call("Hi", model=model)
        error = info.value
        assert isinstance(error, KitaruBackendError)
        assert (error.reason, error.status_code, error.provider) == (
            "authentication",
            401,
            model.split("/", maxsplit=1)[0],
        )
        if model.startswith("ollama"):
            assert "kitaru sends ollama no key" in str(error)
        else:
            variable = {"openai": "OPENAI", "anthropic": "ANTHROPIC", "openrouter": "OPENROUTER"}
            expected = f"Check the {variable[error.provider]}_API_KEY environment variable"
            assert "rejected the API key" in str(error)
            assert expected in str(error)
        for key in (OPENAI_KEY, ANTHROPIC_KEY, OPENROUTER_KEY):
            assert key not in str(error)
        assert server.count == 1

    @pytest.mark.parametrize("model", PROVIDER_MODELS)
    def test_rate_limit_is_reported_after_one_request(
        self, server: FakeLLMServer, model: str
    ) -> None:
        """HTTP 429 is not resent by the SDK; it is reported as a rate-limit error at once."""
        server.reply_status(429, "slow down")
        with pytest.raises(ProviderError) as info:
            perform_llm_call("Hi", model=model)
        assert (info.value.reason, info.value.status_code) == ("rate_limit", 429)
        assert "slow down" in str(info.value)
        assert "kitaru executions retry" in str(info.value)
        assert info.value.reached_provider
        assert server.count == 1

    @pytest.mark.parametrize("model", PROVIDER_MODELS)
    @pytest.mark.parametrize("status", [500, 503])
    def test_server_errors_are_reported_after_one_request(
        self, server: FakeLLMServer, model: str, status: int
    ) -> None:
        """A 5xx answer is not resent (the provider may have billed it); it is reported."""
        server.reply_status(status, "upstream exploded")
        with pytest.raises(ProviderError) as info:
            perform_llm_call("Hi", model=model)
        assert (info.value.reason, info.value.status_code) == ("server", status)
        assert "upstream exploded" in str(info.value)
        assert "does not resend" in str(info.value)
        assert server.count == 1

    @pytest.mark.parametrize("model", PROVIDER_MODELS)
    def test_bad_request_shows_the_provider_message_with_the_key_blanked(
        self, server: FakeLLMServer, model: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A 400 shows the provider's message, with any echo of the key replaced."""
        key = {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY, "openrouter": OPENROUTER_KEY}
        echoed = key.get(model.split("/", maxsplit=1)[0], "ollama")
        server.reply_status(400, f"temperature too high for key {echoed}")
        with pytest.raises(ProviderError) as info:
            perform_llm_call("Hi", model=model)
        assert (info.value.reason, info.value.status_code) == ("bad_request", 400)
        # Ollama gets a fixed placeholder, not a secret: there is nothing to blank.
        blanked = echoed if echoed == "ollama" else "[redacted]"
        assert f"temperature too high for key {blanked}" in str(info.value)
        assert server.count == 1

    def test_not_found_on_ollama_suggests_pulling_the_model(self, server: FakeLLMServer) -> None:
        """An unknown Ollama model gets a hint to pull it."""
        server.reply_status(404, "model 'm' not found")
        with pytest.raises(ProviderError, match="ollama pull") as info:
            perform_llm_call("Hi", model="ollama/m")
        assert info.value.reason == "not_found"

    @pytest.mark.parametrize("model", PROVIDER_MODELS)
    @pytest.mark.parametrize("body", [b"\x00\xffnot json{{", b"<html>gateway</html>", b'{"a": 1}'])
    def test_garbage_responses_are_malformed(
        self, server: FakeLLMServer, model: str, body: bytes
    ) -> None:
        """Bodies that are not the provider's JSON become a malformed-response error."""
        server.reply_garbage(body)
        with pytest.raises(ProviderError, match="cannot read") as info:
            perform_llm_call("Hi", model=model)
        assert info.value.reason == "malformed_response"

    @pytest.mark.parametrize("model", PROVIDER_MODELS)
    def test_reply_without_text_is_an_error(self, server: FakeLLMServer, model: str) -> None:
        """A well-formed reply with no text is an empty-response error, not an empty string."""
        server.reply_no_text()
        with pytest.raises(ProviderError, match="returned no text") as info:
            perform_llm_call("Hi", model=model)
        assert info.value.reason == "empty_response"

    @pytest.mark.parametrize("model", ["openai/gpt-4o", "anthropic/claude-sonnet-4", "ollama/m"])
    def test_unreachable_server_is_a_connection_error(
        self, monkeypatch: pytest.MonkeyPatch, model: str
    ) -> None:
        """A closed port becomes a connection error naming the address (conftest's dead port)."""
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        with pytest.raises(
            ProviderError, match=r"Could not connect to .* at http://127.0.0.1:9"
        ) as info:
            perform_llm_call("Hi", model=model)
        assert (info.value.reason, info.value.status_code) == ("connection", None)
        assert not info.value.reached_provider
        if model.startswith("ollama"):
            assert "OLLAMA_HOST" in str(info.value)

    def test_public_url_drops_credentials_and_query(self) -> None:
        """URLs in messages lose user info, query and fragment."""
        assert public_url("https://user:pw@host:8443/v1?key=abc#x") == "https://host:8443/v1"


class TestMissingSdk:
    @pytest.mark.parametrize("model", ["openai/gpt-4o", "ollama/m", "openrouter/x/y"])
    def test_missing_openai_sdk_names_the_extra(
        self, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, model: str
    ) -> None:
        """Without the openai package, openai, ollama and openrouter ask for kitaru[openai]."""
        monkeypatch.setitem(sys.modules, "openai", None)
        with pytest.raises(KitaruUsageError, match=r"pip install 'kitaru\[openai\]'"):
            perform_llm_call("Hi", model=model)
        assert server.count == 0

    def test_missing_anthropic_sdk_names_the_extra(
        self, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without the anthropic package, anthropic models ask for kitaru[anthropic]."""
        monkeypatch.setitem(sys.modules, "anthropic", None)
        with pytest.raises(KitaruUsageError, match=r"pip install 'kitaru\[anthropic\]'"):
            perform_llm_call("Hi", model="anthropic/claude-sonnet-4")
        assert server.count == 0

    def test_importing_kitaru_llm_does_not_import_the_sdks(self) -> None:
        """The SDKs load only when a call needs them, so importing kitaru and its CLI stays fast."""
        import subprocess

        code = (
            "import sys, kitaru, kitaru.cli;"
            "print(sorted(m for m in ('openai', 'anthropic') if m in sys.modules))"
        )
        output = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert output.strip() == "[]"


PROVIDERS = ["openai/gpt-4o", "anthropic/claude-sonnet-4", "openrouter/x/y", "ollama/m"]


class RefusingPort:
    """A port that refuses connections until ``come_up`` puts the fake server on it."""

    def __init__(self) -> None:
        self._holder = socket.socket()
        self._holder.bind(("127.0.0.1", 0))  # bound but not listening: connecting is refused
        self.port: int = self._holder.getsockname()[1]
        self.server: FakeLLMServer | None = None

    def come_up(self) -> None:
        if self.server is None:
            self._holder.close()
            self.server = FakeLLMServer(port=self.port).start()

    def close(self) -> None:
        self._holder.close()
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def refusing_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[RefusingPort]:
    """Every provider aimed at a port that refuses connections until told to come up."""
    port = RefusingPort()
    for name, suffix in (
        ("OPENAI_BASE_URL", "/v1"),
        ("ANTHROPIC_BASE_URL", ""),
        ("OLLAMA_HOST", ""),
        ("KITARU_OPENROUTER_BASE_URL", "/v1"),
    ):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port.port}{suffix}")
    try:
        yield port
    finally:
        port.close()


class TestOneRequestPerAttempt:
    @pytest.mark.parametrize("model", PROVIDERS)
    def test_a_timed_out_request_is_sent_exactly_once(
        self, server: FakeLLMServer, model: str
    ) -> None:
        """A provider answering after the timeout gets one request: nothing resends it."""
        server.delay_replies(1.0)
        with pytest.raises(ProviderError, match=r"within 0\.3s") as info:
            perform_llm_call("Write a long essay.", model=model, timeout=0.3)
        assert info.value.reason == "timeout"
        assert info.value.reached_provider
        assert "not resent" in str(info.value)
        time.sleep(1.2)  # long enough for any resend to have arrived
        assert server.count == 1

    @pytest.mark.parametrize("model", ["openai/gpt-4o", "anthropic/claude-sonnet-4"])
    def test_the_environment_sets_the_timeout(
        self, server: FakeLLMServer, model: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """KITARU_LLM_TIMEOUT applies when timeout= is not given; timeout= wins over it."""
        server.delay_replies(0.6)
        monkeypatch.setenv("KITARU_LLM_TIMEOUT", "0.2")
        with pytest.raises(ProviderError, match=r"within 0\.2s"):
            perform_llm_call("Hi", model=model)
        assert perform_llm_call("Hi", model=model, timeout=5).text == "ok"
        time.sleep(0.8)
        assert server.count == 2

    def test_the_default_timeout_is_unchanged(self, server: FakeLLMServer) -> None:
        """Without timeout= or KITARU_LLM_TIMEOUT a call waits 300 s, as before."""
        assert TIMEOUT_SECONDS == 300.0
        assert prepare_llm_call("Hi", model="openai/gpt-4o").timeout == 300.0

    @pytest.mark.parametrize("value", [-1, 0, float("nan"), float("inf"), "10", True])
    def test_bad_timeout_argument_is_a_usage_error(
        self, server: FakeLLMServer, value: object
    ) -> None:
        """timeout= must be a positive number of seconds; anything else says so."""
        with pytest.raises(KitaruUsageError, match=r"timeout= must be a number of seconds > 0"):
            perform_llm_call("Hi", model="openai/gpt-4o", timeout=value)  # type: ignore[arg-type]
        assert server.count == 0

    @pytest.mark.parametrize("value", ["-5", "0", "soon", "nan"])
    def test_bad_timeout_variable_is_a_usage_error(
        self, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        """A KITARU_LLM_TIMEOUT that is not a positive number names the variable and value."""
        monkeypatch.setenv("KITARU_LLM_TIMEOUT", value)
        with pytest.raises(KitaruUsageError, match=r"KITARU_LLM_TIMEOUT must be") as info:
            perform_llm_call("Hi", model="openai/gpt-4o")
        assert repr(value) in str(info.value)
        assert server.count == 0

    @pytest.mark.parametrize("model", PROVIDERS)
    def test_a_refused_connection_is_tried_again(
        self, refusing_port: RefusingPort, model: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A request refused before it was sent is sent again, and every try is reported."""
        for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY"):
            monkeypatch.setenv(name, "sk-test-key-0000")
        failures: list[FailedAttempt] = []

        def on_failure(failed: FailedAttempt) -> None:
            failures.append(failed)
            refusing_port.come_up()  # the provider is back before the next try

        result = prepare_llm_call("Hi", model=model).run(on_failure)
        assert result.text == "ok"
        assert result.provider_attempt == 2
        assert [(f.number, f.error.reason, f.will_retry) for f in failures] == [
            (1, "connection", True)
        ]
        assert not failures[0].error.reached_provider
        assert refusing_port.server is not None
        assert refusing_port.server.count == 1

    def test_a_provider_that_stays_down_is_tried_a_bounded_number_of_times(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Refused every time (conftest's dead port), the call gives up after its retries."""
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        failures: list[FailedAttempt] = []
        with pytest.raises(ProviderError, match="Could not connect"):
            prepare_llm_call("Hi", model="openai/gpt-4o").run(failures.append)
        assert [(f.number, f.will_retry) for f in failures] == [
            (n, n <= CONNECT_RETRIES) for n in range(1, CONNECT_RETRIES + 2)
        ]

"""One whole model call: kitaru/_llm/call.py and the kitaru.llm package surface."""

from __future__ import annotations

import importlib
import math
from types import ModuleType

import msgspec
import pytest
from llm_server import FakeLLMServer

from kitaru._llm import LlmResult, perform_llm_call, prepare_llm_call
from kitaru._llm.registry import register_model
from kitaru._secrets import set_secret
from kitaru.errors import KitaruUsageError

SECRET_KEY = "sk-linked-secret-4e7d"


@pytest.fixture
def server(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """The fake server with every provider aimed at it and no keys in the environment."""
    llm_server.point_providers_here(monkeypatch)
    return llm_server


class TestAliasesEndToEnd:
    def test_alias_with_secret_sends_the_secret_key(self, server: FakeLLMServer) -> None:
        """A registered alias calls its model with the key from its linked secret."""
        set_secret("openai-creds", {"OPENAI_API_KEY": SECRET_KEY})
        register_model("fast", "openai/gpt-5-nano", secret="openai-creds")
        server.reply_text("hi there", input_tokens=2, output_tokens=2)
        result = perform_llm_call("Hello", model="fast")
        assert server.last_request.headers["authorization"] == f"Bearer {SECRET_KEY}"
        assert server.last_request.body["model"] == "gpt-5-nano"
        assert (result.requested_model, result.alias, result.resolved_model) == (
            "fast",
            "fast",
            "openai/gpt-5-nano",
        )
        assert result.credential_source == "secret"

    def test_registry_default_is_used_without_model(self, server: FakeLLMServer) -> None:
        """With no model=, the call goes to the registry's default alias."""
        register_model("local", "ollama/llama3.2")
        result = perform_llm_call("Hello")
        assert server.last_request.body["model"] == "llama3.2"
        assert (result.alias, result.credential_source) == ("local", "none")

    def test_snapshot_resolves_aliases_without_local_config(self, server: FakeLLMServer) -> None:
        """A registry snapshot alone is enough to resolve an alias, as on a fresh worker."""
        snapshot = {"aliases": {"fast": {"model": "ollama/qwen3", "secret": None}}, "default": None}
        result = perform_llm_call("Hello", model="fast", registry_snapshot=snapshot)
        assert server.last_request.body["model"] == "qwen3"
        assert result.resolved_model == "ollama/qwen3"

    def test_missing_credentials_fail_before_any_request(self, server: FakeLLMServer) -> None:
        """A call without any key raises the setup error and sends nothing."""
        with pytest.raises(KitaruUsageError, match="set OPENAI_API_KEY"):
            perform_llm_call("Hello", model="openai/gpt-4o")
        assert server.count == 0


class TestMockResponse:
    def test_mock_answers_without_credentials_or_network(
        self, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """KITARU_LLM_MOCK_RESPONSE answers with its text, needs no key, and sends nothing."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "mocked answer here")
        result = perform_llm_call("one two three", model="anthropic/claude-sonnet-4", system="s")
        assert result.text == "mocked answer here"
        assert (result.input_tokens, result.output_tokens, result.total_tokens) == (4, 3, 7)
        assert (result.resolved_model, result.credential_source) == (
            "anthropic/claude-sonnet-4",
            "mock",
        )
        assert server.count == 0

    def test_mock_still_resolves_aliases(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Mocked calls record the model the alias resolves to, even with a missing secret."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "ok")
        monkeypatch.setenv(
            "KITARU_MODEL_REGISTRY",
            '{"aliases": {"fast": {"model": "openai/gpt-5-nano", "secret": "absent"}}}',
        )
        result = perform_llm_call("Hi", model="fast")
        assert (result.alias, result.resolved_model) == ("fast", "openai/gpt-5-nano")

    def test_mock_still_needs_a_resolvable_model(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Resolution errors are raised even when the response is mocked."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "ok")
        with pytest.raises(KitaruUsageError, match="No model to call"):
            perform_llm_call("Hi")

    def test_empty_mock_variable_counts_as_unset(
        self, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An empty KITARU_LLM_MOCK_RESPONSE does not switch mocking on."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "")
        result = perform_llm_call("Hi", model="ollama/m")
        assert result.credential_source == "none"
        assert server.count == 1


class TestArguments:
    @pytest.mark.parametrize("temperature", [-0.1, math.inf, math.nan, True, "0.2"])
    def test_bad_temperature_is_refused(self, temperature: object) -> None:
        """temperature= must be a finite number >= 0."""
        with pytest.raises(KitaruUsageError, match="temperature= must be a number"):
            perform_llm_call("Hi", model="ollama/m", temperature=temperature)  # type: ignore[arg-type]

    @pytest.mark.parametrize("max_tokens", [0, -5, 1.5, True, "10"])
    def test_bad_max_tokens_is_refused(self, max_tokens: object) -> None:
        """max_tokens= must be a whole number >= 1."""
        with pytest.raises(KitaruUsageError, match="max_tokens= must be a whole number"):
            perform_llm_call("Hi", model="ollama/m", max_tokens=max_tokens)  # type: ignore[arg-type]

    def test_integer_temperature_is_sent_as_a_number(self, server: FakeLLMServer) -> None:
        """temperature=0 is a valid setting and is sent, not dropped."""
        perform_llm_call("Hi", model="ollama/m", temperature=0)
        assert server.last_request.body["temperature"] == 0

    def test_bad_prompt_is_refused_before_resolution(self) -> None:
        """Prompt errors come first, even when no model could be resolved."""
        with pytest.raises(KitaruUsageError, match="The prompt is empty"):
            perform_llm_call("")


class TestPrepare:
    def test_prepare_checks_everything_without_sending(self, server: FakeLLMServer) -> None:
        """prepare_llm_call resolves model and key but sends nothing until run()."""
        set_secret("creds", {"ANTHROPIC_API_KEY": SECRET_KEY})
        register_model("claude", "anthropic/claude-sonnet-4", secret="creds")
        prepared = prepare_llm_call("Hi", model="claude")
        assert (prepared.resolved.model, prepared.credentials.source) == (
            "anthropic/claude-sonnet-4",
            "secret",
        )
        assert server.count == 0
        assert SECRET_KEY not in repr(prepared)
        assert prepared.run().credential_source == "secret"
        assert server.count == 1


class TestResultEncoding:
    def test_result_round_trips_through_msgspec_json(self, server: FakeLLMServer) -> None:
        """LlmResult encodes to JSON and decodes back equal, so it can be journaled."""
        server.reply_text("answer", input_tokens=3, output_tokens=1)
        result = perform_llm_call("Hi", model="ollama/m", system="s")
        encoded = msgspec.json.encode(result)
        assert msgspec.json.decode(encoded, type=LlmResult) == result


class TestPackageSurface:
    def test_all_is_sorted_and_complete(self) -> None:
        """The kitaru._llm package's __all__ names every public attribute it re-exports, sorted."""
        # The package is private: ``kitaru.llm`` is the public llm() function.
        package = importlib.import_module("kitaru._llm")
        exported = set(package.__all__)
        public = {
            name
            for name, value in vars(package).items()
            if not name.startswith("_") and not isinstance(value, ModuleType)
        }
        public.discard("annotations")
        assert exported == public
        assert package.__all__ == sorted(package.__all__, key=lambda n: (not n.isupper(), n))

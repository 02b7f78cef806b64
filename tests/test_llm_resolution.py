"""Model resolution order and errors: kitaru/_llm/resolution.py."""

from __future__ import annotations

import pytest

from kitaru._llm.registry import ModelAlias, ModelRegistry
from kitaru._llm.resolution import ResolvedModel, resolve_model
from kitaru.errors import KitaruUsageError

REGISTRY = ModelRegistry(
    aliases={
        "fast": ModelAlias(model="openai/gpt-5-nano", secret="openai-creds"),
        "local": ModelAlias(model="ollama/llama3.2"),
    },
    default="local",
)
EMPTY = ModelRegistry()


class TestOrder:
    def test_explicit_model_wins_over_env_and_default(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """model= is used even when KITARU_DEFAULT_MODEL and a registry default exist."""
        monkeypatch.setenv("KITARU_DEFAULT_MODEL", "anthropic/claude-haiku-4")
        resolved = resolve_model("openrouter/meta/llama-3", REGISTRY)
        assert resolved == ResolvedModel(
            requested="openrouter/meta/llama-3",
            alias=None,
            provider="openrouter",
            model_name="meta/llama-3",
            secret=None,
        )

    def test_env_default_wins_over_registry_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without model=, KITARU_DEFAULT_MODEL beats the registry default."""
        monkeypatch.setenv("KITARU_DEFAULT_MODEL", "anthropic/claude-haiku-4")
        resolved = resolve_model(None, REGISTRY)
        assert resolved.model == "anthropic/claude-haiku-4"
        assert resolved.requested == "anthropic/claude-haiku-4"

    def test_registry_default_is_the_last_resort(self) -> None:
        """Without model= or KITARU_DEFAULT_MODEL, the registry default alias is used."""
        resolved = resolve_model(None, REGISTRY)
        assert (resolved.alias, resolved.model) == ("local", "ollama/llama3.2")

    def test_blank_env_default_counts_as_unset(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty KITARU_DEFAULT_MODEL falls through to the registry default."""
        monkeypatch.setenv("KITARU_DEFAULT_MODEL", " ")
        assert resolve_model(None, REGISTRY).alias == "local"


class TestAliases:
    def test_explicit_alias_resolves_with_its_secret(self) -> None:
        """model= naming an alias resolves to its model and brings its linked secret."""
        resolved = resolve_model("fast", REGISTRY)
        assert resolved == ResolvedModel(
            requested="fast",
            alias="fast",
            provider="openai",
            model_name="gpt-5-nano",
            secret="openai-creds",
        )
        assert resolved.model == "openai/gpt-5-nano"

    def test_env_default_matching_an_alias_resolves_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """KITARU_DEFAULT_MODEL that equals an alias goes through the alias."""
        monkeypatch.setenv("KITARU_DEFAULT_MODEL", "fast")
        resolved = resolve_model(None, REGISTRY)
        assert (resolved.alias, resolved.secret) == ("fast", "openai-creds")

    def test_raw_model_equal_to_an_alias_target_is_not_the_alias(self) -> None:
        """A raw provider/model string never picks up an alias's secret."""
        resolved = resolve_model("openai/gpt-5-nano", REGISTRY)
        assert (resolved.alias, resolved.secret) == (None, None)


class TestErrors:
    def test_nothing_resolvable_says_how_to_set_a_model(self) -> None:
        """With no model anywhere, the error names model=, the variable and the command."""
        with pytest.raises(KitaruUsageError) as info:
            resolve_model(None, EMPTY)
        message = str(info.value)
        assert "model=" in message
        assert "KITARU_DEFAULT_MODEL" in message
        assert "kitaru model register" in message

    def test_unknown_bare_name_lists_aliases_and_providers(self) -> None:
        """A name that is neither an alias nor provider/model lists both kinds of choices."""
        with pytest.raises(KitaruUsageError) as info:
            resolve_model("fsat", REGISTRY)
        message = str(info.value)
        assert "registered: fast, local" in message
        assert "anthropic, ollama, openai, openrouter" in message

    @pytest.mark.parametrize(
        ("model", "fragment"),
        [
            ("azure/gpt-4o", "unknown provider 'azure'"),
            ("openai/", "no model name"),
            ("/gpt-4o", "unknown provider ''"),
        ],
    )
    def test_bad_provider_model_lists_supported_providers(self, model: str, fragment: str) -> None:
        """Unknown provider or empty model name is a usage error listing the providers."""
        with pytest.raises(KitaruUsageError, match=fragment) as info:
            resolve_model(model, EMPTY)
        assert "Supported providers: anthropic, ollama, openai, openrouter" in str(info.value)

    def test_bad_env_default_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad KITARU_DEFAULT_MODEL is reported as coming from that variable."""
        monkeypatch.setenv("KITARU_DEFAULT_MODEL", "azure/gpt-4o")
        with pytest.raises(KitaruUsageError, match=r"^KITARU_DEFAULT_MODEL: "):
            resolve_model(None, EMPTY)

    @pytest.mark.parametrize("model", ["", "   ", 42])
    def test_empty_or_non_string_model_argument_is_refused(self, model: object) -> None:
        """model= must be non-empty text when given."""
        with pytest.raises(KitaruUsageError, match="model= must be"):
            resolve_model(model, REGISTRY)  # type: ignore[arg-type]

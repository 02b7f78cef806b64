"""The model registry: local file, KITARU_MODEL_REGISTRY and snapshots (kitaru/_llm/registry.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitaru._llm.registry import (
    ModelAlias,
    ModelRegistry,
    effective_registry,
    list_models,
    load_local_registry,
    models_path,
    parse_model,
    register_model,
    remove_model,
    set_default_model,
)
from kitaru._secrets import set_secret
from kitaru.errors import KitaruUsageError

ENV = "KITARU_MODEL_REGISTRY"


def env_registry(monkeypatch: pytest.MonkeyPatch, data: object) -> None:
    monkeypatch.setenv(ENV, json.dumps(data))


class TestRegister:
    def test_first_alias_becomes_default(self) -> None:
        """The first alias registered is the default; later ones do not take it over."""
        register_model("fast", "openai/gpt-5-nano")
        registry = register_model("smart", "anthropic/claude-sonnet-4")
        assert registry.default == "fast"
        assert set(registry.aliases) == {"fast", "smart"}

    def test_registration_is_stored_as_readable_json(self) -> None:
        """The local registry is indented JSON in the config dir, in the snapshot shape."""
        set_secret("openai-creds", {"OPENAI_API_KEY": "sk-x"})
        register_model("fast", "openai/gpt-5-nano", secret="openai-creds")
        text = models_path().read_text()
        assert json.loads(text) == {
            "aliases": {"fast": {"model": "openai/gpt-5-nano", "secret": "openai-creds"}},
            "default": "fast",
        }
        assert "\n  " in text

    def test_reregistering_replaces_the_alias(self) -> None:
        """Registering an existing alias replaces its model and keeps the default."""
        register_model("fast", "openai/gpt-5-nano")
        registry = register_model("fast", "ollama/llama3.2")
        assert registry.aliases["fast"] == ModelAlias(model="ollama/llama3.2")
        assert load_local_registry() == registry

    def test_secret_must_exist(self) -> None:
        """Linking a secret that does not exist is refused, with the command to create it."""
        with pytest.raises(KitaruUsageError, match=r"kitaru secrets set missing --KEY=VALUE"):
            register_model("fast", "openai/gpt-5-nano", secret="missing")
        assert not models_path().exists()

    @pytest.mark.parametrize("alias", ["Fast", "-x", "_x", "a b", "a/b", ""])
    def test_bad_alias_names_are_refused(self, alias: str) -> None:
        """Aliases are lower-case [a-z0-9][a-z0-9_-]*."""
        with pytest.raises(KitaruUsageError, match="Invalid alias"):
            register_model(alias, "openai/gpt-4o")

    @pytest.mark.parametrize("alias", ["fast", "gpt4-mini", "a_1", "9"])
    def test_good_alias_names_are_accepted(self, alias: str) -> None:
        """Lower-case names with digits, '_' and '-' are fine."""
        assert alias in register_model(alias, "openai/gpt-4o").aliases

    @pytest.mark.parametrize(
        ("model", "message"),
        [
            ("gpt-4o", "no provider prefix"),
            ("azure/gpt-4o", "unknown provider 'azure'"),
            ("openai/", "no model name"),
            ("", "must be a 'provider/model' string"),
        ],
    )
    def test_model_must_be_a_supported_provider_model(self, model: str, message: str) -> None:
        """The model must be provider/model with a supported provider, and the error lists them."""
        with pytest.raises(KitaruUsageError, match=message) as info:
            register_model("fast", model)
        assert "anthropic, ollama, openai, openrouter" in str(info.value)


class TestRemoveAndDefault:
    def test_remove_non_default_keeps_default(self) -> None:
        """Removing an alias that is not the default leaves the default alone."""
        register_model("fast", "openai/gpt-5-nano")
        register_model("smart", "openai/gpt-5")
        registry = remove_model("smart")
        assert registry == ModelRegistry(
            aliases={"fast": ModelAlias(model="openai/gpt-5-nano")}, default="fast"
        )

    def test_removing_the_default_leaves_no_default(self) -> None:
        """Removing the default alias leaves no default instead of picking another model."""
        register_model("fast", "openai/gpt-5-nano")
        register_model("smart", "openai/gpt-5")
        registry = remove_model("fast")
        assert registry.default is None
        assert load_local_registry().default is None

    def test_next_registration_after_default_removed_becomes_default(self) -> None:
        """With no default, the next alias registered becomes the default."""
        register_model("fast", "openai/gpt-5-nano")
        remove_model("fast")
        assert register_model("other", "openai/gpt-5").default == "other"

    def test_set_default(self) -> None:
        """set_default_model switches the default to another registered alias."""
        register_model("fast", "openai/gpt-5-nano")
        register_model("smart", "openai/gpt-5")
        assert set_default_model("smart").default == "smart"
        assert load_local_registry().default == "smart"

    def test_unknown_alias_is_reported_with_the_known_ones(self) -> None:
        """Removing or defaulting an unknown alias lists the registered ones."""
        register_model("fast", "openai/gpt-5-nano")
        with pytest.raises(KitaruUsageError, match=r"No alias 'nope'.*registered aliases: fast"):
            remove_model("nope")
        with pytest.raises(KitaruUsageError, match=r"No alias 'nope'"):
            set_default_model("nope")

    def test_empty_registry_says_how_to_register(self) -> None:
        """With nothing registered, the error says how to register an alias."""
        with pytest.raises(KitaruUsageError, match="kitaru model register ALIAS"):
            set_default_model("fast")


class TestEnvironmentOverride:
    def test_env_aliases_override_local_ones_and_env_default_wins(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """KITARU_MODEL_REGISTRY replaces same-named local aliases, adds new ones, sets default."""
        register_model("fast", "openai/gpt-5-nano")
        register_model("local-only", "ollama/llama3.2")
        env_registry(
            monkeypatch,
            {
                "aliases": {
                    "fast": {"model": "anthropic/claude-haiku-4", "secret": "anthropic-creds"},
                    "env-only": {"model": "openrouter/meta/llama"},
                },
                "default": "env-only",
            },
        )
        registry = effective_registry()
        assert registry.aliases["fast"] == ModelAlias(
            model="anthropic/claude-haiku-4", secret="anthropic-creds"
        )
        assert registry.aliases["local-only"].model == "ollama/llama3.2"
        assert registry.aliases["env-only"].model == "openrouter/meta/llama"
        assert registry.default == "env-only"

    def test_env_default_may_name_a_local_alias(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The env default can pick an alias that only the local config defines."""
        register_model("fast", "openai/gpt-5-nano")
        register_model("smart", "openai/gpt-5")
        env_registry(monkeypatch, {"default": "smart"})
        assert effective_registry().default == "smart"

    def test_env_without_default_keeps_local_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An env registry without a default leaves the local default in place."""
        register_model("fast", "openai/gpt-5-nano")
        env_registry(monkeypatch, {"aliases": {"x": {"model": "openai/gpt-4o"}}})
        assert effective_registry().default == "fast"

    def test_env_default_naming_nothing_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An env default that names no alias anywhere is an error naming the variable."""
        env_registry(monkeypatch, {"default": "ghost"})
        with pytest.raises(KitaruUsageError, match=r"KITARU_MODEL_REGISTRY names 'ghost'"):
            effective_registry()

    @pytest.mark.parametrize(
        "raw",
        [
            "{not json",
            "[]",
            '{"aliases": {"fast": "openai/gpt-4o"}}',
            '{"alias": {}}',
            '{"aliases": {"fast": {"model": 3}}}',
        ],
    )
    def test_invalid_json_or_shape_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, raw: str
    ) -> None:
        """Invalid JSON or a wrong shape in the variable is a usage error naming it."""
        monkeypatch.setenv(ENV, raw)
        with pytest.raises(KitaruUsageError, match=r"^KITARU_MODEL_REGISTRY is not a valid"):
            effective_registry()

    @pytest.mark.parametrize(
        "data",
        [
            {"aliases": {"Fast": {"model": "openai/gpt-4o"}}},
            {"aliases": {"fast": {"model": "nope/gpt-4o"}}},
            {"aliases": {"fast": {"model": "openai/gpt-4o", "secret": "bad name"}}},
        ],
    )
    def test_invalid_entries_name_the_variable_and_alias(
        self, monkeypatch: pytest.MonkeyPatch, data: object
    ) -> None:
        """A bad alias, model or secret name in the variable is reported with the variable."""
        env_registry(monkeypatch, data)
        with pytest.raises(KitaruUsageError, match=r"^KITARU_MODEL_REGISTRY, alias"):
            effective_registry()

    def test_empty_variable_is_ignored(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty KITARU_MODEL_REGISTRY counts as unset."""
        register_model("fast", "openai/gpt-5-nano")
        monkeypatch.setenv(ENV, "  ")
        assert effective_registry() == load_local_registry()


class TestSnapshots:
    def test_snapshot_round_trips_through_json(self) -> None:
        """to_snapshot gives plain JSON data that from_snapshot reads back equal."""
        registry = ModelRegistry(
            aliases={
                "fast": ModelAlias(model="openai/gpt-5-nano", secret="openai-creds"),
                "local": ModelAlias(model="ollama/llama3.2"),
            },
            default="fast",
        )
        data = json.loads(json.dumps(registry.to_snapshot()))
        assert ModelRegistry.from_snapshot(data) == registry

    def test_snapshot_replaces_the_local_config(self) -> None:
        """With a snapshot, local aliases and the local default are not used at all."""
        register_model("fast", "openai/gpt-5-nano")
        register_model("local-only", "openai/gpt-5")
        snapshot = {"aliases": {"fast": {"model": "ollama/llama3.2"}}, "default": "fast"}
        registry = effective_registry(snapshot)
        assert registry.aliases == {"fast": ModelAlias(model="ollama/llama3.2")}
        assert registry.default == "fast"

    def test_snapshot_works_without_any_local_config(self, kitaru_env: Path) -> None:
        """A resumed execution on a machine with no config resolves from its snapshot."""
        snapshot = {"aliases": {"fast": {"model": "openai/gpt-5-nano"}}, "default": "fast"}
        assert effective_registry(snapshot).aliases["fast"].model == "openai/gpt-5-nano"
        assert not kitaru_env.exists()

    def test_env_overrides_matching_snapshot_entries(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """KITARU_MODEL_REGISTRY overrides matching snapshot aliases and its default wins."""
        snapshot = {
            "aliases": {
                "fast": {"model": "openai/gpt-5-nano", "secret": None},
                "smart": {"model": "openai/gpt-5", "secret": None},
            },
            "default": "fast",
        }
        env_registry(
            monkeypatch,
            {"aliases": {"fast": {"model": "ollama/llama3.2"}}, "default": "smart"},
        )
        registry = effective_registry(snapshot)
        assert registry.aliases["fast"].model == "ollama/llama3.2"
        assert registry.aliases["smart"].model == "openai/gpt-5"
        assert registry.default == "smart"

    @pytest.mark.parametrize(
        "snapshot",
        [
            {"aliases": {"fast": {"model": "openai/gpt-4o"}}, "default": "ghost"},
            {"aliases": {"fast": {"modle": "openai/gpt-4o"}}},
            {"aliases": {"fast": {"model": "gpt-4o"}}},
        ],
    )
    def test_bad_snapshot_is_reported(self, snapshot: dict[str, object]) -> None:
        """A snapshot that is not a valid registry is a usage error naming the snapshot."""
        with pytest.raises(KitaruUsageError, match="snapshot"):
            effective_registry(snapshot)


class TestLocalFile:
    def test_no_file_means_empty_registry(self) -> None:
        """Without a local file the registry is empty and has no default."""
        assert load_local_registry() == ModelRegistry()

    def test_corrupt_file_is_reported_with_its_path(self) -> None:
        """A broken models.json is reported with its path and how to recover."""
        register_model("fast", "openai/gpt-5-nano")
        models_path().write_text("{broken")
        with pytest.raises(KitaruUsageError, match="kitaru model register") as info:
            load_local_registry()
        assert str(models_path()) in str(info.value)


class TestListModels:
    def test_rows_show_source_secret_and_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """list_models gives sorted rows marking the default and where each alias came from."""
        set_secret("openai-creds", {"OPENAI_API_KEY": "sk-x"})
        register_model("fast", "openai/gpt-5-nano", secret="openai-creds")
        register_model("zed", "ollama/llama3.2")
        env_registry(monkeypatch, {"aliases": {"env": {"model": "openai/gpt-5"}}})
        rows = [(r.alias, r.model, r.secret, r.is_default, r.source) for r in list_models()]
        assert rows == [
            ("env", "openai/gpt-5", None, False, "environment"),
            ("fast", "openai/gpt-5-nano", "openai-creds", True, "local"),
            ("zed", "ollama/llama3.2", None, False, "local"),
        ]

    def test_rows_from_a_snapshot_say_so(self) -> None:
        """Aliases that come from a snapshot are marked as such."""
        rows = list_models({"aliases": {"a": {"model": "openai/x"}}, "default": "a"})
        assert [(r.alias, r.source, r.is_default) for r in rows] == [("a", "snapshot", True)]


class TestParseModel:
    @pytest.mark.parametrize(
        ("model", "expected"),
        [
            ("openai/gpt-4o", ("openai", "gpt-4o")),
            ("openrouter/anthropic/claude-3.5", ("openrouter", "anthropic/claude-3.5")),
            ("ollama/llama3.1:8b", ("ollama", "llama3.1:8b")),
        ],
    )
    def test_splits_at_the_first_slash(self, model: str, expected: tuple[str, str]) -> None:
        """The provider is everything before the first slash; the rest is the model name."""
        assert parse_model(model) == expected

    def test_spaces_in_the_name_are_refused(self) -> None:
        """A model name with spaces in it is refused."""
        with pytest.raises(KitaruUsageError, match="spaces"):
            parse_model("openai/gpt 4o")

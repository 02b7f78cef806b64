"""Credential resolution: kitaru/_llm/credentials.py."""

from __future__ import annotations

import pytest

from kitaru._llm.credentials import Credentials, resolve_credentials
from kitaru._llm.resolution import ResolvedModel
from kitaru._secrets import set_secret
from kitaru.errors import KitaruUsageError

SECRET_KEY = "sk-from-secret-7f3a"
ENV_KEY = "sk-from-env-91bc"


def resolved(
    provider: str, *, alias: str | None = None, secret: str | None = None
) -> ResolvedModel:
    return ResolvedModel(
        requested=alias or f"{provider}/m",
        alias=alias,
        provider=provider,
        model_name="m",
        secret=secret,
    )


class TestOrder:
    @pytest.mark.parametrize(
        ("provider", "variable"),
        [
            ("openai", "OPENAI_API_KEY"),
            ("anthropic", "ANTHROPIC_API_KEY"),
            ("openrouter", "OPENROUTER_API_KEY"),
        ],
    )
    def test_environment_key_wins_over_linked_secret(
        self, monkeypatch: pytest.MonkeyPatch, provider: str, variable: str
    ) -> None:
        """The provider's variable beats the alias's secret, and the source says environment."""
        set_secret("creds", {variable: SECRET_KEY})
        monkeypatch.setenv(variable, ENV_KEY)
        credentials = resolve_credentials(resolved(provider, alias="a", secret="creds"))
        assert (credentials.api_key, credentials.source) == (ENV_KEY, "environment")
        assert variable in credentials.hint

    def test_linked_secret_is_used_without_environment_key(self) -> None:
        """Without the variable, the key comes from the alias's secret."""
        set_secret("openai-creds", {"OPENAI_API_KEY": SECRET_KEY, "OTHER": "x"})
        credentials = resolve_credentials(resolved("openai", alias="fast", secret="openai-creds"))
        assert (credentials.api_key, credentials.source) == (SECRET_KEY, "secret")
        assert credentials.hint == "OPENAI_API_KEY in secret 'openai-creds'"

    def test_blank_environment_key_counts_as_unset(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty provider variable does not hide the linked secret."""
        set_secret("creds", {"OPENAI_API_KEY": SECRET_KEY})
        monkeypatch.setenv("OPENAI_API_KEY", "")
        credentials = resolve_credentials(resolved("openai", alias="a", secret="creds"))
        assert credentials.source == "secret"

    def test_ollama_needs_no_key(self) -> None:
        """Ollama resolves to no key with source none."""
        credentials = resolve_credentials(resolved("ollama"))
        assert (credentials.api_key, credentials.source) == (None, "none")


class TestSetupErrors:
    def test_missing_key_for_raw_model_says_what_to_set(self) -> None:
        """Without variable or alias, the error names the variable and the commands to use."""
        with pytest.raises(KitaruUsageError) as info:
            resolve_credentials(resolved("anthropic"))
        message = str(info.value)
        assert message.startswith("No API key for anthropic/m: set ANTHROPIC_API_KEY")
        assert "kitaru secrets set anthropic-creds --ANTHROPIC_API_KEY=<key>" in message
        assert "kitaru model register ALIAS --model anthropic/m --secret anthropic-creds" in message

    def test_missing_key_for_alias_without_secret_names_the_alias(self) -> None:
        """For an alias with no secret, the error shows how to link one to that alias."""
        with pytest.raises(KitaruUsageError) as info:
            resolve_credentials(resolved("openrouter", alias="router"))
        message = str(info.value)
        assert "set OPENROUTER_API_KEY" in message
        assert "kitaru model register router --model openrouter/m --secret openrouter-creds" in (
            message
        )

    def test_secret_without_the_key_says_which_key_from_which_secret(self) -> None:
        """A linked secret lacking the provider's key is reported with both names."""
        set_secret("creds", {"WRONG_NAME": SECRET_KEY})
        with pytest.raises(KitaruUsageError) as info:
            resolve_credentials(resolved("openai", alias="fast", secret="creds"))
        message = str(info.value)
        assert "Secret 'creds' (linked to alias 'fast') has no OPENAI_API_KEY" in message
        assert "holds WRONG_NAME" in message
        assert "kitaru secrets set creds --OPENAI_API_KEY=<key>" in message
        assert SECRET_KEY not in message

    def test_linked_secret_that_was_deleted_is_reported(self) -> None:
        """An alias whose secret no longer exists gets an error saying how to recreate it."""
        with pytest.raises(KitaruUsageError, match=r"links secret 'gone', which does not exist"):
            resolve_credentials(resolved("openai", alias="fast", secret="gone"))


class TestMasking:
    def test_repr_and_str_never_show_the_key(self) -> None:
        """Credentials print with the key masked."""
        credentials = Credentials(api_key=SECRET_KEY, source="secret", hint="h")
        for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
            assert SECRET_KEY not in text
            assert "********" in text

    def test_repr_without_key_says_none(self) -> None:
        """Credentials without a key show api_key=None."""
        assert "api_key=None" in repr(Credentials(api_key=None, source="none", hint="h"))

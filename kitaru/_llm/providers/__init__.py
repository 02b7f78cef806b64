"""The model providers kitaru can call, and where each one is reached.

==============  ==========================  =======================================
provider        API key variable            endpoint
==============  ==========================  =======================================
``openai``      ``OPENAI_API_KEY``          ``$OPENAI_BASE_URL`` or OpenAI's API
``anthropic``   ``ANTHROPIC_API_KEY``       ``$ANTHROPIC_BASE_URL`` or Anthropic's API
``ollama``      none                        ``$OLLAMA_HOST`` (default
                                            ``http://localhost:11434``) + ``/v1``
``openrouter``  ``OPENROUTER_API_KEY``      ``https://openrouter.ai/api/v1``
==============  ==========================  =======================================

``OPENAI_BASE_URL`` and ``ANTHROPIC_BASE_URL`` are the SDKs' own settings.
``KITARU_OPENROUTER_BASE_URL`` replaces OpenRouter's endpoint; it exists so tests can
aim OpenRouter calls at a local server, and is not meant for production use.
"""

from __future__ import annotations

import os
from types import MappingProxyType

from kitaru._llm.providers.anthropic_messages import AnthropicMessagesProvider
from kitaru._llm.providers.mock import MockProvider
from kitaru._llm.providers.openai_chat import OpenAIChatProvider
from kitaru._llm.providers.protocol import (
    Provider,
    ProviderError,
    ProviderRequest,
    ProviderResponse,
)

__all__ = [
    "PROVIDER_KEY_ENV",
    "SUPPORTED_PROVIDERS",
    "MockProvider",
    "Provider",
    "ProviderError",
    "ProviderRequest",
    "ProviderResponse",
    "build_provider",
    "ollama_base_url",
]

PROVIDER_KEY_ENV = MappingProxyType(
    {
        "anthropic": "ANTHROPIC_API_KEY",
        "ollama": None,
        "openai": "OPENAI_API_KEY",
        "openrouter": "OPENROUTER_API_KEY",
    }
)
"""Each supported provider and the environment variable holding its API key (None: no key)."""

SUPPORTED_PROVIDERS = tuple(sorted(PROVIDER_KEY_ENV))

OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"
OPENROUTER_URL = "https://openrouter.ai/api/v1"
OPENROUTER_URL_ENV = "KITARU_OPENROUTER_BASE_URL"
OLLAMA_HOST_ENV = "OLLAMA_HOST"
OLLAMA_DEFAULT_PORT = 11434
# Ollama ignores the key, but the openai SDK refuses to build a client without one.
_OLLAMA_PLACEHOLDER_KEY = "ollama"


def build_provider(provider: str, *, api_key: str | None, key_hint: str) -> Provider:
    """Return the adapter that calls ``provider`` with ``api_key``.

    ``key_hint`` says where the key came from, for error messages; it never holds the key.
    """
    if provider == "ollama":
        return OpenAIChatProvider(
            provider="ollama",
            base_url=f"{ollama_base_url()}/v1",
            api_key=_OLLAMA_PLACEHOLDER_KEY,
            key_hint=None,
        )
    if api_key is None:
        raise ValueError(f"{provider} needs an API key")  # credentials resolution ensures one
    if provider == "openai":
        return OpenAIChatProvider(
            provider="openai",
            base_url=_env("OPENAI_BASE_URL") or OPENAI_URL,
            api_key=api_key,
            key_hint=key_hint,
            # OpenAI's reasoning models refuse max_tokens and accept only this field.
            max_tokens_field="max_completion_tokens",
        )
    if provider == "openrouter":
        return OpenAIChatProvider(
            provider="openrouter",
            base_url=_env(OPENROUTER_URL_ENV) or OPENROUTER_URL,
            api_key=api_key,
            key_hint=key_hint,
        )
    if provider == "anthropic":
        return AnthropicMessagesProvider(
            base_url=_env("ANTHROPIC_BASE_URL") or ANTHROPIC_URL,
            api_key=api_key,
            key_hint=key_hint,
        )
    raise ValueError(f"unsupported provider {provider!r}")  # resolution only lets known ones by


def ollama_base_url() -> str:
    """Return the Ollama server's URL from ``$OLLAMA_HOST``, read the way Ollama reads it.

    A bare ``host`` or ``host:port`` means plain HTTP, on port 11434 unless given.
    """
    raw = _env(OLLAMA_HOST_ENV)
    if not raw:
        return f"http://localhost:{OLLAMA_DEFAULT_PORT}"
    if "://" not in raw:
        host_port = raw.rstrip("/")
        has_port = host_port.rsplit(":", 1)[-1].isdigit() and not host_port.endswith("]")
        raw = f"http://{host_port}" if has_port else f"http://{host_port}:{OLLAMA_DEFAULT_PORT}"
    return raw.rstrip("/")


def _env(name: str) -> str | None:
    # An empty variable is treated as unset, as shells and CI systems often leave them.
    value = os.environ.get(name, "").strip()
    return value or None

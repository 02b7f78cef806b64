"""Find the API key for a resolved model.

For providers that need a key (openai, anthropic, openrouter) the order is: the
provider's variable in the environment, else the secret linked to the alias, else a setup
error saying exactly what to set. Ollama needs no key. The key itself never appears in a
message or a repr.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from kitaru._llm.providers import PROVIDER_KEY_ENV
from kitaru._llm.resolution import ResolvedModel
from kitaru._redaction import remember_secret
from kitaru._secrets import MASK, SecretNotFoundError, get_secret
from kitaru.errors import KitaruUsageError

__all__ = ["CredentialSource", "Credentials", "resolve_credentials"]

CredentialSource = Literal["environment", "secret", "none", "mock"]
"""Where a call's key came from; ``none`` for keyless providers, ``mock`` for mock calls."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """An API key (or None) and where it came from. Its repr never shows the key."""

    api_key: str | None
    source: CredentialSource
    hint: str
    """Where the key came from, in words, for error messages (never the key)."""

    def __repr__(self) -> str:
        shown = None if self.api_key is None else MASK
        return f"Credentials(api_key={shown!r}, source={self.source!r}, hint={self.hint!r})"

    __str__ = __repr__


def resolve_credentials(resolved: ResolvedModel) -> Credentials:
    """Return the credentials to call ``resolved`` with, or raise a setup error.

    The key is registered as a secret in use, so every message recorded or shown from
    now on has it (and any part of it) blanked out.
    """
    credentials = _find_credentials(resolved)
    remember_secret(credentials.api_key)
    return credentials


def _find_credentials(resolved: ResolvedModel) -> Credentials:
    key_env = PROVIDER_KEY_ENV[resolved.provider]
    if key_env is None:
        return Credentials(api_key=None, source="none", hint="no key (none is needed)")
    from_env = os.environ.get(key_env, "").strip()
    if from_env:
        return Credentials(
            api_key=from_env, source="environment", hint=f"the {key_env} environment variable"
        )
    if resolved.secret is not None:
        return Credentials(
            api_key=_key_from_secret(resolved, resolved.secret, key_env),
            source="secret",
            hint=f"{key_env} in secret '{resolved.secret}'",
        )
    raise KitaruUsageError(_missing_key_message(resolved, key_env))


def _key_from_secret(resolved: ResolvedModel, secret: str, key_env: str) -> str:
    fix = f"`kitaru secrets set {secret} --{key_env}=<key>`"
    try:
        values = get_secret(secret)
    except SecretNotFoundError:
        raise KitaruUsageError(
            f"Alias '{resolved.alias}' links secret '{secret}', which does not exist, and "
            f"{key_env} is not set. Create the secret with {fix}, or set {key_env}."
        ) from None
    key = values.get(key_env, "").strip()
    if not key:
        present = ", ".join(sorted(values)) or "no keys"
        raise KitaruUsageError(
            f"Secret '{secret}' (linked to alias '{resolved.alias}') has no {key_env} (it "
            f"holds {present}), and {key_env} is not set. Add the key with {fix}, or set "
            f"{key_env}."
        )
    return key


def _missing_key_message(resolved: ResolvedModel, key_env: str) -> str:
    suggested_secret = f"{resolved.provider}-creds"
    if resolved.alias is not None:
        link = (
            f"store the key in a secret and link it to alias '{resolved.alias}': "
            f"`kitaru secrets set {suggested_secret} --{key_env}=<key>` then "
            f"`kitaru model register {resolved.alias} --model {resolved.model} "
            f"--secret {suggested_secret}`"
        )
    else:
        link = (
            f"store it in a secret linked to an alias: `kitaru secrets set {suggested_secret} "
            f"--{key_env}=<key>` then `kitaru model register ALIAS --model {resolved.model} "
            f"--secret {suggested_secret}` and call the alias"
        )
    return f"No API key for {resolved.model}: set {key_env}, or {link}."

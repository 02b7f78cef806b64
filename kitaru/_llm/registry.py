"""Model aliases: the local registry, the ``KITARU_MODEL_REGISTRY`` override and snapshots.

Three sources hold a registry, all in one JSON shape::

    {"aliases": {"fast": {"model": "openai/gpt-5-nano", "secret": "openai-creds"}},
     "default": "fast"}

- the local file ``models.json`` in the config dir, written by ``kitaru model register``;
- a snapshot of the effective registry that an execution carries, so it resolves the same
  aliases when resumed in another process or on another machine;
- ``KITARU_MODEL_REGISTRY``, an override set in the environment.

The effective registry is the snapshot if there is one, else the local file; then the
environment's aliases replace same-named ones and the environment's default, if set,
wins. Shape rule for future versions: new fields need defaults; never retype a field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from kitaru._config import config_dir
from kitaru._llm.providers import SUPPORTED_PROVIDERS
from kitaru._secrets import list_secrets, validate_secret_name, write_private_json
from kitaru.errors import KitaruUsageError

__all__ = [
    "MODELS_FILE_NAME",
    "REGISTRY_ENV",
    "ModelAlias",
    "ModelEntry",
    "ModelRegistry",
    "effective_registry",
    "environment_registry",
    "list_models",
    "load_local_registry",
    "models_path",
    "parse_model",
    "register_model",
    "registry_snapshot",
    "remove_model",
    "set_default_model",
    "validate_alias",
]

MODELS_FILE_NAME = "models.json"
REGISTRY_ENV = "KITARU_MODEL_REGISTRY"
_ALIAS_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SHAPE = (
    '{"aliases": {"fast": {"model": "openai/gpt-5-nano", "secret": "openai-creds"}}, '
    '"default": "fast"}'
)
_PROVIDERS_TEXT = ", ".join(SUPPORTED_PROVIDERS)

RegistrySource = Literal["local", "snapshot", "environment"]


class ModelAlias(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an alias stands for: a ``provider/model`` and, optionally, a secret's name."""

    model: str
    secret: str | None = None


class ModelRegistry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A set of aliases and the default one. Treat it as immutable."""

    aliases: dict[str, ModelAlias] = msgspec.field(default_factory=dict)
    default: str | None = None

    def to_snapshot(self) -> dict[str, Any]:
        """Return this registry as plain JSON-able data, the shape ``from_snapshot`` reads."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    @classmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], *, source: str = "the execution's model registry snapshot"
    ) -> ModelRegistry:
        """Read and check a registry that ``to_snapshot`` produced."""
        try:
            registry = msgspec.convert(dict(data), type=cls)
        except (msgspec.ValidationError, TypeError) as exc:
            raise KitaruUsageError(
                f"{source} is not a valid model registry ({exc}); expected {_SHAPE}."
            ) from None
        registry.check(source)
        return registry

    def check(self, source: str, *, complete: bool = True) -> None:
        """Raise ``KitaruUsageError`` naming ``source`` if an entry is invalid.

        ``complete=False`` allows a default that names an alias defined elsewhere, as an
        override may do.
        """
        for alias, entry in self.aliases.items():
            try:
                validate_alias(alias)
                parse_model(entry.model)
                if entry.secret is not None:
                    validate_secret_name(entry.secret)
            except KitaruUsageError as exc:
                raise KitaruUsageError(f"{source}, alias {alias!r}: {exc}") from None
        if complete and self.default is not None and self.default not in self.aliases:
            raise KitaruUsageError(
                f"{source} names {self.default!r} as the default, but has no such alias; "
                f"{_known(self)}"
            )

    def overlay(self, override: ModelRegistry) -> ModelRegistry:
        """Return this registry with ``override``'s aliases and default laid over it."""
        return ModelRegistry(
            aliases={**self.aliases, **override.aliases},
            default=override.default if override.default is not None else self.default,
        )


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``kitaru model list``."""

    alias: str
    model: str
    secret: str | None
    is_default: bool
    source: RegistrySource


def validate_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid alias name, else raise ``KitaruUsageError``."""
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
        raise KitaruUsageError(
            f"Invalid alias {alias!r}: use lower-case letters, digits, '_' and '-', starting "
            "with a letter or digit, e.g. fast or gpt4-mini."
        )
    return alias


def parse_model(model: object) -> tuple[str, str]:
    """Split a ``provider/model`` string into its provider and model name.

    Raise ``KitaruUsageError`` listing the supported providers if it is not one.
    """
    if not isinstance(model, str) or not model.strip():
        raise KitaruUsageError(
            f"The model must be a 'provider/model' string such as 'openai/gpt-4o', got "
            f"{model!r}. Supported providers: {_PROVIDERS_TEXT}."
        )
    provider, slash, name = model.partition("/")
    if not slash:
        raise KitaruUsageError(
            f"Model {model!r} has no provider prefix; write it as provider/model, e.g. "
            f"openai/{model.strip()}. Supported providers: {_PROVIDERS_TEXT}."
        )
    if provider not in SUPPORTED_PROVIDERS:
        raise KitaruUsageError(
            f"Model {model!r} names the unknown provider {provider!r}. Supported providers: "
            f"{_PROVIDERS_TEXT}."
        )
    if not name.strip():
        raise KitaruUsageError(
            f"Model {model!r} has no model name after '{provider}/'; write it as "
            f"{provider}/<model>, e.g. openai/gpt-4o. Supported providers: {_PROVIDERS_TEXT}."
        )
    if name != name.strip() or any(char.isspace() for char in name):
        raise KitaruUsageError(f"Model {model!r} has spaces in its model name; remove them.")
    return provider, name


# -- reading ---------------------------------------------------------------------------


def models_path() -> Path:
    """Return the path of the local model registry file."""
    return config_dir() / MODELS_FILE_NAME


def load_local_registry() -> ModelRegistry:
    """Return the registry stored in the local config (empty if there is none)."""
    path = models_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ModelRegistry()
    source = f"The model registry file {path}"
    try:
        registry = msgspec.json.decode(raw, type=ModelRegistry)
    except msgspec.DecodeError as exc:
        raise KitaruUsageError(
            f"{source} is not valid ({exc}); fix it by hand, or delete it and register the "
            "aliases again with `kitaru model register`."
        ) from None
    registry.check(source)
    return registry


def environment_registry() -> ModelRegistry | None:
    """Return the override in ``KITARU_MODEL_REGISTRY``, or None if it is unset or empty."""
    raw = os.environ.get(REGISTRY_ENV, "")
    if not raw.strip():
        return None
    try:
        registry = msgspec.json.decode(raw, type=ModelRegistry)
    except msgspec.DecodeError as exc:
        raise KitaruUsageError(
            f"{REGISTRY_ENV} is not a valid model registry ({exc}). Set it to JSON like "
            f"{_SHAPE}, or unset it."
        ) from None
    registry.check(REGISTRY_ENV, complete=False)
    return registry


def effective_registry(
    snapshot: Mapping[str, Any] | None = None, *, fill_from_local: bool = False
) -> ModelRegistry:
    """Return the registry model resolution uses here and now.

    Without ``snapshot``: the local config with ``KITARU_MODEL_REGISTRY`` laid over it.
    With one (an execution's, see ``ModelRegistry.to_snapshot``): the snapshot replaces
    the local config, and ``KITARU_MODEL_REGISTRY`` is still laid over it.

    ``fill_from_local`` (for resumed and retried executions) adds the local aliases the
    snapshot lacks, and the local default if the snapshot has none: an alias registered
    after a call failed for want of it then resolves, while every alias the snapshot
    holds still means what it meant when the execution started.
    """
    if snapshot is not None and fill_from_local:
        frozen = ModelRegistry.from_snapshot(snapshot)
        local = load_local_registry()
        filled = ModelRegistry(
            aliases={**local.aliases, **frozen.aliases},
            default=frozen.default if frozen.default is not None else local.default,
        )
        snapshot = filled.to_snapshot()
    return _layers(snapshot)[0]


def list_models(snapshot: Mapping[str, Any] | None = None) -> list[ModelEntry]:
    """Return the effective registry's aliases, sorted, each with where it came from."""
    registry, base_source, override = _layers(snapshot)
    return [
        ModelEntry(
            alias=alias,
            model=entry.model,
            secret=entry.secret,
            is_default=alias == registry.default,
            source="environment" if override and alias in override.aliases else base_source,
        )
        for alias, entry in sorted(registry.aliases.items())
    ]


def _layers(
    snapshot: Mapping[str, Any] | None,
) -> tuple[ModelRegistry, RegistrySource, ModelRegistry | None]:
    base_source: RegistrySource
    if snapshot is None:
        base, base_source = load_local_registry(), "local"
    else:
        base, base_source = ModelRegistry.from_snapshot(snapshot), "snapshot"
    override = environment_registry()
    if override is None:
        return base, base_source, None
    merged = base.overlay(override)
    if merged.default is not None and merged.default not in merged.aliases:
        raise KitaruUsageError(
            f"{REGISTRY_ENV} names {merged.default!r} as the default, but no such alias is "
            f"registered; {_known(merged)}"
        )
    return merged, base_source, override


# -- changing the local registry -------------------------------------------------------


def register_model(alias: str, model: str, secret: str | None = None) -> ModelRegistry:
    """Store ``alias`` for ``model`` (and ``secret``) locally; return the new local registry.

    Registering an existing alias replaces it. The alias becomes the default if there is
    no default yet, so the first alias registered is the default.
    """
    validate_alias(alias)
    parse_model(model)
    if secret is not None:
        validate_secret_name(secret)
        if secret not in list_secrets():
            raise KitaruUsageError(
                f"Secret '{secret}' does not exist, so alias '{alias}' cannot link it. Create "
                f"it first with `kitaru secrets set {secret} --KEY=VALUE`."
            )
    current = load_local_registry()
    updated = ModelRegistry(
        aliases={**current.aliases, alias: ModelAlias(model=model, secret=secret)},
        default=current.default if current.default is not None else alias,
    )
    _save(updated)
    return updated


def remove_model(alias: str) -> ModelRegistry:
    """Remove ``alias`` from the local registry; return the new local registry.

    Removing the default leaves no default rather than picking another alias: quietly
    sending calls to a different model would surprise. ``set_default_model`` picks one.
    """
    current = load_local_registry()
    _require_local(current, alias)
    updated = ModelRegistry(
        aliases={name: entry for name, entry in current.aliases.items() if name != alias},
        default=None if current.default == alias else current.default,
    )
    _save(updated)
    return updated


def set_default_model(alias: str) -> ModelRegistry:
    """Make ``alias`` the local registry's default; return the new local registry."""
    current = load_local_registry()
    _require_local(current, alias)
    updated = ModelRegistry(aliases=current.aliases, default=alias)
    _save(updated)
    return updated


def _require_local(registry: ModelRegistry, alias: str) -> None:
    validate_alias(alias)
    if alias not in registry.aliases:
        raise KitaruUsageError(
            f"No alias '{alias}' in the local model registry; {_known(registry)}"
        )


def _save(registry: ModelRegistry) -> None:
    write_private_json(models_path(), registry.to_snapshot())


def _known(registry: ModelRegistry) -> str:
    if not registry.aliases:
        return (
            "no aliases are registered. Add one with "
            "`kitaru model register ALIAS --model PROVIDER/MODEL`."
        )
    names = ", ".join(sorted(registry.aliases))
    return f"registered aliases: {names} (see `kitaru model list`)."


def registry_snapshot() -> dict[str, Any]:
    """The effective model registry, to carry into an execution for ``kitaru.llm``.

    Always taken, even when empty: an execution resolves aliases from the registry it
    started with, wherever it is resumed, never from the resuming machine's config.
    """
    snapshot: dict[str, Any] = effective_registry().to_snapshot()
    return snapshot

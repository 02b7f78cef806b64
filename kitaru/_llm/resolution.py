"""Decide which provider and model a call goes to.

The order is: the explicit ``model=`` argument, else ``KITARU_DEFAULT_MODEL``, else the
effective registry's default alias. A value equal to a registered alias resolves through
that alias (and brings its linked secret); anything else must be a raw
``provider/model`` string.
"""

from __future__ import annotations

import os

import msgspec

from kitaru._llm.providers import SUPPORTED_PROVIDERS
from kitaru._llm.registry import ModelRegistry, parse_model
from kitaru.errors import KitaruUsageError

__all__ = ["DEFAULT_MODEL_ENV", "ResolvedModel", "resolve_model"]

DEFAULT_MODEL_ENV = "KITARU_DEFAULT_MODEL"


class ResolvedModel(msgspec.Struct, frozen=True, kw_only=True):
    """Where a call goes: the value asked for, the alias it went through, and the model."""

    requested: str
    """The alias or ``provider/model`` string resolution started from."""
    alias: str | None
    provider: str
    model_name: str
    secret: str | None
    """The secret linked to the alias, if any."""

    @property
    def model(self) -> str:
        """The full ``provider/model`` string."""
        return f"{self.provider}/{self.model_name}"


MOCK_PROVIDER = "mock"


def resolve_model(
    model: str | None,
    registry: ModelRegistry,
    *,
    retry_hint: str | None = None,
    mock: bool = False,
) -> ResolvedModel:
    """Resolve ``model`` (None: fall back to the environment, then the registry default).

    With ``mock`` (``KITARU_LLM_MOCK_RESPONSE`` is set) no provider is called, so any
    model name is accepted: one that is neither an alias nor a known ``provider/model``
    resolves to the ``mock`` provider under its own name. Having no model at all is
    still an error.

    ``retry_hint`` (e.g. "`kitaru executions retry ID`") is named in the errors that
    registering an alias fixes: a retried execution looks up the aliases its registry
    snapshot lacks in the local registry.
    """
    then = f", then {retry_hint}" if retry_hint else ""
    if model is not None:
        if not isinstance(model, str) or not model.strip():
            raise KitaruUsageError(
                f"model= must be a registered alias or a 'provider/model' string such as "
                f"'openai/gpt-4o', got {model!r}."
            )
        requested, origin = model.strip(), "model="
    elif env_value := os.environ.get(DEFAULT_MODEL_ENV, "").strip():
        requested, origin = env_value, DEFAULT_MODEL_ENV
    elif registry.default is not None:
        requested, origin = registry.default, "the registry default"
    else:
        raise KitaruUsageError(
            "No model to call: pass model='provider/model' (e.g. model='openai/gpt-4o'), set "
            f"{DEFAULT_MODEL_ENV}, or register a default alias with `kitaru model register "
            f"ALIAS --model PROVIDER/MODEL`{then}."
        )

    entry = registry.aliases.get(requested)
    if entry is not None:
        provider, model_name = parse_model(entry.model)
        return ResolvedModel(
            requested=requested,
            alias=requested,
            provider=provider,
            model_name=model_name,
            secret=entry.secret,
        )
    if mock:
        try:
            provider, model_name = parse_model(requested)
        except KitaruUsageError:
            provider, model_name = MOCK_PROVIDER, requested
        return ResolvedModel(
            requested=requested,
            alias=None,
            provider=provider,
            model_name=model_name,
            secret=None,
        )
    if "/" not in requested:
        known = ", ".join(sorted(registry.aliases)) or "none"
        providers = ", ".join(SUPPORTED_PROVIDERS)
        raise KitaruUsageError(
            f"{origin} {requested!r} is neither a registered alias (registered: {known}) nor "
            f"a 'provider/model' string (supported providers: {providers}). Register it with "
            f"`kitaru model register {requested} --model PROVIDER/MODEL`{then}, or pass the "
            "full provider/model."
        )
    try:
        provider, model_name = parse_model(requested)
    except KitaruUsageError as exc:
        raise KitaruUsageError(f"{origin}: {exc}") from None
    return ResolvedModel(
        requested=requested, alias=None, provider=provider, model_name=model_name, secret=None
    )

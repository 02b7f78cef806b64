"""Kitaru's documented ``kitaru.config`` functions that programs import by that path.

Process-wide run settings are set with ``kitaru.configure``; this module keeps the
model look-up that Kitaru's programs reach as ``kitaru.config.resolve_model_selection``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["ResolvedModelSelection", "resolve_model_selection"]


@dataclass(frozen=True)
class ResolvedModelSelection:
    """Which model a ``kitaru.llm()`` call with ``model=`` would use here and now."""

    requested_model: str | None
    """The alias or ``provider/model`` string resolution started from."""
    alias: str | None
    """The registered alias it went through, if any."""
    resolved_model: str
    """The ``provider/model`` string the call goes to."""
    secret: str | None = None
    """The secret linked to the alias, if any."""


def resolve_model_selection(model: str | None) -> ResolvedModelSelection:
    """Resolve a model the way ``kitaru.llm(model=...)`` does, without calling it.

    ``None`` falls back to ``KITARU_DEFAULT_MODEL``, then the registry default. Raises
    ``KitaruUsageError`` when nothing resolves (with ``KITARU_LLM_MOCK_RESPONSE`` set,
    any name resolves, as model calls then are answered by the mock).
    """
    # Imported here: the model registry is only needed by programs that ask for it.
    from kitaru._llm.call import MOCK_RESPONSE_ENV
    from kitaru._llm.registry import effective_registry
    from kitaru._llm.resolution import resolve_model

    resolved = resolve_model(
        model, effective_registry(), mock=bool(os.environ.get(MOCK_RESPONSE_ENV, ""))
    )
    return ResolvedModelSelection(
        requested_model=resolved.requested,
        alias=resolved.alias,
        resolved_model=resolved.model,
        secret=resolved.secret,
    )

"""Blanking secret values out of every message kitaru records or shows.

Providers echo keys back in their errors, often not exactly: one character cut off,
upper-cased, wrapped in other text. So a message is not searched for the whole key but
for any run of ``MIN_RUN`` or more characters that also occurs in a secret value,
compared case-insensitively; each such run becomes ``[redacted]``. Secret values shorter
than ``MIN_RUN`` are not searched for: matching them would blank ordinary words.

The values "in use" are the keys this process resolved for model calls (registered by
``kitaru._llm.credentials``); what is shown from a journal is also checked against the
local secrets file and the providers' key variables (:func:`redact_shown`), so text
written before a key was known is still blanked. A matcher is built once per set of
values and reused.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable

__all__ = [
    "MIN_RUN",
    "REDACTED",
    "Redactor",
    "redact",
    "redact_shown",
    "remember_secret",
    "shown_redactor",
]

MIN_RUN = 8
REDACTED = "[redacted]"

# The variables providers read their keys from (kept here, not imported from the
# provider layer, so recording an error never loads the model-call machinery).
_KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENROUTER_API_KEY",
)


def _fold(text: str) -> str:
    """Lower-case ``text`` without changing its length, so positions still line up."""
    if text.isascii():
        return text.lower()
    return "".join(lowered if len(lowered := char.lower()) == 1 else char for char in text)


class Redactor:
    """Blanks every run of ``MIN_RUN``+ characters shared with one of ``secrets``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        grams: set[str] = set()
        for value in secrets:
            folded = _fold(value)
            grams.update(folded[i : i + MIN_RUN] for i in range(len(folded) - MIN_RUN + 1))
        # Every run of MIN_RUN or more characters of a secret is a chain of overlapping
        # MIN_RUN-character windows of it, so looking up each window of the text finds
        # them all; overlapping or touching hits are merged into one blank.
        self._grams = frozenset(grams)

    def __bool__(self) -> bool:
        return bool(self._grams)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every run shared with a secret replaced by ``[redacted]``."""
        grams = self._grams
        if not grams or len(text) < MIN_RUN:
            return text
        folded = _fold(text)
        pieces: list[str] = []
        kept_to = 0
        start = end = -1
        for index in range(len(folded) - MIN_RUN + 1):
            if folded[index : index + MIN_RUN] not in grams:
                continue
            if index > end:
                if start >= 0:
                    pieces += (text[kept_to:start], REDACTED)
                    kept_to = end
                start = index
            end = index + MIN_RUN
        if start < 0:
            return text
        pieces += (text[kept_to:start], REDACTED, text[end:])
        return "".join(pieces)


_lock = threading.Lock()
_in_use: set[str] = set()
_built: dict[frozenset[str], Redactor] = {}


def _redactor_for(values: frozenset[str]) -> Redactor:
    with _lock:
        redactor = _built.get(values)
        if redactor is None:
            if len(_built) > 32:  # values change rarely; never let this grow unbounded
                _built.clear()
            redactor = _built[values] = Redactor(values)
        return redactor


def remember_secret(value: str | None) -> None:
    """Treat ``value`` as a secret in use: from now on :func:`redact` blanks it."""
    if value and len(value) >= MIN_RUN:
        with _lock:
            _in_use.add(value)


def redact(text: str) -> str:
    """Blank the secrets in use (and the providers' keys in the environment) in ``text``."""
    values = _values_in_use()
    return _redactor_for(frozenset(values))(text) if values else text


def redact_shown(text: str) -> str:
    """Like :func:`redact`, and also blank every value in the local secrets file.

    Used for what is shown from a journal, which may predate the process that shows it.
    An unreadable secrets file is skipped here: showing a record must not fail because
    of it (the commands that use secrets report it).
    """
    values = _values_in_use()
    values.update(_stored_values())
    return _redactor_for(frozenset(values))(text) if values else text


def shown_redactor() -> Redactor:
    """What :func:`redact_shown` applies now, to blank many texts for the cost of one.

    Finding the values (environment, secrets file) costs more than matching a short
    text; a page of thousands of texts looks them up once.
    """
    values = _values_in_use()
    values.update(_stored_values())
    return _redactor_for(frozenset(values))


def _values_in_use() -> set[str]:
    values = set(_in_use)
    for name in _KEY_VARIABLES:
        value = os.environ.get(name, "").strip()
        if len(value) >= MIN_RUN:
            values.add(value)
    return values


def _stored_values() -> tuple[str, ...]:
    from kitaru._secrets import secrets_path, stored_values
    from kitaru.errors import KitaruError

    with contextlib.suppress(KitaruError, OSError):
        path = secrets_path()
        try:
            stat = path.stat()
        except FileNotFoundError:
            return ()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        cached = _stored_cache.get("file")
        if cached is not None and cached[0] == key:
            return cached[1]
        values = tuple(v for v in stored_values() if len(v) >= MIN_RUN)
        _stored_cache["file"] = (key, values)
        return values
    return ()


_stored_cache: dict[str, tuple[tuple[str, int, int], tuple[str, ...]]] = {}

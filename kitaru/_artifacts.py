"""``kitaru.save()``: a named artifact of the running checkpoint attempt.

Its counterpart ``kitaru.load()`` reads another execution, so it is a client call
(``kitaru.client._loading``).
"""

from __future__ import annotations

from typing import Any

from kitaru.errors import KitaruContextError, KitaruUsageError
from kitaru.journal.events import ArtifactSaved
from kitaru.journal.payloads import make_ref
from kitaru.runtime.context import current_call, current_execution
from kitaru.runtime.values import UnencodableValueError, encode_value

__all__ = ["ARTIFACT_TYPES", "save"]

ARTIFACT_TYPES = ("prompt", "response", "context", "input", "output", "blob")


def save(name: str, value: Any, *, type: str = "output", tags: list[str] | None = None) -> None:
    """Store ``value`` as a named artifact of the running checkpoint attempt."""
    ctx = current_execution.get()
    scope = current_call.get()
    if ctx is None or scope is None:
        raise KitaruContextError("kitaru.save() can only run inside a @checkpoint.")
    if not isinstance(name, str) or not name.strip():
        raise KitaruUsageError(f"An artifact name must be a non-empty string, got {name!r}.")
    if type not in ARTIFACT_TYPES:
        raise KitaruUsageError(
            f"type={type!r} is not an artifact type; use one of {', '.join(ARTIFACT_TYPES)}."
        )
    if tags is not None and not all(isinstance(tag, str) for tag in tags):
        raise KitaruUsageError("tags= must be a list of strings.")
    try:
        data = encode_value(value)
    except UnencodableValueError as exc:
        raise KitaruUsageError(f"Artifact '{name}' is {exc}.") from None
    payloads: dict[str, bytes] = {}
    event = ArtifactSaved(
        call=scope.identity,
        attempt=scope.attempt,
        name=name,
        kind=type,
        value=make_ref(data, payloads),
        tags=tuple(tags or ()),
    )
    ctx.writer.defer(event, payloads)

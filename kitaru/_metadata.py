"""``kitaru.log(**metadata)``: attach metadata to the current checkpoint or execution."""

from __future__ import annotations

from typing import Any

import msgspec

from kitaru.errors import KitaruContextError, KitaruUsageError
from kitaru.journal.events import MetadataLogged
from kitaru.replay.state import merge_metadata
from kitaru.runtime.context import current_call, current_execution

__all__ = ["log"]


def log(**metadata: Any) -> None:
    """Attach JSON-able metadata: to the running checkpoint, or to the execution.

    Repeated keys merge: dicts key by key, other values replace the old one.
    """
    ctx = current_execution.get()
    if ctx is None:
        raise KitaruContextError("kitaru.log() can only run inside a @flow.")
    if not metadata:
        return
    try:
        values: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(metadata))
    except (TypeError, msgspec.EncodeError) as exc:
        raise KitaruUsageError(
            f"kitaru.log() takes JSON-serialisable values: {exc}. Convert the value first."
        ) from None
    scope = current_call.get()
    if scope is not None:
        ctx.writer.defer(MetadataLogged(values=values, call=scope.identity))
        return
    # The flow body runs again on every resume: log only what the journal lacks.
    merged = dict(ctx.state.metadata)
    merge_metadata(merged, values)
    if merged != ctx.state.metadata:
        ctx.state.metadata = merged
        ctx.writer.defer(MetadataLogged(values=values))

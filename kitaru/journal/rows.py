"""What every journal backend does with the rows it reads: check them and decode them.

The SQL differs per backend; the rules and the messages about a damaged or too-new
journal do not, so they live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zlib import crc32

from kitaru.errors import BackendFailure, KitaruBackendError
from kitaru.journal.events import Event, UnknownEventError, decode_event
from kitaru.journal.store import MemoryRow

__all__ = ["decode_event_row", "memory_row"]


def decode_event_row(
    location: str, exec_id: str, expected: int | None, row: Sequence[Any]
) -> Event:
    """Check one ``(seq, at, type, body, crc)`` row and decode its event.

    ``expected`` is the seq the row must have (None: a selection with gaps). A gap, a
    checksum mismatch or an undecodable body is a damaged journal; an unknown type was
    written by a newer kitaru.
    """
    seq, _at, tag, raw, crc = row
    body = bytes(raw)
    if expected is not None and seq != expected:
        raise KitaruBackendError(
            f"The journal {location} is missing events of execution {exec_id} "
            f"(expected seq {expected}, found {seq}). Run `kitaru store check`.",
            failure=BackendFailure.DAMAGED,
        )
    if crc is not None and crc32(body) != crc:
        raise KitaruBackendError(
            f"Event {seq} of execution {exec_id} in {location} is damaged (its bytes do "
            "not match their checksum). Run `kitaru store check`; restore the journal "
            "from a backup if you have one.",
            failure=BackendFailure.DAMAGED,
        )
    try:
        return decode_event(tag, body)
    except UnknownEventError:
        raise KitaruBackendError(
            f"Event {seq} of execution {exec_id} has type '{tag}', which this version "
            "of kitaru does not know: a newer kitaru wrote it. Upgrade kitaru to read "
            "this execution.",
            failure=BackendFailure.NOT_A_JOURNAL,
        ) from None
    except Exception as exc:
        raise KitaruBackendError(
            f"Event {seq} ('{tag}') of execution {exec_id} cannot be decoded: {exc}. "
            "Run `kitaru store check`.",
            failure=BackendFailure.DAMAGED,
        ) from None


def memory_row(row: Sequence[Any]) -> MemoryRow:
    """A memory version from its row (the columns every backend selects, in order)."""
    (
        row_id,
        scope_type,
        scope,
        key,
        version,
        deleted,
        value,
        value_type,
        at,
        exec_id,
        flow,
        call,
    ) = row
    return MemoryRow(
        id=int(row_id),
        scope_type=str(scope_type),
        scope=str(scope),
        key=str(key),
        version=int(version),
        deleted=bool(deleted),
        value=None if value is None else bytes(value),
        value_type=str(value_type),
        created_at=float(at),
        exec_id=None if exec_id is None else str(exec_id),
        flow_name=None if flow is None else str(flow),
        call_key=None if call is None else str(call),
    )

"""What every journal backend does with the rows it reads: check them and decode them.

The SQL differs per backend; the rules and the messages about a damaged or too-new
journal do not, so they live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any
from zlib import crc32

import msgspec

from kitaru.errors import BackendFailure, KitaruBackendError
from kitaru.journal.events import (
    CallCompleted,
    CallStartedAndCompleted,
    Event,
    UnknownEventError,
    decode_event,
    decode_events,
)
from kitaru.journal.store import MemoryRow, StoredEvent

__all__ = [
    "cached_completion",
    "decode_event_row",
    "decode_event_rows",
    "decode_sound_batch",
    "decode_sound_rows",
    "memory_row",
]

_stored = tuple.__new__
"""Builds a ``StoredEvent`` from a ``(seq, at, event)`` tuple in C: the named tuple's own
``__new__`` is a Python function, a noticeable cost over the 20,000 events of a resume."""


def decode_event_rows(
    location: str, exec_id: str, after_seq: int, rows: Sequence[Sequence[Any]]
) -> list[StoredEvent]:
    """Check and decode the ``(seq, at, type, body, crc)`` rows that follow ``after_seq``.

    The checks go column by column and the bodies are decoded in one call: a journal of
    20,000 events is read back in milliseconds. Only if something is wrong are the rows
    gone through one by one, to say which one and how.
    """
    if not rows:
        return []
    seqs, ats, _tags, bodies, crcs = zip(*rows, strict=True)
    events = _decoded(after_seq, seqs, ats, bodies, crcs)
    if events is not None:
        return events
    return [
        StoredEvent(seq, at, decode_event_row(location, exec_id, after_seq + 1 + index, row))
        for index, (row, seq, at) in enumerate(zip(rows, seqs, ats, strict=True))
    ]


def decode_sound_rows(after_seq: int, rows: Sequence[Sequence[Any]]) -> list[StoredEvent] | None:
    """Decode the ``(at, body, crc)`` rows of seqs ``after_seq + 1`` on, if all is well.

    The caller has made sure the seqs have no gap (that the journal holds as many rows
    after ``after_seq`` as the last seq says), so they are not selected: an integer
    per row less to read back. None if anything is wrong (a checksum, a body): the
    caller then reads the rows again with their seqs and types, for
    ``decode_event_rows`` to say which and how. A backend whose rows carry the type at
    no cost uses that directly; for SQLite, not selecting 20,000 type strings is a
    sixth of reading a journal back.
    """
    if not rows:
        return []
    ats, bodies, crcs = zip(*rows, strict=True)
    seqs = range(after_seq + 1, after_seq + 1 + len(rows))
    return _decoded(after_seq, seqs, ats, bodies, crcs)


def decode_sound_batch(
    after_seq: int, rows: Sequence[Sequence[Any]]
) -> tuple[Sequence[float], list[Event]] | None:
    """The times and events of ``(at, body, crc)`` rows of seqs ``after_seq + 1`` on,
    if all is well (as ``decode_sound_rows``, without building a ``StoredEvent`` per
    row: a reader that unpacks ``zip(seqs, ats, events)`` as it goes needs none)."""
    if not rows:
        return (), []
    ats, bodies, crcs = zip(*rows, strict=True)
    if not _sound(after_seq, range(after_seq + 1, after_seq + 1 + len(rows)), bodies, crcs):
        return None
    try:
        return ats, decode_events(bodies)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _sound(
    after_seq: int, seqs: Sequence[int], bodies: Sequence[bytes], crcs: Sequence[int | None]
) -> bool:
    """Whether the seqs follow ``after_seq`` without a gap and every checksum holds."""
    # Seqs are unique and ordered, so they have no gap exactly when the last one is
    # the count after the first.
    return (
        seqs[0] == after_seq + 1
        and seqs[-1] == after_seq + len(seqs)
        and (
            tuple(map(crc32, bodies)) == crcs
            # Rows written before checksums existed have none.
            or tuple(map(_checksum, bodies, crcs)) == crcs
        )
    )


def _decoded(
    after_seq: int,
    seqs: Sequence[int],
    ats: Sequence[float],
    bodies: Sequence[bytes],
    crcs: Sequence[int | None],
) -> list[StoredEvent] | None:
    """The events of sound rows, given column by column; None if any row is not sound."""
    if not _sound(after_seq, seqs, bodies, crcs):
        return None
    try:
        events = decode_events(bodies)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return list(map(_stored, repeat(StoredEvent), zip(seqs, ats, events, strict=True)))


def _checksum(body: bytes, crc: int | None) -> int | None:
    """The body's checksum, or None where the row has none (written before checksums)."""
    return None if crc is None else crc32(body)


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


def cached_completion(exec_id: str, event: Event) -> tuple[str, CallCompleted] | None:
    """The completion a checkpoint cache key points at, whichever event holds it."""
    if isinstance(event, CallStartedAndCompleted):
        return exec_id, event.completed
    return (exec_id, event) if isinstance(event, CallCompleted) else None

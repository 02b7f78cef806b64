"""Content addressing: large values are stored once, under the hash of their bytes."""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping

from kitaru.journal.events import ValueRef

__all__ = ["INLINE_LIMIT", "content_hash", "make_ref"]

INLINE_LIMIT = 256
"""Values up to this many bytes live inside their event; larger ones become payloads."""


def content_hash(data: bytes) -> str:
    """Return the payload key for ``data`` (BLAKE2b-128, hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def make_ref(data: bytes, payloads: MutableMapping[str, bytes]) -> ValueRef:
    """Wrap encoded bytes as a ValueRef, moving large ones into ``payloads``."""
    if len(data) <= INLINE_LIMIT:
        return ValueRef(inline=data)
    digest = content_hash(data)
    payloads[digest] = data
    return ValueRef(hash=digest)

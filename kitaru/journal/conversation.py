"""Prompts stored as a chain of content-addressed message nodes.

An agent loop resends its whole, growing conversation on every call. Storing each
prompt as a list would store message k once per later call. Instead a prompt is the
hash of its last node; a node is ``[parent node hash, role, content hash]``, and a
message's content is a payload of its own (the same bytes as a recorded response, so
a reply that is sent back as the next prompt's assistant message is stored once).
A new call stores only the nodes its prompt adds.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import msgspec

from kitaru.journal.payloads import content_hash

__all__ = ["load_prompt", "store_prompt", "text_blob"]

_encoder = msgspec.msgpack.Encoder()
_node_decoder = msgspec.msgpack.Decoder(tuple[str | None, str, str])
_text_decoder = msgspec.msgpack.Decoder(str)


def text_blob(text: str) -> bytes:
    """The payload bytes of a message or response text (msgpack str)."""
    return _encoder.encode(text)


def store_prompt(
    messages: Sequence[dict[str, str]],
    payloads: MutableMapping[str, bytes],
    known: MutableMapping[tuple[str | None, str, str], str] | None = None,
) -> str:
    """Add the prompt's nodes and contents to ``payloads``; return its head hash.

    ``known`` caches node hashes across calls so a resent prefix costs no hashing.
    """
    parent: str | None = None
    for message in messages:
        content = text_blob(message["content"])
        content_key = content_hash(content)
        node_key = (parent, message["role"], content_key)
        node_hash = known.get(node_key) if known is not None else None
        if node_hash is None:
            node = _encoder.encode(list(node_key))
            node_hash = content_hash(node)
            payloads[node_hash] = node
            payloads[content_key] = content
            if known is not None:
                known[node_key] = node_hash
        parent = node_hash
    if parent is None:
        raise ValueError("a prompt has at least one message")
    return parent


def load_prompt(head: str, read_payload: Callable[[str], bytes]) -> list[dict[str, Any]]:
    """Rebuild the message list a head hash stands for."""
    messages: list[dict[str, Any]] = []
    node_hash: str | None = head
    while node_hash is not None:
        parent, role, content_key = _node_decoder.decode(read_payload(node_hash))
        messages.append({"role": role, "content": _text_decoder.decode(read_payload(content_key))})
        node_hash = parent
    messages.reverse()
    return messages

"""Checkpoint caching: reuse an output recorded by an earlier execution.

A cache key covers the checkpoint's identity in code (module, name and a fingerprint
of its bytecode and constants) and its encoded arguments; editing the function or
passing other arguments misses. Arguments that cannot be encoded are never cached.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable
from typing import Any

from kitaru.runtime.values import UnencodableValueError, encode_value

__all__ = ["cache_key", "code_fingerprint"]


def _digest_code(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _digest_code(const, h)
        elif isinstance(const, frozenset):
            # Set order follows string hashing, which differs between processes.
            h.update(repr(sorted(map(repr, const))).encode())
        else:
            h.update(repr(const).encode())


def code_fingerprint(func: Callable[..., Any]) -> str:
    """A digest of where ``func`` lives and what its code does."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{func.__module__}:{func.__qualname__}".encode())
    code = getattr(func, "__code__", None)
    if isinstance(code, types.CodeType):
        _digest_code(code, h)
    return h.hexdigest()


def cache_key(fingerprint: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The key for a call with these arguments, or None if they cannot be encoded."""
    try:
        data = encode_value([list(args), dict(sorted(kwargs.items()))])
    except UnencodableValueError:
        return None
    return hashlib.blake2b(fingerprint.encode() + data, digest_size=16).hexdigest()

"""The arguments of a durable call: digested for the journal, copied for the body.

Each argument is encoded once. The bytes give its digest (recorded in ``CallStarted``,
so a resumed call made with other arguments is a divergence, not a reused output) and,
decoded, the body's own copy of the argument (so a body that mutates what it was given
behaves the same live and replayed). Two exceptions:

- an output handle is digested by the identity of the call that produced it, not by
  its value: a replay override or a value that encodes differently after a round trip
  leaves its consumers' digests unchanged;
- an argument that cannot be encoded (an SDK client, a database connection) is passed
  through as it is, shared and not copied, and recorded by its type alone.
"""

from __future__ import annotations

import hashlib
import inspect
import operator
import re
import reprlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from kitaru.journal.events import ArgumentDigest
from kitaru.runtime.handles import MapResult, OutputHandle, map_handles, resolve_handles
from kitaru.runtime.values import (
    RAW_EXTENSIONS,
    SET_EXTENSIONS,
    UnencodableValueError,
    decode_value,
    encode_value,
)

__all__ = [
    "ArgumentLayout",
    "CallArguments",
    "OutputOf",
    "capture_arguments",
    "digest_arguments",
    "digests_agree",
    "signature_of",
]

_IMMUTABLE: Final = frozenset({str, int, float, bool, type(None), bytes})
"""Types whose value the body cannot change: passing the caller's object is a copy."""

_PREVIEW_MAX_BYTES: Final = 512
"""Arguments that encode larger than this are previewed by type and size, not repr:
a repr of a megabyte would cost more than the call."""

_DIGEST_HEX: Final = 16
"""64 bits of SHA-256: an accidental match between two different arguments is out of
reach, and SHA-256 is the fastest hash here for megabyte arguments (SHA extensions)."""

_OUTPUT_DIGEST: Final = "output:"
"""A handle's digest is this and the producing call's identity: never a hex digest."""

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 4
_repr.maxlevel = 3


@dataclass(frozen=True)
class OutputOf:
    """Stands for an output handle in the encoded form an argument is digested from."""

    call: str


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:_DIGEST_HEX]


_EXT_HEADERS: Final = tuple(bytes([b]) for b in (0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8))
"""The bytes that start a msgpack extension value; without one, the value holds no set."""
_EXT_HEADER_BYTE: Final = re.compile(rb"[\xc7-\xc9\xd4-\xd8]")
"""The same bytes as one pattern: the quicker test for short arguments, the common case.
(For long ones, eight ``bytes.__contains__`` scans are much quicker than the pattern.)"""
_raw_encoder = msgspec.msgpack.Encoder()


def _may_hold_extension(data: bytes) -> bool:
    if len(data) <= 256:
        return _EXT_HEADER_BYTE.search(data) is not None
    return any(header in data for header in _EXT_HEADERS)


def _sorted_sets(code: int, raw: memoryview) -> msgspec.msgpack.Ext:
    if code in RAW_EXTENSIONS:
        return msgspec.msgpack.Ext(code, bytes(raw))
    tree = _raw_decoder.decode(raw)
    if code in SET_EXTENSIONS:
        tree = sorted(_raw_encoder.encode(item) for item in tree)
    return msgspec.msgpack.Ext(code, _raw_encoder.encode(tree))


_raw_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(ext_hook=_sorted_sets)


def _digest_encoded(data: bytes) -> str:
    """The digest of an encoded argument, the same whatever order its sets iterate in.

    A set of strings iterates in an order that changes with ``PYTHONHASHSEED`` (so from
    one process to the next), and is encoded in that order: equal sets must not look
    like changed arguments on resume. Bytes that may hold an extension value (a set,
    among others) are decoded as plain msgpack, in C, and encoded again with each set's
    items sorted; everything else is encoded exactly as before, so the digest of a
    value without sets does not depend on which path it took.
    """
    if _may_hold_extension(data):
        data = _raw_encoder.encode(_raw_decoder.decode(data))
    return _digest(data)


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _preview(value: Any, size: int) -> str:
    if size > _PREVIEW_MAX_BYTES:
        return f"<{type(value).__qualname__}, {size} bytes encoded>"
    cls = type(value)
    if cls is int or cls is float or cls is bool or value is None:
        return repr(value)
    if cls is str and len(value) <= _repr.maxstring:
        return repr(value)
    return _repr.repr(value)


def _has_handle(value: Any) -> bool:
    cls = type(value)
    if cls is OutputHandle:
        return True
    if cls is list or cls is MapResult or cls is tuple or cls is set or cls is frozenset:
        return any(_has_handle(item) for item in value)
    if cls is dict:
        return any(_has_handle(item) for item in value.values())
    return False


def _handle_form(value: Any, lineage: list[str]) -> Any:
    """``value`` with each output handle replaced by the call that produced it.

    The identities of those calls are appended to ``lineage``.
    """

    def producer(handle: OutputHandle[Any]) -> OutputOf:
        lineage.append(handle.identity)
        return OutputOf(handle.identity)

    return map_handles(value, producer)


class _Argument:
    """One argument: its digest, and how the body gets its copy."""

    __slots__ = ("data", "digest", "handles", "value")

    def __init__(self, name: str, value: Any, lineage: list[str]):
        self.value = value
        self.handles = False
        self.data: bytes | None = None
        if type(value) is OutputHandle:
            # The common way outputs flow from call to call: no encoding attempt needed.
            self.handles = True
            lineage.append(value.identity)
            self.digest = ArgumentDigest(
                name,
                _OUTPUT_DIGEST + value.identity,
                f"<output of {value.kind} '{value.identity}'>",
            )
            return
        try:
            data = encode_value(value)
        except UnencodableValueError:
            if not _has_handle(value):
                self.digest = ArgumentDigest(name, type_name=_type_name(value))
                return
            self.handles = True
            self.digest = self._digest_handles(name, value, lineage)
            return
        self.data = data
        self.digest = ArgumentDigest(name, _digest_encoded(data), _preview(value, len(data)))

    @staticmethod
    def _digest_handles(name: str, value: Any, lineage: list[str]) -> ArgumentDigest:
        form = _handle_form(value, lineage)
        if type(value) is OutputHandle:
            preview = f"<output of {value.kind} '{value.identity}'>"
        else:
            preview = _repr.repr(form)
        try:
            data = encode_value(form)
        except UnencodableValueError:
            return ArgumentDigest(name, type_name=_type_name(value))
        return ArgumentDigest(name, _digest_encoded(data), preview)

    def copy(self) -> Any:
        """The body's own copy of this argument (handles resolved by ``resolve`` first)."""
        if self.handles:
            value = self.value
            if type(value) in _IMMUTABLE:
                return value
            try:
                # A handle's value is the object its producer returned, which the flow
                # body may hold too: the body gets a copy of it like of anything else.
                return decode_value(encode_value(value))
            except UnencodableValueError:
                return value
        if self.data is None or type(self.value) in _IMMUTABLE:
            return self.value
        return decode_value(self.data)


class ArgumentLayout:
    """How a function's parameters name the arguments of a call (worked out once)."""

    __slots__ = ("defaults", "names", "signature", "simple")

    def __init__(self, func: Callable[..., Any]):
        self.signature = signature_of(func)
        params = list(self.signature.parameters.values()) if self.signature is not None else []
        self.names = tuple(param.name for param in params)
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}
        # Plain parameters only: arguments can be named without ``Signature.bind`` (the
        # common case, and several times faster) and passed back in order.
        self.simple = self.signature is not None and all(
            p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params
        )

    def in_order(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """Every parameter's value, defaults filled in; None if the call does not fit."""
        names = self.names
        if not self.simple or len(args) > len(names):
            return None
        if not kwargs and len(args) == len(names):
            return dict(zip(names, args, strict=True))
        given = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key in given or key not in names:
                return None
            given[key] = value
        if len(given) == len(names):
            return {name: given[name] for name in names}
        ordered = {}
        for name in names:
            if name in given:
                ordered[name] = given[name]
            elif name in self.defaults:
                ordered[name] = self.defaults[name]
            else:
                return None
        return ordered


_digest_of = operator.attrgetter("digest")


class CallArguments:
    """A call's arguments, captured before the call is matched against the journal."""

    __slots__ = (
        "_bound",
        "_handles_from",
        "_in_order",
        "_named",
        "_positional",
        "digests",
        "ignored",
    )

    def __init__(
        self,
        bound: inspect.BoundArguments | None,
        named: dict[str, _Argument],
        positional: list[_Argument],
        ignored: frozenset[str],
        lineage: list[str],
        *,
        in_order: bool = False,
    ):
        self._in_order = in_order
        """Every parameter is in ``named``, in order: pass them all positionally."""
        self._bound = bound
        self._named = named
        self._positional = positional
        self.ignored = ignored
        self._handles_from = lineage
        """The identities behind ``lineage``, as the arguments were captured. Only a call
        that runs needs them (or the handles resolved): one that replays needs digests."""
        arguments = [*positional, *named.values()] if positional else named.values()
        self.digests: tuple[ArgumentDigest, ...] = (
            tuple([arg.digest for arg in arguments if arg.digest.name not in ignored])
            if ignored
            else tuple(map(_digest_of, arguments))
        )
        """What the journal records for the call (ignored arguments left out)."""

    @property
    def lineage(self) -> tuple[str, ...]:
        """Identities of the calls whose output handles were passed in, in order."""
        lineage = self._handles_from
        # One handle or none (most calls): nothing to deduplicate.
        return tuple(lineage) if len(lineage) < 2 else tuple(dict.fromkeys(lineage))

    def resolve(self) -> None:
        """Replace output handles by their values, waiting for calls still running.

        Raises the error of a producing call that failed, before this call starts.
        """
        if not self._handles_from:
            return  # most calls: no handle passed in
        for arg in (*self._positional, *self._named.values()):
            if arg.handles:
                value = arg.value
                # A lone handle (how outputs usually flow on) needs no walk through
                # containers.
                arg.value = (
                    value._resolve() if type(value) is OutputHandle else resolve_handles(value)
                )

    def copies(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Positional and keyword arguments for one attempt of the body, each a copy."""
        if self._in_order:
            return tuple(arg.copy() for arg in self._named.values()), {}
        bound = self._bound
        if bound is None:
            args = tuple(arg.copy() for arg in self._positional)
            return args, {name: arg.copy() for name, arg in self._named.items()}
        fresh = inspect.BoundArguments(bound.signature, bound.arguments.copy())
        for name, arg in self._named.items():
            param = bound.signature.parameters.get(name)
            if param is not None and param.kind is not inspect.Parameter.VAR_KEYWORD:
                fresh.arguments[name] = arg.copy()
        var_kw = _var_keyword(bound.signature)
        if var_kw is not None and var_kw in fresh.arguments:
            fresh.arguments[var_kw] = {
                key: self._named[key].copy() for key in fresh.arguments[var_kw]
            }
        return fresh.args, fresh.kwargs


def _var_keyword(signature: inspect.Signature) -> str | None:
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            return param.name
    return None


def capture_arguments(
    layout: ArgumentLayout,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    ignored: Collection[str] = (),
) -> CallArguments:
    """Encode and digest a call's arguments, by parameter name where the signature allows.

    Defaults are filled in, so ``f(1)`` and ``f(1, b=2)`` agree when ``b`` defaults to 2.
    Keyword arguments gathered by ``**kwargs`` are named by their keyword. Calls that do
    not fit the signature are named by position (``[0]``, ...) and keyword; the body
    then raises its own TypeError.
    """
    ignored_set = frozenset(ignored)
    lineage: list[str] = []
    names = layout.names
    if not kwargs and layout.simple and len(args) == len(names):
        # Every parameter given positionally (the most common call): named in order
        # without the general path's intermediate mapping.
        named = {}
        for name, value in zip(names, args, strict=True):
            named[name] = _Argument(name, value, lineage)
        return CallArguments(None, named, [], ignored_set, lineage, in_order=True)
    ordered = layout.in_order(args, kwargs)
    if ordered is not None:
        named = {name: _Argument(name, value, lineage) for name, value in ordered.items()}
        return CallArguments(None, named, [], ignored_set, lineage, in_order=True)
    signature = layout.signature
    bound = None
    if signature is not None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            bound = None
    if bound is None:
        positional = [_Argument(f"[{i}]", value, lineage) for i, value in enumerate(args)]
        named = {name: _Argument(name, value, lineage) for name, value in kwargs.items()}
        return CallArguments(None, named, positional, ignored_set, lineage)
    bound.apply_defaults()
    named = {}
    var_kw = _var_keyword(bound.signature)
    for name, value in bound.arguments.items():
        if name == var_kw:
            for key, item in value.items():
                named[key] = _Argument(key, item, lineage)
        else:
            named[name] = _Argument(name, value, lineage)
    return CallArguments(bound, named, [], ignored_set, lineage)


def digests_agree(
    recorded: tuple[ArgumentDigest, ...], names: tuple[str, ...], args: tuple[Any, ...]
) -> bool:
    """Whether ``args``, one per parameter in ``names`` order, digest as ``recorded`` does.

    The check a resumed call makes before its recorded output is returned, without
    building the call's own digests: an output handle is compared by the call that
    produced it, anything else is encoded and digested as ``capture_arguments`` does.
    False whenever the two may differ; the caller then captures the arguments in full
    and lets the matcher say what differs.
    """
    if len(recorded) != len(args) or len(names) != len(args):
        return False
    # Indexed rather than zipped: for the one or two arguments of most calls, a zip
    # costs more than the comparisons.
    index = 0
    for value in args:
        digest = recorded[index]
        name = names[index]
        index += 1
        if digest.name != name:
            return False
        if type(value) is OutputHandle:
            if digest.digest != _OUTPUT_DIGEST + value.identity or digest.type_name is not None:
                return False
            continue
        current = _Argument(name, value, []).digest
        if current.digest != digest.digest or current.type_name != digest.type_name:
            return False
    return True


def digest_arguments(values: Mapping[str, Any]) -> tuple[ArgumentDigest, ...]:
    """Digests of named values that are checked but never passed to a body (llm calls)."""
    return tuple(_Argument(name, value, []).digest for name, value in values.items())


def signature_of(func: Callable[..., Any]) -> inspect.Signature | None:
    """The signature arguments are named by, or None for callables without one."""
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None

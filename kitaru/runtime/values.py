"""Encoding of flow inputs, checkpoint outputs and results, so they come back as they were.

Supported, and rebuilt with their own types and state on replay:
- ``None``, ``bool``, ``int`` (any size), ``float``, ``str`` (lone surrogates included),
  ``bytes``, ``list``, ``dict`` (any encodable keys), ``tuple``, ``set``, ``frozenset``;
- ``datetime`` (a ``ZoneInfo`` zone stays that zone), ``date``, ``time``, ``timedelta``,
  ``Decimal``, ``UUID``, ``Path``;
- enums, named tuples and msgspec Structs (rebuilt field by field, without calling
  ``__init__`` or ``__post_init__``);
- instances of any other class that can be imported by module and qualified name
  (dataclasses, pydantic models, plain classes, subclasses of builtins), through the
  class's own pickle protocol (``__reduce_ex__``, ``__getstate__``/``__setstate__``):
  ``__init__`` and validators do not run again;
- module-level classes and functions, stored by reference.

Reading such a value imports its class, exactly like unpickling: a journal is trusted
data, like a pickle file.

Anything else (lambdas, classes defined inside a function, open files, sockets,
generators, locks, values that contain themselves, values nested deeper than
``MAX_DEPTH``) raises ``UnencodableValueError`` naming the type and where in the value
it sits. There is no silent fallback (no ``repr``): a value that cannot be stored
faithfully is refused before the call is reported complete.
"""

from __future__ import annotations

import contextlib
import copyreg
import datetime as dt
import decimal
import enum
import functools
import importlib
import pathlib
import sys
import types
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Any, Final

import msgspec

from kitaru.errors import KitaruRuntimeError

__all__ = [
    "MAIN_MODULE_ALIASES",
    "MAX_DEPTH",
    "RAW_EXTENSIONS",
    "SET_EXTENSIONS",
    "UnencodableValueError",
    "decode_value",
    "encode_value",
    "resolve_type",
    "type_path",
]

_SCALAR_TYPES: Final = frozenset({str, int, float, bool, type(None), bytes})

# msgpack extension codes; never renumber one (old journals use them).
_TUPLE, _SET, _FROZENSET, _DICT_PAIRS = 1, 2, 3, 4
_DATACLASS, _STRUCT, _PYDANTIC, _NAMEDTUPLE, _ENUM = 5, 6, 7, 8, 9
_DATETIME, _DATE, _TIME, _TIMEDELTA, _DECIMAL, _UUID, _PATH = 10, 11, 12, 13, 14, 15, 16
_OBJECT, _GLOBAL, _BIG_INT, _STR, _DATETIME_TZ, _TIME_TZ, _ZONE = 17, 18, 19, 20, 21, 22, 23
RAW_EXTENSIONS: Final = frozenset({_BIG_INT, _STR})
"""Extension codes whose payload is raw bytes, not msgpack (for readers of encoded values)."""
SET_EXTENSIONS: Final = frozenset({_SET, _FROZENSET})
"""Extension codes of ``set`` and ``frozenset``, whose items are stored in iteration order."""
# _DATACLASS and _PYDANTIC are only read now: newer versions store those objects as
# _OBJECT, through their pickle protocol, which keeps every attribute and runs nothing.

_NEWOBJ: Final = getattr(copyreg, "__newobj__")  # noqa: B009  (untyped in typeshed)
_NEWOBJ_EX: Final = getattr(copyreg, "__newobj_ex__")  # noqa: B009
_NEW, _CALL = 0, 1
"""How an _OBJECT is made: ``cls.__new__(cls, *args)`` (no ``__init__``), or ``f(*args)``."""

MAX_DEPTH: Final = 100
"""Deepest nesting stored. Deeper values are refused, not left to hit Python's
recursion limit (here or when the value is read back)."""

_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1
"""What msgpack holds natively; larger integers become _BIG_INT."""

MAIN_MODULE_ALIASES: set[str] = set()
"""Module names under which a script that ran as ``__main__`` was imported again.

Types defined there are recorded as ``__main__`` types, so that a value written by
``python my_agent.py`` and one written by ``kitaru executions resume`` agree.
"""


class UnencodableValueError(TypeError):
    """A value (or something inside it) has a type kitaru cannot store faithfully."""

    def __init__(self, type_name: str, where: str, reason: str = ""):
        location = f" at {where}" if where else ""
        detail = f" ({reason})" if reason else ""
        super().__init__(f"a value of type {type_name}{location}, which cannot be stored{detail}")
        self.type_name = type_name
        self.where = where
        """Path inside the value, e.g. ``['items'][2].owner`` ("" for the value itself)."""
        self.reason = reason
        self.call: str | None = None
        """Identity of the durable call whose output it was, once the boundary knows."""


class _Refusal(Exception):  # noqa: N818  (internal; becomes UnencodableValueError)
    """Raised deep inside a value; the path to it is added while the stack unwinds.

    Building the path only on failure keeps encoding fast for the values that succeed.
    """

    def __init__(self, type_name: str, reason: str = "", *, too_deep: bool = False):
        super().__init__(type_name)
        self.type_name = type_name
        self.reason = reason
        self.too_deep = too_deep
        self.steps: list[tuple[str, int | None, str]] = []
        """Path segments, innermost first, each with the ``id()`` of the user's value it
        enters (None for kitaru's own temporaries), to tell a cycle from deep nesting."""

    def inside(self, container: Any, segment: str) -> _Refusal:
        if container is None:
            self.steps.append((segment, None, ""))
        else:
            self.steps.append((segment, id(container), _shown_type(type(container))))
        return self

    def public(self) -> UnencodableValueError:
        steps = self.steps[::-1]
        segments = [segment for segment, _, _ in steps]
        if not self.too_deep:
            return UnencodableValueError(self.type_name, "".join(segments), self.reason)
        seen: set[int] = set()
        for depth, (_, container, type_name) in enumerate(steps):
            if container is None:
                continue
            if container in seen:
                return UnencodableValueError(
                    type_name,
                    "".join(segments[:depth]),
                    "it contains itself (a reference cycle); store the data without the "
                    "back-reference, e.g. ids instead of parent links",
                )
            seen.add(container)
        shown = "".join(segments[:8]) + ("..." if len(segments) > 8 else "")
        return UnencodableValueError(
            self.type_name,
            shown,
            f"it is nested more than {MAX_DEPTH} levels deep; flatten it, or store it as JSON text",
        )


_encoder = msgspec.msgpack.Encoder()


def _main_module_name() -> str | None:
    """The importable name of ``__main__`` when it runs as ``python -m pkg.mod``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    return name if isinstance(name, str) and name and name != "__main__" else None


def _recorded_module(module: str) -> str:
    if module == "__main__":
        # Under `python -m pkg.mod` the module can be imported again by its real name;
        # "__main__" would mean the resuming program (e.g. the kitaru command) instead.
        return _main_module_name() or module
    if module in MAIN_MODULE_ALIASES:
        return "__main__"
    return module


_LOCAL_CLASS: Final = "its class is defined inside a function; move it to module level"


def _class_path(cls: type) -> str:
    if "<locals>" in cls.__qualname__:
        raise _Refusal(cls.__qualname__, _LOCAL_CLASS)
    return f"{_recorded_module(cls.__module__)}:{cls.__qualname__}"


_global_paths: dict[Any, str] = {}


def _global_path(obj: Any) -> str:
    """``module:QualName`` of a class or function that can be imported back, or refuse."""
    try:
        return _global_paths[obj]
    except (KeyError, TypeError):
        pass
    owner = getattr(obj, "__self__", None)
    module: str
    qualname: str
    if isinstance(owner, type) and not isinstance(obj, type):
        # A classmethod bound to its class (e.g. ZoneInfo._unpickle): import the class.
        module, qualname = owner.__module__, f"{owner.__qualname__}.{obj.__name__}"
    else:
        module = getattr(obj, "__module__", None) or "builtins"
        qualname = str(getattr(obj, "__qualname__", None) or getattr(obj, "__name__", ""))
    shown = f"{module}.{qualname}"
    if "<lambda>" in qualname:
        raise _Refusal(shown, "a lambda cannot be imported again; use a module-level function")
    if "<locals>" in qualname:
        raise _Refusal(shown, "it is defined inside a function; move it to module level")
    found: Any = sys.modules.get(module)
    try:
        if found is None:
            found = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        found = None
    if found is not obj and not (found is not None and found == obj):
        raise _Refusal(shown, f"it cannot be imported again as {shown}")
    path = f"{_recorded_module(module)}:{qualname}"
    with contextlib.suppress(TypeError):  # unhashable callables are just not cached
        _global_paths[obj] = path
    return path


def _ext(code: int, tree: Any) -> msgspec.msgpack.Ext:
    return msgspec.msgpack.Ext(code, _encoder.encode(tree))


def _careful_scalar(value: Any) -> Any:
    """A str or int msgpack cannot hold as such (lone surrogates, beyond 64 bits)."""
    cls = type(value)
    if cls is int and not _MIN_INT <= value <= _MAX_INT:
        size = (value.bit_length() + 8) // 8
        return msgspec.msgpack.Ext(_BIG_INT, value.to_bytes(size, "big", signed=True))
    if cls is str and not _utf8_ok(value):
        return msgspec.msgpack.Ext(_STR, value.encode("utf-8", "surrogatepass"))
    return value


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_CALLABLES: Final = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
)


def _to_wire(value: Any, depth: int, careful: bool) -> Any:  # noqa: PLR0911, PLR0912  (one branch per type)
    """The msgpack-ready tree of ``value``.

    ``careful`` is the second pass, taken only when msgpack refused a str or int the
    first time: it checks every one of them.
    """
    cls = type(value)
    if cls in _SCALAR_TYPES:
        return _careful_scalar(value) if careful else value
    depth += 1
    if depth > MAX_DEPTH:
        raise _Refusal(_shown_type(cls), too_deep=True)
    if cls is list:
        return _items_to_wire(value, depth, careful, value)
    if cls is dict:
        return _dict_to_wire(value, depth, careful, value)
    if cls is tuple:
        return _ext(_TUPLE, _items_to_wire(value, depth, careful, value))
    if cls is set or cls is frozenset:
        items = []
        try:
            for item in value:
                items.append(_to_wire(item, depth, careful))
        except _Refusal as refusal:
            raise refusal.inside(value, " item") from None
        return _ext(_SET if cls is set else _FROZENSET, items)
    if isinstance(value, enum.Enum):
        return _ext(_ENUM, [_class_path(cls), _attr_to_wire(value, "value", depth, careful)])
    if cls is dt.datetime:
        if value.tzinfo is None and not value.fold:
            return _ext(_DATETIME, value.isoformat())
        return _ext(_DATETIME_TZ, _zoned(value, depth, careful))
    if cls is dt.date:
        return _ext(_DATE, value.isoformat())
    if cls is dt.time:
        if value.tzinfo is None and not value.fold:
            return _ext(_TIME, value.isoformat())
        return _ext(_TIME_TZ, _zoned(value, depth, careful))
    if cls is dt.timedelta:
        return _ext(_TIMEDELTA, [value.days, value.seconds, value.microseconds])
    if cls is decimal.Decimal:
        return _ext(_DECIMAL, str(value))
    if cls is uuid.UUID:
        return _ext(_UUID, value.bytes)
    if cls is zoneinfo.ZoneInfo:
        if value.key is None:
            raise _Refusal("zoneinfo.ZoneInfo", "a zone read from a file has no key to store")
        return _ext(_ZONE, value.key)
    if isinstance(value, pathlib.PurePath) and cls.__module__ == "pathlib":
        return _ext(_PATH, [_class_path(cls), str(value)])
    if isinstance(value, msgspec.Struct):
        fields = {
            name: _attr_to_wire(value, name, depth, careful) for name in value.__struct_fields__
        }
        return _ext(_STRUCT, [_class_path(cls), fields])
    if isinstance(value, tuple) and hasattr(cls, "_fields"):
        return _ext(_NAMEDTUPLE, [_class_path(cls), _items_to_wire(value, depth, careful, value)])
    if isinstance(value, _CALLABLES):
        return _ext(_GLOBAL, _global_path(value))
    return _object_to_wire(value, cls, depth, careful)


def _shown_type(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _items_to_wire(items: Any, depth: int, careful: bool, owner: Any = None) -> list[Any]:
    """Each item of ``items``; ``owner`` is the user's value they belong to, if any."""
    out: list[Any] = []
    try:
        for item in items:
            out.append(_to_wire(item, depth, careful))
    except _Refusal as refusal:
        raise refusal.inside(owner, f"[{len(out)}]") from None
    return out


def _dict_to_wire(
    value: dict[Any, Any], depth: int, careful: bool, owner: Any = None, *, attrs: bool = False
) -> Any:
    """A dict: a msgpack map when every key is a str, else an ext of key/value pairs.

    With ``attrs`` it is an object's state, and error paths read ``.name``.
    """
    key: Any = None
    if all(type(key) is str for key in value) and (
        not careful or all(_utf8_ok(key) for key in value)
    ):
        out: dict[str, Any] = {}
        try:
            for key, item in value.items():
                out[key] = _to_wire(item, depth, careful)
        except _Refusal as refusal:
            raise refusal.inside(owner, f".{key}" if attrs else f"[{key!r}]") from None
        return out
    pairs: list[Any] = []
    segment = " key"
    try:
        for key, item in value.items():
            segment = " key"
            wire_key = _to_wire(key, depth, careful)
            segment = f"[{key!r}]"
            pairs.append([wire_key, _to_wire(item, depth, careful)])
    except _Refusal as refusal:
        raise refusal.inside(owner, segment) from None
    return _ext(_DICT_PAIRS, pairs)


def _attr_to_wire(value: Any, name: str, depth: int, careful: bool) -> Any:
    try:
        return _to_wire(getattr(value, name), depth, careful)
    except _Refusal as refusal:
        raise refusal.inside(value, f".{name}") from None


def _zoned(value: dt.datetime | dt.time, depth: int, careful: bool) -> list[Any]:
    naive = value.replace(tzinfo=None, fold=0).isoformat()
    return [naive, value.fold, _attr_to_wire(value, "tzinfo", depth, careful)]


def _object_to_wire(value: Any, cls: type, depth: int, careful: bool) -> Any:  # noqa: PLR0912
    """An instance through its class's pickle protocol (what ``pickle`` itself would store)."""
    if cls is object:
        raise _Refusal("builtins.object", "a bare object() has no state to store")
    try:
        reduced = value.__reduce_ex__(4)
    except Exception as exc:
        raise _Refusal(_shown_type(cls), f"{exc}") from None
    if isinstance(reduced, str):
        # A module-level singleton, named in its class's module.
        return _ext(_GLOBAL, _global_path_of_name(cls, reduced))
    if not isinstance(reduced, tuple) or not 2 <= len(reduced) <= 6:
        raise _Refusal(_shown_type(cls), "its __reduce_ex__ returned something pickle refuses")
    func, args, state, listitems, dictitems, setter = (*reduced, None, None, None, None)[:6]
    how, kwargs = _CALL, None
    if func is _NEWOBJ:
        how, func, args = _NEW, args[0], args[1:]
    elif func is _NEWOBJ_EX:
        how, (func, args, kwargs) = _NEW, args
    if isinstance(func, type) and "<locals>" in func.__qualname__:
        raise _Refusal(func.__qualname__, _LOCAL_CLASS)
    tree: list[Any] = [how, _global_path(func)]
    tail: list[Any] = [None, None, None, None, None]
    try:
        tree.append(_items_to_wire(args, depth, careful))
        if state is not None:
            tail[0] = _state_to_wire(state, depth, careful)
        if listitems is not None:
            tail[1] = _items_to_wire(list(listitems), depth, careful)
        if dictitems is not None:
            tail[2] = _dict_to_wire(dict(dictitems), depth, careful)
        if kwargs:
            tail[3] = _dict_to_wire(dict(kwargs), depth, careful)
    except _Refusal as refusal:
        raise refusal.inside(value, "") from None
    except (OverflowError, UnicodeEncodeError):
        raise  # for the careful pass in encode_value
    except Exception as exc:
        raise _Refusal(_shown_type(cls), f"its items cannot be read: {exc}") from None
    if setter is not None:
        tail[4] = _ext(_GLOBAL, _global_path(setter))
    while tail and tail[-1] is None:
        tail.pop()
    return _ext(_OBJECT, tree + tail)


def _state_to_wire(state: Any, depth: int, careful: bool) -> Any:
    """Attributes (read as ``.name`` in error paths), or any other state as it is."""
    if type(state) is dict:
        return _dict_to_wire(state, depth, careful, attrs=True)
    if (
        type(state) is tuple
        and len(state) == 2
        and all(part is None or type(part) is dict for part in state)
    ):
        # (instance __dict__, __slots__ values), as object.__getstate__ gives them.
        parts = [
            None if part is None else _dict_to_wire(part, depth, careful, attrs=True)
            for part in state
        ]
        return _ext(_TUPLE, parts)
    return _to_wire(state, depth, careful)


def _global_path_of_name(cls: type, name: str) -> str:
    module = sys.modules.get(cls.__module__)
    obj = getattr(module, name, None) if module is not None else None
    if obj is None:
        raise _Refusal(_shown_type(cls), f"{cls.__module__}.{name} cannot be imported again")
    return f"{_recorded_module(cls.__module__)}:{name}"


def encode_value(value: Any) -> bytes:
    """Encode ``value`` to bytes, or raise ``UnencodableValueError``."""
    try:
        if type(value) in _SCALAR_TYPES:
            return _encoder.encode(value)
        return _encoder.encode(_to_wire(value, 0, False))
    except (OverflowError, UnicodeEncodeError):
        pass  # a big int or a lone surrogate somewhere: the careful pass below handles it
    except _Refusal as refusal:
        raise refusal.public() from None
    except RecursionError:
        # Only reachable when the caller's own stack is already nearly exhausted.
        raise UnencodableValueError(
            _shown_type(type(value)), "", "it is nested too deeply for the current stack"
        ) from None
    try:
        return _encoder.encode(_to_wire(value, 0, True))
    except _Refusal as refusal:
        raise refusal.public() from None
    except RecursionError:
        raise UnencodableValueError(
            _shown_type(type(value)), "", "it is nested too deeply for the current stack"
        ) from None


# -- decoding --------------------------------------------------------------------------

_globals_cache: dict[str, Any] = {}


def _resolve_global(path: str) -> Any:
    found = _globals_cache.get(path)
    if found is not None:
        return found
    module_name, _, qualname = path.partition(":")
    candidates = [module_name]
    if module_name == "__main__":
        candidates.extend(sorted(MAIN_MODULE_ALIASES))
    elif module_name == _main_module_name():
        candidates.insert(0, "__main__")  # the running `python -m` module's own classes
    for candidate in candidates:
        try:
            obj: Any = importlib.import_module(candidate)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            continue
        _globals_cache[path] = obj
        return obj
    raise LookupError(
        f"the recorded type {module_name}.{qualname} cannot be imported any more; "
        "restore it (same module and name) to read this value"
    )


def _resolve_class(path: str) -> Any:
    cls = _resolve_global(path)
    if not isinstance(cls, type):
        raise LookupError(f"{path.replace(':', '.')} is no longer a class; restore it")
    return cls


def type_path(cls: type) -> str:
    """``module:QualName`` of a module-level class (``__main__`` for scripts)."""
    try:
        return _class_path(cls)
    except _Refusal as refusal:
        raise UnencodableValueError(refusal.type_name, "", refusal.reason) from None


def resolve_type(path: str) -> type:
    """The class a ``type_path`` names; LookupError if it cannot be imported."""
    return _resolve_class(path)  # type: ignore[no-any-return]


@functools.cache
def _struct_alloc() -> Any:
    # msgspec has no public way to make a Struct without __init__/__post_init__; this
    # is the allocation its own __copy__ makes (tp_alloc), after which every field is
    # set, as __copy__ does.
    import ctypes

    alloc = ctypes.pythonapi.PyType_GenericAlloc
    alloc.restype = ctypes.py_object
    alloc.argtypes = [ctypes.py_object, ctypes.c_ssize_t]
    return alloc


def _new_struct(cls: Any, fields: dict[str, Any]) -> Any:
    """A msgspec Struct with exactly these fields, without running ``__post_init__``.

    A field the record lacks (added to the class since) gets its default.
    """
    if getattr(cls, "__post_init__", None) is None:
        return cls(**fields)  # a Struct's own __init__ only assigns the fields
    obj = _struct_alloc()(cls, cls.__itemsize__)
    for field in msgspec.structs.fields(cls):
        if field.name in fields:
            item = fields[field.name]
        elif field.default is not msgspec.NODEFAULT:
            item = field.default
        elif field.default_factory is not msgspec.NODEFAULT:
            item = field.default_factory()
        else:
            raise ValueError(f"the recorded {cls.__qualname__} has no field {field.name!r}")
        msgspec.structs.force_setattr(obj, field.name, item)
    return obj


def _build_object(kind: int, path: str, fields: Any) -> Any:
    cls: Any = _resolve_class(path)
    if kind == _STRUCT:
        return _new_struct(cls, fields)
    if kind == _DATACLASS:
        # Set fields directly: the recorded state is exact, and __init__ / __post_init__
        # might compute or validate differently now.
        obj = cls.__new__(cls)
        for name, item in fields.items():
            object.__setattr__(obj, name, item)
        return obj
    if kind == _NAMEDTUPLE:
        return cls(*fields)
    if kind == _PYDANTIC:
        return cls.model_validate(fields)  # written by versions before _OBJECT
    return cls(fields)  # enum


def _rebuild(tree: list[Any]) -> Any:
    """An _OBJECT, as ``pickle`` would load it: make it, add items, then set its state."""
    how, path, args, state, listitems, dictitems, kwargs, setter = (*tree, *[None] * 5)[:8]
    func = _resolve_global(path)
    obj = func.__new__(func, *args, **(kwargs or {})) if how == _NEW else func(*args)
    if listitems:
        extend = getattr(obj, "extend", None)
        if extend is not None:
            extend(listitems)
        else:
            for item in listitems:
                obj.append(item)
    if dictitems:
        for key, item in dictitems.items():
            obj[key] = item
    if state is not None:
        if setter is not None:
            setter(obj, state)
        else:
            _set_state(obj, state)
    return obj


def _set_state(obj: Any, state: Any) -> None:
    """What ``pickle`` does with an object's state (``BUILD``)."""
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    if state:
        obj.__dict__.update(state)
    if slots:
        for name, item in slots.items():
            setattr(obj, name, item)


def _zoned_from(cls: Any, tree: list[Any]) -> Any:
    naive, fold, tz = tree
    return cls.fromisoformat(naive).replace(tzinfo=tz, fold=fold)


_SIMPLE: Final[dict[int, Callable[[Any], Any]]] = {
    _DATETIME: dt.datetime.fromisoformat,
    _DATE: dt.date.fromisoformat,
    _TIME: dt.time.fromisoformat,
    _TIMEDELTA: lambda t: dt.timedelta(days=t[0], seconds=t[1], microseconds=t[2]),
    _DECIMAL: decimal.Decimal,
    _UUID: lambda b: uuid.UUID(bytes=bytes(b)),
    _PATH: lambda t: _resolve_class(t[0])(t[1]),
    _OBJECT: _rebuild,
    _GLOBAL: _resolve_global,
    _DATETIME_TZ: lambda t: _zoned_from(dt.datetime, t),
    _TIME_TZ: lambda t: _zoned_from(dt.time, t),
    _ZONE: zoneinfo.ZoneInfo,
}


def _ext_hook(code: int, data: memoryview) -> Any:  # noqa: PLR0911  (one per extension)
    # Raw bytes first: these two are not msgpack inside.
    if code == _BIG_INT:
        return int.from_bytes(data, "big", signed=True)
    if code == _STR:
        return bytes(data).decode("utf-8", "surrogatepass")
    tree = _decoder.decode(data)
    if code == _TUPLE:
        return tuple(tree)
    if code == _SET:
        return set(tree)
    if code == _FROZENSET:
        return frozenset(tree)
    if code == _DICT_PAIRS:
        return {_hashable(k): v for k, v in tree}
    if code in (_DATACLASS, _STRUCT, _PYDANTIC, _NAMEDTUPLE, _ENUM):
        return _build_object(code, tree[0], tree[1])
    builder = _SIMPLE.get(code)
    if builder is None:
        raise ValueError(f"unknown value extension {code}: written by a newer kitaru")
    return builder(tree)


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(ext_hook=_ext_hook)


def decode_value(data: bytes) -> Any:
    """Decode bytes written by ``encode_value``.

    A value that cannot be rebuilt here (its type is gone, its class refuses the
    recorded state, or a newer kitaru wrote it) raises ``KitaruRuntimeError`` saying why.
    """
    try:
        return _decoder.decode(data)
    except RecursionError:
        raise KitaruRuntimeError(
            "A recorded value cannot be read: it is nested too deeply for the current stack."
        ) from None
    except Exception as exc:
        raise KitaruRuntimeError(f"A recorded value cannot be read: {exc}.") from exc

"""Encoding of flow inputs, checkpoint outputs and results, so they come back as they were.

Supported, and rebuilt with their own types on replay:
- ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``, ``dict``
  (any encodable keys), ``tuple``, ``set``, ``frozenset``;
- ``datetime``, ``date``, ``time``, ``timedelta``, ``Decimal``, ``UUID``, ``Path``;
- enums, named tuples, dataclasses, msgspec Structs and pydantic models whose class
  can be imported by module and qualified name (so not classes defined inside a
  function).

Anything else raises ``UnencodableValueError`` naming the type and where in the value
it sits. There is no silent fallback (no ``repr``, no pickle): a value that cannot
be stored faithfully is refused before the call is reported complete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import importlib
import pathlib
import sys
import uuid
from collections.abc import Callable
from typing import Any, Final

import msgspec

from kitaru.errors import KitaruRuntimeError

__all__ = [
    "MAIN_MODULE_ALIASES",
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
        self.reason = reason


_encoder = msgspec.msgpack.Encoder()


def _main_module_name() -> str | None:
    """The importable name of ``__main__`` when it runs as ``python -m pkg.mod``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    return name if isinstance(name, str) and name and name != "__main__" else None


def _type_path(cls: type, where: str) -> str:
    module = cls.__module__
    if module == "__main__":
        # Under `python -m pkg.mod` the module can be imported again by its real name;
        # "__main__" would mean the resuming program (e.g. the kitaru command) instead.
        module = _main_module_name() or module
    elif module in MAIN_MODULE_ALIASES:
        module = "__main__"
    if "<locals>" in cls.__qualname__:
        raise UnencodableValueError(
            cls.__qualname__,
            where,
            "its class is defined inside a function; move it to module level",
        )
    return f"{module}:{cls.__qualname__}"


def _ext(code: int, tree: Any) -> msgspec.msgpack.Ext:
    return msgspec.msgpack.Ext(code, _encoder.encode(tree))


def _to_wire(value: Any, where: str) -> Any:  # noqa: PLR0911, PLR0912  (one branch per supported type)
    cls = type(value)
    if cls in _SCALAR_TYPES:
        return value
    if cls is list:
        return [_to_wire(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if cls is dict:
        if all(type(key) is str for key in value):
            return {key: _to_wire(item, f"{where}[{key!r}]") for key, item in value.items()}
        return _ext(
            _DICT_PAIRS,
            [
                [_to_wire(k, f"{where} key"), _to_wire(v, f"{where}[{k!r}]")]
                for k, v in value.items()
            ],
        )
    if cls is tuple:
        return _ext(_TUPLE, [_to_wire(item, f"{where}[{i}]") for i, item in enumerate(value)])
    if cls is set or cls is frozenset:
        items = [_to_wire(item, f"{where} item") for item in value]
        return _ext(_SET if cls is set else _FROZENSET, items)
    if isinstance(value, enum.Enum):
        return _ext(_ENUM, [_type_path(cls, where), _to_wire(value.value, f"{where}.value")])
    if cls is dt.datetime:
        return _ext(_DATETIME, value.isoformat())
    if cls is dt.date:
        return _ext(_DATE, value.isoformat())
    if cls is dt.time:
        return _ext(_TIME, value.isoformat())
    if cls is dt.timedelta:
        return _ext(_TIMEDELTA, [value.days, value.seconds, value.microseconds])
    if cls is decimal.Decimal:
        return _ext(_DECIMAL, str(value))
    if cls is uuid.UUID:
        return _ext(_UUID, value.bytes)
    if isinstance(value, pathlib.PurePath) and cls.__module__ == "pathlib":
        return _ext(_PATH, [_type_path(cls, where), str(value)])
    if isinstance(value, msgspec.Struct):
        fields = {f: _to_wire(getattr(value, f), f"{where}.{f}") for f in value.__struct_fields__}
        return _ext(_STRUCT, [_type_path(cls, where), fields])
    if dataclasses.is_dataclass(value):
        fields = {
            f.name: _to_wire(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
        return _ext(_DATACLASS, [_type_path(cls, where), fields])
    if isinstance(value, tuple) and hasattr(cls, "_fields"):
        items = [
            _to_wire(item, f"{where}.{name}") for name, item in zip(cls._fields, value, strict=True)
        ]
        return _ext(_NAMEDTUPLE, [_type_path(cls, where), items])
    if _is_pydantic_model(value):
        dumped = value.model_dump(mode="python", round_trip=True)
        return _ext(_PYDANTIC, [_type_path(cls, where), _to_wire(dumped, where)])
    raise UnencodableValueError(f"{cls.__module__}.{cls.__qualname__}", where)


def _is_pydantic_model(value: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


def encode_value(value: Any) -> bytes:
    """Encode ``value`` to bytes, or raise ``UnencodableValueError``."""
    if type(value) in _SCALAR_TYPES:
        return _encoder.encode(value)
    return _encoder.encode(_to_wire(value, ""))


# -- decoding --------------------------------------------------------------------------

_class_cache: dict[str, type] = {}


def _resolve_class(path: str) -> type:
    cls = _class_cache.get(path)
    if cls is not None:
        return cls
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
        if isinstance(obj, type):
            _class_cache[path] = obj
            return obj
    raise LookupError(
        f"the recorded type {module_name}.{qualname} cannot be imported any more; "
        "restore it (same module and name) to read this value"
    )


def type_path(cls: type) -> str:
    """``module:QualName`` of a module-level class (``__main__`` for scripts)."""
    return _type_path(cls, "")


def resolve_type(path: str) -> type:
    """The class a ``type_path`` names; LookupError if it cannot be imported."""
    return _resolve_class(path)


def _build_object(kind: int, path: str, fields: Any) -> Any:
    cls: Any = _resolve_class(path)
    if kind == _STRUCT:
        return cls(**fields)
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
        return cls.model_validate(fields)
    return cls(fields)  # enum


def _ext_hook(code: int, data: memoryview) -> Any:
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
    simple: dict[int, Callable[[Any], Any]] = {
        _DATETIME: dt.datetime.fromisoformat,
        _DATE: dt.date.fromisoformat,
        _TIME: dt.time.fromisoformat,
        _TIMEDELTA: lambda t: dt.timedelta(days=t[0], seconds=t[1], microseconds=t[2]),
        _DECIMAL: decimal.Decimal,
        _UUID: lambda b: uuid.UUID(bytes=bytes(b)),
        _PATH: lambda t: _resolve_class(t[0])(t[1]),
    }
    builder = simple.get(code)
    if builder is None:
        raise ValueError(f"unknown value extension {code}: written by a newer kitaru")
    return builder(tree)


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(ext_hook=_ext_hook)


def decode_value(data: bytes) -> Any:
    """Decode bytes written by ``encode_value``.

    A value that cannot be rebuilt here (its type is gone, or a newer kitaru wrote it)
    raises ``KitaruRuntimeError`` saying why.
    """
    try:
        return _decoder.decode(data)
    except (LookupError, TypeError, ValueError, msgspec.DecodeError) as exc:
        raise KitaruRuntimeError(f"A recorded value cannot be read: {exc}.") from exc

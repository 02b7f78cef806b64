"""Checkpoint caching: reuse an output recorded by an earlier execution.

A cache key covers the checkpoint's identity in code (module, name and a fingerprint
of its bytecode and constants), everything its code reads that is not an argument,
and its encoded arguments; editing the function, changing what it reads or passing
other arguments misses.

What the code reads is found by walking its bytecode: the closure's cells, default
arguments, and every module global it loads (``NAME`` and ``module.NAME`` alike), in
its nested functions, lambdas and comprehensions too. Data is fingerprinted by value
(its encoded form); functions and classes of the project are walked in turn, while
those of the standard library and installed packages count by name. A value that can
be neither encoded nor walked (an open client, a lock) makes the checkpoint
uncacheable: ``CacheKeyError`` says which, and the call simply runs.
"""

from __future__ import annotations

import dis
import functools
import hashlib
import logging
import sys
import sysconfig
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kitaru.runtime.values import UnencodableValueError, encode_value

__all__ = ["CacheKeyError", "cache_key", "code_fingerprint"]

_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_ATTRIBUTE_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_LIBRARY_ROOTS = tuple(
    str(Path(sysconfig.get_paths()[key]).resolve())
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
)


class CacheKeyError(Exception):
    """Something a checkpoint's code reads cannot be fingerprinted, so it is not cached."""

    def __init__(self, where: str, type_name: str):
        super().__init__(f"{where} is a {type_name}, which has no stable fingerprint")
        self.where = where
        self.type_name = type_name


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


@functools.cache
def _reads(code: types.CodeType) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The globals ``code`` (and the code nested in it) loads, each with the attributes
    read straight off it (``cfg.LIMIT`` gives ``("cfg", ("LIMIT",))``)."""
    found: dict[str, set[str]] = {}
    codes = [code]
    while codes:
        current = codes.pop()
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        instructions = list(dis.get_instructions(current))
        for i, ins in enumerate(instructions):
            if ins.opname not in _GLOBAL_LOADS or not isinstance(ins.argval, str):
                continue
            attributes = found.setdefault(ins.argval, set())
            following = instructions[i + 1] if i + 1 < len(instructions) else None
            if following is not None and following.opname in _ATTRIBUTE_LOADS:
                attributes.add(str(following.argval))
    return tuple((name, tuple(sorted(attrs))) for name, attrs in sorted(found.items()))


def _is_library(obj: Any) -> bool:
    """Code of the standard library, an installed package, or kitaru itself."""
    module: types.ModuleType | None
    if isinstance(obj, types.ModuleType):
        module_name, module = obj.__name__, obj
    else:
        module_name = getattr(obj, "__module__", None) or ""
        module = sys.modules.get(module_name)
    if module_name.split(".")[0] == "kitaru":
        return True
    file = getattr(module, "__file__", None)
    if module is None or file is None:
        return module_name in sys.builtin_module_names or module is None
    resolved = str(Path(file).resolve())
    return resolved.startswith(_LIBRARY_ROOTS)


class _Fingerprint:
    """One walk over a function and what it reads, feeding a hash."""

    def __init__(self) -> None:
        self.h = hashlib.blake2b(digest_size=16)
        self._seen: set[int] = set()

    def add(self, *parts: object) -> None:
        for part in parts:
            self.h.update(part if isinstance(part, bytes) else repr(part).encode())
            self.h.update(b"\x00")

    def function(self, func: Callable[..., Any], where: str) -> None:
        self.add("function", f"{getattr(func, '__module__', '')}:{func.__qualname__}")
        if id(func) in self._seen:
            return  # recursion (direct or mutual) is covered by the first visit
        self._seen.add(id(func))
        code = getattr(func, "__code__", None)
        if not isinstance(code, types.CodeType):
            return
        _digest_code(code, self.h)
        for i, default in enumerate(getattr(func, "__defaults__", None) or ()):
            self.value(default, f"{where} default #{i + 1}")
        for name, default in sorted((getattr(func, "__kwdefaults__", None) or {}).items()):
            self.value(default, f"{where} default {name}")
        cells = getattr(func, "__closure__", None) or ()
        for name, cell in zip(code.co_freevars, cells, strict=False):
            try:
                content = cell.cell_contents
            except ValueError:  # not assigned yet
                self.add("empty cell", name)
                continue
            self.add("cell", name)
            self.value(content, f"{where} closure variable {name}")
        namespace: dict[str, Any] = getattr(func, "__globals__", {})
        for name, attributes in _reads(code):
            if name not in namespace:
                self.add("unbound", name)  # a builtin, or a global defined later
                continue
            self.add("global", name)
            value = namespace[name]
            if isinstance(value, types.ModuleType):
                self.module(value, attributes, f"{where} global {name}")
            else:
                self.value(value, f"{where} global {name}")

    def module(self, module: types.ModuleType, attributes: tuple[str, ...], where: str) -> None:
        self.add("module", module.__name__)
        if _is_library(module):
            return
        for attribute in attributes:
            if hasattr(module, attribute):
                self.add("attribute", attribute)
                self.value(getattr(module, attribute), f"{where}.{attribute}")

    def value(self, value: Any, where: str) -> None:  # noqa: PLR0911  (one branch per kind)
        if isinstance(value, types.ModuleType):
            self.add("module", value.__name__)
            return
        if isinstance(value, logging.Logger):
            self.add("logger", value.name)  # where it logs does not change an output
            return
        wrapped = getattr(value, "__wrapped__", None)
        if isinstance(wrapped, types.FunctionType) and not isinstance(value, type):
            value = wrapped  # a decorated function: what runs is the function inside
        if isinstance(value, functools.partial):
            self.value(value.func, f"{where} (partial)")
            self.value(value.args, f"{where} (partial arguments)")
            self.value(value.keywords, f"{where} (partial arguments)")
            return
        if isinstance(value, types.MethodType):
            self.value(value.__func__, where)
            self.value(value.__self__, f"{where} (bound to)")
            return
        if isinstance(value, type):
            self.cls(value, where)
            return
        if isinstance(value, types.FunctionType):
            if _is_library(value):
                self.add("function", f"{value.__module__}:{value.__qualname__}")
            else:
                self.function(value, f"{value.__qualname__}()")
            return
        if isinstance(value, types.BuiltinFunctionType) or (
            callable(value) and _is_library(type(value)) and not _is_data(value)
        ):
            name = getattr(value, "__qualname__", type(value).__qualname__)
            self.add("library callable", f"{getattr(value, '__module__', '')}:{name}")
            return
        try:
            self.add("value", encode_value(value))
        except UnencodableValueError:
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            raise CacheKeyError(where, kind) from None

    def cls(self, cls: type, where: str) -> None:
        self.add("class", f"{cls.__module__}:{cls.__qualname__}")
        if _is_library(cls) or id(cls) in self._seen:
            return
        self._seen.add(id(cls))
        for name, attribute in sorted(vars(cls).items()):
            member = getattr(attribute, "__func__", attribute)  # staticmethod, classmethod
            if isinstance(member, property):
                member = member.fget
            if isinstance(member, types.FunctionType):
                self.function(member, f"{cls.__qualname__}.{name}")
            elif not name.startswith("__"):
                # Class-level data by value where it can be encoded; other attributes
                # (descriptors, helpers) are covered by the methods that read them.
                try:
                    self.add("class attribute", name, encode_value(member))
                except UnencodableValueError:
                    self.add("class attribute", name, type(member).__qualname__)


def _is_data(value: Any) -> bool:
    try:
        encode_value(value)
    except UnencodableValueError:
        return False
    return True


def code_fingerprint(func: Callable[..., Any]) -> str:
    """A digest of where ``func`` lives, what its code does and everything it reads.

    Raises ``CacheKeyError`` when something it reads cannot be fingerprinted. Taken
    at every call: a global may change while the process runs.
    """
    walk = _Fingerprint()
    walk.add(f"{func.__module__}:{func.__qualname__}")
    walk.function(func, f"{func.__qualname__}()")
    return walk.h.hexdigest()


def cache_key(fingerprint: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The key for a call with these arguments, or None if they cannot be encoded."""
    try:
        data = encode_value([list(args), dict(sorted(kwargs.items()))])
    except UnencodableValueError:
        return None
    return hashlib.blake2b(fingerprint.encode() + data, digest_size=16).hexdigest()

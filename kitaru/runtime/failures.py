"""Recording exceptions in the journal, and raising them again on replay."""

from __future__ import annotations

import importlib
import traceback

from kitaru import errors
from kitaru._redaction import redact
from kitaru.errors import FailureOrigin
from kitaru.journal.events import ErrorInfo, ValueRef, journal_text
from kitaru.runtime.values import UnencodableValueError, decode_value, encode_value

__all__ = ["error_info", "failure_origin", "rebuild_exception", "type_name"]


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def failure_origin(error_type: str, *, divergence: bool = False) -> FailureOrigin:
    """Where a recorded failure came from, judged by its exception type (``module.Name``).

    kitaru's own errors are the runtime's (or the backend's) doing; anything else was
    raised by the user's code.
    """
    if divergence:
        return FailureOrigin.DIVERGENCE
    module, _, name = error_type.rpartition(".")
    cls = getattr(errors, name, None) if module == "kitaru.errors" else None
    if not isinstance(cls, type) or not issubclass(cls, errors.KitaruError):
        return FailureOrigin.USER_CODE
    if issubclass(cls, errors.KitaruDivergenceError):
        return FailureOrigin.DIVERGENCE
    if issubclass(cls, errors.KitaruBackendError):
        return FailureOrigin.BACKEND
    if issubclass(cls, errors.KitaruUserCodeError):
        return FailureOrigin.USER_CODE
    return FailureOrigin.RUNTIME


def error_info(exc: BaseException) -> ErrorInfo:
    """Describe ``exc`` for the journal: type, message, traceback and (if encodable) args.

    Secret values in use are blanked out of all three (see ``kitaru._redaction``).
    """
    args: ValueRef | None = None
    data = _encode_args(exc)
    if len(data) <= 64 * 1024:
        args = ValueRef(inline=data)
    return ErrorInfo(
        type=type_name(exc),
        # Text with lone surrogates (a cut emoji) is escaped: it also fills the
        # executions table's failure column, which SQLite stores as UTF-8.
        message=journal_text(redact(_message(exc))),
        traceback=journal_text(redact("".join(traceback.format_exception(exc)))),
        args=args,
    )


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not stop the failure being recorded
        return _safe_repr(exc)


def _encode_args(exc: BaseException) -> bytes:
    """The exception's args; any that cannot be stored are kept as their ``repr``.

    The type and message are recorded either way, so a replayed failure still reads the
    same; only such arguments come back as strings.
    """
    given = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
    try:
        return encode_value(given)
    except UnencodableValueError:
        pass
    kept: list[object] = []
    for arg in given:
        try:
            encode_value(arg)
        except UnencodableValueError:
            kept.append(redact(_safe_repr(arg)))
        else:
            kept.append(arg)
    return encode_value(tuple(kept))


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__} object>"


class RecordedError(Exception):
    """Stands in for a recorded exception whose class cannot be rebuilt."""

    def __init__(self, info: ErrorInfo):
        super().__init__(f"{info.type}: {info.message}")
        self.info = info


def rebuild_exception(info: ErrorInfo) -> BaseException:
    """Return an exception like the recorded one: same class and args when possible."""
    module_name, _, qualname = info.type.rpartition(".")
    if not module_name:
        module_name = "builtins"
    try:
        obj: object = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            if info.args is not None and info.args.inline is not None:
                exc = obj(*decode_value(info.args.inline))
            else:
                exc = obj(info.message)
            return exc
    except Exception:  # noqa: S110  (fall through to the stand-in below)
        pass
    return RecordedError(info)

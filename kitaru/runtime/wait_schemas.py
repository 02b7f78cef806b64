"""Schemas of wait input: describing them for people, checking input against them."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import msgspec

from kitaru.errors import KitaruUsageError, KitaruWaitValidationError
from kitaru.runtime.values import resolve_type, type_path

__all__ = ["describe_schema", "validate_input"]

_PLAIN = (bool, int, float, str)


def _is_pydantic_model(schema: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return (
        pydantic is not None and isinstance(schema, type) and issubclass(schema, pydantic.BaseModel)
    )


def describe_schema(schema: Any) -> tuple[str | None, dict[str, Any] | None]:
    """Return ``(type path, JSON schema)`` for a wait's schema (``(None, None)`` for a gate)."""
    if schema is None:
        return None, None
    if not isinstance(schema, type):
        raise KitaruUsageError(
            f"schema= must be a type (bool, str, int, a dataclass, a msgspec Struct or a "
            f"pydantic model), got {schema!r}."
        )
    if _is_pydantic_model(schema):
        return type_path(schema), schema.model_json_schema()  # type: ignore[attr-defined]
    if schema in _PLAIN or dataclasses.is_dataclass(schema) or issubclass(schema, msgspec.Struct):
        return type_path(schema), msgspec.json.schema(schema)
    raise KitaruUsageError(
        f"schema={schema.__qualname__} is not supported; use bool, str, int, float, a "
        "dataclass, a msgspec Struct or a pydantic model."
    )


def validate_input(schema: type | str | None, value: Any, *, exec_id: str, wait: str) -> Any:
    """Check ``value`` (JSON-shaped) against the schema; return it as the schema's type."""
    if schema is None:
        return value
    try:
        cls = resolve_type(schema) if isinstance(schema, str) else schema
    except LookupError as exc:
        raise KitaruWaitValidationError(
            f"Cannot check the input for wait '{wait}': {exc}. Run the command where the "
            "flow's code can be imported.",
            exec_id=exec_id,
            wait=wait,
        ) from None
    try:
        if _is_pydantic_model(cls):
            return cls.model_validate(value)  # type: ignore[attr-defined]
        return msgspec.convert(value, cls, strict=True)
    except Exception as exc:
        raise KitaruWaitValidationError(
            f"The input {value!r} does not fit wait '{wait}' (expects {cls.__qualname__}): "
            f"{_reason(exc)}. Send a value of that shape.",
            exec_id=exec_id,
            wait=wait,
        ) from None


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic: its first line only counts the errors; name them
        try:
            found = errors()
        except Exception:  # a look at the details only: the plain text below remains
            found = None
        if isinstance(found, list) and found:
            return "; ".join(
                f"{'.'.join(str(part) for part in error.get('loc', ())) or 'value'}: "
                f"{error.get('msg', 'invalid')}"
                for error in found
                if isinstance(error, dict)
            )
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

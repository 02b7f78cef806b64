"""Structured output: the schema a model must answer in, and reading its answer back.

``response_format=`` takes a pydantic model, a dataclass or a msgspec Struct. Its JSON
schema goes to the provider in the provider's own form, and the answer's text is
parsed into an instance of it; an answer that does not fit raises ``ProviderError``
with reason ``invalid_output``.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from typing import Any

import msgspec

from kitaru._llm.tools import json_schema
from kitaru.errors import KitaruUsageError, ProviderError

__all__ = ["OutputFormat", "OutputTarget", "output_format", "parse_output"]

_MAX_SHOWN = 300


class OutputFormat(msgspec.Struct, frozen=True, kw_only=True):
    """The schema an answer must fit, as sent to the provider."""

    name: str
    """A name for the schema (the class name, reduced to what providers accept)."""
    schema: dict[str, Any]
    strict: bool
    """True when the schema meets OpenAI's strict rules (every property required, no
    defaults), so the provider can enforce it while generating."""


class OutputTarget(msgspec.Struct, frozen=True):
    """The class an answer is parsed into, and which kind of class it is."""

    cls: type
    kind: str  # "pydantic", "dataclass" or "struct"


def output_format(response_format: object) -> tuple[OutputFormat, OutputTarget]:
    """Check ``response_format`` and return its schema and how to parse into it."""
    if isinstance(response_format, type):
        kind = _kind(response_format)
        if kind is not None:
            schema = (
                response_format.model_json_schema()  # type: ignore[attr-defined]
                if kind == "pydantic"
                else json_schema(response_format)
            )
            closed = _closed(schema)
            return (
                OutputFormat(
                    name=_schema_name(response_format.__name__),
                    schema=closed,
                    strict=_strict_ok(closed),
                ),
                OutputTarget(response_format, kind),
            )
    raise KitaruUsageError(
        f"response_format= must be a pydantic model, dataclass or msgspec Struct class, got "
        f"{response_format!r}. Define a class with the fields the answer should have and "
        "pass the class itself."
    )


def parse_output(text: str, target: OutputTarget, *, provider: str, model: str) -> Any:
    """Parse the answer ``text`` into ``target``; raise ``ProviderError`` if it does not fit."""
    try:
        if target.kind == "pydantic":
            return target.cls.model_validate_json(text)  # type: ignore[attr-defined]
        return msgspec.json.decode(text, type=target.cls)
    except (msgspec.DecodeError, ValueError) as exc:
        # msgspec's ValidationError and pydantic's are both ValueErrors.
        shown = text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
        message = (
            f"{provider}/{model} answered with output that does not fit "
            f"{target.cls.__qualname__} ({_problem(exc)}); the answer was {shown!r}. Ask for "
            "this format in the prompt (or relax the class's fields) and retry."
        )
        raise ProviderError(
            message, provider=provider, model=model, reason="invalid_output"
        ) from None


def _problem(exc: Exception) -> str:
    """What is wrong with the answer, in one short line."""
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return f"the answer is not JSON: {exc}"
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic: its message runs over several lines with a URL
        found = errors()
        if found and found[0].get("type") == "json_invalid":
            return f"the answer is not JSON: {found[0].get('msg', '')}"
        parts = [
            f"{'.'.join(str(part) for part in error.get('loc', ())) or 'the answer'}: "
            f"{error.get('msg', '')}"
            for error in found[:3]
        ]
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        return "; ".join(parts) + more
    return " ".join(str(exc).split())[:_MAX_SHOWN]


def _kind(cls: type) -> str | None:
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and issubclass(cls, pydantic.BaseModel):
        return "pydantic"
    if issubclass(cls, msgspec.Struct):
        return "struct"
    if dataclasses.is_dataclass(cls):
        return "dataclass"
    return None


def _schema_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "output"


def _closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that does not say.

    Both providers' structured-output modes require it; the classes kitaru parses into
    have fixed fields anyway.
    """
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if closed.get("type") == "object" and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


def _strict_ok(schema: Any) -> bool:
    if isinstance(schema, list):
        return all(_strict_ok(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if "default" in schema:
        return False
    if schema.get("type") == "object" and set(schema.get("required", ())) != set(
        schema.get("properties", {})
    ):
        return False
    for key, value in schema.items():
        # The keys of these maps are names, not schema keywords.
        named = key in ("properties", "$defs", "definitions") and isinstance(value, dict)
        if not all(_strict_ok(child) for child in (value.values() if named else [value])):
            return False
    return True

"""The answer form of a pending wait, generated from its JSON schema.

A wait's schema is what ``kitaru.wait(schema=...)`` recorded: a plain type (bool, str,
int, float), or an object (dataclass, msgspec Struct, pydantic model) whose properties
become one field each. A property that is itself an object or a list is a JSON text
field. What the form sends is turned back into the JSON value the schema describes;
the client then checks it against the schema's type, as ``kitaru executions input``
does, and its error is shown above the form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Field", "FormError", "fields_of", "value_from_form"]

SINGLE = "value"
"""The field name of a wait whose schema is a plain type."""


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str
    """``bool``, ``int``, ``float``, ``str``, ``choice`` or ``json``."""
    required: bool
    choices: tuple[str, ...] = ()
    default: Any = None
    description: str | None = None


class FormError(ValueError):
    """What was typed into the form is not what the schema asks for, per field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (msgspec and pydantic put object schemas under ``$defs``)."""
    seen = 0
    while "$ref" in schema and seen < 16:
        path = str(schema["$ref"]).removeprefix("#/").split("/")
        target: Any = root
        for part in path:
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = target if isinstance(target, dict) else {}
        seen += 1
    return schema


def _kind(schema: dict[str, Any], root: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    schema = _resolve(schema, root)
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return "choice", tuple(schema["enum"])
    kind = schema.get("type")
    if kind is None and "anyOf" in schema:
        # Optional[X] is anyOf [X, null]: the form asks for X and leaves it optional.
        options = [s for s in schema["anyOf"] if _resolve(s, root).get("type") != "null"]
        if len(options) == 1:
            return _kind(options[0], root)
    return {
        "boolean": ("bool", ()),
        "integer": ("int", ()),
        "number": ("float", ()),
        "string": ("str", ()),
    }.get(str(kind), ("json", ()))


def fields_of(schema: dict[str, Any] | None) -> list[Field]:
    """The form's fields; none for a wait with no schema (a plain continue gate)."""
    if schema is None:
        return []
    top = _resolve(schema, schema)
    if top.get("type") == "object" and isinstance(top.get("properties"), dict):
        required = set(top.get("required", ()))
        found = []
        for name, prop in top["properties"].items():
            kind, choices = _kind(prop, schema)
            resolved = _resolve(prop, schema)
            found.append(
                Field(
                    name=name,
                    label=str(resolved.get("title") or name),
                    kind=kind,
                    required=name in required,
                    choices=choices,
                    default=resolved.get("default"),
                    description=resolved.get("description"),
                )
            )
        return found
    kind, choices = _kind(top, schema)
    return [Field(SINGLE, "value", kind, required=kind != "bool", choices=choices)]


def _convert(field: Field, raw: str | None) -> tuple[bool, Any]:  # noqa: PLR0911 (one per kind)
    """``(present, value)`` of one field as typed; raises ValueError with the reason."""
    if field.kind == "bool":
        return True, raw in ("on", "true", "1", "yes")
    if raw is None or raw.strip() == "":
        if field.required:
            raise ValueError("is required")
        return False, None
    text = raw.strip()
    if field.kind == "int":
        try:
            return True, int(text)
        except ValueError:
            raise ValueError(f"must be a whole number, got {text!r}") from None
    if field.kind == "float":
        try:
            return True, float(text)
        except ValueError:
            raise ValueError(f"must be a number, got {text!r}") from None
    if field.kind == "choice":
        if text not in field.choices:
            raise ValueError(f"must be one of {', '.join(field.choices)}")
        return True, text
    if field.kind == "json":
        try:
            return True, json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be JSON ({exc.msg} at column {exc.colno})") from None
    return True, raw


def value_from_form(schema: dict[str, Any] | None, form: dict[str, str]) -> Any:
    """The JSON value the form describes; ``FormError`` naming each field that is wrong."""
    fields = fields_of(schema)
    if not fields:
        return None
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for field in fields:
        try:
            present, value = _convert(field, form.get(field.name))
        except ValueError as exc:
            errors[field.name] = str(exc)
            continue
        if present:
            values[field.name] = value
    if errors:
        raise FormError(errors)
    if len(fields) == 1 and fields[0].name == SINGLE and schema is not None:
        top = _resolve(schema, schema)
        if top.get("type") != "object":
            return values.get(SINGLE)
    return values

"""Tools offered to a model: plain Python functions or JSON-schema dicts, as definitions.

A function becomes a tool named after it, described by the summary of its docstring,
with one JSON-schema property per parameter: the type comes from the type hint, the
description from the docstring's parameter section (Google ``Args:``, reST
``:param x:`` or NumPy ``Parameters`` style). A parameter with a default is optional.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from kitaru._llm.response import LLMToolDefinition
from kitaru.errors import KitaruUsageError

__all__ = ["tool_definition", "tool_definitions"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_HELP = (
    "Pass plain functions with type hints, or dicts such as {'name': 'search', "
    "'description': '...', 'parameters': {'type': 'object', 'properties': {...}}}."
)


def tool_definitions(tools: object) -> tuple[LLMToolDefinition, ...]:
    """Return ``tools`` (a list of functions, dicts or definitions) as definitions.

    Raises ``KitaruUsageError`` for anything that cannot be described, and for two
    tools with the same name (the model could not tell them apart).
    """
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence):
        raise KitaruUsageError(
            f"tools= must be a list of tools, got {type(tools).__name__}. {_TOOL_HELP}"
        )
    definitions = tuple(tool_definition(tool) for tool in tools)
    seen: set[str] = set()
    for definition in definitions:
        if definition.name in seen:
            raise KitaruUsageError(
                f"Two tools are named {definition.name!r}; give each tool its own name."
            )
        seen.add(definition.name)
    return definitions


def tool_definition(tool: object) -> LLMToolDefinition:
    """Describe one tool: a function, a JSON-schema dict, or an ``LLMToolDefinition``."""
    if isinstance(tool, LLMToolDefinition):
        return _checked(tool.name, tool.description, tool.parameters)
    if isinstance(tool, Mapping):
        return _from_mapping(tool)
    if inspect.isfunction(tool) or inspect.ismethod(tool) or inspect.isbuiltin(tool):
        return _from_function(tool)
    raise KitaruUsageError(f"A tool is a {type(tool).__name__}, not a function. {_TOOL_HELP}")


def _from_mapping(tool: Mapping[str, Any]) -> LLMToolDefinition:
    # OpenAI's {"type": "function", "function": {...}} and Anthropic's "input_schema"
    # are accepted too, so schemas written for either SDK can be passed as they are.
    inner = tool.get("function") if tool.get("type") == "function" else tool
    if not isinstance(inner, Mapping):
        raise KitaruUsageError(f"The tool dict {dict(tool)!r} has no function. {_TOOL_HELP}")
    name = inner.get("name")
    parameters = inner.get("parameters", inner.get("input_schema"))
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    description = inner.get("description", "")
    if not isinstance(description, str):
        raise KitaruUsageError(f"The description of tool {name!r} must be text.")
    return _checked(name, description, parameters)


def _checked(name: object, description: str, parameters: object) -> LLMToolDefinition:
    if not isinstance(name, str) or not _NAME.match(name):
        raise KitaruUsageError(
            f"Tool name {name!r} is not allowed: providers accept 1-64 letters, digits, "
            "'_' and '-'. Rename the function or the tool."
        )
    if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
        raise KitaruUsageError(
            f"The parameters of tool {name!r} must be a JSON schema of type 'object' "
            f"(e.g. {{'type': 'object', 'properties': {{'q': {{'type': 'string'}}}}}}), "
            f"got {parameters!r}."
        )
    return LLMToolDefinition(name=name, description=description, parameters=dict(parameters))


def _from_function(function: Callable[..., Any]) -> LLMToolDefinition:
    name = getattr(function, "__name__", "")
    summary, described = parse_docstring(inspect.getdoc(function) or "")
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # a hint naming something that cannot be imported
        raise KitaruUsageError(
            f"The type hints of tool {name!r} cannot be resolved ({exc}); import the types "
            "they name at module level."
        ) from None
    fields: list[Any] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise KitaruUsageError(
                f"Tool {name!r} takes *{parameter.name}; a model can only pass named "
                "arguments, so list each parameter explicitly."
            )
        hint = hints.get(parameter.name, Any)
        if parameter.default is parameter.empty:
            fields.append((parameter.name, hint))
        else:
            fields.append((parameter.name, hint, parameter.default))
    try:
        arguments = msgspec.defstruct(f"{name}_arguments", fields, kw_only=True)
        parameters = json_schema(arguments)
    except (TypeError, ValueError) as exc:
        raise KitaruUsageError(
            f"kitaru cannot derive a JSON schema for tool {name!r} ({exc}). Use builtins, "
            "dataclasses, TypedDicts, enums, Literal or msgspec Structs in its type hints, "
            "or pass the tool as a JSON-schema dict."
        ) from None
    properties = parameters.get("properties", {})
    for parameter_name, description in described.items():
        if parameter_name in properties:
            properties[parameter_name] = {"description": description, **properties[parameter_name]}
    return _checked(name, summary, parameters)


def json_schema(cls: type) -> dict[str, Any]:
    """The JSON schema of a msgspec Struct or dataclass, with the object itself at the root.

    Providers want an object schema at the top, not a ``$ref`` to one; other types it
    uses stay in ``$defs``.
    """
    if not (isinstance(cls, type) and (issubclass(cls, msgspec.Struct) or _is_dataclass(cls))):
        raise TypeError(f"{cls!r} is not a msgspec Struct or a dataclass")
    (reference,), components = msgspec.json.schema_components([cls], ref_template="#/$defs/{name}")
    root_name = str(reference["$ref"]).rsplit("/", 1)[-1]
    root = dict(components[root_name])
    root.pop("title", None)
    others = {name: schema for name, schema in components.items() if name != root_name}
    if _refers_to(root, root_name):
        others[root_name] = components[root_name]  # a recursive type refers to itself
    if others:
        root["$defs"] = others
    return root


def _is_dataclass(cls: type) -> bool:
    return dataclasses.is_dataclass(cls)


def _refers_to(schema: object, name: str) -> bool:
    if isinstance(schema, dict):
        if schema.get("$ref") == f"#/$defs/{name}":
            return True
        return any(_refers_to(value, name) for value in schema.values())
    if isinstance(schema, list):
        return any(_refers_to(item, name) for item in schema)
    return False


# -- docstrings ---------------------------------------------------------------------

_GOOGLE_HEADERS = frozenset({"args:", "arguments:", "parameters:", "params:"})
_GOOGLE_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_REST_ENTRY = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^(\w+)\s*(:.*)?$")
_SECTION_END = re.compile(r"^(returns?|yields?|raises?|examples?|notes?|see also)\s*:?$", re.I)


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description and a description for each parameter.

    The description is the text before the first section (``Args:``, ``Returns:``,
    ``:param x:``, ...), with its whitespace collapsed.
    """
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    summary: list[str] = []
    descriptions: dict[str, str] = {}
    in_summary = True
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        rest = _REST_ENTRY.match(stripped)
        if stripped.lower() in _GOOGLE_HEADERS:
            index = _google_section(lines, index + 1, descriptions)
        elif stripped.lower() == "parameters" and _underline(lines, index + 1):
            index = _numpy_section(lines, index + 2, descriptions)
        elif rest:
            index = _continued(lines, index + 1, rest.group(1), rest.group(2), descriptions)
        else:
            if stripped.startswith(":") or _SECTION_END.match(stripped):
                in_summary = False
            elif in_summary:
                summary.append(stripped)
            index += 1
            continue
        in_summary = False
    return " ".join(" ".join(summary).split()), descriptions


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _underline(lines: list[str], index: int) -> bool:
    return index < len(lines) and set(lines[index].strip()) == {"-"}


def _google_section(lines: list[str], index: int, out: dict[str, str]) -> int:
    base: int | None = None
    current: str | None = None
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            if index < len(lines) and lines[index].strip() and _indent(lines[index]) == 0:
                break
            continue
        if _indent(line) == 0:
            break
        if base is None:
            base = _indent(line)
        entry = _GOOGLE_ENTRY.match(line.strip())
        if _indent(line) == base and entry:
            current = entry.group(1).lstrip("*")
            out[current] = entry.group(3).strip()
        elif current is not None:
            out[current] = f"{out[current]} {line.strip()}".strip()
        index += 1
    return index


def _numpy_section(lines: list[str], index: int, out: dict[str, str]) -> int:
    current: str | None = None
    while index < len(lines):
        line = lines[index]
        if _underline(lines, index + 1):
            break  # the next section's header
        if line.strip() and _indent(line) == 0:
            entry = _NUMPY_ENTRY.match(line.strip())
            if entry is None:
                break
            current = entry.group(1)
            out[current] = ""
        elif line.strip() and current is not None:
            out[current] = f"{out[current]} {line.strip()}".strip()
        index += 1
    return index


def _continued(lines: list[str], index: int, name: str, first: str, out: dict[str, str]) -> int:
    text = first.strip()
    while index < len(lines) and lines[index].strip() and _indent(lines[index]) > 0:
        text = f"{text} {lines[index].strip()}"
        index += 1
    out[name] = text
    return index

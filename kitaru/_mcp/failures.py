"""How a call that went wrong becomes an MCP tool error: the one place that decides.

Every message is one line a caller can act on. Kitaru's own errors already end with
the next step; arguments that do not match a tool's schema are named with what the
schema expects; anything else is a defect of this server, whose traceback goes to
stderr while the caller is told where to find it.
"""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types

from kitaru._redaction import redact_shown
from kitaru.errors import KitaruError

__all__ = ["BadArgumentsError", "message_for", "tool_error"]

_log = logging.getLogger("kitaru.mcp")


class BadArgumentsError(Exception):
    """The arguments of a call do not match the tool's input schema."""

    def __init__(self, tool: str, where: str, problem: str, schema: dict[str, Any]):
        self.tool = tool
        self.where = where
        self.problem = problem
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        self.expected = ", ".join(
            f"{name}{'' if name in required else '?'}: {_type_of(spec)}"
            for name, spec in properties.items()
        )
        super().__init__(
            f"Bad arguments for {tool}: {where}{problem}. Call it with ({self.expected})."
        )


def _type_of(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return " | ".join(repr(choice) for choice in spec["enum"])
    kind = spec.get("type", "any JSON")
    return " | ".join(kind) if isinstance(kind, list) else str(kind)


def message_for(tool: str, exc: BaseException) -> str:
    """The one-line error text the caller sees for ``exc`` raised by ``tool``."""
    if isinstance(exc, BadArgumentsError):
        return str(exc)
    if isinstance(exc, KitaruError):
        message = " ".join(str(exc).split())
        return redact_shown(f"{type(exc).__name__}: {message}")
    _log.error("%s failed unexpectedly", tool, exc_info=exc)
    return redact_shown(
        f"{tool} failed unexpectedly ({type(exc).__name__}: {exc}); the kitaru-mcp "
        "process's stderr has the traceback. Report it with that traceback."
    )


def tool_error(tool: str, exc: BaseException) -> types.CallToolResult:
    """The MCP result for a call of ``tool`` that raised ``exc``: an error the caller reads."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message_for(tool, exc))], is_error=True
    )

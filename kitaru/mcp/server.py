"""``kitaru.mcp.server``: Kitaru's MCP server tools, not offered here.

The module can be imported, so a program reaches the point where it asks for a
tool; every name it asks for then raises ``KitaruFeatureNotAvailableError``.
"""

from __future__ import annotations

from typing import NoReturn

from kitaru.errors import KitaruFeatureNotAvailableError

__all__: list[str] = []


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)  # dunder probes (copy, pickle, doctest) stay normal
    raise KitaruFeatureNotAvailableError(
        f"kitaru.mcp.server.{name} is not available in this version: its tools are not "
        "importable functions here. Run the MCP server itself with `kitaru-mcp` (pip "
        "install 'kitaru[mcp]'), or query the same information with KitaruClient() "
        "(executions, memories) or `kitaru executions list -o json`."
    )

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
        f"kitaru.mcp.server.{name} is not available in this version: there is no MCP "
        "server. Query the same information with KitaruClient() (executions, memories) "
        "and kitaru.list_stacks(), or with `kitaru executions list -o json`, "
        "`kitaru stack list -o json` and `kitaru status`."
    )

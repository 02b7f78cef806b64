"""``kitaru.mcp``: Kitaru's importable MCP tool functions, not offered here (see ``server``).

The MCP server itself is the ``kitaru-mcp`` command (``kitaru._mcp``).
"""

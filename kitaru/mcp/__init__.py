"""``kitaru.mcp``: Kitaru's MCP tools as importable functions (see ``server``).

The MCP server itself is the ``kitaru-mcp`` command (``kitaru._mcp``).
"""

"""``kitaru.mcp``: Kitaru's MCP server, not offered in this version (see ``server``)."""

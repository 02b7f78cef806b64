"""The MCP server: kitaru's tools served over stdio with the official ``mcp`` SDK.

Only ``kitaru-mcp`` imports this module, so the SDK loads nowhere else. Each call is
checked against its tool's input schema, then runs on a worker thread (the client
reads SQLite and may wait), and its result goes back both as structured content and
as JSON text. The SDK's stdio transport points file descriptor 1 at stderr while it
serves, so what flow bodies print in this process never mixes with the protocol.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
import anyio.to_thread
import jsonschema
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from kitaru._mcp.failures import BadArgumentsError, tool_error
from kitaru._mcp.tools import TOOLS, Tool, shown
from kitaru.client import KitaruClient
from kitaru.errors import KitaruUsageError

__all__ = ["build_server", "serve_stdio"]


class _LazyClient:
    """The client on the journal, opened at the first call that needs it.

    A journal that does not exist yet is not created: each call says so (and what to
    do) until a flow has run, and the server keeps serving meanwhile.
    """

    def __init__(self, store: str | None):
        self._store = store
        self._client: KitaruClient | None = None
        self._lock = threading.Lock()

    def __call__(self) -> KitaruClient:
        with self._lock:
            if self._client is None:
                self._client = KitaruClient(self._store, create=False)
            return self._client


def _describe(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        description=tool.description,
        input_schema=tool.input_schema,
        output_schema=tool.output_schema,
        annotations=types.ToolAnnotations(
            read_only_hint=tool.read_only,
            destructive_hint=tool.name in ("cancel_execution", "abort_wait", "manage_stack"),
            open_world_hint=False,
        ),
    )


def _check(tool: Tool, arguments: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(tool.input_schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is not None:
        where = "".join(f"{part}: " for part in error.absolute_path)
        raise BadArgumentsError(tool.name, where, error.message, tool.input_schema)


def build_server(store: str | None) -> Server[Any]:
    """The MCP server for the journal at ``store`` (None: KITARU_STORE, else the active stack)."""
    tools = {tool.name: tool for tool in TOOLS}
    client = _LazyClient(store)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_describe(tool) for tool in TOOLS])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name, arguments = params.name, dict(params.arguments or {})
        try:
            tool = tools.get(name)
            if tool is None:
                raise KitaruUsageError(f"There is no tool '{name}'; use one of {', '.join(tools)}.")
            _check(tool, arguments)
            result = await anyio.to_thread.run_sync(
                lambda: shown(tool.call(client, store, arguments))
            )
        except Exception as exc:
            return tool_error(name, exc)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(result, default=str))],
            structured_content=result,
        )

    return Server(
        "kitaru",
        instructions=(
            "Inspect and manage kitaru executions recorded in one journal: list, get, "
            "follow, answer waits, resume, retry, cancel and replay; show the status and "
            "environment, preview a cleanup, and create or delete stacks."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def serve_stdio(store: str | None) -> None:
    """Serve over stdin and stdout until the other side closes stdin."""
    server = build_server(store)

    async def run() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(run)

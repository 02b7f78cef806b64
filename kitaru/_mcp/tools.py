"""The MCP tools: each one is a ``KitaruClient`` action, described by JSON schemas.

Nothing here knows the MCP library: a tool is a name, a description, the schemas of
its arguments and of its result, and a function of the client and the (already
validated) arguments. Resume, retry and replay run the execution on a thread of the
server's process and return as soon as it has started. The status, info, cleanup
preview and stack tools take the served store instead of a client: they answer
before a journal exists, and never create one.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kitaru._mcp import schemas as s
from kitaru._mcp.following import follow
from kitaru._redaction import REDACTED, redact_shown
from kitaru.client import Execution, KitaruClient
from kitaru.client._workspace import clean_preview, environment_info, workspace_state
from kitaru.errors import KitaruUsageError
from kitaru.mcp.server import manage_stack

__all__ = ["TOOLS", "Tool", "shown"]

Handler = Callable[[KitaruClient, dict[str, Any]], dict[str, Any]]
StoreHandler = Callable[[str | None, dict[str, Any]], dict[str, Any]]
"""A tool of the served store's location (None: KITARU_STORE, else the active stack)."""

# Keywords of ``ExecutionsClient.replay`` itself: a flow input by one of these names
# would be taken for the keyword.
_REPLAY_KEYWORDS = frozenset({"exec_id", "from_", "overrides", "background", "on_start"})
# Fields that could hold a credential; there is no server here, so they are normally null.
_SECRET_FIELDS = frozenset({"auth_token"})


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    run: Handler | None
    read_only: bool = False
    on_store: StoreHandler | None = None

    def call(
        self, client: Callable[[], KitaruClient], store: str | None, args: dict[str, Any]
    ) -> dict[str, Any]:
        """Run the tool on the served store: through its client, or given its location."""
        if self.on_store is not None:
            return self.on_store(store, args)
        assert self.run is not None, f"tool {self.name} has nothing to run"
        return self.run(client(), args)


def shown(value: Any) -> Any:
    """``value`` with secrets blanked from every string and credential fields emptied."""
    texts: list[str] = []
    _collect(value, texts)
    # One pass over all the text: the secrets are looked up once per result, not per
    # string. NUL never occurs in a secret, so no blank can run across two strings.
    blanked = redact_shown("\x00".join(texts)).split("\x00")
    if len(blanked) != len(texts):  # a string held a NUL of its own
        blanked = [redact_shown(text) for text in texts]
    return _rebuild(value, iter(blanked))


def _collect(value: Any, texts: list[str]) -> None:
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in _SECRET_FIELDS:
                _collect(item, texts)
    elif isinstance(value, list):
        for item in value:
            _collect(item, texts)


def _rebuild(value: Any, blanked: Iterator[str]) -> Any:
    if isinstance(value, str):
        return next(blanked)
    if isinstance(value, dict):
        return {
            key: (REDACTED if item is not None else None)
            if key in _SECRET_FIELDS
            else _rebuild(item, blanked)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_rebuild(item, blanked) for item in value]
    return value


def _started(execution: Execution) -> dict[str, Any]:
    return {
        "exec_id": execution.exec_id,
        "status": str(execution.status),
        "original_exec_id": execution.original_exec_id,
        "flow_name": execution.flow_name,
    }


def _list(client: KitaruClient, args: dict[str, Any]) -> dict[str, Any]:
    found = client.executions.list(
        flow=args.get("flow"), status=args.get("status"), limit=args.get("limit", 20)
    )
    return {"executions": [execution.to_dict() for execution in found]}


def _get(client: KitaruClient, args: dict[str, Any]) -> dict[str, Any]:
    return client.executions.get(args["exec_id"]).to_dict()


def _follow(client: KitaruClient, args: dict[str, Any]) -> dict[str, Any]:
    return follow(
        client,
        args["exec_id"],
        cursor=args.get("cursor", {}),
        source=args.get("source", "step"),
        checkpoint=args.get("checkpoint"),
        wait_seconds=float(args.get("wait_seconds", 0)),
        seen_status=args.get("seen_status"),
    )


def _answer(client: KitaruClient, args: dict[str, Any]) -> dict[str, Any]:
    return client.executions.input(
        args["exec_id"], wait=args.get("wait"), value=args["value"]
    ).to_dict()


def _abort(client: KitaruClient, args: dict[str, Any]) -> dict[str, Any]:
    return client.executions.abort_wait(args["exec_id"], wait=args.get("wait")).to_dict()


def _cancel(client: KitaruClient, args: dict[str, Any]) -> dict[str, Any]:
    return client.executions.cancel(args["exec_id"]).to_dict()


def _resume(client: KitaruClient, args: dict[str, Any]) -> dict[str, Any]:
    return _started(client.executions.resume(args["exec_id"], background=True))


def _retry(client: KitaruClient, args: dict[str, Any]) -> dict[str, Any]:
    return _started(client.executions.retry(args["exec_id"], background=True))


def _replay(client: KitaruClient, args: dict[str, Any]) -> dict[str, Any]:
    inputs: dict[str, Any] = args.get("flow_inputs", {})
    for name in inputs:
        if not name.isidentifier() or keyword.iskeyword(name) or name in _REPLAY_KEYWORDS:
            raise KitaruUsageError(
                f"flow_inputs names '{name}', which is not a parameter name a flow can "
                "have; give the flow's parameters by their names."
            )
    replayed = client.executions.replay(
        args["exec_id"],
        from_=args["from"],
        overrides=args.get("overrides"),
        background=True,
        **inputs,
    )
    return _started(replayed)


_FROM_OPTION = "kitaru-mcp --store"


def _status(store: str | None, args: dict[str, Any]) -> dict[str, Any]:
    del args
    return workspace_state(store, store_from=_FROM_OPTION)


def _info(store: str | None, args: dict[str, Any]) -> dict[str, Any]:
    return environment_info(
        store,
        store_from=_FROM_OPTION,
        all_packages=bool(args.get("all") or args.get("all_packages")),
        packages=args.get("packages"),
    )


def _clean_preview(store: str | None, args: dict[str, Any]) -> dict[str, Any]:
    return clean_preview(args.get("scope", "project"), store)


def _manage_stack(store: str | None, args: dict[str, Any]) -> dict[str, Any]:
    del store  # stacks are kept in the config dir, whichever store is served
    return manage_stack(**args)


def _args(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return s.obj(properties, required)


_EXEC = {"exec_id": s.EXECUTION_ID}
_WAIT_NAME = {
    "type": "string",
    "minLength": 1,
    "description": "Which wait: its name or call identity. Needed only when it waits at several.",
}

TOOLS: tuple[Tool, ...] = (
    Tool(
        "list_executions",
        "List executions of the journal, newest first, as `kitaru executions list -o json`.",
        _args(
            {
                "flow": {"type": "string", "description": "Only executions of this flow name."},
                "status": {"type": "string", "enum": list(s.STATUSES)},
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 500,
                    "default": 20,
                    "description": "At most this many (default 20).",
                },
            }
        ),
        s.EXECUTION_LIST,
        _list,
        read_only=True,
    ),
    Tool(
        "get_execution",
        "One execution: status, result or failure, every call, pending waits and the "
        "schema their input must match.",
        _args(_EXEC, "exec_id"),
        s.EXECUTION,
        _get,
        read_only=True,
    ),
    Tool(
        "follow_execution",
        "Lines an execution's checkpoints printed and logged (source 'step') or its "
        "lifecycle (source 'runner') past a cursor, with its status. With wait_seconds "
        f"(at most {s.MAX_FOLLOW_SECONDS:g}) it waits for a new line, a status other "
        "than seen_status, or the end. Call again with next_cursor until finished is true.",
        _args(
            {
                **_EXEC,
                "cursor": s.CURSOR,
                "source": {"type": "string", "enum": ["step", "runner"], "default": "step"},
                "checkpoint": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Only this checkpoint's lines (name or call identity).",
                },
                "wait_seconds": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": s.MAX_FOLLOW_SECONDS,
                    "default": 0,
                },
                "seen_status": {
                    "type": "string",
                    "enum": list(s.STATUSES),
                    "description": "The status last seen; a different one ends the wait.",
                },
            },
            "exec_id",
        ),
        s.FOLLOWED,
        _follow,
        read_only=True,
    ),
    Tool(
        "answer_wait",
        "Give a waiting execution its input; the value is checked against the wait's "
        "schema (get_execution shows it). A process still waiting there goes on by "
        "itself; otherwise call resume_execution.",
        _args(
            {**_EXEC, "value": {"description": "The input, as JSON."}, "wait": _WAIT_NAME},
            "exec_id",
            "value",
        ),
        s.EXECUTION,
        _answer,
    ),
    Tool(
        "abort_wait",
        "Refuse a pending wait: the execution ends cancelled.",
        _args({**_EXEC, "wait": _WAIT_NAME}, "exec_id"),
        s.EXECUTION,
        _abort,
    ),
    Tool(
        "resume_execution",
        "Continue an interrupted execution, or a waiting one whose input was given, in "
        "the background in this server's process; returns at once.",
        _args(_EXEC, "exec_id"),
        s.STARTED,
        _resume,
    ),
    Tool(
        "retry_execution",
        "Continue a failed execution in the background in this server's process; its "
        "failed calls run again, completed ones are reused. Returns at once.",
        _args(_EXEC, "exec_id"),
        s.STARTED,
        _retry,
    ),
    Tool(
        "cancel_execution",
        "Cancel a running or waiting execution (a live process stops it at its next durable call).",
        _args(_EXEC, "exec_id"),
        s.EXECUTION,
        _cancel,
    ),
    Tool(
        "replay_execution",
        "Start a new execution from a finished one: calls before checkpoint 'from' reuse "
        "their recorded outputs, the rest run again. Runs in the background in this "
        "server's process; returns at once.",
        _args(
            {
                **_EXEC,
                "from": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The checkpoint (name or call identity) to run again from.",
                },
                "overrides": {
                    "type": "object",
                    "description": "Recorded outputs to replace: "
                    '{"checkpoint.<name or call identity>": value}.',
                },
                "flow_inputs": {
                    "type": "object",
                    "description": "Flow arguments to change: {parameter name: value}.",
                },
            },
            "exec_id",
            "from",
        ),
        s.STARTED,
        _replay,
    ),
    Tool(
        "kitaru_status",
        "Where executions run and are recorded: the stack, its store (a journal file, or "
        "a masked PostgreSQL URL), how many executions it holds by status, and the config "
        "dir; as `kitaru status -o json`.",
        _args({}),
        s.STATUS,
        None,
        read_only=True,
        on_store=_status,
    ),
    Tool(
        "kitaru_info",
        "kitaru_status plus Python, platform and package versions, as `kitaru info -o "
        "json`; all (or all_packages) adds every installed package.",
        _args(
            {
                "all": {"type": "boolean", "default": False},
                "all_packages": {"type": "boolean", "default": False},
                "packages": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "description": "Also these packages' versions.",
                },
            }
        ),
        s.INFO,
        None,
        read_only=True,
        on_store=_info,
    ),
    Tool(
        "kitaru_clean_preview",
        "What `kitaru clean <scope>` would remove, as `kitaru clean <scope> --dry-run -o "
        "json`; removes nothing. Scope 'project' is not available here (kitaru keeps no "
        "per-project folder); 'global' and 'all' cover the journal and the config dir.",
        _args({"scope": {"type": "string", "enum": ["project", "global", "all"]}}),
        s.CLEAN_PREVIEW,
        None,
        read_only=True,
        on_store=_clean_preview,
    ),
    Tool(
        "manage_stack",
        "Create or delete a stack. Stacks here run flows in the serving process's "
        "environment and record them in a store: give store (sqlite:///PATH or "
        "postgresql://...) to create one there, else it gets a file in the config dir. "
        "Remote stack types and their fields are not available.",
        _args(
            {
                "action": {"type": "string", "enum": ["create", "delete"]},
                "name": {"type": "string", "minLength": 1},
                "activate": {"type": "boolean", "default": True},
                "recursive": {"type": "boolean", "default": False},
                "force": {"type": "boolean", "default": False},
                "stack_type": {"type": "string", "default": "local"},
                "store": {"type": "string", "minLength": 1},
                **{field: {"type": "string"} for field in s.REMOTE_STACK_FIELDS},
                "extra": {"type": "object"},
                "async_mode": {"type": "boolean", "default": False},
                "verify": {"type": "boolean", "default": True},
            },
            "action",
            "name",
        ),
        s.STACK_CHANGE,
        None,
        on_store=_manage_stack,
    ),
)

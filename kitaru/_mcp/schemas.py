"""JSON schemas of what the MCP tools take and give back.

An execution is described exactly as ``kitaru executions get -o json`` prints it
(``Execution.to_dict()``); the schema pins the fields a caller relies on and lets
new ones through, so adding a field to the description never breaks a client.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CLEAN_PREVIEW",
    "CURSOR",
    "EXECUTION",
    "EXECUTION_ID",
    "EXECUTION_LIST",
    "FOLLOWED",
    "INFO",
    "MAX_FOLLOW_SECONDS",
    "REMOTE_STACK_FIELDS",
    "STACK_CHANGE",
    "STARTED",
    "STATUS",
    "STATUSES",
    "obj",
]

STATUSES = ("running", "waiting", "completed", "failed", "cancelled")
MAX_FOLLOW_SECONDS = 60.0
"""The longest one ``follow_execution`` call waits: MCP clients time requests out."""


def obj(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """An object schema; unknown properties are refused unless ``extra`` says otherwise."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }
    schema.update(extra)
    return schema


_TEXT = {"type": "string"}
_MAYBE_TEXT = {"type": ["string", "null"]}
_STATUS = {"type": "string", "enum": list(STATUSES)}

EXECUTION_ID = {
    "type": "string",
    "minLength": 1,
    "description": "An execution id, or an unambiguous prefix of one.",
}

_PENDING_WAIT = obj(
    {
        "wait_id": _TEXT,
        "name": _TEXT,
        "question": _MAYBE_TEXT,
        "schema": {"type": ["object", "null"]},
        "schema_type": _MAYBE_TEXT,
        "metadata": {"type": "object"},
        "entered_waiting_at": _MAYBE_TEXT,
        "input_received": {"type": "boolean"},
    },
    ("wait_id", "name", "schema", "input_received"),
    additionalProperties=True,
)

EXECUTION = obj(
    {
        "exec_id": _TEXT,
        "flow_name": _TEXT,
        "status": _STATUS,
        "started_at": _MAYBE_TEXT,
        "ended_at": _MAYBE_TEXT,
        "failure": {"type": ["object", "null"]},
        "original_exec_id": _MAYBE_TEXT,
        "interrupted": {"type": "boolean"},
        "flow_id": _TEXT,
        "status_reason": _MAYBE_TEXT,
        "checkpoints": {"type": "array", "items": {"type": "object"}},
        "llm_calls": {"type": "array", "items": {"type": "object"}},
        "metadata": {"type": "object"},
        "pending_wait": {"anyOf": [_PENDING_WAIT, {"type": "null"}]},
        "pending_waits": {"type": "array", "items": _PENDING_WAIT},
        "artifacts": {"type": "array", "items": {"type": "object"}},
        "result": {"description": "The flow's return value, once it completed."},
    },
    ("exec_id", "flow_name", "status", "failure", "interrupted", "checkpoints", "pending_waits"),
    additionalProperties=True,
    description="An execution as `kitaru executions get -o json` prints it.",
)

EXECUTION_LIST = obj(
    {"executions": {"type": "array", "items": EXECUTION}},
    ("executions",),
)

STARTED = obj(
    {
        "exec_id": _TEXT,
        "status": _STATUS,
        "original_exec_id": _MAYBE_TEXT,
        "flow_name": _TEXT,
    },
    ("exec_id", "status", "original_exec_id", "flow_name"),
    description=(
        "The execution this server started running in the background; follow it with "
        "follow_execution."
    ),
)

CURSOR = {
    "type": "object",
    "additionalProperties": {"type": "integer", "minimum": 0},
    "description": (
        "How many lines of each checkpoint attempt were already seen: pass back the "
        "next_cursor of the previous call ({} or leave it out to start from the first line)."
    ),
}

_LINE = obj(
    {
        "timestamp": _TEXT,
        "level": _TEXT,
        "source": _TEXT,
        "checkpoint": _MAYBE_TEXT,
        "attempt": {"type": ["integer", "null"]},
        "message": _TEXT,
    },
    ("timestamp", "level", "source", "checkpoint", "attempt", "message"),
)

FOLLOWED = obj(
    {
        "exec_id": _TEXT,
        "status": _STATUS,
        "finished": {
            "type": "boolean",
            "description": "The execution has ended; no line will follow these.",
        },
        "lines": {"type": "array", "items": _LINE},
        "next_cursor": CURSOR,
        "timed_out": {
            "type": "boolean",
            "description": "wait_seconds ran out with no new line and no change of status.",
        },
    },
    ("exec_id", "status", "finished", "lines", "next_cursor", "timed_out"),
)


# What ``kitaru status``/``info`` print: the fields pinned here are there for every
# store; a PostgreSQL store adds ``store``, ``store_backend`` and ``sqlite_only``.
_STATUS_FIELDS: dict[str, Any] = {
    "connection": _TEXT,
    "stack": _MAYBE_TEXT,
    "journal": _MAYBE_TEXT,
    "journal_from": _TEXT,
    "journal_exists": {"type": "boolean"},
    "journal_executions": {"type": "integer", "minimum": 0},
    "journal_by_status": {"type": "object", "additionalProperties": {"type": "integer"}},
    "config_dir": _TEXT,
    "config_dir_from": _TEXT,
    "config_dir_exists": {"type": "boolean"},
    "kitaru_version": _MAYBE_TEXT,
    "store": _TEXT,
    "store_backend": _TEXT,
    "sqlite_only": {"type": "array", "items": _TEXT},
}
_STATUS_REQUIRED = (
    "connection",
    "stack",
    "journal",
    "journal_exists",
    "journal_executions",
    "config_dir",
)

STATUS = obj(_STATUS_FIELDS, _STATUS_REQUIRED, additionalProperties=True)

INFO = obj(
    {
        **_STATUS_FIELDS,
        "python_version": _TEXT,
        "python": _TEXT,
        "platform": _TEXT,
        "sqlite_version": _TEXT,
        "packages": {"type": "object", "additionalProperties": _MAYBE_TEXT},
    },
    (*_STATUS_REQUIRED, "python_version", "packages"),
    additionalProperties=True,
)

CLEAN_PREVIEW = obj(
    {
        "scope": _TEXT,
        "removed": {"type": "array", "maxItems": 0},
        "would_remove": {"type": "array", "items": _TEXT},
        "dry_run": {"const": True},
        "backup": _MAYBE_TEXT,
    },
    ("scope", "removed", "would_remove", "dry_run", "backup"),
)

REMOTE_STACK_FIELDS = (
    "artifact_store",
    "sandbox",
    "container_registry",
    "cluster",
    "region",
    "subscription_id",
    "resource_group",
    "workspace",
    "execution_role",
    "namespace",
    "credentials",
)
"""``manage_stack`` fields of Kitaru's remote stack types (each refused here)."""

_STACK_CREATED = obj(
    {
        "id": _TEXT,
        "name": _TEXT,
        "is_active": {"type": "boolean"},
        "store": _TEXT,
        "previous_active_stack": _MAYBE_TEXT,
        "components_created": {"type": "array", "items": _TEXT},
        "stack_type": _TEXT,
    },
    ("id", "name", "is_active", "store", "stack_type"),
    additionalProperties=True,
)
_STACK_DELETED = obj(
    {
        "deleted_stack": _TEXT,
        "components_deleted": {"type": "array", "items": _TEXT},
        "new_active_stack": _TEXT,
        "recursive": {"type": "boolean"},
    },
    ("deleted_stack", "new_active_stack"),
)
STACK_CHANGE: dict[str, Any] = {"type": "object", "anyOf": [_STACK_CREATED, _STACK_DELETED]}

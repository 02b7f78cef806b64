"""JSON schemas of what the MCP tools take and give back.

An execution is described exactly as ``kitaru executions get -o json`` prints it
(``Execution.to_dict()``); the schema pins the fields a caller relies on and lets
new ones through, so adding a field to the description never breaks a client.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CURSOR",
    "EXECUTION",
    "EXECUTION_ID",
    "EXECUTION_LIST",
    "FOLLOWED",
    "MAX_FOLLOW_SECONDS",
    "STARTED",
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

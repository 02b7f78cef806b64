"""``kitaru.mcp.server``: the MCP tools as plain functions a program can call.

Each function does what the ``kitaru-mcp`` tool of the same purpose does, through
``KitaruClient`` on the configured journal, and returns JSON-ready builtins (dicts,
lists, strings), with secrets blanked as the MCP server blanks them. Errors are
kitaru's own (``KitaruUsageError`` for bad arguments, ``KitaruStateError`` for an
execution in the wrong state), each saying what to do next.

Resume, retry and replay start the execution on a background thread of this process
and return at once; the returned ``status`` is the one it had when it started.

The MCP server itself is the ``kitaru-mcp`` command (``kitaru._mcp``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Literal, NoReturn, cast

from kitaru._redaction import redact_shown
from kitaru.errors import KitaruFeatureNotAvailableError, KitaruUsageError

__all__ = [
    "get_execution_logs",
    "kitaru_artifacts_get",
    "kitaru_artifacts_list",
    "kitaru_clean_preview",
    "kitaru_executions_cancel",
    "kitaru_executions_get",
    "kitaru_executions_input",
    "kitaru_executions_latest",
    "kitaru_executions_list",
    "kitaru_executions_replay",
    "kitaru_executions_retry",
    "kitaru_executions_run",
    "kitaru_info",
    "kitaru_memory_compact",
    "kitaru_memory_compaction_log",
    "kitaru_memory_delete",
    "kitaru_memory_get",
    "kitaru_memory_history",
    "kitaru_memory_list",
    "kitaru_memory_purge",
    "kitaru_memory_purge_scope",
    "kitaru_memory_set",
    "kitaru_stacks_list",
    "kitaru_status",
    "manage_stack",
]


def _client() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient()


def _shown(value: Any) -> Any:
    """``value`` with every string passed through the journal's display redaction."""
    if isinstance(value, str):
        return redact_shown(value)
    if isinstance(value, dict):
        return {key: _shown(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(item) for item in value]
    return value


def _dump(entry: Any) -> Any:
    return None if entry is None else _shown(entry.model_dump(mode="json"))


def _on_stack(execution: Any, stack: str | None) -> bool:
    return stack is None or execution.stack_name == stack


# -- executions ---------------------------------------------------------------------


def kitaru_executions_list(
    status: str | None = None,
    flow: str | None = None,
    stack: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Executions, newest first, filtered by status, flow name and stack."""
    found = _client().executions.list(flow=flow, status=status)
    chosen = [e for e in found if _on_stack(e, stack)][:limit]
    return [_shown(e.to_dict(payloads=False)) for e in chosen]


def kitaru_executions_get(exec_id: str) -> dict[str, Any]:
    """One execution in full: its calls, model calls, artifacts and result."""
    return cast(dict[str, Any], _shown(_client().executions.get(exec_id).to_dict()))


def kitaru_executions_latest(
    status: str | None = None, flow: str | None = None, stack: str | None = None
) -> dict[str, Any]:
    """The newest execution matching the filters."""
    if stack is None:
        return cast(
            dict[str, Any],
            _shown(_client().executions.latest(flow=flow, status=status).to_dict()),
        )
    found = kitaru_executions_list(status=status, flow=flow, stack=stack, limit=1)
    if not found:
        raise KitaruUsageError(
            f"No execution ran on stack {stack!r} with these filters; list them with "
            "kitaru_executions_list() to see which stacks were used."
        )
    return kitaru_executions_get(found[0]["exec_id"])


def get_execution_logs(
    exec_id: str, checkpoint: str | None = None, source: str = "step", limit: int = 200
) -> str:
    """What checkpoints printed and logged, one line each: ``[call] LEVEL message``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise KitaruUsageError(f"limit must be a whole number >= 1, got {limit!r}.")
    entries = _client().executions.logs(exec_id, checkpoint=checkpoint, source=source, limit=limit)
    if not entries:
        return f"No log entries for execution {exec_id}."
    lines = [f"[{e.checkpoint}] {e.level} {e.message}" for e in entries]
    return redact_shown("\n".join(lines))


def kitaru_executions_run(
    target: str, args: dict[str, Any] | None = None, stack: str | None = None
) -> dict[str, Any]:
    """Start the flow ``module:flow`` or ``path/to/file.py:flow`` with ``args`` as its
    keyword arguments; return at once with the new execution's id and status."""
    flow = _load_flow(target)
    if args is not None and not isinstance(args, dict):
        raise KitaruUsageError("args must be an object of the flow's keyword arguments.")
    options: dict[str, Any] = {"background": True}
    if stack is not None:
        options["stack"] = stack
    handle = flow.run(**(args or {}), **options)
    execution = _client().executions.get(handle.exec_id)
    return {
        "target": target,
        "exec_id": handle.exec_id,
        "flow_name": execution.flow_name,
        "status": str(execution.status),
        "stack": execution.stack_name,
    }


def _load_flow(target: str) -> Any:
    from kitaru._flow import Flow

    where, _, name = target.rpartition(":") if isinstance(target, str) else ("", "", "")
    if not where or not name.isidentifier():
        raise KitaruUsageError(
            f"target must be 'module:flow' or 'path/to/file.py:flow', got {target!r}."
        )
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise KitaruUsageError(f"No file {where}; give the path of the flow's file.")
        # Imported by its own name from its folder, so a resume can import it again.
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        where = path.stem
    try:
        module = importlib.import_module(where)
    except ImportError as exc:
        raise KitaruUsageError(
            f"Cannot import {where!r} ({exc}); check the module name and the folder "
            "this process runs from."
        ) from None
    flow = getattr(module, name, None)
    if not isinstance(flow, Flow):
        raise KitaruUsageError(
            f"{target!r} is not a @flow (found {type(flow).__name__}); name a function "
            "decorated with @flow."
        )
    return flow


def kitaru_executions_cancel(exec_id: str) -> dict[str, Any]:
    """Cancel an execution; return it as it stands afterwards."""
    return cast(dict[str, Any], _shown(_client().executions.cancel(exec_id).to_dict()))


def kitaru_executions_input(exec_id: str, wait: str, value: Any) -> dict[str, Any]:
    """Answer the execution's wait named ``wait`` with ``value``; return the execution."""
    return cast(
        dict[str, Any],
        _shown(_client().executions.input(exec_id, wait=wait, value=value).to_dict()),
    )


def kitaru_executions_retry(exec_id: str) -> dict[str, Any]:
    """Run a failed execution again from its failed call; return it as it started."""
    return cast(
        dict[str, Any], _shown(_client().executions.retry(exec_id, background=True).to_dict())
    )


def kitaru_executions_replay(
    exec_id: str,
    from_: str,
    overrides: dict[str, Any] | None = None,
    flow_inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a new execution replaying ``exec_id`` from the call ``from_``."""
    if flow_inputs is not None and not isinstance(flow_inputs, dict):
        raise KitaruUsageError("flow_inputs must be an object of the flow's arguments.")
    execution = _client().executions.replay(
        exec_id, from_=from_, overrides=overrides, background=True, **(flow_inputs or {})
    )
    return {"available": True, "operation": "replay", "execution": _shown(execution.to_dict())}


# -- artifacts ------------------------------------------------------------------------


def _artifact(ref: Any, value: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "artifact_id": ref.artifact_id,
        "exec_id": ref.exec_id,
        "name": ref.name,
        "kind": ref.kind,
        "origin": ref.origin,
        "producing_call": ref.producing_call,
        "attempt": ref.attempt,
        "tags": list(ref.tags),
        "save_type": ref.save_type,
        "metadata": ref.metadata,
    }
    if value:
        import msgspec

        data["value"] = msgspec.to_builtins(ref.load(), builtin_types=(), str_keys=True)
    return cast(dict[str, Any], _shown(data))


def kitaru_artifacts_list(
    exec_id: str,
    name: str | None = None,
    kind: str | None = None,
    producing_call: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """An execution's artifacts (without their values), filtered."""
    refs = _client().artifacts.list(
        exec_id, name=name, kind=kind, producing_call=producing_call, limit=limit
    )
    return [_artifact(ref, value=False) for ref in refs]


def kitaru_artifacts_get(artifact_id: str) -> dict[str, Any]:
    """One artifact with its value."""
    return _artifact(_client().artifacts.get(artifact_id), value=True)


# -- memories -------------------------------------------------------------------------

ScopeType = Literal["namespace", "flow", "execution"]


def kitaru_memory_list(
    scope: str, scope_type: ScopeType, prefix: str | None = None
) -> list[dict[str, Any]]:
    """The live keys of a scope (newest version of each)."""
    entries = _client().memories.list(scope=scope, scope_type=scope_type, prefix=prefix)
    return [_dump(entry) for entry in entries]


def kitaru_memory_get(
    key: str, scope: str, scope_type: ScopeType, version: int | None = None
) -> dict[str, Any] | None:
    """A key's entry and value (a given ``version``, else the newest); None if absent."""
    memories = _client().memories
    entry = memories.get(key, scope=scope, scope_type=scope_type, version=version)
    if entry is None:
        return None
    import msgspec

    value = memories.value(key, scope=scope, scope_type=scope_type, version=entry.version)
    data = _dump(entry)
    data["value"] = _shown(msgspec.to_builtins(value, builtin_types=(), str_keys=True))
    return cast(dict[str, Any], data)


def kitaru_memory_set(key: str, value: Any, scope: str, scope_type: ScopeType) -> dict[str, Any]:
    """Write a new version of a key; return its entry."""
    entry = _client().memories.set(key, value, scope=scope, scope_type=scope_type)
    return cast(dict[str, Any], _dump(entry))


def kitaru_memory_delete(key: str, scope: str, scope_type: ScopeType) -> dict[str, Any] | None:
    """Delete a key (a tombstone version); None if it did not exist."""
    return cast(
        "dict[str, Any] | None",
        _dump(_client().memories.delete(key, scope=scope, scope_type=scope_type)),
    )


def kitaru_memory_history(key: str, scope: str, scope_type: ScopeType) -> list[dict[str, Any]]:
    """Every version of a key, tombstones included, newest first."""
    entries = _client().memories.history(key, scope=scope, scope_type=scope_type)
    return [_dump(entry) for entry in entries]


def kitaru_memory_purge(
    key: str, scope: str, scope_type: ScopeType, keep: int | None = None
) -> dict[str, Any]:
    """Physically delete all but the newest ``keep`` versions of a key (None: all)."""
    result = _client().memories.purge(key, scope=scope, scope_type=scope_type, keep=keep)
    return cast(dict[str, Any], _dump(result))


def kitaru_memory_purge_scope(
    scope: str, scope_type: ScopeType, keep: int | None = None, include_deleted: bool = False
) -> dict[str, Any]:
    """Purge old versions of every key of a scope."""
    result = _client().memories.purge_scope(
        scope=scope, scope_type=scope_type, keep=keep, include_deleted=include_deleted
    )
    return cast(dict[str, Any], _dump(result))


def kitaru_memory_compact(  # noqa: PLR0917  (the documented tool signature)
    scope: str,
    scope_type: ScopeType,
    key: str | None = None,
    keys: list[str] | None = None,
    source_mode: Literal["current", "history"] = "current",
    target_key: str | None = None,
    instruction: str | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """Summarise memory values with a model and write the summary as a new version."""
    result = _client().memories.compact(
        scope=scope,
        scope_type=scope_type,
        key=key,
        keys=keys,
        source_mode=source_mode,
        target_key=target_key,
        instruction=instruction,
        model=model,
        max_tokens=max_tokens,
    )
    return cast(dict[str, Any], _dump(result))


def kitaru_memory_compaction_log(scope: str, scope_type: ScopeType) -> list[dict[str, Any]]:
    """The scope's compactions and purges, newest first."""
    records = _client().memories.compaction_log(scope=scope, scope_type=scope_type)
    return [_dump(record) for record in records]


# -- stacks ---------------------------------------------------------------------------


def kitaru_stacks_list() -> list[dict[str, Any]]:
    """The stacks executions can run on, the active one marked ``is_active``."""
    from kitaru._stacks import list_stacks

    return [cast(dict[str, Any], _shown(stack.to_dict())) for stack in list_stacks()]


def manage_stack(  # noqa: PLR0917  (the documented tool signature)
    action: Literal["create", "delete"],
    name: str,
    activate: bool = True,
    recursive: bool = False,
    force: bool = False,
    stack_type: str = "local",
    artifact_store: str | None = None,
    sandbox: str | None = None,
    container_registry: str | None = None,
    cluster: str | None = None,
    region: str | None = None,
    subscription_id: str | None = None,
    resource_group: str | None = None,
    workspace: str | None = None,
    execution_role: str | None = None,
    namespace: str | None = None,
    credentials: str | None = None,
    extra: dict[str, Any] | None = None,
    async_mode: bool = False,
    verify: bool = True,
    store: str | None = None,
) -> dict[str, Any]:
    """Create or delete a stack. Stacks here are local: they run flows in the calling
    process and record them in a store, ``store`` (a ``sqlite:///PATH`` or
    ``postgresql://`` URL; default: a file of its own in the config dir). The remote
    fields (cluster, region, registries, ...) belong to remote stack types, which this
    version does not have. ``async_mode`` and ``verify`` change nothing: a local stack
    is ready when this returns, and has no remote resources to verify."""
    del async_mode, verify
    from kitaru._stacks import create_stack, current_stack, delete_stack, list_stacks

    remote = {
        "artifact_store": artifact_store,
        "sandbox": sandbox,
        "container_registry": container_registry,
        "cluster": cluster,
        "region": region,
        "subscription_id": subscription_id,
        "resource_group": resource_group,
        "workspace": workspace,
        "execution_role": execution_role,
        "namespace": namespace,
        "credentials": credentials,
        "extra": extra,
    }
    given = sorted(key for key, value in remote.items() if value is not None)
    if stack_type != "local" or given:
        named = [f"stack_type={stack_type!r}"] if stack_type != "local" else []
        what = ", ".join([*named, *(f"{key}=..." for key in given)])
        raise KitaruFeatureNotAvailableError(
            f"manage_stack({what}) is not available: every stack here runs flows in the "
            "current process and records them in a journal store; there are no remote "
            "stacks or components. Create a local stack with a store instead: "
            "manage_stack('create', NAME, store='sqlite:///PATH') or "
            "`kitaru stack create NAME --store sqlite:///PATH`."
        )
    if action == "create":
        previous = current_stack().name
        info = create_stack(name, activate=activate, store=store)
        return cast(
            dict[str, Any],
            _shown(
                {
                    **info.to_dict(),
                    "previous_active_stack": previous,
                    "components_created": [],
                    "stack_type": "local",
                }
            ),
        )
    if action == "delete":
        if store is not None:
            raise KitaruUsageError(
                "store is for action='create'; delete a stack by its name or id alone."
            )
        wanted = name.strip() if isinstance(name, str) else name
        found = next((s for s in list_stacks() if wanted in (s.name, s.id)), None)
        delete_stack(name, recursive=recursive, force=force)
        return {
            "deleted_stack": found.name if found is not None else name,
            "components_deleted": [],
            "new_active_stack": current_stack().name,
            "recursive": recursive,
        }
    raise KitaruUsageError(f"action must be 'create' or 'delete', got {action!r}.")


# -- status, info and cleanup -------------------------------------------------------


def kitaru_status() -> dict[str, Any]:
    """Where executions run and are recorded: the same data as ``kitaru status -o json``."""
    from kitaru.client._workspace import workspace_state

    return cast(dict[str, Any], _shown(workspace_state()))


def kitaru_info(
    all: bool = False,
    all_packages: bool = False,
    packages: list[str] | None = None,
) -> dict[str, Any]:
    """The status with Python, platform and package versions, as ``kitaru info -o json``;
    ``all`` (or ``all_packages``) adds every installed package."""
    from kitaru.client._workspace import environment_info

    # ``all`` is the documented keyword, so the builtin is out of reach by that name.
    if packages is not None and (
        isinstance(packages, str) or any(not isinstance(p, str) for p in packages)
    ):
        raise KitaruUsageError(
            f"packages must be a list of package names, got {packages!r}; e.g. packages=['openai']."
        )
    state = environment_info(all_packages=all or all_packages, packages=packages)
    return cast(dict[str, Any], _shown(state))


def kitaru_clean_preview(
    scope: Literal["project", "global", "all"] = "project",
) -> dict[str, Any]:
    """What ``kitaru clean <scope>`` would remove, as ``kitaru clean <scope> --dry-run
    -o json`` prints it. It only reads: nothing is removed. ``project`` has no
    counterpart here (kitaru keeps no per-project folder) and raises, as the CLI does."""
    from kitaru.client._workspace import clean_preview

    return cast(dict[str, Any], _shown(clean_preview(scope)))


# -- what this version does not have ----------------------------------------------------

_SERVER = (
    "the MCP server is the `kitaru-mcp` command (pip install 'kitaru[mcp]'); this module "
    "holds its tools as plain functions, to call directly."
)
_NOT_HERE = {
    "mcp": _SERVER,
    "main": _SERVER,
    "kitaru_start_local_server": (
        "there is no Kitaru server to start: executions run in the calling process and "
        "the journal is a local file (KITARU_STORE). Call the functions of this module "
        "directly, or browse executions with `kitaru ui`."
    ),
    "kitaru_stop_local_server": (
        "there is no Kitaru server to stop: executions run in the calling process. "
        "Stop a dashboard started with `kitaru ui` by ending that process."
    ),
}


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)  # dunder probes (copy, pickle, doctest) stay normal
    reason = _NOT_HERE.get(name)
    if reason is None:
        raise AttributeError(
            f"module 'kitaru.mcp.server' has no attribute {name!r}; its tools are "
            f"{', '.join(__all__)}."
        )
    raise KitaruFeatureNotAvailableError(f"kitaru.mcp.server.{name} is not available: {reason}")

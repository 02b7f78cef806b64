"""``kitaru.memory``: durable, versioned key-value memory in typed scopes.

A memory entry lives under ``scope_type`` (``namespace``, ``flow`` or ``execution``),
``scope`` and ``key``. Every write adds a version; a delete adds a tombstone version,
so ``history()`` shows everything that happened to a key. Only
``KitaruClient().memories.purge(...)`` removes versions physically.

In a flow body each operation is a durable call: on resume a completed read returns
what it read then, and a completed write is not written again. Inside a checkpoint
memory is refused (a checkpoint can be reused without running its body, which would
lose writes and serve stale reads). Outside a flow, ``configure(scope=...)`` first::

    from kitaru import memory

    memory.configure(scope="repo_docs", scope_type="namespace")
    memory.set("style/release_notes", {"tone": "concise"})
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Literal, cast

import msgspec

from kitaru._stores import open_store
from kitaru.errors import KitaruContextError, KitaruError, KitaruStateError, KitaruUsageError
from kitaru.journal.store import MemoryRow, MemoryWrite, Store
from kitaru.runtime.arguments import digest_arguments
from kitaru.runtime.boundary import execute, reserve
from kitaru.runtime.context import CallScope, ExecutionContext, current_call, current_execution
from kitaru.runtime.handles import resolve_handles
from kitaru.runtime.values import UnencodableValueError, decode_value, encode_value

__all__ = [
    "CompactResult",
    "CompactionRecord",
    "MemoryEntry",
    "MemoryScopeInfo",
    "MemoryScopeType",
    "PurgeResult",
    "configure",
    "delete",
    "get",
    "history",
    "list",
    "set",
]

MemoryScopeType = Literal["namespace", "flow", "execution"]

_list = builtins.list  # ``list`` below is the public memory.list()
_IDENTIFIER = re.compile(r"^[A-Za-z0-9._\-/]+$")
_FLOW_ID = re.compile(r"^[A-Za-z_][\w.]*:(?:[\w.<>]+\.)?(?P<name>[A-Za-z_]\w*)$")
_SCOPE_TYPES: tuple[MemoryScopeType, ...] = ("namespace", "flow", "execution")
RESERVED_PREFIX = "_compaction/"
"""Keys under this prefix are kept for maintenance records; user writes are refused."""
ARTIFACT_PREFIX = "memory:"
"""``MemoryEntry.artifact_id`` is this prefix and the version's row id."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, _list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Model:
    """What documented programs use of a model: ``model_dump(mode=...)``."""

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]:
        data: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return cast(dict[str, Any], _jsonable(data)) if mode == "json" else data


@dataclasses.dataclass(frozen=True)
class MemoryEntry(_Model):
    """One stored version of a memory key (its value is read with ``get``)."""

    key: str
    value_type: str
    """The value's type name (``dict``, ``str``, ...); ``NoneType`` for a tombstone."""
    version: int
    scope: str
    scope_type: MemoryScopeType
    created_at: dt.datetime
    is_deleted: bool
    artifact_id: str
    """``KitaruClient().artifacts.get(artifact_id).load()`` gives this version's value."""
    execution_id: str | None
    """The execution whose flow body wrote this version; None for a write from outside."""
    flow_id: str | None = None
    """Flows are identified by name here, so this is the flow's name."""
    flow_name: str | None = None


@dataclasses.dataclass(frozen=True)
class MemoryScopeInfo(_Model):
    """A scope that holds memory, with how many live keys it has."""

    scope: str
    scope_type: MemoryScopeType
    entry_count: int


@dataclasses.dataclass(frozen=True)
class PurgeResult(_Model):
    """What a purge removed."""

    versions_deleted: int
    keys_affected: int
    scope: str
    scope_type: MemoryScopeType


@dataclasses.dataclass(frozen=True)
class CompactionRecord(_Model):
    """One maintenance operation (a compaction or a purge), as the audit log keeps it."""

    operation: Literal["compact", "purge"]
    scope: str
    scope_type: MemoryScopeType
    timestamp: dt.datetime
    source_keys: _list[str]
    source_versions: _list[int]
    target_key: str | None
    target_version: int | None
    instruction: str | None
    model: str | None
    source_mode: Literal["current", "history"] | None
    keys_affected: int
    versions_deleted: int
    keep: int | None


@dataclasses.dataclass(frozen=True)
class CompactResult(_Model):
    """What a compaction wrote: the summary's entry, and its audit record."""

    entry: MemoryEntry
    sources_read: int
    scope: str
    scope_type: MemoryScopeType
    compaction_record: CompactionRecord


@dataclasses.dataclass(frozen=True)
class Scope:
    """A typed scope: the bucket a memory key lives in."""

    scope: str
    scope_type: MemoryScopeType


# -- validation ----------------------------------------------------------------------


def check_identifier(value: Any, kind: str, *, reserved_ok: bool = False) -> str:
    """A key, scope or prefix, stripped; refused unless it fits the allowed characters."""
    if not isinstance(value, str) or not value.strip():
        raise KitaruUsageError(
            f"Memory {kind} must be a non-empty string, got {value!r}. Pass a name such as "
            "'preferences/theme'."
        )
    normalized = value.strip()
    if not _IDENTIFIER.fullmatch(normalized):
        raise KitaruUsageError(
            f"Memory {kind} {normalized!r} may only contain letters, numbers, '.', '_', '-' "
            "and '/' (no colons, except in a flow id given as a 'flow' scope); rename it."
        )
    if kind == "key" and not reserved_ok and normalized.startswith(RESERVED_PREFIX):
        raise KitaruUsageError(
            f"Memory keys starting with '{RESERVED_PREFIX}' are reserved for maintenance "
            "records; choose another key."
        )
    return normalized


def check_scope_type(value: Any) -> MemoryScopeType:
    normalized = str(value).strip().lower() if isinstance(value, str) else None
    if normalized not in _SCOPE_TYPES:
        raise KitaruUsageError(
            f"Memory scope_type must be 'namespace', 'flow' or 'execution', got {value!r}."
        )
    return normalized


def check_version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KitaruUsageError(f"Memory version must be a whole number >= 1, got {value!r}.")
    return value


def flow_scope_name(scope: Any) -> Any:
    """The flow scope a flow id (``module:QualName``, ``Execution.flow_id``) names.

    A flow's memory scope is its name, as Kitaru documents; its id also names the
    module, which keeps two flows of one name apart among executions. Programs
    written for Kitaru pass ``execution.flow_id`` as a flow scope, so that form is
    accepted and means the flow's name. Anything else is returned as given.
    """
    if isinstance(scope, str):
        match = _FLOW_ID.fullmatch(scope.strip())
        if match is not None:
            return match["name"]
    return scope


def make_scope(scope: Any, scope_type: Any) -> Scope:
    kind = check_scope_type(scope_type)
    if kind == "flow":
        scope = flow_scope_name(scope)
    return Scope(check_identifier(scope, "scope"), kind)


def encode_memory_value(value: Any, what: str) -> bytes:
    """Encode a value the way checkpoint outputs are encoded, or say what to store instead."""
    try:
        return encode_value(value)
    except UnencodableValueError as exc:
        raise KitaruUsageError(
            f"{what} was given {exc}. Store builtins, dataclasses, msgspec Structs or "
            "pydantic models (module-level classes), or convert the value first."
        ) from None


# -- rows and store operations (shared with KitaruClient().memories) ------------------


def entry_of(row: MemoryRow) -> MemoryEntry:
    return MemoryEntry(
        key=row.key,
        value_type=row.value_type,
        version=row.version,
        scope=row.scope,
        scope_type=cast(MemoryScopeType, row.scope_type),
        created_at=dt.datetime.fromtimestamp(row.created_at, tz=dt.UTC),
        is_deleted=row.deleted,
        artifact_id=f"{ARTIFACT_PREFIX}{row.id}",
        execution_id=row.exec_id,
        flow_id=row.flow_name,
        flow_name=row.flow_name,
    )


def value_of(row: MemoryRow | None) -> Any:
    """The value a row holds; None for a missing key or a tombstone."""
    if row is None or row.deleted or row.value is None:
        return None
    return decode_value(row.value)


def read_value(store: Store, scope: Scope, key: str, version: int | None = None) -> Any:
    return value_of(store.read_memory(scope.scope_type, scope.scope, key, version))


def read_entry(
    store: Store, scope: Scope, key: str, version: int | None = None
) -> MemoryEntry | None:
    row = store.read_memory(scope.scope_type, scope.scope, key, version)
    return None if row is None or row.deleted else entry_of(row)


def list_entries(store: Store, scope: Scope, prefix: str | None = None) -> _list[MemoryEntry]:
    """The live keys of a scope (newest version each, tombstoned keys left out), by key."""
    return [
        entry_of(row)
        for row in store.memory_latest(scope.scope_type, scope.scope)
        if not row.deleted and (prefix is None or row.key.startswith(prefix))
    ]


def history_entries(store: Store, scope: Scope, key: str) -> _list[MemoryEntry]:
    """Every version of a key, tombstones included, newest first."""
    return [entry_of(row) for row in store.memory_history(scope.scope_type, scope.scope, key)]


def owning_flow(store: Store, scope: Scope) -> str | None:
    """For an execution scope, the flow of that execution (when the journal has it)."""
    if scope.scope_type != "execution":
        return None
    row = store.get_execution(scope.scope)
    return None if row is None else row.flow_name


def write(
    scope: Scope,
    key: str,
    data: bytes | None,
    value_type: str,
    *,
    deleted: bool = False,
    flow_name: str | None = None,
    store: Store | None = None,
    ctx: ExecutionContext | None = None,
    call_key: str | None = None,
) -> MemoryEntry | None:
    """Add a version: from a flow body through its journal writer (``ctx``), else directly."""
    request = MemoryWrite(
        scope_type=scope.scope_type,
        scope=scope.scope,
        key=key,
        value=data,
        value_type=value_type,
        deleted=deleted,
        exec_id=None if ctx is None else ctx.exec_id,
        flow_name=flow_name,
        call_key=call_key,
    )
    if ctx is None and store is not None and flow_name is None:
        flow_name = owning_flow(store, scope)
        request = msgspec.structs.replace(request, flow_name=flow_name)
    if ctx is not None:
        try:
            row = ctx.writer.write_memory(request)
        except KitaruError as exc:
            # A refused or failed write (lost lease, broken store) ends the run, as a
            # refused append does.
            ctx.fatal = exc
            raise
    else:
        assert store is not None
        row = store.write_memory(request)
    return None if row is None else entry_of(row)


# -- the active scope ----------------------------------------------------------------


@dataclasses.dataclass
class _ProcessDefault:
    scope: Scope | None = None
    """Set by ``configure`` outside a flow: used there, and by flows started later."""


_process = _ProcessDefault()

_flow_scope: ContextVar[tuple[str, Scope] | None] = ContextVar("kitaru_memory_scope", default=None)
"""Set by ``configure`` in a flow body: (execution id, scope) for the rest of the body."""


def _refuse_in_checkpoint(api: str) -> None:
    if current_call.get() is not None:
        raise KitaruContextError(
            f"kitaru.memory.{api}() cannot be called inside a @checkpoint. "
            "Move memory operations to the flow body."
        )


def _flow_default(ctx: ExecutionContext) -> Scope:
    """A flow body's scope until it configures one: the process's, else the flow's name."""
    if _process.scope is not None:
        return _process.scope
    if not _IDENTIFIER.fullmatch(ctx.flow_name):
        raise KitaruUsageError(
            f"Flow '{ctx.flow_name}' has a name that cannot be a memory scope; call "
            "kitaru.memory.configure(scope=..., scope_type=...) in the flow body first."
        )
    return Scope(ctx.flow_name, "flow")


def _active(api: str) -> tuple[Scope, ExecutionContext | None]:
    """The scope an operation uses, and the running execution if in a flow body."""
    _refuse_in_checkpoint(api)
    ctx = current_execution.get()
    if ctx is not None:
        configured = _flow_scope.get()
        if configured is not None and configured[0] == ctx.exec_id:
            return configured[1], ctx
        return _flow_default(ctx), ctx
    if _process.scope is None:
        raise KitaruStateError(
            f"kitaru.memory.{api}() outside a @flow requires an explicit scope. "
            "Call kitaru.memory.configure(scope=...) first."
        )
    return _process.scope, None


def configure(scope: str | None = None, *, scope_type: MemoryScopeType | None = None) -> None:
    """Choose the scope later memory calls use.

    ``scope`` alone is a namespace. In a flow body, ``scope_type="flow"`` (the flow's
    name) or ``"execution"`` (this execution's id) may leave ``scope`` out; there the
    choice holds for the rest of the body. Outside a flow it holds for this process,
    and for flows it starts afterwards that configure none of their own (a resume in
    another process lacks it; the memory call's identity names its scope, so such a
    resume stops with a divergence rather than touching another scope).
    """
    _refuse_in_checkpoint("configure")
    kind = None if scope_type is None else check_scope_type(scope_type)
    ctx = current_execution.get()
    if scope is not None:
        chosen = make_scope(scope, kind or "namespace")
    elif kind is None:
        raise KitaruUsageError("kitaru.memory.configure() requires `scope=` or `scope_type=`.")
    elif kind == "namespace":
        raise KitaruUsageError(
            "kitaru.memory.configure(scope_type='namespace') requires an explicit `scope=` value."
        )
    elif ctx is None:
        raise KitaruContextError(
            "kitaru.memory.configure() can only infer flow or execution scopes inside a "
            "@flow. Provide an explicit `scope=` outside flows."
        )
    elif kind == "flow":
        chosen = Scope(_flow_default_name(ctx), "flow")
    else:
        chosen = Scope(ctx.exec_id, "execution")
    if ctx is not None:
        _flow_scope.set((ctx.exec_id, chosen))
    else:
        _process.scope = chosen


def _flow_default_name(ctx: ExecutionContext) -> str:
    return check_identifier(ctx.flow_name, "scope")


# -- durable calls in a flow body ----------------------------------------------------


def _durable(
    ctx: ExecutionContext,
    op: str,
    scope: Scope,
    key: str | None,
    live: Callable[[str], Any],
    *,
    inputs_from: tuple[str, ...] = (),
    arguments: Mapping[str, Any] | None = None,
) -> Any:
    """Run one memory operation as a durable call of the flow body.

    The call's identity names the operation, scope and key, so a resumed body that
    reaches a different memory operation at this point is reported as a divergence.
    ``live`` gets the call's identity; its result is recorded and returned again on
    resume.
    """
    # The execution's own id is written as '@current' so that a replay (a new
    # execution) names the same call the same way as the execution it replays.
    label = "@current" if scope.scope_type == "execution" and scope.scope == ctx.exec_id else None
    name = f"memory.{op}:{scope.scope_type}:{label or scope.scope}" + (f":{key}" if key else "")
    identity, count = name, 1
    while identity in ctx.used_identities:
        count += 1
        identity = f"{name}#{count}"
    # What else the call was given (a write's value, a read's version) is checked like a
    # checkpoint's arguments: a resumed body that writes another value here diverges.
    slot = reserve(ctx, "memory", name, identity, arguments=digest_arguments(arguments or {}))

    def run(_scope: CallScope) -> Any:
        return live(slot.identity)

    return execute(slot, run, scoped=False, inputs_from=inputs_from)


def set(key: str, value: Any) -> None:
    """Write a new version of ``key`` in the active scope."""
    scope, ctx = _active("set")
    key = check_identifier(key, "key")
    lineage: _list[str] = []
    given = value
    # A checkpoint's output handle stores its value (and, in a replay, makes this write
    # run again when that output changed).
    value = resolve_handles(value, lineage)
    data = encode_memory_value(value, "kitaru.memory.set()")
    value_type = type(value).__name__
    if ctx is None:
        write(scope, key, data, value_type, store=open_store())
        return

    def live(identity: str) -> MemoryEntry | None:
        # Exactly once across crashes: the version is keyed by (execution, call
        # identity). If this process dies after the write but before the call's
        # completion is journaled, the resumed call reaches this write again under the
        # same identity and gets the version written before, not a second one.
        return write(
            scope, key, data, value_type, flow_name=ctx.flow_name, ctx=ctx, call_key=identity
        )

    _durable(
        ctx,
        "set",
        scope,
        key,
        live,
        inputs_from=tuple(dict.fromkeys(lineage)),
        arguments={"value": given},
    )


def get(key: str, *, version: int | None = None) -> Any:
    """The current value of ``key`` (or the given version's); None if absent or deleted."""
    scope, ctx = _active("get")
    key = check_identifier(key, "key", reserved_ok=True)
    version = check_version(version)
    if ctx is None:
        return read_value(open_store(), scope, key, version)
    return _durable(
        ctx,
        "get",
        scope,
        key,
        lambda _identity: read_value(ctx.store, scope, key, version),
        arguments={"version": version},
    )


def list() -> _list[MemoryEntry]:
    """The live keys of the active scope (their newest versions), sorted by key."""
    scope, ctx = _active("list")
    if ctx is None:
        return list_entries(open_store(), scope)
    result: _list[MemoryEntry] = _durable(
        ctx, "list", scope, None, lambda _identity: list_entries(ctx.store, scope)
    )
    return result


def history(key: str) -> _list[MemoryEntry]:
    """Every version of ``key`` in the active scope, tombstones included, newest first."""
    scope, ctx = _active("history")
    key = check_identifier(key, "key", reserved_ok=True)
    if ctx is None:
        return history_entries(open_store(), scope, key)
    result: _list[MemoryEntry] = _durable(
        ctx, "history", scope, key, lambda _identity: history_entries(ctx.store, scope, key)
    )
    return result


def delete(key: str) -> MemoryEntry | None:
    """Soft-delete ``key``: add a tombstone version and return it.

    None if the key never existed; the existing tombstone if it is already deleted.
    """
    scope, ctx = _active("delete")
    key = check_identifier(key, "key")
    none_type = type(None).__name__
    if ctx is None:
        return write(scope, key, None, none_type, deleted=True, store=open_store())

    def live(identity: str) -> MemoryEntry | None:
        # Keyed by (execution, call identity) like set(): see there.
        return write(
            scope,
            key,
            None,
            none_type,
            deleted=True,
            flow_name=ctx.flow_name,
            ctx=ctx,
            call_key=identity,
        )

    result: MemoryEntry | None = _durable(ctx, "delete", scope, key, live)
    return result

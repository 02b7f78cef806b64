"""Memory maintenance: compaction with a model, and the audit log of compactions and purges.

The audit log of a scope is itself memory: the versions of the reserved key
``_compaction/<scope_type>/<scope>`` in that scope, one per operation, so it is
journaled and versioned like any entry (and ``purge_scope`` leaves it alone).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from kitaru._llm import prepare_llm_call
from kitaru.errors import KitaruUsageError
from kitaru.journal.store import Store
from kitaru.memory import (
    RESERVED_PREFIX,
    CompactionRecord,
    CompactResult,
    MemoryEntry,
    Scope,
    encode_memory_value,
    value_of,
    write,
)

__all__ = ["SourceMode", "audit_key", "check_source_mode", "compact", "read_audit", "record_audit"]

SourceMode = Literal["current", "history"]

_DEFAULT_INSTRUCTION = (
    "Summarize the following memory entries into a concise, factual summary that keeps "
    "all important information. Output only the summary text."
)


def audit_key(scope: Scope) -> str:
    return f"{RESERVED_PREFIX}{scope.scope_type}/{scope.scope}"


def record_audit(store: Store, scope: Scope, record: CompactionRecord) -> None:
    """Append one record to the scope's audit log."""
    data = encode_memory_value(record.model_dump(mode="json"), "The memory audit log")
    write(scope, audit_key(scope), data, "dict", store=store)


def read_audit(store: Store, scope: Scope) -> list[CompactionRecord]:
    """The scope's audit records, newest first."""
    records = []
    for row in store.memory_history(scope.scope_type, scope.scope, audit_key(scope)):
        data = value_of(row)
        if isinstance(data, dict):
            fields = dict(data)
            fields["timestamp"] = dt.datetime.fromisoformat(fields["timestamp"])
            records.append(CompactionRecord(**fields))
    return records


def check_source_mode(value: Any) -> SourceMode:
    if value not in ("current", "history"):
        raise KitaruUsageError(
            f"Memory compaction source_mode must be 'current' or 'history', got {value!r}."
        )
    return value  # type: ignore[no-any-return]


def _sources(
    store: Store, scope: Scope, key: str | None, keys: list[str] | None, mode: SourceMode
) -> list[tuple[str, int, Any]]:
    """(key, version, value) of what the model summarises."""
    if keys is not None:
        found = []
        for name in keys:
            row = store.read_memory(scope.scope_type, scope.scope, name)
            if row is not None and not row.deleted:
                found.append((name, row.version, value_of(row)))
        return found
    assert key is not None
    if mode == "history":
        return [
            (key, row.version, value_of(row))
            for row in store.memory_history(scope.scope_type, scope.scope, key)
            if not row.deleted
        ]
    row = store.read_memory(scope.scope_type, scope.scope, key)
    if row is None:
        raise KitaruUsageError(
            f"compact() found no current value for key {key!r} in scope {scope.scope!r}; "
            "check the key with memories.history(...)."
        )
    if row.deleted:
        raise KitaruUsageError(
            f"compact() cannot summarize key {key!r} in scope {scope.scope!r}: its current "
            "version is deleted. Use source_mode='history' to summarize its earlier values."
        )
    return [(key, row.version, value_of(row))]


def compact(
    store: Store,
    scope: Scope,
    *,
    key: str | None,
    keys: list[str] | None,
    source_mode: SourceMode,
    target_key: str | None,
    instruction: str | None,
    model: str | None,
    max_tokens: int | None,
) -> CompactResult:
    """Summarise memory values with a model and write the summary as a new version.

    Single-key mode (``key``) summarises that key's current value, or with
    ``source_mode="history"`` every non-deleted version, into ``target_key`` (default:
    the key itself). Multi-key mode (``keys``) summarises each key's current value
    into ``target_key``, which it requires. Sources are never deleted.
    """
    if (key is None) == (keys is None):
        raise KitaruUsageError(
            "compact() takes exactly one of `key` (single-key mode) or `keys` (multi-key mode)."
        )
    if keys is not None and target_key is None:
        raise KitaruUsageError("compact() in multi-key mode requires `target_key`.")
    if keys is not None and source_mode != "current":
        raise KitaruUsageError(
            "compact() supports source_mode='history' only in single-key mode (`key=`)."
        )
    sources = _sources(store, scope, key, keys, source_mode)
    if not sources:
        raise KitaruUsageError(
            "compact() found no source entries to summarize (every key is missing or deleted)."
        )
    blocks = "\n\n".join(
        f"--- {name} (version {version}) ---\n{value}" for name, version, value in sources
    )
    prompt = (
        f"{instruction or _DEFAULT_INSTRUCTION}\n\n"
        f"Memory entries ({len(sources)} total):\n\n{blocks}"
    )
    result = prepare_llm_call(prompt, model=model, max_tokens=max_tokens).run()
    target = target_key if target_key is not None else key
    assert target is not None
    entry: MemoryEntry | None = write(
        scope, target, encode_memory_value(result.text, "compact()"), "str", store=store
    )
    assert entry is not None
    record = CompactionRecord(
        operation="compact",
        scope=scope.scope,
        scope_type=scope.scope_type,
        timestamp=dt.datetime.now(dt.UTC),
        source_keys=[name for name, _, _ in sources],
        source_versions=[version for _, version, _ in sources],
        target_key=target,
        target_version=entry.version,
        instruction=instruction,
        model=result.resolved_model,
        source_mode=source_mode,
        keys_affected=0,
        versions_deleted=0,
        keep=None,
    )
    record_audit(store, scope, record)
    return CompactResult(
        entry=entry,
        sources_read=len(sources),
        scope=scope.scope,
        scope_type=scope.scope_type,
        compaction_record=record,
    )

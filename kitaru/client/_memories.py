"""``KitaruClient().memories``: memory inspection and maintenance in explicit scopes.

Every call names its typed scope (``scope=`` and ``scope_type=``), so the same code
works from scripts, the CLI and tests, whatever scope a flow configured. Writes from
here are *detached*: their ``execution_id`` is None.
"""

from __future__ import annotations

import builtins
import datetime as dt
from typing import Any

from kitaru.client._memory_maintenance import check_source_mode, compact, read_audit, record_audit
from kitaru.errors import KitaruFeatureNotAvailableError, KitaruUsageError
from kitaru.journal.store import MemoryRow, Store
from kitaru.memory import (
    ARTIFACT_PREFIX,
    RESERVED_PREFIX,
    CompactionRecord,
    CompactResult,
    MemoryEntry,
    MemoryScopeInfo,
    MemoryScopeType,
    PurgeResult,
    Scope,
    check_identifier,
    check_version,
    encode_memory_value,
    history_entries,
    list_entries,
    make_scope,
    read_entry,
    value_of,
    write,
)

__all__ = ["MemoriesClient"]

_SCOPE_TYPE_ORDER = {"namespace": 0, "flow": 1, "execution": 2}


def _check_keep(keep: Any, what: str) -> int:
    """``keep`` newest versions survive a purge; None keeps none."""
    if keep is None:
        return 0
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise KitaruUsageError(f"{what} `keep` must be a whole number >= 0 or None, got {keep!r}.")
    return keep


class MemoriesClient:
    """``KitaruClient().memories``."""

    def __init__(self, store: Store):
        self._store = store

    def get(
        self, key: str, *, scope: str, scope_type: MemoryScopeType, version: int | None = None
    ) -> MemoryEntry | None:
        """The entry of the key's current version (or of ``version``); None if absent or deleted.

        Its value: ``KitaruClient().memories.value(...)`` or
        ``KitaruClient().artifacts.get(entry.artifact_id).load()``.
        """
        return read_entry(
            self._store,
            make_scope(scope, scope_type),
            check_identifier(key, "key", reserved_ok=True),
            check_version(version),
        )

    def value(
        self, key: str, *, scope: str, scope_type: MemoryScopeType, version: int | None = None
    ) -> Any:
        """The key's current value (or ``version``'s); None if absent or deleted."""
        where = make_scope(scope, scope_type)
        row = self._store.read_memory(
            where.scope_type,
            where.scope,
            check_identifier(key, "key", reserved_ok=True),
            check_version(version),
        )
        return value_of(row)

    def list(
        self, *, scope: str, scope_type: MemoryScopeType, prefix: str | None = None
    ) -> builtins.list[MemoryEntry]:
        """The live keys of a scope (newest version each), sorted by key."""
        if prefix is not None:
            prefix = check_identifier(prefix, "prefix")
        return list_entries(self._store, make_scope(scope, scope_type), prefix)

    def history(
        self, key: str, *, scope: str, scope_type: MemoryScopeType
    ) -> builtins.list[MemoryEntry]:
        """Every version of a key, tombstones included, newest first."""
        return history_entries(
            self._store,
            make_scope(scope, scope_type),
            check_identifier(key, "key", reserved_ok=True),
        )

    def set(self, key: str, value: Any, *, scope: str, scope_type: MemoryScopeType) -> MemoryEntry:
        """Write a new version and return its entry."""
        where = make_scope(scope, scope_type)
        key = check_identifier(key, "key")
        data = encode_memory_value(value, "KitaruClient().memories.set()")
        entry = write(where, key, data, type(value).__name__, store=self._store)
        assert entry is not None  # only a tombstone write can come back empty
        return entry

    def delete(self, key: str, *, scope: str, scope_type: MemoryScopeType) -> MemoryEntry | None:
        """Soft-delete a key and return its tombstone; None if the key never existed."""
        return write(
            make_scope(scope, scope_type),
            check_identifier(key, "key"),
            None,
            type(None).__name__,
            deleted=True,
            store=self._store,
        )

    def scopes(self) -> builtins.list[MemoryScopeInfo]:
        """Every scope with live keys, and how many, sorted by scope then scope type."""
        counts: dict[tuple[str, str], int] = {}
        for row in self._store.memory_latest():
            if not row.deleted:
                counts[row.scope, row.scope_type] = counts.get((row.scope, row.scope_type), 0) + 1
        return [
            MemoryScopeInfo(scope=scope, scope_type=scope_type, entry_count=count)  # type: ignore[arg-type]
            for (scope, scope_type), count in sorted(
                counts.items(), key=lambda item: (item[0][0], _SCOPE_TYPE_ORDER[item[0][1]])
            )
        ]

    def purge(
        self, key: str, *, scope: str, scope_type: MemoryScopeType, keep: int | None = None
    ) -> PurgeResult:
        """Physically delete all but the newest ``keep`` versions of a key (None: all).

        The only operation that removes stored memory; deleted versions are gone from
        ``history`` too.
        """
        where = make_scope(scope, scope_type)
        versions = self._store.memory_history(
            where.scope_type, where.scope, check_identifier(key, "key")
        )
        doomed = versions[_check_keep(keep, "purge") :]
        deleted = self._store.purge_memory([row.id for row in doomed])
        self._audit_purge(where, doomed, deleted, 1, keep)
        return PurgeResult(
            versions_deleted=deleted,
            keys_affected=1 if deleted else 0,
            scope=where.scope,
            scope_type=where.scope_type,
        )

    def purge_scope(
        self,
        *,
        scope: str,
        scope_type: MemoryScopeType,
        keep: int | None = None,
        include_deleted: bool = False,
    ) -> PurgeResult:
        """Purge every key of a scope down to its newest ``keep`` versions (None: all).

        Keys whose current version is a tombstone are left alone, unless
        ``include_deleted``: then all their versions go.
        """
        where = make_scope(scope, scope_type)
        kept = _check_keep(keep, "purge_scope")
        doomed: builtins.list[MemoryRow] = []
        keys = 0
        for latest in self._store.memory_latest(where.scope_type, where.scope):
            if latest.key.startswith(RESERVED_PREFIX) or (latest.deleted and not include_deleted):
                continue
            versions = self._store.memory_history(where.scope_type, where.scope, latest.key)
            chosen = versions if latest.deleted else versions[kept:]
            doomed.extend(chosen)
            keys += 1 if chosen else 0
        deleted = self._store.purge_memory([row.id for row in doomed])
        self._audit_purge(where, doomed, deleted, keys, keep)
        return PurgeResult(
            versions_deleted=deleted,
            keys_affected=keys if deleted else 0,
            scope=where.scope,
            scope_type=where.scope_type,
        )

    def compact(
        self,
        *,
        scope: str,
        scope_type: MemoryScopeType,
        key: str | None = None,
        keys: builtins.list[str] | None = None,
        source_mode: str = "current",
        target_key: str | None = None,
        instruction: str | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
    ) -> CompactResult:
        """Summarise memory values with a model and write the summary as a new version.

        ``key``: that key's current value (``source_mode="history"``: all its live
        versions), written back to it unless ``target_key`` is given. ``keys``: each
        one's current value, written to ``target_key``. Sources stay; the operation is
        recorded in ``compaction_log``.
        """
        return compact(
            self._store,
            make_scope(scope, scope_type),
            key=None if key is None else check_identifier(key, "key"),
            keys=None if keys is None else [check_identifier(k, "key") for k in keys],
            source_mode=check_source_mode(source_mode),
            target_key=None if target_key is None else check_identifier(target_key, "key"),
            instruction=instruction,
            model=model,
            max_tokens=max_tokens,
        )

    def compaction_log(
        self, *, scope: str, scope_type: MemoryScopeType
    ) -> builtins.list[CompactionRecord]:
        """The scope's compactions and purges, newest first."""
        return read_audit(self._store, make_scope(scope, scope_type))

    def reindex(self, *, apply: bool = False) -> Any:
        """Backfilling discovery tags of older memory: there is nothing to backfill here."""
        del apply
        raise KitaruFeatureNotAvailableError(
            "Memory reindexing is not available in this version of kitaru, and not needed: "
            "the journal records every version's scope type and flow when it is written. "
            "Use memories.scopes() and memories.list(scope=..., scope_type=...) to find entries."
        )

    def _audit_purge(
        self, where: Scope, doomed: builtins.list[MemoryRow], deleted: int, keys: int, keep: Any
    ) -> None:
        if deleted:
            record_audit(
                self._store,
                where,
                CompactionRecord(
                    operation="purge",
                    scope=where.scope,
                    scope_type=where.scope_type,
                    timestamp=dt.datetime.now(dt.UTC),
                    source_keys=list(dict.fromkeys(row.key for row in doomed)),
                    source_versions=[row.version for row in doomed],
                    target_key=None,
                    target_version=None,
                    instruction=None,
                    model=None,
                    source_mode=None,
                    keys_affected=keys,
                    versions_deleted=deleted,
                    keep=keep,
                ),
            )

    def load_artifact(self, artifact_id: str) -> tuple[MemoryRow, Any] | None:
        """The version behind a memory ``artifact_id``, and its value; None if it is not one."""
        if not artifact_id.startswith(ARTIFACT_PREFIX):
            return None
        number = artifact_id[len(ARTIFACT_PREFIX) :]
        row = self._store.memory_row(int(number)) if number.isdigit() else None
        return None if row is None else (row, value_of(row))

"""``kitaru memory ...``: read, write and maintain durable memory in explicit scopes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kitaru.cli.output import emit, output_option
from kitaru.client import KitaruClient
from kitaru.client._memories import MemoriesClient
from kitaru.errors import KitaruUsageError
from kitaru.memory import MemoryEntry, MemoryScopeType, check_scope_type

__all__ = ["memory"]

F = TypeVar("F", bound=Callable[..., Any])


def _scope_options(func: F) -> F:
    """``--scope`` and ``--scope-type``: checked by the command, for a one-line error."""
    func = click.option(
        "--scope-type", "scope_type", help="namespace, flow or execution. [required]"
    )(func)
    return click.option("--scope", "scope", help="The memory scope. [required]")(func)


def _scope(scope: str | None, scope_type: str | None) -> tuple[str, MemoryScopeType]:
    if scope is None:
        raise KitaruUsageError(
            "Missing required option `--scope`. Run `kitaru memory scopes` to see available scopes."
        )
    if scope_type is None:
        raise KitaruUsageError(
            "Missing required option `--scope-type` (namespace, flow or execution). "
            "Run `kitaru memory scopes` to see available typed scopes."
        )
    return scope, check_scope_type(scope_type)


def _label(scope: str, scope_type: str) -> str:
    return f"{scope} ({scope_type})"


def _memories() -> MemoriesClient:
    return KitaruClient().memories


def _parse_value(raw: str) -> Any:
    """A JSON value when the text is one, else the text itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _value_payload(value: Any) -> tuple[Any, str]:
    """The value for JSON output and its format: ``json``, or ``repr`` for other types."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value), "repr"
    return value, "json"


def _entry_line(entry: MemoryEntry) -> str:
    deleted = "  (deleted)" if entry.is_deleted else ""
    writer = entry.execution_id or "detached"
    return (
        f"{entry.key}  v{entry.version}  {entry.value_type}  "
        f"{entry.created_at.astimezone():%Y-%m-%d %H:%M:%S}  {writer}{deleted}"
    )


@click.group(name="memory")
def memory() -> None:
    """Durable key-value memory: versioned entries in typed scopes."""


@memory.command("scopes")
@output_option
def scopes(output: str) -> None:
    """List the scopes that hold memory, with their number of live keys."""
    found = _memories().scopes()

    def text() -> str:
        if not found:
            return "No memory scopes. Write one with `kitaru memory set KEY VALUE --scope ...`."
        return "\n".join(f"{_label(s.scope, s.scope_type)}: {s.entry_count} entries" for s in found)

    emit(output, [s.model_dump(mode="json") for s in found], text)


@memory.command("list")
@_scope_options
@click.option("--prefix", help="Only keys starting with this.")
@output_option
def list_(scope: str | None, scope_type: str | None, prefix: str | None, output: str) -> None:
    """List the live keys of one scope (their newest versions)."""
    name, kind = _scope(scope, scope_type)
    entries = _memories().list(scope=name, scope_type=kind, prefix=prefix)

    def text() -> str:
        if not entries:
            return (
                f"No memory in scope {_label(name, kind)}. Run `kitaru memory scopes` to see "
                "available scopes."
            )
        return "\n".join(_entry_line(entry) for entry in entries)

    emit(output, [entry.model_dump(mode="json") for entry in entries], text)


@memory.command("get")
@click.argument("key")
@_scope_options
@click.option("--version", "version", type=int, help="Read this version instead of the newest.")
@output_option
def get(
    key: str, scope: str | None, scope_type: str | None, version: int | None, output: str
) -> None:
    """Show the current value of KEY in one scope."""
    name, kind = _scope(scope, scope_type)
    memories = _memories()
    entry = memories.get(key, scope=name, scope_type=kind, version=version)
    if entry is None:
        raise KitaruUsageError(
            f"No memory entry found for key `{key}` in scope `{_label(name, kind)}`. List "
            f"the keys with `kitaru memory list --scope {name} --scope-type {kind}`."
        )
    value = memories.value(key, scope=name, scope_type=kind, version=entry.version)
    shown, value_format = _value_payload(value)

    def text() -> str:
        rendered = json.dumps(shown, indent=2, sort_keys=True) if value_format == "json" else shown
        return f"{_entry_line(entry)}\n{rendered}"

    payload = {**entry.model_dump(mode="json"), "value": shown, "value_format": value_format}
    emit(output, payload, text)


@memory.command("set")
@click.argument("key")
@click.argument("value")
@_scope_options
@output_option
def set_(key: str, value: str, scope: str | None, scope_type: str | None, output: str) -> None:
    """Write VALUE (JSON if it parses, else the text) as a new version of KEY."""
    name, kind = _scope(scope, scope_type)
    entry = _memories().set(key, _parse_value(value), scope=name, scope_type=kind)
    emit(
        output,
        entry.model_dump(mode="json"),
        lambda: (
            f"Saved memory {entry.key} in {_label(name, kind)}: version {entry.version} "
            f"({entry.value_type})."
        ),
    )


@memory.command("delete")
@click.argument("key")
@_scope_options
@output_option
def delete(key: str, scope: str | None, scope_type: str | None, output: str) -> None:
    """Soft-delete KEY: add a tombstone version (its history stays)."""
    name, kind = _scope(scope, scope_type)
    entry = _memories().delete(key, scope=name, scope_type=kind)
    if entry is None:
        raise KitaruUsageError(
            f"No memory entry found for key `{key}` in scope `{_label(name, kind)}`. List "
            f"the keys with `kitaru memory list --scope {name} --scope-type {kind}`."
        )
    emit(
        output,
        entry.model_dump(mode="json"),
        lambda: (
            f"Deleted memory {entry.key} in {_label(name, kind)}: tombstone version "
            f"{entry.version}."
        ),
    )


@memory.command("history")
@click.argument("key")
@_scope_options
@output_option
def history(key: str, scope: str | None, scope_type: str | None, output: str) -> None:
    """Show every version of KEY, newest first, tombstones included."""
    name, kind = _scope(scope, scope_type)
    entries = _memories().history(key, scope=name, scope_type=kind)
    if not entries:
        raise KitaruUsageError(
            f"No memory history found for key `{key}` in scope `{_label(name, kind)}`. List "
            f"the keys with `kitaru memory list --scope {name} --scope-type {kind}`."
        )
    emit(
        output,
        [entry.model_dump(mode="json") for entry in entries],
        lambda: "\n".join(_entry_line(entry) for entry in entries),
    )


@memory.command("purge")
@click.argument("key")
@_scope_options
@click.option("--keep", type=int, help="Newest versions to keep; omit to delete them all.")
@output_option
def purge(
    key: str, scope: str | None, scope_type: str | None, keep: int | None, output: str
) -> None:
    """Physically delete old versions of KEY (the only removal that cannot be undone)."""
    name, kind = _scope(scope, scope_type)
    result = _memories().purge(key, scope=name, scope_type=kind, keep=keep)
    emit(
        output,
        result.model_dump(mode="json"),
        lambda: (
            f"Purged memory {key} in {_label(name, kind)}: "
            f"{result.versions_deleted} versions deleted."
        ),
    )


@memory.command("purge-scope")
@_scope_options
@click.option("--keep", type=int, help="Newest versions to keep per key; omit to delete all.")
@click.option("--include-deleted", is_flag=True, help="Also remove soft-deleted keys entirely.")
@output_option
def purge_scope(
    scope: str | None, scope_type: str | None, keep: int | None, include_deleted: bool, output: str
) -> None:
    """Physically delete old versions of every key in one scope."""
    name, kind = _scope(scope, scope_type)
    result = _memories().purge_scope(
        scope=name, scope_type=kind, keep=keep, include_deleted=include_deleted
    )
    emit(
        output,
        result.model_dump(mode="json"),
        lambda: (
            f"Purged scope {_label(name, kind)}: {result.versions_deleted} versions "
            f"deleted from {result.keys_affected} keys."
        ),
    )


@memory.command("compact")
@_scope_options
@click.option("--key", help="Summarise this key (its current value, or --source-mode history).")
@click.option("--keys", multiple=True, help="Summarise these keys' current values (repeatable).")
@click.option(
    "--source-mode", default="current", show_default=True, help="current or history (--key)."
)
@click.option("--target-key", help="Write the summary here (default: --key).")
@click.option("--instruction", help="What the model is asked to do with the entries.")
@click.option("--model", help="Model alias or provider/model (default: the default model).")
@click.option("--max-tokens", type=int, help="Longest summary, in tokens.")
@output_option
def compact(
    *,
    scope: str | None,
    scope_type: str | None,
    key: str | None,
    keys: tuple[str, ...],
    source_mode: str,
    target_key: str | None,
    instruction: str | None,
    model: str | None,
    max_tokens: int | None,
    output: str,
) -> None:
    """Summarise memory values with a model and write the summary as a new version."""
    name, kind = _scope(scope, scope_type)
    result = _memories().compact(
        scope=name,
        scope_type=kind,
        key=key,
        keys=list(keys) or None,
        source_mode=source_mode,
        target_key=target_key,
        instruction=instruction,
        model=model,
        max_tokens=max_tokens,
    )
    entry = result.entry
    emit(
        output,
        result.model_dump(mode="json"),
        lambda: (
            f"Compacted {result.sources_read} entries into {entry.key} in "
            f"{_label(name, kind)}: version {entry.version}."
        ),
    )


@memory.command("compaction-log")
@_scope_options
@output_option
def compaction_log(scope: str | None, scope_type: str | None, output: str) -> None:
    """Show the compactions and purges of one scope, newest first."""
    name, kind = _scope(scope, scope_type)
    records = _memories().compaction_log(scope=name, scope_type=kind)

    def text() -> str:
        if not records:
            return f"No compactions or purges in scope {_label(name, kind)}."
        lines = []
        for record in records:
            when = f"{record.timestamp.astimezone():%Y-%m-%d %H:%M:%S}"
            if record.operation == "compact":
                lines.append(
                    f"{when}  compact  {', '.join(record.source_keys)} -> "
                    f"{record.target_key} v{record.target_version}  ({record.model})"
                )
            else:
                lines.append(
                    f"{when}  purge    {', '.join(record.source_keys)}: "
                    f"{record.versions_deleted} versions deleted"
                )
        return "\n".join(lines)

    emit(output, [record.model_dump(mode="json") for record in records], text)


@memory.command("reindex")
@click.option("--apply", is_flag=True, help="Persist the changes (Kitaru's tag backfill).")
@output_option
def reindex(apply: bool, output: str) -> None:
    """Backfill discovery tags of older memory (not available: nothing to backfill here)."""
    del output
    _memories().reindex(apply=apply)

"""Where kitaru keeps its state, as data: what ``kitaru status``, ``info`` and
``clean --dry-run`` show, and what the MCP functions of the same names return.

Everything here only reads, and reading never creates a journal file. Executions run
on a stack: its store is an SQLite journal file, or a PostgreSQL database. Both are
read through ``KitaruClient``; what only a file has (its path, its side files, the
``clean`` plan) is SQLite's alone, and ``sqlite_journal`` says so for any other store.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kitaru._config import CONFIG_PATH_ENV, STORE_ENV, config_dir, sqlite_file, store_url
from kitaru.client import ExecutionStatus, KitaruClient
from kitaru.errors import (
    JournalNotFoundError,
    KitaruFeatureNotAvailableError,
    KitaruStateError,
    KitaruUsageError,
)

__all__ = [
    "CLEAN_SCOPES",
    "SQLITE_ONLY_FIELDS",
    "CleanPlan",
    "clean_plan",
    "clean_preview",
    "clean_project_unavailable",
    "clean_result",
    "current_store",
    "environment_info",
    "masked_store_url",
    "refuse_while_running",
    "sqlite_journal",
    "workspace_state",
]

CLEAN_SCOPES = ("project", "global", "all")
"""Kitaru's names for what ``kitaru clean`` removes (``project`` has no counterpart here)."""
SQLITE_ONLY_FIELDS = ("journal",)
"""Fields of the status that name a journal file: null for a store that is no file."""
JOURNAL_SUFFIXES = ("-wal", "-shm", "-journal", "-leases")
CORE_PACKAGES = ("click", "msgspec", "sqlite-utils", "structlog")
OPTIONAL_PACKAGES = ("openai", "anthropic", "pydantic")

_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})


def current_store(store: str | None = None) -> tuple[str | None, str]:
    """The stack runs use now and its store's URL; or, given a ``store``, its URL and
    the stack that records there (None if no stack does)."""
    from kitaru._stacks import default_stack_name, list_stacks, stack_store

    if store is None:
        name = default_stack_name()
        return name, store_url(stack_store(name))
    url = store_url(store)
    return next((s.name for s in list_stacks() if store_url(s.store) == url), None), url


def sqlite_journal(command: str, store: str | None = None) -> tuple[str | None, Path]:
    """The stack and its journal file (``current_store``), for what looks after files
    (``command``). A store that is no SQLite file raises ``KitaruFeatureNotAvailableError``.
    """
    name, url = current_store(store)
    path = sqlite_file(url)
    if path is None:
        KitaruClient(url)  # a backend this version lacks says so, naming what works
        raise KitaruFeatureNotAvailableError(
            f"The '{name}' stack records in {masked_store_url(url)}; {command} looks after "
            "an SQLite journal file only. Run it on a stack with a sqlite:///PATH store."
        )
    return name, path


def init_database(url: str) -> tuple[bool, int]:
    """Create the journal's tables in the database store ``url`` if they are missing;
    return whether this call created them and how many executions it holds."""
    from kitaru._stores import new_store

    store = new_store(url)
    try:
        executions = len(store.list_executions())  # the first query creates the tables
        return bool(getattr(store, "created_journal", False)), executions
    finally:
        store.close()


def masked_store_url(url: str) -> str:
    """``url`` with any password in it (user info or query) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key in _SECRET_QUERY_KEYS for key, _ in pairs):
        shown = [(key, "***" if key in _SECRET_QUERY_KEYS else value) for key, value in pairs]
        query = urlencode(shown, safe="/:*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _summary(store: str) -> dict[str, Any]:
    """What the store holds, without creating a journal file that is missing."""
    try:
        client = KitaruClient(store, create=False)
    except JournalNotFoundError:
        return {"exists": False, "executions": 0, "by_status": {}}
    rows = client.executions.list()
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[str(row.status)] = by_status.get(str(row.status), 0) + 1
    return {"exists": True, "executions": len(rows), "by_status": by_status}


def workspace_state(store: str | None = None, *, store_from: str = "argument") -> dict[str, Any]:
    """``kitaru status -o json``: the stack, its store and what it holds, the config dir.

    ``store`` describes that store instead of the current stack's (``journal_from`` is
    then ``store_from``, saying where it was given).
    """
    stack, url = current_store(store)
    journal = sqlite_file(url)
    config = config_dir().absolute()
    if store is not None:
        journal_from = store_from
    else:
        journal_from = STORE_ENV if os.environ.get(STORE_ENV) else "default"
    state: dict[str, Any] = {
        "connection": "local",
        "stack": stack,
        "journal": None if journal is None else str(journal),
        "journal_from": journal_from,
        "config_dir": str(config),
        "config_dir_from": CONFIG_PATH_ENV if os.environ.get(CONFIG_PATH_ENV) else "default",
        "config_dir_exists": config.is_dir(),
    }
    if journal is None:
        # Only a store that is no file gets these: an SQLite stack's output is unchanged.
        state["store"] = masked_store_url(url)
        state["store_backend"] = urlsplit(url).scheme.split("+", 1)[0]
        state["sqlite_only"] = list(SQLITE_ONLY_FIELDS)
    state.update({f"journal_{key}": value for key, value in _summary(url).items()})
    state["kitaru_version"] = version_of("kitaru")
    return state


def environment_info(
    store: str | None = None,
    *,
    store_from: str = "argument",
    all_packages: bool = False,
    packages: list[str] | None = None,
) -> dict[str, Any]:
    """``kitaru info -o json``: the status, with Python, platform and package versions."""
    state = workspace_state(store, store_from=store_from)
    state["python_version"] = platform.python_version()
    state["python"] = sys.executable
    state["platform"] = platform.platform()
    state["sqlite_version"] = sqlite3.sqlite_version
    names = [*CORE_PACKAGES, *OPTIONAL_PACKAGES, *(packages or [])]
    if all_packages:
        names += sorted(
            {dist.metadata["Name"] for dist in importlib.metadata.distributions()}, key=str.lower
        )
    state["packages"] = {name: version_of(name) for name in dict.fromkeys(names)}
    return state


# -- clean --------------------------------------------------------------------------


@dataclass
class CleanPlan:
    """What one ``clean`` removes, and which journals among it are backed up first."""

    scope: str
    journal: Path
    config: Path
    targets: list[Path] = field(default_factory=list)
    journals: list[Path] = field(default_factory=list)
    """Every journal that goes: checked for live executions (and backed up for global)."""
    backup_dir: Path | None = None


def _journal_files(journal: Path) -> list[Path]:
    candidates = [journal, *(journal.with_name(journal.name + s) for s in JOURNAL_SUFFIXES)]
    return [path for path in candidates if path.exists()]


def _journals_in_config(config: Path) -> list[Path]:
    """The journals of stacks kept in the config dir (``kitaru.db``, ``<stack>.db``)."""
    if not config.is_dir():
        return []
    return sorted(path for path in config.glob("*.db") if path.is_file())


def clean_plan(scope: str, with_config: bool, store: str | None = None) -> CleanPlan:
    """What ``kitaru clean`` (``scope`` journal, global or all) would remove."""
    _, journal = sqlite_journal("`kitaru clean`", store)
    config = config_dir().absolute()
    plan = CleanPlan(scope=scope, journal=journal, config=config, targets=_journal_files(journal))
    plan.journals = [journal] if journal.exists() else []
    if with_config and config.exists():
        # The config dir goes as a whole; files inside it need not be listed twice.
        plan.targets = [p for p in plan.targets if config not in p.parents] + [config]
        plan.journals += [p for p in _journals_in_config(config) if p not in plan.journals]
    if scope in ("global", "all") and plan.journals:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        plan.backup_dir = config.with_name(f"{config.name}-backups") / stamp
    return plan


def clean_result(plan: CleanPlan, *, dry_run: bool) -> dict[str, Any]:
    """``kitaru clean ... -o json`` before anything is removed."""
    return {
        "scope": plan.scope,
        "removed": [],
        "would_remove": [str(p) for p in plan.targets],
        "dry_run": dry_run,
        "backup": str(plan.backup_dir) if plan.backup_dir is not None else None,
    }


def refuse_while_running(journal: Path) -> None:
    """Raise if a live process runs (or waits in) an execution of this journal."""
    if not journal.exists():
        return
    client = KitaruClient(store_url(str(journal)), create=False)
    try:
        for status_ in (ExecutionStatus.RUNNING, ExecutionStatus.WAITING):
            for row in client.executions.list(status=status_):
                lease = client.executions.live_owner(row.exec_id)
                if lease is not None:
                    raise KitaruStateError(
                        f"Execution {row.exec_id} is {status_} in live process {lease.pid} on "
                        f"{lease.host}; nothing was removed. Let it finish, or cancel it with "
                        f"`kitaru executions cancel {row.exec_id}`, then clean again.",
                        exec_id=row.exec_id,
                        status=status_,
                    )
    finally:
        client.close()


def clean_project_unavailable(store: str | None = None) -> KitaruFeatureNotAvailableError:
    """The error ``kitaru clean project`` raises: there is no per-project folder."""
    _, journal = sqlite_journal("`kitaru clean`", store)
    return KitaruFeatureNotAvailableError(
        "`kitaru clean project` is not available: kitaru keeps no per-project .kitaru/ "
        f"folder; executions are in the journal {journal} and settings in "
        f"{config_dir().absolute()}. Remove the journal with `kitaru clean`, or both "
        "with `kitaru clean global`."
    )


def clean_preview(scope: str, store: str | None = None) -> dict[str, Any]:
    """``kitaru clean <scope> --dry-run -o json``: what would go; nothing is removed.

    ``project`` raises as the command does; so does a journal in use by a live process.
    """
    if scope not in CLEAN_SCOPES:
        raise KitaruUsageError(
            f"scope must be one of {', '.join(CLEAN_SCOPES)}, got {scope!r}; "
            "'global' previews removing the journal and the config dir."
        )
    if scope == "project":
        raise clean_project_unavailable(store)
    plan = clean_plan(scope, with_config=True, store=store)
    for journal in plan.journals:
        refuse_while_running(journal)  # the command's dry run refuses too
    return clean_result(plan, dry_run=True)

"""``kitaru status``, ``info`` and ``init``: where kitaru keeps its state.

Executions run on the ``local`` stack: in the processes that start or resume them,
recorded in one SQLite journal. These commands show where that journal and the config
dir are and create them (``kitaru clean`` removes them). Reading never creates anything.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click

from kitaru._config import (
    CONFIG_PATH_ENV,
    STORE_ENV,
    config_dir,
    sqlite_file,
    store_url,
)
from kitaru.cli.output import emit, output_option
from kitaru.client import KitaruClient
from kitaru.errors import KitaruFeatureNotAvailableError, KitaruUsageError

__all__ = ["info", "init", "status"]


def _stack() -> tuple[str, Path]:
    """The stack runs use now, and the journal file of its store."""
    from kitaru._stacks import default_stack_name, stack_store

    name = default_stack_name()
    url = store_url(stack_store(name))
    path = sqlite_file(url)
    if path is None:
        KitaruClient(url)  # a backend this version lacks says so, naming what works
        raise KitaruFeatureNotAvailableError(
            f"The '{name}' stack records in {url}; this command looks after an SQLite "
            "journal file only. Run it on a stack with a sqlite:///PATH store."
        )
    return name, path


_CORE_PACKAGES = ("click", "msgspec", "sqlite-utils", "structlog")
_OPTIONAL_PACKAGES = ("openai", "anthropic", "pydantic")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _journal_summary(path: Path) -> dict[str, Any]:
    """What the journal at ``path`` holds, without creating it if it is missing."""
    if not path.exists():
        return {"exists": False, "executions": 0, "by_status": {}}
    rows = KitaruClient(create=False).executions.list()
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[str(row.status)] = by_status.get(str(row.status), 0) + 1
    return {"exists": True, "executions": len(rows), "by_status": by_status}


def _state() -> dict[str, Any]:
    stack, journal = _stack()
    config = config_dir().absolute()
    return {
        "connection": "local",
        "stack": stack,
        "journal": str(journal),
        "journal_from": STORE_ENV if os.environ.get(STORE_ENV) else "default",
        "config_dir": str(config),
        "config_dir_from": CONFIG_PATH_ENV if os.environ.get(CONFIG_PATH_ENV) else "default",
        "config_dir_exists": config.is_dir(),
        **{f"journal_{key}": value for key, value in _journal_summary(journal).items()},
        "kitaru_version": _version("kitaru"),
    }


def _state_text(state: dict[str, Any]) -> list[str]:
    if state["journal_exists"]:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(state["journal_by_status"].items()))
        held = f"{state['journal_executions']} executions" + (f" ({counts})" if counts else "")
    else:
        held = "not created yet (the first run creates it, or `kitaru init`)"
    config_held = "exists" if state["config_dir_exists"] else "not created yet"
    return [
        f"Kitaru      {state['kitaru_version']}",
        "Connection  local: executions run in the processes that start them (no server)",
        f"Stack       {state['stack']}",
        f"Journal     {state['journal']} (from {state['journal_from']}): {held}",
        f"Config dir  {state['config_dir']} (from {state['config_dir_from']}): {config_held}",
    ]


@click.command("status")
@output_option
def status(output: str) -> None:
    """Show where executions run and are recorded: stack, journal, config dir."""
    state = _state()
    emit(output, state, lambda: "\n".join(_state_text(state)))


@click.command("info")
@click.option("-a", "--all", "all_", is_flag=True, help="Also every installed package.")
@click.option("-p", "--packages", multiple=True, help="Also this package's version (repeatable).")
@click.option(
    "-f", "--file", "file", type=click.Path(dir_okay=False), help="Also write to FILE.json."
)
@output_option
def info(all_: bool, packages: tuple[str, ...], file: str | None, output: str) -> None:
    """Show the environment: versions, stack, journal and config dir."""
    if file is not None and not file.endswith(".json"):
        raise KitaruUsageError(f"--file {file}: only .json files are written; name it *.json.")
    state = _state()
    state["python_version"] = platform.python_version()
    state["python"] = sys.executable
    state["platform"] = platform.platform()
    state["sqlite_version"] = sqlite3.sqlite_version
    names = [*_CORE_PACKAGES, *_OPTIONAL_PACKAGES, *packages]
    if all_:
        names += sorted(
            {dist.metadata["Name"] for dist in importlib.metadata.distributions()}, key=str.lower
        )
    state["packages"] = {name: _version(name) for name in dict.fromkeys(names)}
    if file is not None:
        Path(file).write_text(json.dumps(state, indent=2, sort_keys=True, default=str) + "\n")

    def text() -> str:
        lines = _state_text(state)
        lines += [
            f"Python      {state['python_version']} ({state['python']})",
            f"Platform    {state['platform']}",
            f"SQLite      {state['sqlite_version']}",
            "Packages",
        ]
        lines += [
            f"  {name:<20} {version or 'not installed'}"
            for name, version in state["packages"].items()
        ]
        if file is not None:
            lines.append(f"Written to {Path(file).absolute()}.")
        return "\n".join(lines)

    emit(output, state, text)


@click.command("init")
@output_option
def init(output: str) -> None:
    """Create the config dir and the journal; what exists already is left as it is."""
    config = config_dir().absolute()
    stack, journal = _stack()
    config_created = not config.is_dir()
    config.mkdir(parents=True, exist_ok=True)
    journal_created = not journal.exists()
    executions = len(KitaruClient().executions.list())  # the first query creates the file
    lines = [
        f"Created the config dir {config}."
        if config_created
        else f"The config dir {config} already exists.",
        f"Created the journal {journal}."
        if journal_created
        else f"The journal {journal} already exists ({executions} executions); left as it is.",
        f"Executions run on the '{stack}' stack and are recorded there.",
    ]
    emit(
        output,
        {
            "config_dir": str(config),
            "config_dir_created": config_created,
            "journal": str(journal),
            "journal_created": journal_created,
            "executions": executions,
            "stack": stack,
        },
        lambda: "\n".join(lines),
    )

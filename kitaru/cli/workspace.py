"""``kitaru status``, ``info`` and ``init``: where kitaru keeps its state.

Executions run on a stack (``local`` by default): in the processes that start or resume
them, recorded in its store, an SQLite journal file or a PostgreSQL database. These
commands show where that store and the config dir are (``kitaru.client._workspace``
gathers it) and create them (``kitaru clean`` removes them). Reading never creates anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kitaru._config import config_dir, sqlite_file
from kitaru.cli.output import emit, output_option
from kitaru.client import KitaruClient
from kitaru.client._workspace import (
    current_store,
    environment_info,
    init_database,
    masked_store_url,
    sqlite_journal,
    workspace_state,
)
from kitaru.errors import KitaruUsageError

__all__ = ["info", "init", "status"]


def _state_text(state: dict[str, Any]) -> list[str]:
    if state["journal_exists"]:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(state["journal_by_status"].items()))
        held = f"{state['journal_executions']} executions" + (f" ({counts})" if counts else "")
    else:
        held = "not created yet (the first run creates it, or `kitaru init`)"
    config_held = "exists" if state["config_dir_exists"] else "not created yet"
    if state["journal"] is not None:
        where = [f"Journal     {state['journal']} (from {state['journal_from']}): {held}"]
    else:
        only = ", ".join(state["sqlite_only"])
        where = [
            f"Store       {state['store']} (from {state['journal_from']}): {held}",
            f"            {state['store_backend']}; no journal file ({only}: SQLite stores only)",
        ]
    return [
        f"Kitaru      {state['kitaru_version']}",
        "Connection  local: executions run in the processes that start them (no server)",
        f"Stack       {state['stack']}",
        *where,
        f"Config dir  {state['config_dir']} (from {state['config_dir_from']}): {config_held}",
    ]


@click.command("status")
@output_option
def status(output: str) -> None:
    """Show where executions run and are recorded: stack, journal, config dir."""
    state = workspace_state()
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
    state = environment_info(all_packages=all_, packages=list(packages))
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
    stack, url = current_store()
    config_created = not config.is_dir()
    if sqlite_file(url) is None:
        # A database store: its tables are created in the database, not in a file.
        journal_created, executions = init_database(url)
        config.mkdir(parents=True, exist_ok=True)
        journal: Path | str = masked_store_url(url)
    else:
        stack, journal = sqlite_journal("`kitaru init`")
        config.mkdir(parents=True, exist_ok=True)
        journal_created = not journal.exists()
        executions = len(KitaruClient().executions.list())  # the first query creates it
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

"""The ``kitaru`` command line.

Commands are thin: they parse, call the client or a library function, and print.
Every ``KitaruError`` becomes one line on stderr and exit code 1, never a traceback.

A command's module is imported only when that command runs (or its own help is shown):
``kitaru --help`` lists the commands from ``COMMANDS`` alone, so it starts as fast as
Python does. A new command is one more row there.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import click

from kitaru.errors import KitaruError

__all__ = ["COMMANDS", "main"]


class CommandEntry(NamedTuple):
    """Where a top-level command is defined, and the help line ``kitaru --help`` shows."""

    module: str
    attribute: str
    help: str
    """The first paragraph of the command's docstring."""


COMMANDS: dict[str, CommandEntry] = {
    "clean": CommandEntry(
        "kitaru.cli.clean",
        "clean",
        "Remove the journal (every execution) and its side files; --config: the config dir too.",
    ),
    "executions": CommandEntry(
        "kitaru.cli.executions", "executions", "Inspect, resume and retry executions."
    ),
    "log-store": CommandEntry(
        "kitaru.cli.server",
        "log_store",
        "Not available: logs are kept in the journal (see the message).",
    ),
    "login": CommandEntry(
        "kitaru.cli.server",
        "login",
        "Not available: there is no server to log in to (see the message).",
    ),
    "logout": CommandEntry(
        "kitaru.cli.server",
        "logout",
        "Not available: there is no server session (see the message).",
    ),
    "info": CommandEntry(
        "kitaru.cli.workspace",
        "info",
        "Show the environment: versions, stack, journal and config dir.",
    ),
    "init": CommandEntry(
        "kitaru.cli.workspace",
        "init",
        "Create the config dir and the journal; what exists already is left as it is.",
    ),
    "memory": CommandEntry(
        "kitaru.cli.memory",
        "memory",
        "Durable key-value memory: versioned entries in typed scopes.",
    ),
    "model": CommandEntry(
        "kitaru.cli.model",
        "model",
        "Name models with aliases, such as fast -> openai/gpt-5-nano, for kitaru.llm().",
    ),
    "secrets": CommandEntry(
        "kitaru.cli.secrets",
        "secrets",
        "Keep provider keys and other secrets on this machine, readable only by you.",
    ),
    "stack": CommandEntry(
        "kitaru.cli.stack", "stack", "Stacks: where executions are recorded and run."
    ),
    "status": CommandEntry(
        "kitaru.cli.workspace",
        "status",
        "Show where executions run and are recorded: stack, journal, config dir.",
    ),
    "store": CommandEntry("kitaru.cli.store", "store", "Inspect the journal store."),
    "worker": CommandEntry(
        "kitaru.cli.worker",
        "worker",
        "Run queued executions of a PostgreSQL store; `worker list` shows the workers.",
    ),
    "ui": CommandEntry(
        "kitaru.cli.ui",
        "ui",
        "Serve the dashboard: executions, timelines, logs, waits and actions.",
    ),
}


class _KitaruGroup(click.Group):
    """A group whose every error is one message on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KitaruError as exc:
            from kitaru._redaction import redact_shown

            click.echo(f"Error: {redact_shown(str(exc))}", err=True)
            sys.exit(1)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        # click exits 2 on a usage error; kitaru's contract is 1 for every error.
        del standalone_mode
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(1)
        except click.exceptions.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):
                # Ctrl-C: what ran here is recorded, and an interrupted execution resumes.
                click.echo("Interrupted.", err=True)
                sys.exit(130)
            click.echo("Aborted!", err=True)
            sys.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command: click.Command | None = self.commands.get(cmd_name)
        entry = COMMANDS.get(cmd_name)
        if command is None and entry is not None:
            command = getattr(importlib.import_module(entry.module), entry.attribute)
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's listing, but a command not loaded yet gets its line from the table:
        # click would import every command's module for it.
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is None:
                rows.append((name, _short_help(COMMANDS[name].help, limit)))
            elif not loaded.hidden:
                rows.append((name, loaded.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _short_help(text: str, limit: int) -> str:
    """The first sentence of ``text``, cut at a word with "..." if longer than ``limit``."""
    first = text.strip().split(". ", 1)[0].rstrip(".")
    if len(first) <= limit:
        return first
    cut = first[: max(0, limit - 3)].rsplit(" ", 1)[0]
    return f"{cut}..."


@click.group(cls=_KitaruGroup)
@click.version_option(None, "-V", "--version", package_name="kitaru")
def main() -> None:
    """kitaru: durable execution for Python AI agents."""
    from kitaru._config import WAIT_PROMPT_ENV
    from kitaru._logging import enable_cli_logging

    # A run this command drives says how to answer its waits from another shell (and
    # `executions input --interactive` asks at a terminal): the flow body never prompts.
    os.environ.setdefault(WAIT_PROMPT_ENV, "0")

    enable_cli_logging()

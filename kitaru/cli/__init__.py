"""The ``kitaru`` command line.

Commands are thin: they parse, call the client or a library function, and print.
Every ``KitaruError`` becomes one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from kitaru.errors import KitaruError

__all__ = ["main"]


class _KitaruGroup(click.Group):
    """A group that turns kitaru's errors into a clean message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KitaruError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_KitaruGroup)
@click.version_option(package_name="kitaru")
def main() -> None:
    """kitaru: durable execution for Python AI agents."""
    from kitaru.logs import enable_cli_logging

    enable_cli_logging()


def _register_commands() -> None:
    from kitaru.cli.executions import executions
    from kitaru.cli.model import model
    from kitaru.cli.secrets import secrets
    from kitaru.cli.store import store

    for command in (executions, model, secrets, store):
        main.add_command(command)


_register_commands()

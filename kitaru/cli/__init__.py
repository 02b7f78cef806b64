"""The ``kitaru`` command line.

Commands are thin: they parse, call the client or a library function, and print.
Every ``KitaruError`` becomes one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from kitaru.errors import KitaruError

__all__ = ["main"]


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


@click.group(cls=_KitaruGroup)
@click.version_option(None, "-V", "--version", package_name="kitaru")
def main() -> None:
    """kitaru: durable execution for Python AI agents."""
    from kitaru._logging import enable_cli_logging

    enable_cli_logging()


def _register_commands() -> None:
    from kitaru.cli.executions import executions
    from kitaru.cli.memory import memory
    from kitaru.cli.model import model
    from kitaru.cli.secrets import secrets
    from kitaru.cli.stack import stack
    from kitaru.cli.store import store
    from kitaru.cli.ui import ui
    from kitaru.cli.workspace import clean, info, init, status

    for command in (
        executions,
        memory,
        model,
        secrets,
        stack,
        store,
        status,
        info,
        init,
        clean,
        ui,
    ):
        main.add_command(command)


_register_commands()

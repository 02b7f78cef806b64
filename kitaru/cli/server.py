"""Kitaru's server and log-store commands, which need infrastructure not run here.

``kitaru login``/``logout`` connect to a Kitaru server and ``kitaru log-store``
sends logs to an external backend. Executions here are recorded in a journal
store and their logs in that journal, so each command says what to use instead.
"""

from __future__ import annotations

import click

from kitaru.errors import KitaruFeatureNotAvailableError

__all__ = ["log_store", "login", "logout"]

_ANY_ARGS = {"ignore_unknown_options": True, "allow_extra_args": True}

_NO_SERVER = (
    "There is no Kitaru server in this version: executions are recorded in a journal "
    "store. To share executions, create a stack on a shared store with `kitaru stack "
    "create NAME --store sqlite:///PATH` (or kitaru.connect('sqlite:///PATH'))."
)


@click.command("login", context_settings=_ANY_ARGS)
@click.argument("server", required=False)
@click.option("--url", default=None, help="Not available (there is no server).")
def login(server: str | None, url: str | None) -> None:
    """Not available: there is no server to log in to (see the message)."""
    target = f" {url or server}" if (url or server) else ""
    raise KitaruFeatureNotAvailableError(f"`kitaru login{target}` is not available. {_NO_SERVER}")


@click.command("logout", context_settings=_ANY_ARGS)
def logout() -> None:
    """Not available: there is no server session (see the message)."""
    raise KitaruFeatureNotAvailableError(f"`kitaru logout` is not available. {_NO_SERVER}")


@click.command("log-store", context_settings=_ANY_ARGS)
@click.argument("action", required=False)
def log_store(action: str | None) -> None:
    """Not available: logs are kept in the journal (see the message)."""
    what = f"log-store {action}" if action else "log-store"
    raise KitaruFeatureNotAvailableError(
        f"`kitaru {what}` is not available: execution logs are kept in the journal with "
        "each execution, not in an external log store. Read them with `kitaru executions "
        "logs EXEC_ID` or KitaruClient().executions.logs(exec_id)."
    )

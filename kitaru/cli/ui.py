"""``kitaru ui``: serve the local web dashboard."""

from __future__ import annotations

import os
import sys

import click

from kitaru.errors import KitaruUsageError

__all__ = ["ui"]


def _can_open_a_window() -> bool:
    """A graphical browser can be opened (not on a bare terminal, where a text browser
    would take over the terminal the server prints to)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command("ui")
@click.option("--store", help="The journal to show (default: KITARU_STORE, else the config's).")
@click.option(
    "--host",
    default=None,
    help="Address to listen on (default 127.0.0.1; another address is reachable by others).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
def ui(store: str | None, host: str | None, port: int, no_open: bool) -> None:
    """Serve the dashboard: executions, timelines, logs, waits and actions.

    Prints the URL to open (it carries this launch's access token) and serves until
    Ctrl-C.
    """
    try:
        from kitaru.ui import Dashboard, is_loopback
    except ImportError as exc:
        raise KitaruUsageError(
            f"kitaru ui needs the dashboard's packages ({exc.name} is missing); install "
            "them with: pip install 'kitaru[ui]'"
        ) from None
    from kitaru.client import KitaruClient

    host = host or "127.0.0.1"
    if not is_loopback(host):
        click.echo(
            f"Warning: listening on {host}, not only on this machine: anyone who can reach "
            "it and has the URL's token can see and act on your executions.",
            err=True,
        )
    client = KitaruClient(store)
    dashboard = Dashboard(client, host=host, port=port)
    try:
        url = dashboard.bind()
    except OSError as exc:
        raise KitaruUsageError(
            f"Cannot listen on {host}:{port} ({exc.strerror}); choose another with --port "
            "(0 picks a free one) or --host."
        ) from None
    click.echo(f"kitaru ui: {url}")
    sys.stdout.flush()
    if not no_open and _can_open_a_window():
        import webbrowser

        webbrowser.open(url)
    dashboard.serve()
    click.echo("kitaru ui stopped.", err=True)

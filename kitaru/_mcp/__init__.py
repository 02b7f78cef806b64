"""``kitaru-mcp``: an MCP server for the executions of one journal.

It serves tools that mirror ``KitaruClient``: list, get and follow executions, answer
or abort their waits, resume, retry, cancel and replay them. Resume, retry and replay
run the flow in this process, so it must be able to import the flow's module
(``--import-path DIR`` puts a folder on ``sys.path``). The ``mcp`` SDK comes with
``pip install 'kitaru[mcp]'`` and is imported only when the server starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["main"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    metavar="URL",
    help="The journal to serve (default: KITARU_STORE, else the active stack's store).",
)
@click.option(
    "--import-path",
    "import_paths",
    multiple=True,
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder to import flow modules from (repeatable); resume, retry and replay "
    "import the flow in this process.",
)
@click.option(
    "--transport",
    type=click.Choice(["stdio"]),
    default="stdio",
    show_default=True,
    help="How MCP clients talk to the server.",
)
def _command(store: str | None, import_paths: tuple[Path, ...], transport: str) -> None:
    """Serve kitaru's executions to MCP clients over stdio."""
    del transport  # stdio is the only transport offered
    missing = [str(path) for path in import_paths if not path.is_dir()]
    if missing:
        raise click.UsageError(
            f"--import-path {missing[0]} is not a folder; give the folder that holds "
            "your flow modules."
        )
    try:
        import mcp  # noqa: F401  (checked here so the message can say how to get it)
    except ImportError:
        raise click.ClickException(
            "kitaru-mcp needs the MCP SDK; install it with `pip install 'kitaru[mcp]'`."
        ) from None
    for path in reversed(import_paths):
        sys.path.insert(0, str(path.resolve()))

    from kitaru._mcp.server import serve_stdio

    serve_stdio(store)


def main() -> None:
    """The ``kitaru-mcp`` console script: every error is one line and exit code 1."""
    try:
        _command.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except click.exceptions.Abort:
        sys.exit(130)

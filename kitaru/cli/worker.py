"""``kitaru worker``: run queued executions; ``kitaru worker list``: see the workers."""

from __future__ import annotations

import time

import click

from kitaru.cli.output import emit, output_option
from kitaru.client import KitaruClient

__all__ = ["worker"]


@click.group(invoke_without_command=True)
@click.option("--store", "store", default=None, help="Store URL (default: the current stack's).")
@click.option(
    "--concurrency", type=int, default=4, show_default=True, help="Executions run at once."
)
@click.option(
    "--queue", "queues", multiple=True, help="Queue to claim from (repeatable; default: default)."
)
@click.option(
    "--import-path",
    "import_paths",
    multiple=True,
    help="Folder to import flow modules from (repeatable).",
)
@click.option(
    "--grace",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds running calls may take to finish after SIGTERM before they are handed back.",
)
@click.option(
    "--poll",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Seconds between looks at the queue when no notification wakes the worker "
    "(a fallback: enqueues, answers and cancels notify at once; default 0.1).",
)
@click.pass_context
def worker(
    ctx: click.Context,
    *,
    store: str | None,
    concurrency: int,
    queues: tuple[str, ...],
    import_paths: tuple[str, ...],
    grace: float,
    poll: float | None,
) -> None:
    """Run queued executions of a PostgreSQL store; `worker list` shows the workers."""
    ctx.obj = store
    if ctx.invoked_subcommand is not None:
        return
    KitaruClient(store).workers.run(
        concurrency=concurrency,
        queues=queues or ("default",),
        import_paths=import_paths,
        grace=grace,
        poll=poll,
    )


@worker.command("list")
@click.option("--store", "store", default=None, help="Store URL (default: the current stack's).")
@click.option("--all", "include_dead", is_flag=True, help="Include workers that are gone.")
@output_option
@click.pass_context
def list_command(ctx: click.Context, *, store: str | None, include_dead: bool, output: str) -> None:
    """List the workers alive now: host, pid, what they run, last heartbeat."""
    client = KitaruClient(store or ctx.obj)
    rows = client.workers.list(include_dead=include_dead)
    now = time.time()

    def text() -> str:
        if not rows:
            return "No workers are running."
        lines = []
        for row in rows:
            host = row.host.rpartition("#")[0] or row.host
            running = ", ".join(row.running) or "-"
            state = "" if row.alive else " (gone)"
            lines.append(
                f"{row.id}  host {host}  pid {row.pid}  {len(row.running)}/{row.concurrency} "
                f"running: {running}  heartbeat {max(0.0, now - row.heartbeat_at):.1f}s ago"
                f"{state}"
            )
        return "\n".join(lines)

    emit(
        output,
        [
            {
                "id": row.id,
                "host": row.host,
                "pid": row.pid,
                "queues": row.queues,
                "concurrency": row.concurrency,
                "running": row.running,
                "started_at": row.started_at,
                "heartbeat_at": row.heartbeat_at,
                "alive": row.alive,
            }
            for row in rows
        ],
        text,
    )

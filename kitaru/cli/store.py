"""``kitaru store ...``: look after the journal itself."""

from __future__ import annotations

import sys

import click

from kitaru.cli.output import emit, output_option
from kitaru.client import KitaruClient

__all__ = ["store"]


@click.group()
def store() -> None:
    """Inspect the journal store."""


@store.command("check")
@output_option
def check(output: str) -> None:
    """Check the journal's integrity; exit 1 if anything is wrong."""
    report = KitaruClient().check_store()

    def text() -> str:
        head = (
            f"Journal {report.location}: {report.executions} executions, {report.events} "
            f"events, {report.payloads} payloads."
        )
        notes = [f"  {note}" for note in report.notes]
        if report.ok:
            return "\n".join([head, *notes, "OK: no problems found."])
        return "\n".join(
            [head, *notes, f"{len(report.problems)} problem(s):"]
            + [f"  - {p}" for p in report.problems]
        )

    emit(
        output,
        {
            "location": report.location,
            "ok": report.ok,
            "executions": report.executions,
            "events": report.events,
            "payloads": report.payloads,
            "problems": report.problems,
            "notes": report.notes,
            "wal": report.log,
        },
        text,
    )
    if not report.ok:
        sys.exit(1)


@store.command("copy")
@click.argument("source")
@click.argument("destination")
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Copy only the executions the destination does not have yet.",
)
@output_option
def copy(source: str, destination: str, skip_existing: bool, output: str) -> None:
    """Copy every execution journal from SOURCE to DESTINATION (store URLs or paths).

    Executions already in DESTINATION are never overwritten: the copy stops, writing
    nothing, unless --skip-existing is given.
    """
    report = KitaruClient.copy_store(source, destination, skip_existing=skip_existing)

    def text() -> str:
        lines = [
            f"Copied {len(report.copied)} execution(s), {report.events} events, "
            f"{report.payloads} payloads and {report.memory_versions} memory versions "
            f"from {report.source} to {report.destination}; verified."
        ]
        if report.skipped:
            lines.append(
                f"Skipped {len(report.skipped)} already in the destination: "
                + ", ".join(report.skipped)
            )
        return "\n".join(lines)

    emit(
        output,
        {
            "source": report.source,
            "destination": report.destination,
            "copied": report.copied,
            "skipped": report.skipped,
            "events": report.events,
            "payloads": report.payloads,
            "memory_versions": report.memory_versions,
        },
        text,
    )

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

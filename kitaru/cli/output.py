"""How every command prints: ``-o text`` for people, ``-o json`` for programs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["OutputFormat", "emit", "output_option"]

F = TypeVar("F", bound=Callable[..., Any])

OutputFormat = str


def output_option(func: F) -> F:
    """Add the ``-o/--output text|json`` option every command takes."""
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Print for people (text) or for programs (json, on stdout).",
    )(func)


def emit(output: OutputFormat, data: Any, text: Callable[[], str]) -> None:
    """Print ``data`` as JSON, or the string ``text()`` builds, to stdout."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        rendered = text()
        if rendered:
            click.echo(rendered)

"""How every command prints: ``-o text`` for people, ``-o json`` for programs.

With ``-o json`` stdout holds the JSON and nothing else: from the moment the option
is parsed, everything else printed (checkpoint prints included, which are still
journaled) goes to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import click
import msgspec

__all__ = ["OutputFormat", "emit", "emit_json_line", "output_option"]

F = TypeVar("F", bound=Callable[..., Any])

OutputFormat = str

_JSON_STREAM = "kitaru.json_stream"


def _json_only_on_stdout(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value == "json" and _JSON_STREAM not in ctx.meta:
        from kitaru.client._console import prints_to_stderr

        real, undo = prints_to_stderr()
        ctx.meta[_JSON_STREAM] = real
        ctx.call_on_close(undo)
    return value


def output_option(func: F) -> F:
    """Add the ``-o/--output text|json`` option every command takes."""
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        callback=_json_only_on_stdout,
        help="Print for people (text) or for programs (json, alone on stdout).",
    )(func)


def _json_stream() -> TextIO | None:
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(_JSON_STREAM)


def emit_json_line(data: Any) -> None:
    """Print one compact JSON document on its own line (for streams of events)."""
    click.echo(json.dumps(data, default=str), file=_json_stream())


def _indented(data: Any) -> str:
    """``json.dumps(data, indent=2, sort_keys=True, default=str)``, the same text, faster.

    With ``indent`` the standard library encodes in pure Python (a listing of 1,000
    executions is megabytes); without it, in C. So the compact text is re-laid with
    msgspec, which leaves every string and number as written. What msgspec refuses
    (NaN, an escaped lone surrogate) takes the standard library's way instead.
    """
    compact = json.dumps(data, sort_keys=True, default=str)
    try:
        return msgspec.json.format(compact, indent=2)
    except msgspec.DecodeError:
        return json.dumps(data, indent=2, sort_keys=True, default=str)


def emit(output: OutputFormat, data: Any, text: Callable[[], str]) -> None:
    """Print ``data`` as JSON, or the string ``text()`` builds, to stdout.

    ``data`` may be a function that builds it: then it is built only for JSON output
    (a listing's JSON reads every call of every execution, its table does not).
    """
    if output == "json":
        if callable(data):
            data = data()
        click.echo(_indented(data), file=_json_stream())
    else:
        rendered = text()
        if rendered:
            click.echo(rendered)

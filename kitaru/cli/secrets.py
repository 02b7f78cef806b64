"""``kitaru secrets``: store, list, show and delete named secrets on this machine."""

from __future__ import annotations

import re
import sys

import click

from kitaru._llm.registry import load_local_registry
from kitaru._secrets import MASK, delete_secret, get_secret, list_secrets, set_secret
from kitaru.cli.output import emit, output_option
from kitaru.errors import KitaruUsageError

__all__ = ["parse_assignments", "read_missing_values", "secrets"]

_BARE_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


@click.group(name="secrets")
def secrets() -> None:
    """Keep provider keys and other secrets on this machine, readable only by you."""


@secrets.command(
    "set",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("name", metavar="NAME --KEY[=VALUE]...")
@output_option
@click.pass_context
def set_(ctx: click.Context, name: str, output: str) -> None:
    """Create secret NAME, or add and update its keys: --KEY=VALUE or --KEY, repeated.

    A value on the command line is visible to every user of this machine (in `ps`) and
    may land in your shell history. Give --KEY alone to keep it off the command line:
    on a terminal you are asked for the value, which is not echoed; otherwise the values
    are read from standard input, one line per --KEY, in the order given.

    \b
    Examples:
      kitaru secrets set openai-creds --OPENAI_API_KEY          (asks for the value)
      printf '%s\\n' "$KEY" | kitaru secrets set openai-creds --OPENAI_API_KEY
      kitaru secrets set openai-creds --OPENAI_API_KEY=sk-...   (visible in ps)
    """
    values = read_missing_values(name, parse_assignments(ctx.args))
    keys = set_secret(name, values)
    emit(
        output,
        {"name": name, "keys": keys},
        lambda: f"Saved secret '{name}' (keys: {', '.join(keys)}).",
    )


@secrets.command("list")
@output_option
def list_(output: str) -> None:
    """List secret names and their keys (never their values)."""
    stored = list_secrets()

    def text() -> str:
        if not stored:
            return "No secrets. Store one with `kitaru secrets set NAME --KEY=VALUE`."
        return "\n".join(f"{name}: {', '.join(keys)}" for name, keys in stored.items())

    emit(output, [{"name": name, "keys": keys} for name, keys in stored.items()], text)


@secrets.command("show")
@click.argument("name")
@click.option("--show-values", is_flag=True, help="Print the values instead of masking them.")
@output_option
def show(name: str, show_values: bool, output: str) -> None:
    """Show secret NAME's keys, with values masked unless --show-values is given."""
    values = get_secret(name)
    shown = {key: value if show_values else MASK for key, value in sorted(values.items())}

    def text() -> str:
        lines = [f"Secret '{name}':"]
        lines += [f"  {key} = {value}" for key, value in shown.items()]
        return "\n".join(lines)

    emit(output, {"name": name, "values": shown}, text)


@secrets.command("delete")
@click.argument("name")
@output_option
def delete(name: str, output: str) -> None:
    """Delete secret NAME."""
    delete_secret(name)
    linked = sorted(
        alias for alias, entry in load_local_registry().aliases.items() if entry.secret == name
    )

    def text() -> str:
        message = f"Deleted secret '{name}'."
        if linked:
            message += (
                f" Aliases still linking it: {', '.join(linked)}; their calls now need the "
                "provider's key in the environment, or the secret stored again."
            )
        return message

    emit(output, {"deleted": name, "linked_aliases": linked}, text)


def parse_assignments(args: list[str]) -> dict[str, str | None]:
    """Turn ``["--KEY=VALUE", "--KEY2", ...]`` into a dict; refuse anything else.

    Values may contain ``=``; only the first one separates key from value. A bare
    ``--KEY`` maps to None: its value is to be read (see ``read_missing_values``).
    """
    if not args:
        raise KitaruUsageError(
            "Give at least one key as --KEY=VALUE or --KEY, e.g. "
            "`kitaru secrets set openai-creds --OPENAI_API_KEY`."
        )
    values: dict[str, str | None] = {}
    for position, arg in enumerate(args, start=1):
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        # A bare --KEY must look like a key: anything else may be a value typed in the
        # wrong form, and the argument is never echoed.
        if not key or (not sep and not _BARE_KEY_RE.fullmatch(key)):
            raise KitaruUsageError(
                f"Argument {position} after the secret name is not --KEY=VALUE or --KEY. "
                "Write each key and value as one argument joined by '=', e.g. "
                "--OPENAI_API_KEY=<key>, or give --OPENAI_API_KEY alone to be asked for it."
            )
        if key in values:
            raise KitaruUsageError(f"Key {key} is given twice; give each key once.")
        values[key] = value if sep else None
    return values


def read_missing_values(name: str, values: dict[str, str | None]) -> dict[str, str]:
    """Fill in the values of bare ``--KEY`` arguments, in order, without echoing them.

    On a terminal each one is asked for with echo off; otherwise each is one line of
    standard input (its line ending removed).
    """
    missing = [key for key, value in values.items() if value is None]
    stdin = sys.stdin
    interactive = bool(missing) and stdin.isatty()
    filled: dict[str, str] = {}
    for key, given in values.items():
        if given is not None:
            filled[key] = given
        elif interactive:
            filled[key] = click.prompt(f"Value for {key} of secret '{name}'", hide_input=True)
        else:
            line = stdin.readline()
            if not line:
                raise KitaruUsageError(
                    f"Standard input ended before the value for {key}. Give one value per "
                    f"line, in the order of the keys ({', '.join(missing)})."
                )
            filled[key] = line.removesuffix("\n").removesuffix("\r")
    return filled

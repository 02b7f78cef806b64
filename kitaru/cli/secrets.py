"""``kitaru secrets``: store, list, show and delete named secrets on this machine."""

from __future__ import annotations

import click

from kitaru._llm.registry import load_local_registry
from kitaru.cli.output import emit, output_option
from kitaru.errors import KitaruUsageError
from kitaru.secrets import MASK, delete_secret, get_secret, list_secrets, set_secret

__all__ = ["secrets"]


@click.group(name="secrets")
def secrets() -> None:
    """Keep provider keys and other secrets on this machine, readable only by you."""


@secrets.command(
    "set",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("name", metavar="NAME --KEY=VALUE...")
@output_option
@click.pass_context
def set_(ctx: click.Context, name: str, output: str) -> None:
    """Create secret NAME, or add and update its keys: --KEY=VALUE [--KEY2=VALUE2 ...].

    Example: kitaru secrets set openai-creds --OPENAI_API_KEY=sk-...
    """
    keys = set_secret(name, parse_assignments(ctx.args))
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


def parse_assignments(args: list[str]) -> dict[str, str]:
    """Turn ``["--KEY=VALUE", ...]`` into a dict; refuse anything else.

    Values may contain ``=``; only the first one separates key from value.
    """
    if not args:
        raise KitaruUsageError(
            "Give at least one key as --KEY=VALUE, e.g. "
            "`kitaru secrets set openai-creds --OPENAI_API_KEY=<key>`."
        )
    values: dict[str, str] = {}
    for position, arg in enumerate(args, start=1):
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not sep or not key:
            # The argument is not echoed: it may well be a value typed in the wrong form.
            raise KitaruUsageError(
                f"Argument {position} after the secret name is not --KEY=VALUE. Write each "
                "key and value as one argument joined by '=', e.g. --OPENAI_API_KEY=<key>."
            )
        if key in values:
            raise KitaruUsageError(f"Key {key} is given twice; give each key once.")
        values[key] = value
    return values

"""``kitaru stack ...``: list, select, create and delete stacks."""

from __future__ import annotations

import os

import click

from kitaru._config import STORE_ENV
from kitaru._stacks import (
    StackInfo,
    create_stack,
    current_stack,
    delete_stack,
    list_stacks,
    use_stack,
)
from kitaru.cli.output import emit, output_option
from kitaru.errors import KitaruFeatureNotAvailableError, KitaruUsageError

__all__ = ["stack"]


def _line(info: StackInfo) -> str:
    mark = "*" if info.is_active else " "
    return f"{mark} {info.name:<16} {info.runner:<11} {info.store}"


def _store_note(info: StackInfo) -> str:
    """Say so when KITARU_STORE, not the active stack, decides where executions go."""
    if os.environ.get(STORE_ENV) and info.name != "local":
        return (
            f"\nNote: {STORE_ENV} is set, so executions that name no stack go to "
            f"{os.environ[STORE_ENV]}, not to '{info.name}'; unset it to use this stack."
        )
    return ""


@click.group()
def stack() -> None:
    """Stacks: where executions are recorded and run."""


@stack.command("list")
@output_option
def list_command(output: str) -> None:
    """List stacks; the active one is marked with *."""
    stacks = list_stacks()
    emit(output, [s.to_dict() for s in stacks], lambda: "\n".join(_line(s) for s in stacks))


@stack.command("current")
@output_option
def current_command(output: str) -> None:
    """Show the active stack."""
    info = current_stack()
    emit(output, info.to_dict(), lambda: _line(info).lstrip("* ") + _store_note(info))


@stack.command("use")
@click.argument("name_or_id")
@output_option
def use_command(name_or_id: str, output: str) -> None:
    """Make a stack the active one (saved in the config dir)."""
    info = use_stack(name_or_id)
    emit(
        output,
        info.to_dict(),
        lambda: f"Active stack: {info.name} ({info.store})" + _store_note(info),
    )


_REMOTE_TYPES = ("kubernetes", "vertex", "sagemaker", "azureml")


def _refuse_remote(name: str, stack_type: str, file: str | None, extra: list[str]) -> None:
    """Kitaru's remote stack kinds need cloud infrastructure; say what to create instead."""
    if stack_type in _REMOTE_TYPES or file is not None:
        what = f"a {stack_type} stack" if file is None else f"a stack from {file}"
        raise KitaruFeatureNotAvailableError(
            f"Creating {what} is not available here: every stack runs flows in the current "
            f"process and records them in a journal store. Create a store-backed stack "
            f"instead: `kitaru stack create {name} --store sqlite:///PATH`."
        )
    if extra:
        raise KitaruUsageError(
            f"Unexpected arguments for a local stack: {' '.join(extra)}. A stack takes "
            f"`--store sqlite:///PATH`; see `kitaru stack create --help`."
        )


@stack.command("show")
@click.argument("name_or_id")
@output_option
def show_command(name_or_id: str, output: str) -> None:
    """Show one stack: its id, store and whether it is active."""
    wanted = name_or_id.strip()
    stacks = list_stacks()
    info = next((s for s in stacks if wanted in (s.name, s.id)), None)
    if info is None:
        raise KitaruUsageError(
            f"No stack {wanted!r}. Stacks: {', '.join(s.name for s in stacks)}. "
            "List them with `kitaru stack list`."
        )
    emit(output, info.to_dict(), lambda: _line(info) + _store_note(info))


@stack.command(
    "create", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("name")
@click.option(
    "--type",
    "stack_type",
    type=click.Choice(["local", *_REMOTE_TYPES]),
    default="local",
    show_default=True,
    help="Kind of stack; only 'local' (in-process, with its own store) exists here.",
)
@click.option("-f", "--file", "file", default=None, help="Not available here (remote stacks).")
@click.option(
    "--store",
    "store",
    default=None,
    help="Journal store URL: sqlite:///PATH (default: a file of its own in the config dir).",
)
@click.option(
    "--workers",
    is_flag=True,
    help="Queue executions in the (PostgreSQL) store for `kitaru worker` processes to run.",
)
@click.option("--activate/--no-activate", default=True, show_default=True)
@output_option
@click.pass_context
def create_command(
    ctx: click.Context,
    *,
    name: str,
    stack_type: str,
    file: str | None,
    store: str | None,
    workers: bool,
    activate: bool,
    output: str,
) -> None:
    """Create a stack that records executions in its own journal store."""
    _refuse_remote(name, stack_type, file, list(ctx.args))
    info = create_stack(name, store=store, activate=activate, workers=workers)
    active = " and made it active" if info.is_active else ""
    emit(
        output,
        info.to_dict(),
        lambda: f"Created stack {info.name} ({info.store}){active}." + _store_note(info),
    )


@stack.command("delete")
@click.argument("name_or_id")
@click.option("--force", is_flag=True, help="Delete it even if it is the active stack.")
@output_option
def delete_command(name_or_id: str, force: bool, output: str) -> None:
    """Forget a stack (its journal file is kept)."""
    delete_stack(name_or_id, force=force)
    active = current_stack()
    emit(
        output,
        {"deleted": name_or_id, "active": active.name},
        lambda: (
            f"Deleted stack {name_or_id}; its journal file is kept. Active stack: {active.name}."
        ),
    )

"""``kitaru clean``: remove the journal, and with ``global``/``all`` the config dir too.

``kitaru clean`` (and ``--config``) is this version's own form. ``clean global`` and
``clean all`` are Kitaru's names for removing everything kitaru keeps on this machine:
the journal of the current stack and the config dir (model aliases, secrets, stacks and
the journals kept there), after backing the journals up beside the config dir, and
only with ``--force`` when model aliases would go. ``clean project`` has no counterpart:
kitaru keeps no per-project folder, so it says what to use instead.
Nothing outside those files is touched, and nothing at all while an execution of a
journal that would go runs in a live process.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import click

from kitaru._llm.registry import load_local_registry, models_path
from kitaru.cli.output import emit, output_option
from kitaru.client import KitaruClient
from kitaru.client._workspace import (
    clean_plan,
    clean_project_unavailable,
    clean_result,
    refuse_while_running,
)
from kitaru.errors import KitaruUsageError

__all__ = ["clean"]


def _registered_aliases() -> list[str]:
    """The model aliases the config dir holds (an unreadable registry counts as some)."""
    if not models_path().exists():
        return []
    try:
        return sorted(load_local_registry().aliases)
    except KitaruUsageError:
        return [f"an unreadable {models_path().name}"]


def _refuse_to_drop_aliases(scope: str) -> None:
    aliases = _registered_aliases()
    if aliases:
        raise KitaruUsageError(
            f"`kitaru clean {scope}` would remove the model aliases registered in "
            f"{models_path()} ({', '.join(aliases)}); nothing was removed. Pass --force "
            "to remove them too."
        )


def _back_up(journals: list[Path], backup_dir: Path) -> list[Path]:
    """Copy each journal, with what its WAL holds, to one file in ``backup_dir``."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    copies = []
    for index, journal in enumerate(journals):
        copy = backup_dir / journal.name
        if copy.exists():  # two stacks' journals of one name, in different folders
            copy = backup_dir / f"{index}-{journal.name}"
        source = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
        copies.append(copy)
    return copies


def _remove(path: Path) -> None:
    # Closing the journal's last connection may already have removed -wal and -shm.
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _run_clean(
    *, scope: str, yes: bool, dry_run: bool, with_config: bool, force: bool, output: str
) -> None:
    plan = clean_plan(scope, with_config)
    for journal in plan.journals:
        refuse_while_running(journal)
    if scope in ("global", "all") and not dry_run and not force:
        _refuse_to_drop_aliases(scope)
    listed = [str(path) + ("/ (folder)" if path.is_dir() else "") for path in plan.targets]
    backup = str(plan.backup_dir) if plan.backup_dir is not None else None
    result = clean_result(plan, dry_run=dry_run)
    backed_up = f"\nThe journals are backed up first to {backup}/." if backup else ""
    if not plan.targets:
        emit(output, result, lambda: f"Nothing to remove: there is no journal at {plan.journal}.")
        return
    if dry_run:
        emit(
            output,
            result,
            lambda: "Would remove:\n" + "\n".join(f"  {p}" for p in listed) + backed_up,
        )
        return
    if not yes:
        click.echo("This removes, for good:", err=True)
        for shown in listed:
            click.echo(f"  {shown}", err=True)
        if backup:
            click.echo(backed_up.strip(), err=True)
        try:
            confirmed = click.confirm("Remove them?", err=True)
        except click.Abort:  # no answer to read (stdin closed): the same as no
            confirmed = False
            click.echo("", err=True)
        if not confirmed:
            click.echo("Nothing was removed. Pass --yes to remove them without asking.", err=True)
            sys.exit(1)
    if plan.backup_dir is not None:
        _back_up(plan.journals, plan.backup_dir)
    if plan.journal.exists():
        KitaruClient(create=False).close()
    for target in plan.targets:
        _remove(target)
    result["removed"] = result.pop("would_remove")
    done = "Removed:\n" + "\n".join(f"  {p}" for p in listed)
    emit(output, result, lambda: done + (f"\nBackup: {backup}/" if backup else ""))


_yes = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
_dry_run = click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
_force = click.option(
    "--force", is_flag=True, help="Remove the config dir even if it holds model aliases."
)


@click.group("clean", invoke_without_command=True)
@_yes
@_dry_run
@click.option(
    "--config",
    "with_config",
    is_flag=True,
    help="Also remove the config dir (model aliases, secrets, settings).",
)
@output_option
@click.pass_context
def clean(ctx: click.Context, yes: bool, dry_run: bool, with_config: bool, output: str) -> None:
    """Remove the journal (every execution) and its side files; --config: the config dir too.

    Refused while an execution of the journal runs in a live process. `clean global`
    (or `all`) removes the journal and the config dir, backing the journals up first.
    """
    if ctx.invoked_subcommand is None:
        _run_clean(
            scope="journal",
            yes=yes,
            dry_run=dry_run,
            with_config=with_config,
            force=True,
            output=output,
        )


@clean.command("project")
@_yes
@_dry_run
@output_option
def clean_project(yes: bool, dry_run: bool, output: str) -> None:
    """Not available: kitaru keeps no per-project folder (see the message)."""
    del yes, dry_run, output
    raise clean_project_unavailable()


def _scope_command(scope: str, summary: str) -> click.Command:
    @_yes
    @_dry_run
    @_force
    @output_option
    def command(yes: bool, dry_run: bool, force: bool, output: str) -> None:
        # `kitaru clean --yes global` means the same as `kitaru clean global --yes`.
        parent = click.get_current_context().parent
        given = parent.params if parent is not None else {}
        yes = yes or bool(given.get("yes"))
        dry_run = dry_run or bool(given.get("dry_run"))
        if output == "text" and given.get("output") == "json":
            output = "json"
        _run_clean(
            scope=scope, yes=yes, dry_run=dry_run, with_config=True, force=force, output=output
        )

    command.__doc__ = summary
    return clean.command(scope)(command)


_scope_command(
    "global",
    "Remove the journal and the config dir (aliases, secrets, stacks), backing journals up.",
)
_scope_command("all", "The same as `clean global`: there is no per-project state to add.")

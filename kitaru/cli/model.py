"""``kitaru model``: register model aliases, list them, remove them, pick the default."""

from __future__ import annotations

import click

from kitaru._llm.registry import (
    ModelEntry,
    environment_registry,
    list_models,
    load_local_registry,
    register_model,
    remove_model,
    set_default_model,
)
from kitaru.cli.output import emit, output_option

__all__ = ["model"]


@click.group(name="model")
def model() -> None:
    """Name models with aliases, such as fast -> openai/gpt-5-nano, for kitaru.llm()."""


@model.command("register")
@click.argument("alias")
@click.option(
    "--model",
    "model_name",
    required=True,
    metavar="PROVIDER/MODEL",
    help="The model the alias stands for, e.g. openai/gpt-5-nano or ollama/llama3.2.",
)
@click.option(
    "--secret",
    default=None,
    metavar="NAME",
    help="A secret (see `kitaru secrets`) holding the provider's API key.",
)
@output_option
def register(alias: str, model_name: str, secret: str | None, output: str) -> None:
    """Store ALIAS for a model; the first alias registered becomes the default.

    Registering an existing alias replaces it.
    """
    registry = register_model(alias, model_name, secret)
    is_default = registry.default == alias
    data = {"alias": alias, "model": model_name, "secret": secret, "default": is_default}

    def text() -> str:
        linked = f" with secret '{secret}'" if secret else ""
        default = " It is the default." if is_default else ""
        return f"Registered alias '{alias}' for {model_name}{linked}.{default}"

    emit(output, data, text)


@model.command("list")
@output_option
def list_(output: str) -> None:
    """Show the aliases in effect here, including any from KITARU_MODEL_REGISTRY."""
    entries = list_models()
    default = next((entry.alias for entry in entries if entry.is_default), None)
    data = {
        "default": default,
        "models": [
            {
                "alias": entry.alias,
                "model": entry.model,
                "secret": entry.secret,
                "default": entry.is_default,
                "source": entry.source,
            }
            for entry in entries
        ],
    }
    emit(output, data, lambda: _table(entries))


@model.command("remove")
@click.argument("alias")
@output_option
def remove(alias: str, output: str) -> None:
    """Remove ALIAS from the local registry.

    Removing the default leaves no default; pick one with `kitaru model default`.
    """
    was_default = load_local_registry().default == alias
    registry = remove_model(alias)
    data = {"removed": alias, "default": registry.default}

    def text() -> str:
        message = f"Removed alias '{alias}'."
        if was_default:
            message += (
                " It was the default, so there is no default now; pick one with "
                "`kitaru model default ALIAS`."
            )
        return message

    emit(output, data, text)


@model.command("default")
@click.argument("alias")
@output_option
def default(alias: str, output: str) -> None:
    """Make ALIAS the default model for calls that name none."""
    registry = set_default_model(alias)
    override = environment_registry()
    overridden_by = (
        override.default if override is not None and override.default not in (None, alias) else None
    )
    data = {
        "default": alias,
        "model": registry.aliases[alias].model,
        "overridden_by_environment": overridden_by,
    }

    def text() -> str:
        message = f"Default alias is now '{alias}' ({registry.aliases[alias].model})."
        if overridden_by is not None:
            message += (
                f" Note: KITARU_MODEL_REGISTRY makes '{overridden_by}' the default in this "
                "environment."
            )
        return message

    emit(output, data, text)


def _table(entries: list[ModelEntry]) -> str:
    if not entries:
        return (
            "No model aliases registered. Add one with "
            "`kitaru model register ALIAS --model PROVIDER/MODEL`."
        )
    header = ("ALIAS", "MODEL", "SECRET", "DEFAULT", "SOURCE")
    rows = [
        (e.alias, e.model, e.secret or "-", "*" if e.is_default else "", e.source) for e in entries
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )

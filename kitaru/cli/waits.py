"""Telling people what a waiting execution waits for, and how to answer it.

The command printed must work as typed in another shell: when the journal is not the
default one, it carries ``KITARU_STORE`` so the other shell finds the same journal.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from kitaru._config import CONFIG_PATH_ENV, STORE_ENV
from kitaru.client import ExecutionStatus, KitaruClient, PendingWait
from kitaru.errors import KitaruError

__all__ = ["announce_waits", "describe_wait", "input_command", "kitaru_command"]

_POLL_SECONDS = 0.2


def kitaru_command(*args: str, store: str) -> str:
    """``kitaru ARGS`` as one shell line that reaches the journal at ``store``."""
    line = " ".join(["kitaru", *(shlex.quote(arg) for arg in args)])
    if os.environ.get(STORE_ENV) or os.environ.get(CONFIG_PATH_ENV):
        # Another shell lacks this one's settings: name the journal explicitly.
        return f"{STORE_ENV}={shlex.quote(store)} {line}"
    return line


def example_value(schema: dict[str, Any] | None) -> Any:  # noqa: PLR0911  (one per JSON type)
    """A value of the shape ``schema`` describes, to show in a command (None: unknown)."""
    if not schema:
        return None
    kind = schema.get("type")
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return 1
    if kind == "string":
        return "text"
    if kind == "array":
        return []
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required", list(properties))
        value = {}
        for name in required:
            example = example_value(properties.get(name))
            if example is None:
                return None
            value[name] = example
        return value
    return None


def input_command(exec_id: str, wait: PendingWait, *, store: str, several: bool) -> str:
    """The exact ``kitaru executions input`` line that answers ``wait``."""
    example = example_value(wait.schema)
    value = "JSON" if example is None else json.dumps(example)
    args = ["executions", "input", exec_id, "--value", value]
    if several:
        args += ["--wait", wait.name]
    return kitaru_command(*args, store=store)


def describe_wait(
    exec_id: str, waits: list[PendingWait], *, store: str, several: bool | None = None
) -> str:
    """What the execution waits for, and the commands that answer or refuse it.

    ``several``: the execution waits at more than one place (default: ``len(waits) > 1``),
    so each command names its wait.
    """
    lines = []
    several = len(waits) > 1 if several is None else several
    for wait in waits:
        lines.append(f"Execution {exec_id} is waiting at '{wait.name}'.")
        if wait.question:
            lines.append(f"  Question: {wait.question}")
        if wait.schema:
            lines.append(f"  Expects:  {json.dumps(wait.schema)}")
        lines.append("  Answer it from another terminal with:")
        lines.append(f"    {input_command(exec_id, wait, store=store, several=several)}")
        refuse = ["executions", "input", exec_id, "--abort"]
        if several:
            refuse += ["--wait", wait.name]
        lines.append(f"  or refuse it with:  {kitaru_command(*refuse, store=store)}")
    return "\n".join(lines)


@contextmanager
def announce_waits(client: KitaruClient, store: str) -> Iterator[Callable[[str], None]]:
    """While the block runs an execution, say on stderr as soon as it waits for input.

    The block calls the function it is given with the execution's id once that is
    known (just before the flow body starts); the watching starts then.
    """
    done = threading.Event()
    told: set[str] = set()
    watchers: list[threading.Thread] = []

    def watch(exec_id: str) -> None:
        while not done.wait(_POLL_SECONDS):
            try:
                # The status row is cheap to read; the whole execution only once waiting.
                if client.executions.status(exec_id) is not ExecutionStatus.WAITING:
                    continue
                execution = client.executions.get(exec_id)
            except KitaruError:
                continue  # a busy journal: look again at the next tick
            fresh = [
                wait
                for wait in execution.pending_waits
                if not wait.input_received and wait.wait_id not in told
            ]
            if fresh:
                told.update(wait.wait_id for wait in fresh)
                several = len(execution.pending_waits) > 1
                click.echo(describe_wait(exec_id, fresh, store=store, several=several), err=True)

    def start(exec_id: str) -> None:
        watcher = threading.Thread(
            target=watch, args=(exec_id,), name=f"kitaru-waits-{exec_id}", daemon=True
        )
        watchers.append(watcher)
        watcher.start()

    try:
        yield start
    finally:
        done.set()
        for watcher in watchers:
            watcher.join()

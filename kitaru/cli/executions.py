"""``kitaru executions ...``: inspect, resume and retry executions."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import click

from kitaru.cli.output import emit, output_option
from kitaru.client import Execution, KitaruClient, LlmCall

__all__ = ["executions"]


def _when(value: dt.datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _status(execution: Execution) -> str:
    return "running (interrupted)" if execution.interrupted else execution.status


def _render_execution(execution: Execution) -> str:
    lines = [
        f"Execution  {execution.exec_id}",
        f"Flow       {execution.flow_name} ({execution.flow_module}.{execution.flow_qualname})",
        f"Status     {_status(execution)}",
        f"Started    {_when(execution.started_at)}",
        f"Ended      {_when(execution.ended_at)}",
    ]
    if execution.original_exec_id:
        lines.append(f"Replayed from {execution.original_exec_id}")
    if execution.failure:
        where = f" in {execution.failure.call}" if execution.failure.call else ""
        lines.append(
            f"Failure    {execution.failure.exception_type}{where}: {execution.failure.message}"
        )
    if execution.has_result:
        try:
            result = repr(execution.result())
        except Exception as exc:
            result = f"<cannot be loaded here: {exc}>"
        if len(result) > 200:
            result = result[:197] + "..."
        lines.append(f"Result     {result}")
    if execution.metadata:
        lines.append(f"Metadata   {json.dumps(execution.metadata, default=str)}")
    if execution.interrupted:
        lines.append(f"Hint       resume it with `kitaru executions resume {execution.exec_id}`")
    elif execution.status == "failed":
        lines.append(f"Hint       retry it with `kitaru executions retry {execution.exec_id}`")
    lines.append(f"Calls      {len(execution.checkpoints)}")
    for call in execution.checkpoints:
        attempts = f", {len(call.attempts)} attempts" if len(call.attempts) > 1 else ""
        kind = call.checkpoint_type or call.kind
        last = call.attempts[-1] if call.attempts else None
        lines.append(
            f"  #{call.position:<3} {call.invocation_id:<24} {call.status:<10} "
            f"{_duration(last.duration_ms if last else None):>10}  [{kind}]{attempts}"
        )
        if call.failure:
            lines.append(f"        {call.failure.exception_type}: {call.failure.message}")
        for llm in call.llm_calls:
            lines.extend(_render_llm(llm))
    return "\n".join(lines)


def _short(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _render_llm(llm: LlmCall) -> list[str]:
    requested = llm.requested_model or "(default)"
    via = f" via alias {llm.alias}" if llm.alias else ""
    tokens = f"{llm.input_tokens} in / {llm.output_tokens} out / {llm.total_tokens} total"
    lines = [
        f"        llm {llm.name} (attempt {llm.attempt}): {requested}{via} -> "
        f"{llm.resolved_model}, key from {llm.credential_source}",
        f"          {tokens} tokens, {_duration(llm.latency_ms)}",
    ]
    try:
        prompt, response = llm.prompt(), llm.response()
    except Exception as exc:
        return [*lines, f"          (prompt/response unavailable: {exc})"]
    last = prompt[-1]
    lines.append(
        f"          prompt   ({len(prompt)} messages) {last['role']}: {_short(last['content'])}"
    )
    lines.append(f"          response {_short(response)}")
    return lines


@click.group()
def executions() -> None:
    """Inspect, resume and retry executions."""


@executions.command("list")
@click.option("--flow", help="Only executions of this flow.")
@click.option(
    "--status",
    type=click.Choice(["running", "waiting", "completed", "failed", "cancelled"]),
    help="Only executions in this status.",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (newest first).")
@output_option
def list_executions(flow: str | None, status: str | None, limit: int | None, output: str) -> None:
    """List executions, newest first."""
    found = KitaruClient().executions.list(flow=flow, status=status, limit=limit)

    def text() -> str:
        if not found:
            return "No executions."
        rows = [f"{'ID':<36}  {'FLOW':<20}  {'STATUS':<21}  {'STARTED':<19}  ENDED"]
        rows += [
            f"{e.exec_id:<36}  {e.flow_name[:20]:<20}  {_status(e):<21}  "
            f"{_when(e.started_at):<19}  {_when(e.ended_at)}"
            for e in found
        ]
        return "\n".join(rows)

    emit(output, [e.to_dict() for e in found], text)


@executions.command("get")
@click.argument("exec_id")
@output_option
def get_execution(exec_id: str, output: str) -> None:
    """Show one execution: status, result or failure, and every call."""
    execution = KitaruClient().executions.get(exec_id)
    emit(output, execution.to_dict(), lambda: _render_execution(execution))


def _continue(exec_id: str, mode: str, output: str) -> None:
    from kitaru.runtime.runner import resume_execution

    client = KitaruClient()
    exec_id = client.executions.resolve_id(exec_id)
    run = resume_execution(exec_id, mode=mode, background=False)
    outcome = run.run()
    execution = client.executions.get(exec_id)
    payload: dict[str, Any] = execution.to_dict()
    if outcome.error is not None:
        emit(output, payload, lambda: _render_execution(execution))
        click.echo(f"Error: {outcome.error}", err=True)
        sys.exit(1)
    emit(output, payload, lambda: _render_execution(execution))


@executions.command("resume")
@click.argument("exec_id")
@output_option
def resume(exec_id: str, output: str) -> None:
    """Continue an interrupted or waiting execution here, in the foreground."""
    _continue(exec_id, "resume", output)


@executions.command("retry")
@click.argument("exec_id")
@output_option
def retry(exec_id: str, output: str) -> None:
    """Continue a failed execution here; its failed calls run again."""
    _continue(exec_id, "retry", output)

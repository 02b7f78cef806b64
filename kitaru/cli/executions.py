"""``kitaru executions ...``: inspect, resume and retry executions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import time
from collections import Counter
from typing import Any

import click

from kitaru.cli.output import emit, output_option
from kitaru.client import (
    CheckpointCall,
    Execution,
    KitaruClient,
    LlmCall,
    LogLine,
    Verification,
)
from kitaru.errors import KitaruUsageError
from kitaru.runtime.runner import Run

__all__ = ["executions"]


def _when(value: dt.datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _status(execution: Execution) -> str:
    return "running (interrupted)" if execution.interrupted else execution.status


def _render_call(call: CheckpointCall) -> list[str]:
    lines: list[str] = []
    attempts = f", {len(call.attempts)} attempts" if len(call.attempts) > 1 else ""
    kind = call.checkpoint_type or call.kind
    last = call.attempts[-1] if call.attempts else None
    lines.append(
        f"  #{call.position:<3} {call.invocation_id:<24} {call.status:<10} "
        f"{_duration(last.duration_ms if last else None):>10}  [{kind}]{attempts}"
    )
    if call.failure:
        lines.append(f"        {call.failure.exception_type}: {call.failure.message}")
    if call.overridden:
        lines.append("        output supplied by a replay override")
    elif call.reused_from:
        lines.append(f"        output reused from {call.reused_from} (replay)")
    elif call.cached_from:
        lines.append(f"        output reused from {call.cached_from} (cache)")
    for llm in call.llm_calls:
        lines.extend(_render_llm(llm))
    return lines


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
    for pending in execution.pending_waits:
        question = f" {pending.question!r}" if pending.question else ""
        expects = f", expects {json.dumps(pending.schema)}" if pending.schema else ""
        received = " (input received; resume to continue)" if pending.input_received else ""
        lines.append(f"Waiting    {pending.name}{question}{expects}{received}")
        lines.append(
            f"Hint       answer with `kitaru executions input {execution.exec_id} --value JSON`"
        )
    if execution.metadata:
        lines.append(f"Metadata   {json.dumps(execution.metadata, default=str)}")
    if execution.interrupted:
        lines.append(f"Hint       resume it with `kitaru executions resume {execution.exec_id}`")
    elif execution.status == "failed":
        lines.append(f"Hint       retry it with `kitaru executions retry {execution.exec_id}`")
    lines.append(f"Calls      {len(execution.checkpoints)}")
    for call in execution.checkpoints:
        lines.extend(_render_call(call))
    return "\n".join(lines)


def _short(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _render_llm(llm: LlmCall) -> list[str]:
    requested = llm.requested_model or "(default)"
    via = f" via alias {llm.alias}" if llm.alias else ""
    tokens = f"{llm.input_tokens} in / {llm.output_tokens} out / {llm.total_tokens} total"
    request = f", request {llm.provider_attempt}" if llm.provider_attempt > 1 else ""
    lines = [
        f"        llm {llm.name} (attempt {llm.attempt}{request}): {requested}{via} -> "
        f"{llm.resolved_model}, key from {llm.credential_source}",
    ]
    if llm.failure is not None:
        billed = "reached the provider" if llm.reached_provider else "never sent"
        lines.append(f"          failed after {_duration(llm.latency_ms)} ({billed}): ")
        lines[-1] += _short(llm.failure.message)
        return lines
    lines.append(f"          {tokens} tokens, {_duration(llm.latency_ms)}")
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
    _finish(client, resume_execution(exec_id, mode=mode, background=False), output)


def _finish(client: KitaruClient, run: Run, output: str) -> None:
    """Run an execution in the foreground, print how it ended; exit 1 if it failed."""
    outcome = run.run()
    execution = client.executions.get(run.exec_id)
    emit(output, execution.to_dict(), lambda: _render_execution(execution))
    if outcome.suspended and output == "text":
        click.echo(
            f"Waiting for input: answer with `kitaru executions input {run.exec_id} "
            "--value JSON`, then resume it."
        )
    if outcome.error is not None:
        click.echo(f"Error: {outcome.error}", err=True)
        sys.exit(1)


@executions.command("resume")
@click.argument("exec_id", required=False)
@click.option("--all", "all_", is_flag=True, help="Every interrupted execution of the store.")
@click.option(
    "--parallel", type=click.IntRange(min=1), default=4, show_default=True, help="With --all."
)
@output_option
def resume(exec_id: str | None, all_: bool, parallel: int, output: str) -> None:
    """Continue an interrupted or waiting execution here, in the foreground.

    With --all, find every execution whose process is gone and resume each once
    (executions waiting for input are left alone).
    """
    if all_ == (exec_id is not None):
        raise KitaruUsageError("Give an execution id, or --all (not both).")
    if exec_id is not None:
        _continue(exec_id, "resume", output)
        return
    from kitaru.journal import open_store
    from kitaru.runtime.recovery import RecoveryResult, recover_all

    def report(result: RecoveryResult) -> None:
        if output == "text":
            why = f": {result.error}" if result.error and result.status == "failed" else ""
            click.echo(f"{result.exec_id}  {result.status}{why}")

    results = recover_all(open_store(), parallel=parallel, on_result=report)
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    emit(
        output,
        [{"exec_id": r.exec_id, "status": r.status, "error": r.error} for r in results],
        lambda: f"Recovered {len(results)} interrupted execution(s): {summary}.",
    )
    if counts.get("failed"):
        sys.exit(1)


def _render_verification(found: Verification) -> list[str]:
    head = f"{found.exec_id}  {found.flow}  ({found.execution_status}): {found.outcome.upper()}"
    lines = [head]
    if found.outcome == "matched":
        lines.append(
            f"    {found.calls_matched} recorded call(s) matched; stopped at {found.stopped_at}"
        )
    elif found.outcome == "diverged":
        lines.append(f"    at position {found.position}")
        lines.append(f"    recorded: {found.expected}")
        lines.append(f"    made:     {found.actual or 'no call (the flow returned)'}")
        if found.argument is not None:
            lines.append(
                f"    argument {found.argument}: recorded {found.recorded_argument}, "
                f"now {found.current_argument}"
            )
    else:
        lines.append(f"    could not check: {found.message}")
    return lines


@executions.command("verify")
@click.argument("exec_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every execution of the store.")
@output_option
def verify(exec_ids: tuple[str, ...], all_: bool, output: str) -> None:
    """Check today's code against recorded executions, with nothing live.

    Each execution's flow body runs against its journal: every recorded call returns
    its recorded output, and the body stops at the first call the journal does not
    hold, without running it. Nothing is written to the journal. Exits 1 if any
    execution diverges or cannot be checked.
    """
    if all_ == bool(exec_ids):
        raise KitaruUsageError("Give one or more execution ids, or --all (not both).")
    client = KitaruClient()
    found = client.executions.verify_all() if all_ else client.executions.verify(*exec_ids)

    def text() -> str:
        if not found:
            return "No executions."
        lines = [line for item in found for line in _render_verification(item)]
        bad = sum(1 for item in found if not item.ok)
        lines.append(
            f"{len(found) - bad} of {len(found)} execution(s) match today's code."
            + (" Fix the code (or finish those executions first) before deploying." if bad else "")
        )
        return "\n".join(lines)

    emit(output, [dataclasses.asdict(item) | {"ok": item.ok} for item in found], text)
    if any(not item.ok for item in found):
        sys.exit(1)


@executions.command("retry")
@click.argument("exec_id")
@output_option
def retry(exec_id: str, output: str) -> None:
    """Continue a failed execution here; its failed calls run again."""
    _continue(exec_id, "retry", output)


def _json_option(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise KitaruUsageError(f"{what} is not valid JSON ({exc}): {value!r}") from None


@executions.command("replay")
@click.argument("exec_id")
@click.option("--from", "from_", required=True, help="Checkpoint name, call identity or call id.")
@click.option("--args", "args_json", help="JSON object of flow inputs to change.")
@click.option("--overrides", "overrides_json", help='JSON: {"checkpoint.<selector>": value}.')
@output_option
def replay(
    exec_id: str, from_: str, args_json: str | None, overrides_json: str | None, output: str
) -> None:
    """Run a NEW execution from a finished one, reusing what came before --from."""
    from kitaru.flow import _registry_snapshot
    from kitaru.journal import open_store
    from kitaru.runtime.locate import import_flow
    from kitaru.runtime.runner import load_state, replay_execution

    flow_inputs = _json_option(args_json, "--args") or {}
    overrides = _json_option(overrides_json, "--overrides")
    if not isinstance(flow_inputs, dict):
        raise KitaruUsageError('--args must be a JSON object, e.g. {"topic": "x"}.')
    if overrides is not None and not isinstance(overrides, dict):
        raise KitaruUsageError('--overrides must be a JSON object, e.g. {"checkpoint.a": 1}.')
    client = KitaruClient()
    source = load_state(open_store(), client.executions.resolve_id(exec_id))
    assert source.flow is not None
    run = replay_execution(
        import_flow(source.flow),
        source.exec_id,
        from_=from_,
        overrides=overrides,
        flow_inputs=flow_inputs,
        registry=_registry_snapshot(),
        background=False,
    )
    if output == "text":
        click.echo(f"Replaying {source.exec_id} as {run.exec_id}")
    _finish(client, run, output)


@executions.command("input")
@click.argument("exec_id")
@click.option("--value", "value_json", help="The input, as JSON.")
@click.option("--abort", is_flag=True, help="Refuse the wait: the execution is cancelled.")
@click.option("--wait", "wait", help="Which pending wait (when there are several).")
@output_option
def give_input(
    exec_id: str, value_json: str | None, abort: bool, wait: str | None, output: str
) -> None:
    """Answer (or abort) the wait an execution is paused at."""
    if abort == (value_json is not None):
        raise KitaruUsageError("Give exactly one of --value JSON or --abort.")
    client = KitaruClient()
    if abort:
        execution = client.executions.abort_wait(exec_id, wait=wait)
        message = f"Aborted the wait of {execution.exec_id} (status: {execution.status})."
    else:
        value = _json_option(value_json, "--value")
        execution = client.executions.input(exec_id, wait=wait, value=value)
        message = (
            f"Input recorded for {execution.exec_id}."
            if execution.status != "waiting" or _owner_alive(execution)
            else f"Input recorded for {execution.exec_id}; no process is running it: "
            f"continue it with `kitaru executions resume {execution.exec_id}`."
        )
    emit(output, execution.to_dict(), lambda: message)


def _owner_alive(execution: Execution) -> bool:
    from kitaru.journal import open_store

    return open_store().live_lease(execution.exec_id) is not None


@executions.command("cancel")
@click.argument("exec_id")
@output_option
def cancel(exec_id: str, output: str) -> None:
    """Cancel a running or waiting execution."""
    execution = KitaruClient().executions.cancel(exec_id)
    message = (
        f"Cancelled {execution.exec_id}."
        if execution.status == "cancelled"
        else f"Cancel requested: {execution.exec_id} stops at its next durable call."
    )
    emit(output, execution.to_dict(), lambda: message)


@executions.command("logs")
@click.argument("exec_id")
@click.option("--checkpoint", help="Only this checkpoint (name or call identity).")
@click.option("--follow", is_flag=True, help="Keep printing until the execution ends.")
@output_option
def logs(exec_id: str, checkpoint: str | None, follow: bool, output: str) -> None:
    """Show what checkpoints printed and logged, in order."""
    client = KitaruClient()
    exec_id = client.executions.resolve_id(exec_id)
    printed: Counter[LogLine] = Counter()
    while True:
        # Status first: once it has ended, the lines read next are all there will be.
        ended = client.executions.get(exec_id).status in ("completed", "failed", "cancelled")
        lines = client.executions.logs(exec_id, checkpoint=checkpoint)
        # Concurrent checkpoints journal lines older than some already printed: skip
        # exactly what was printed, not a count of lines.
        unseen, fresh = printed.copy(), []
        for line in lines:
            if unseen[line] > 0:
                unseen[line] -= 1
            else:
                fresh.append(line)
        printed.update(fresh)
        if output == "json":
            for line in fresh:
                click.echo(
                    json.dumps(
                        {
                            "timestamp": line.timestamp.isoformat(),
                            "level": line.level,
                            "source": line.source,
                            "checkpoint": line.checkpoint,
                            "attempt": line.attempt,
                            "message": line.message,
                        }
                    )
                )
        else:
            for line in fresh:
                click.echo(
                    f"{_when(line.timestamp)} {line.checkpoint}#{line.attempt} "
                    f"{line.level:<7} {line.source}: {line.message}"
                )
        if not follow or ended:
            return
        time.sleep(0.5)

"""``kitaru executions ...``: inspect, resume and retry executions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from kitaru.cli.logs import Line, render, runner_lines, step_lines
from kitaru.cli.output import emit, emit_json_line, output_option
from kitaru.cli.waits import announce_waits, describe_wait, input_command, kitaru_command
from kitaru.client import (
    EXECUTION_STATUSES,
    CallKind,
    CheckpointCall,
    CostTotal,
    Execution,
    ExecutionStatus,
    KitaruClient,
    LlmCall,
    PendingWait,
)
from kitaru.errors import JournalNotFoundError, KitaruError, KitaruStateError, KitaruUsageError

if TYPE_CHECKING:
    from kitaru.client import RecoveryResult, Verification

__all__ = ["executions"]


def _existing_client(exec_id: str | None = None) -> KitaruClient:
    """A client on the journal, which must exist: reading never creates an empty one."""
    try:
        return KitaruClient(create=False)
    except JournalNotFoundError as missing:
        if exec_id is None:
            raise
        raise KitaruStateError(
            f"No execution {exec_id}: there is no journal at {missing.path}. Point "
            "KITARU_STORE at the journal that holds it (`kitaru executions list` shows "
            "what a journal holds), or run a flow first.",
            exec_id=exec_id,
        ) from None


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


def _render_execution(execution: Execution, store: str) -> str:
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
        several = len(execution.pending_waits) > 1
        command = input_command(execution.exec_id, pending, store=store, several=several)
        lines.append(f"Hint       answer with `{command}`")
    if execution.metadata:
        lines.append(f"Metadata   {json.dumps(execution.metadata, default=str)}")
    if execution.interrupted:
        lines.append(f"Hint       resume it with `kitaru executions resume {execution.exec_id}`")
    elif execution.status is ExecutionStatus.FAILED:
        lines.append(f"Hint       retry it with `kitaru executions retry {execution.exec_id}`")
    if execution.llm_calls:
        lines.append(f"Cost       {_total_cost(execution.cost)}")
    lines.append(f"Calls      {len(execution.checkpoints)}")
    for call in execution.checkpoints:
        lines.extend(_render_call(call))
    return "\n".join(lines)


def _usd(value: float) -> str:
    if 0 < value < 0.000001:
        return "<$0.000001"
    return f"${value:,.6f}".rstrip("0").rstrip(".")


def _llm_cost(llm: LlmCall) -> str:
    if llm.estimated_cost is None:
        return "cost unknown"
    reused = " (reused, paid by the replayed execution)" if llm.cost_reused else ""
    return f"est. {_usd(llm.estimated_cost)}{reused}"


def _total_cost(cost: CostTotal) -> str:
    """The execution's estimated cost, saying what it leaves out."""
    text = "unknown" if cost.estimated_usd is None else f"est. {_usd(cost.estimated_usd)}"
    if cost.estimated_usd is not None and cost.unpriced_requests:
        text += f" + {cost.unpriced_requests} requests of unknown cost"
    if cost.reused_usd:
        text += f" ({_usd(cost.reused_usd)} reused from the replayed execution)"
    return text


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
    lines.append(f"          {tokens} tokens, {_duration(llm.latency_ms)}, {_llm_cost(llm)}")
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
    type=click.Choice([str(status) for status in EXECUTION_STATUSES]),
    help="Only executions in this status.",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (newest first).")
@output_option
def list_executions(flow: str | None, status: str | None, limit: int | None, output: str) -> None:
    """List executions, newest first.

    With -o json, values stored apart from the journal's events (model prompts and
    responses, large results) are left out; `kitaru executions get` shows them.
    """
    try:
        client = _existing_client()
    except JournalNotFoundError as missing:
        nothing = f"No executions: there is no journal at {missing.path}."
        emit(output, [], lambda: nothing)
        if output == "json":
            click.echo(nothing, err=True)
        return
    found = client.executions.list(flow=flow, status=status, limit=limit)

    def text() -> str:
        if not found:
            return f"No executions in the journal {client.store_location}."
        rows = [f"{'ID':<36}  {'FLOW':<20}  {'STATUS':<21}  {'STARTED':<19}  ENDED"]
        rows += [
            f"{e.exec_id:<36}  {e.flow_name[:20]:<20}  {_status(e):<21}  "
            f"{_when(e.started_at):<19}  {_when(e.ended_at)}"
            for e in found
        ]
        return "\n".join(rows)

    # A listing reads no stored payload (prompts, responses, large results): `get` does.
    emit(output, lambda: [e.to_dict(payloads=False) for e in found], text)


@executions.command("get")
@click.argument("exec_id")
@output_option
def get_execution(exec_id: str, output: str) -> None:
    """Show one execution: status, result or failure, and every call."""
    client = _existing_client(exec_id)
    execution = client.executions.get(exec_id)
    emit(output, execution.to_dict, lambda: _render_execution(execution, client.store_location))


def _continue(exec_id: str, mode: str, output: str) -> None:
    client = _existing_client(exec_id)
    exec_id = client.executions.resolve_id(exec_id)
    go = client.executions.retry if mode == "retry" else client.executions.resume
    _run_here(client, output, lambda started: go(exec_id, background=False, on_start=started))


def _run_here(
    client: KitaruClient,
    output: str,
    start: Callable[[Callable[[Execution], None]], Execution],
    announce: str | None = None,
) -> None:
    """Run an execution here in the foreground, print how it ended; exit 1 if it failed.

    ``start`` runs it, calling back with the execution just before the body starts;
    that is when ``announce`` (with ``{exec_id}``) is printed and waits are watched.
    """
    store = client.store_location
    with announce_waits(client, store) as watch:

        def started(execution: Execution) -> None:
            if announce is not None:
                click.echo(announce.format(exec_id=execution.exec_id), err=output == "json")
            watch(execution.exec_id)

        ended = start(started)
    emit(output, ended.to_dict, lambda: _render_execution(ended, store))
    if ended.status == "waiting":
        waiting = [wait for wait in ended.pending_waits if not wait.input_received]
        click.echo(describe_wait(ended.exec_id, waiting, store=store), err=True)
        resume = kitaru_command("executions", "resume", ended.exec_id, store=store)
        click.echo(
            f"This process stopped waiting; once answered, continue it with `{resume}`.",
            err=True,
        )
        return
    try:
        ended.wait(timeout=0)
    except KitaruError as exc:
        click.echo(f"Error: {exc}", err=True)
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

    def report(result: RecoveryResult) -> None:
        if output == "text":
            why = (
                f": {result.error}"
                if result.error and result.status == ExecutionStatus.FAILED
                else ""
            )
            click.echo(f"{result.exec_id}  {result.status}{why}")

    try:
        client = KitaruClient(create=False)
    except JournalNotFoundError as missing:
        nothing = f"Nothing to recover: there is no journal at {missing.path}."
        emit(output, [], lambda: nothing)
        return
    results = client.executions.resume_all(parallel=parallel, on_result=report)
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    emit(
        output,
        [{"exec_id": r.exec_id, "status": r.status, "error": r.error} for r in results],
        lambda: f"Recovered {len(results)} interrupted execution(s): {summary}.",
    )
    if counts.get(ExecutionStatus.FAILED):
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
    client = _existing_client(exec_ids[0] if exec_ids else None)
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
    flow_inputs = _json_option(args_json, "--args") or {}
    overrides = _json_option(overrides_json, "--overrides")
    if not isinstance(flow_inputs, dict):
        raise KitaruUsageError('--args must be a JSON object, e.g. {"topic": "x"}.')
    if overrides is not None and not isinstance(overrides, dict):
        raise KitaruUsageError('--overrides must be a JSON object, e.g. {"checkpoint.a": 1}.')
    client = _existing_client(exec_id)
    source = client.executions.resolve_id(exec_id)
    _run_here(
        client,
        output,
        lambda started: client.executions.replay(
            source,
            from_=from_,
            overrides=overrides,
            background=False,
            on_start=started,
            **flow_inputs,
        ),
        announce=f"Replaying {source} as {{exec_id}}",
    )


@executions.command("input")
@click.argument("exec_id", required=False)
@click.option("--value", "value_json", help="The input, as JSON.")
@click.option("--abort", is_flag=True, help="Refuse the wait: the execution is cancelled.")
@click.option("--wait", "wait", help="Which pending wait (when there are several).")
@click.option(
    "-i",
    "--interactive",
    is_flag=True,
    help="Show each pending wait's question and ask for the answer here "
    "(without an id: every waiting execution).",
)
@output_option
def give_input(
    *,
    exec_id: str | None,
    value_json: str | None,
    abort: bool,
    wait: str | None,
    interactive: bool,
    output: str,
) -> None:
    """Answer (or abort) the wait an execution is paused at."""
    if interactive:
        if abort or value_json is not None:
            raise KitaruUsageError("--interactive asks for the answers; drop --value/--abort.")
        _answer_interactively(exec_id, wait, output)
        return
    if exec_id is None:
        raise KitaruUsageError("Give the execution id (or use --interactive).")
    if abort == (value_json is not None):
        raise KitaruUsageError("Give exactly one of --value JSON or --abort.")
    client = _existing_client(exec_id)
    if abort:
        execution = client.executions.abort_wait(exec_id, wait=wait)
        message = f"Aborted the wait of {execution.exec_id} (status: {execution.status})."
    else:
        value = _json_option(value_json, "--value")
        execution = client.executions.input(exec_id, wait=wait, value=value)
        message = _recorded(client, execution)
    emit(output, execution.to_dict, lambda: message)


def _recorded(client: KitaruClient, execution: Execution) -> str:
    waiting = execution.status is ExecutionStatus.WAITING
    if not waiting or client.executions.live_owner(execution.exec_id) is not None:
        return f"Input recorded for {execution.exec_id}."
    if client.executions.queued_for_workers(execution.exec_id):
        return f"Input recorded for {execution.exec_id}; a worker continues it."
    return (
        f"Input recorded for {execution.exec_id}; no process is running it: "
        f"continue it with `kitaru executions resume {execution.exec_id}`."
    )


_YES = {"y", "yes"}
_NO = {"n", "no"}


def _parse_answer(raw: str, schema: dict[str, Any] | None) -> Any:
    """The typed answer as JSON; a yes/no question also takes y/yes/n/no."""
    if schema and schema.get("type") == "boolean" and raw.lower() in _YES | _NO:
        return raw.lower() in _YES
    return json.loads(raw)


def _answer_interactively(exec_id: str | None, wait: str | None, output: str) -> None:
    """Ask for each unanswered wait's input on the terminal, re-asking until it fits."""
    client = _existing_client(exec_id)
    if exec_id is not None:
        targets = [client.executions.get(exec_id)]
    else:
        targets = client.executions.list(status=ExecutionStatus.WAITING)
    answered: list[Execution] = []
    asked = 0
    for execution in reversed(targets):  # oldest first: answer in the order they waited
        for pending in execution.pending_waits:
            if pending.input_received or wait not in (None, pending.name, pending.wait_id):
                continue
            asked += 1
            done = _ask(client, execution, pending)
            if done is not None:
                answered.append(done)
    if not asked:
        named = f" '{wait}'" if wait else ""
        who = (
            f"execution {exec_id} has no open wait{named}"
            if exec_id
            else (f"no execution has an open wait{named}")
        )
        message = f"Nothing to answer: {who} (journal {client.store_location})."
        emit(output, [], lambda: message)
        return
    emit(
        output,
        [e.to_dict() for e in answered],
        lambda: f"\nAnswered {len(answered)} of {asked} wait(s).",
    )


def _ask(client: KitaruClient, execution: Execution, pending: PendingWait) -> Execution | None:
    """Show one wait and ask until the answer fits its schema; None if skipped."""
    click.echo(
        f"\nExecution {execution.exec_id} ({execution.flow_name}) waits at '{pending.name}'."
    )
    if pending.question:
        click.echo(f"  Question: {pending.question}")
    if pending.schema:
        click.echo(f"  Expects:  {json.dumps(pending.schema)}")
    if pending.metadata:
        click.echo(f"  Metadata: {json.dumps(pending.metadata, default=str)}")
    while True:
        raw = click.prompt(
            "Answer as JSON (empty: skip; 'abort': refuse the wait)",
            default="",
            show_default=False,
        ).strip()
        if not raw:
            click.echo("  Skipped.")
            return None
        if raw == "abort":
            done = client.executions.abort_wait(execution.exec_id, wait=pending.name)
            click.echo(f"  Aborted: {done.exec_id} is {done.status}.")
            return done
        try:
            value = _parse_answer(raw, pending.schema)
        except json.JSONDecodeError as exc:
            click.echo(f"  Not valid JSON ({exc.msg}); try again.")
            continue
        try:
            done = client.executions.input(execution.exec_id, wait=pending.name, value=value)
        except KitaruUsageError as exc:  # the value does not fit the schema: ask again
            click.echo(f"  {exc}")
            continue
        except KitaruStateError as exc:  # answered meanwhile, or no longer waiting
            click.echo(f"  {exc}")
            return None
        click.echo(f"  {_recorded(client, done)}")
        return done


@executions.command("cancel")
@click.argument("exec_id")
@output_option
def cancel(exec_id: str, output: str) -> None:
    """Cancel a running or waiting execution."""
    execution = _existing_client(exec_id).executions.cancel(exec_id)
    message = (
        f"Cancelled {execution.exec_id}."
        if execution.status is ExecutionStatus.CANCELLED
        else f"Cancel requested: {execution.exec_id} stops at its next durable call."
    )
    emit(output, execution.to_dict, lambda: message)


@executions.command("logs")
@click.argument("exec_id")
@click.option("--checkpoint", help="Only this checkpoint (name or call identity).")
@click.option(
    "--source",
    default="step",
    show_default=True,
    help="step: what checkpoints printed and logged; runner: the execution's lifecycle; "
    "or one stream of the step lines (stdout, stderr, a logger's name).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many lines.")
@click.option("--follow", is_flag=True, help="Keep printing until the execution ends.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=0.25,
    show_default=True,
    help="Seconds between looks with --follow (lines reach the journal within about "
    "0.3 s of their print, so the default shows them well within a second).",
)
@click.option("--grouped", is_flag=True, help="Group the lines by checkpoint, under headers.")
@click.option(
    "-v", "--verbose", "verbosity", count=True, help="-v: time and level; -vv: also where from."
)
@output_option
def logs(
    *,
    exec_id: str,
    checkpoint: str | None,
    source: str,
    limit: int | None,
    follow: bool,
    interval: float,
    grouped: bool,
    verbosity: int,
    output: str,
) -> None:
    """Show what checkpoints printed and logged, in order (or the runner's lifecycle)."""
    if grouped and output == "json":
        raise KitaruUsageError("--grouped prints headers for people; drop it with -o json.")
    if checkpoint is not None and source == "runner":
        raise KitaruUsageError(
            "--checkpoint cannot go with --source runner: runner lines belong to the "
            "execution, not to one checkpoint."
        )
    client = _existing_client(exec_id)
    exec_id = client.executions.resolve_id(exec_id)
    if checkpoint is not None:
        _check_checkpoint(client.executions.get(exec_id), checkpoint)
    printed: Counter[Line] = Counter()
    shown = 0
    last_group: str | None = None
    while True:
        # Status first: once it has ended, the lines read next are all there will be.
        ended = client.executions.get(exec_id).status.is_finished
        lines = _lines(client, exec_id, checkpoint, source)
        if not follow and source not in ("step", "runner") and not lines:
            _no_such_source(client, exec_id, source)
        # Concurrent checkpoints journal lines older than some already printed: skip
        # exactly what was printed, not a count of lines.
        unseen, fresh = printed.copy(), []
        for line in lines:
            if unseen[line] > 0:
                unseen[line] -= 1
            else:
                fresh.append(line)
        if grouped and not follow:
            fresh.sort(key=lambda line: (_first_seen(lines, line.checkpoint), line.timestamp))
        if limit is not None:
            fresh = fresh[: limit - shown]
        printed.update(fresh)
        shown += len(fresh)
        last_group = _print_lines(fresh, output, grouped, verbosity, last_group)
        if not follow or ended or (limit is not None and shown >= limit):
            return
        time.sleep(interval)


def _print_lines(
    lines: list[Line], output: str, grouped: bool, verbosity: int, group: str | None
) -> str | None:
    """Print ``lines``; return the checkpoint whose group header was printed last."""
    for line in lines:
        if output == "json":
            emit_json_line(line.to_dict())
            continue
        if grouped and line.checkpoint != group:
            group = line.checkpoint
            click.echo(f"== {line.checkpoint or 'runner'} ==")
        click.echo(("  " if grouped else "") + render(line, verbosity))
    return group


def _lines(client: KitaruClient, exec_id: str, checkpoint: str | None, source: str) -> list[Line]:
    if source == "runner":
        return runner_lines(client.executions.lifecycle(exec_id))
    found = step_lines(client.executions.logs(exec_id, checkpoint=checkpoint))
    if source == "step":
        return found
    return [line for line in found if line.source == source]


def _first_seen(lines: list[Line], checkpoint: str | None) -> int:
    for index, line in enumerate(lines):
        if line.checkpoint == checkpoint:
            return index
    return len(lines)


def _check_checkpoint(execution: Execution, checkpoint: str) -> None:
    calls = [call for call in execution.checkpoints if call.kind == CallKind.CHECKPOINT]
    if any(checkpoint in (call.name, call.invocation_id) for call in calls):
        return
    names = sorted({call.name for call in calls})
    identities = sorted({call.invocation_id for call in calls} - set(names))
    known = ", ".join(names + identities) or "none"
    raise KitaruUsageError(
        f"Execution {execution.exec_id} has no checkpoint '{checkpoint}'. Its checkpoints: "
        f"{known}. Give one of those to --checkpoint."
    )


def _no_such_source(client: KitaruClient, exec_id: str, source: str) -> None:
    seen = sorted({line.source for line in client.executions.logs(exec_id)})
    raise KitaruUsageError(
        f"Execution {exec_id} has no log lines from source '{source}'. Sources: step, runner"
        + "".join(f", {name}" for name in seen)
        + "."
    )

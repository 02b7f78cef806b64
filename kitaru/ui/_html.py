"""Server-rendered pages: each takes the dicts of ``_data`` (already redacted) and
returns HTML. Every value is escaped here; the one script (``static/ui.js``) only
refreshes parts marked live and checks JSON before a replay is submitted."""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import urlencode

from kitaru.ui._forms import Field, fields_of

__all__ = [
    "act_page",
    "error_page",
    "execution_live",
    "execution_page",
    "executions_live",
    "executions_page",
    "flows_page",
    "logs_live",
    "logs_page",
]

STATUSES = ("running", "waiting", "completed", "failed", "cancelled")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


def _when(iso: str | None) -> str:
    if not iso:
        return "—"
    return f'<time datetime="{_e(iso)}">{_e(iso[:19].replace("T", " "))}</time>'


def _num(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _cost(value: float | None) -> str:
    return "—" if value is None else f"${value:,.4f}"


def _badge(status: str, interrupted: bool = False) -> str:
    label = "interrupted" if interrupted else status
    return f'<span class="badge s-{_e(label)}">{_e(label)}</span>'


def _json(value: Any) -> str:
    return f"<pre class=json>{_e(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def _page(title: str, body: str, csrf: str, active: str) -> str:
    nav = "".join(
        f'<a href="{href}"{" class=active" if key == active else ""}>{label}</a>'
        for key, href, label in (("executions", "/", "Executions"), ("flows", "/flows", "Flows"))
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="kitaru-csrf" content="{_e(csrf)}">
<title>{_e(title)} · kitaru</title>
<link rel="stylesheet" href="/static/ui.css">
<script src="/static/ui.js" defer></script>
</head><body>
<header><a class=brand href="/">kitaru</a><nav>{nav}</nav></header>
<main>{body}</main>
</body></html>"""


def error_page(message: str, csrf: str) -> str:
    body = f'<h1>Not available</h1><p class="error" role="alert">{_e(message)}</p>'
    return _page("Error", body, csrf, "")


# --------------------------------------------------------------------------- executions


def executions_live(data: dict[str, Any]) -> str:
    """The table and its pager: the part the page refreshes while it is open."""
    show_cost = data["show_cost"]
    head = (
        "<tr><th>Execution</th><th>Flow</th><th>Status</th><th>Started</th><th>Duration</th>"
        "<th class=n>Calls</th><th class=n>Tokens</th>"
        + ("<th class=n>Cost</th>" if show_cost else "")
        + "</tr>"
    )
    rows = []
    for row in data["items"]:
        rows.append(
            f'<tr data-exec="{_e(row["exec_id"])}" data-status="{_e(row["status"])}">'
            f'<td><a class=mono href="/executions/{_e(row["exec_id"])}">'
            f"{_e(row['exec_id'])}</a></td>"
            f"<td>{_e(row['flow_name'])}</td>"
            f"<td>{_badge(row['status'], bool(row.get('interrupted')))}</td>"
            f"<td>{_when(row['started_at'])}</td>"
            f"<td>{_duration(row['duration_ms'])}</td>"
            f"<td class=n>{_num(row.get('calls'))}</td>"
            f"<td class=n>{_num(row.get('tokens'))}</td>"
            + (f"<td class=n>{_cost(row.get('cost'))}</td>" if show_cost else "")
            + "</tr>"
        )
    if not rows:
        rows.append("<tr><td colspan=9 class=empty>No execution matches.</td></tr>")
    filters = {k: v for k, v in data["filters"].items() if v}
    pager = _pager(data["page"], data["pages"], filters, "page")
    return (
        f"<p class=muted>{data['total']:,} executions</p>"
        f"<table class=list><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>{pager}"
    )


def _pager(page: int, pages: int, keep: dict[str, Any], key: str, path: str = "") -> str:
    if pages <= 1:
        return ""

    def link(number: int, label: str) -> str:
        query = urlencode({**keep, key: number})
        return f'<a href="{_e(path)}?{_e(query)}">{label}</a>'

    parts = []
    if page > 1:
        parts += [link(1, "&laquo; first"), link(page - 1, "&lsaquo; prev")]
    parts.append(f"<span>page {page:,} of {pages:,}</span>")
    if page < pages:
        parts += [link(page + 1, "next &rsaquo;"), link(pages, "last &raquo;")]
    return f'<nav class=pager aria-label="pages">{" ".join(parts)}</nav>'


def executions_page(data: dict[str, Any], csrf: str) -> str:
    filters = data["filters"]
    flow_options = '<option value="">all flows</option>' + "".join(
        f"<option{' selected' if f == filters['flow'] else ''}>{_e(f)}</option>"
        for f in data["flows"]
    )
    status_options = '<option value="">any status</option>' + "".join(
        f"<option{' selected' if s == filters['status'] else ''}>{s}</option>" for s in STATUSES
    )
    query = urlencode({k: v for k, v in {**filters, "page": data["page"]}.items() if v})
    body = f"""<h1>Executions</h1>
<form class=filters method=get action="/">
<label>Flow <select name=flow>{flow_options}</select></label>
<label>Status <select name=status>{status_options}</select></label>
<label>Id starts with <input name=q value="{_e(filters["q"])}" size=14></label>
<button>Filter</button></form>
<section id=live data-live="/partials/executions?{_e(query)}" data-interval=2000>
{executions_live(data)}</section>"""
    return _page("Executions", body, csrf, "executions")


# --------------------------------------------------------------------------- one execution


def _tabs(exec_id: str, active: str, waiting: bool) -> str:
    tabs = (
        ("overview", f"/executions/{exec_id}", "Overview"),
        ("logs", f"/executions/{exec_id}/logs", "Logs"),
        ("act", f"/executions/{exec_id}/act", "Act" + (" (waiting)" if waiting else "")),
    )
    return (
        "<nav class=tabs>"
        + "".join(
            f'<a href="{_e(href)}"{" class=active" if key == active else ""}>{_e(label)}</a>'
            for key, href, label in tabs
        )
        + "</nav>"
    )


def _header(d: dict[str, Any]) -> str:
    facts = [
        ("Flow", _e(d["flow_name"])),
        ("Status", _badge(d["status"], d["interrupted"])),
        ("Started", _when(d["started_at"])),
        ("Duration", _duration(d["duration_ms"])),
        ("Calls", _num(d["calls"]["total"])),
        ("Tokens", _num(d["tokens"])),
    ]
    if d.get("cost") is not None:
        facts.append(("Cost", _cost(d["cost"])))
    if d["original_exec_id"]:
        oid = _e(d["original_exec_id"])
        facts.append(("Replay of", f'<a class=mono href="/executions/{oid}">{oid}</a>'))
    cells = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    reason = f"<p class=muted>{_e(d['status_reason'])}</p>" if d["status_reason"] else ""
    return f"<h1 class=mono>{_e(d['exec_id'])}</h1><dl class=facts>{cells}</dl>{reason}"


def _failure(failure: dict[str, Any] | None) -> str:
    if failure is None:
        return ""
    where = f" in call <b>{_e(failure['call'])}</b>" if failure.get("call") else ""
    trace = (
        f"<details><summary>Traceback</summary><pre>{_e(failure['traceback'])}</pre></details>"
        if failure.get("traceback")
        else ""
    )
    return (
        f'<div class="failure" role="alert"><b>{_e(failure["type"])}</b>{where}: '
        f"{_e(failure['message'])}<div class=muted>origin: {_e(failure['origin'])}</div>"
        f"{trace}</div>"
    )


def _timeline(d: dict[str, Any], selected: str | None) -> str:
    calls = d["calls"]
    rows = []
    for call in calls["items"]:
        bar = call.get("bar")
        segments = ""
        if bar is not None:
            attempts = "".join(
                f'<span class="seg s-{_e(a["status"])}" title="attempt {a["attempt"]}: '
                f'{_e(a["status"])}" style="left:{a["left"]}%;width:{a["width"]}%"></span>'
                for a in call.get("attempt_bars", [])
            )
            segments = (
                f'<span class="bar s-{_e(call["status"])}" '
                f'style="left:{bar["left"]}%;width:{bar["width"]}%"></span>{attempts}'
            )
        query = urlencode({"call": call["identity"], "calls": calls["page"]})
        chosen = " selected" if call["identity"] == selected else ""
        retries = len(call["attempts"])
        rows.append(
            f'<a class="trow{chosen}" data-call="{_e(call["identity"])}" '
            f'href="/executions/{_e(d["exec_id"])}?{_e(query)}">'
            f'<span class=tname><span class="dot s-{_e(call["status"])}"></span>'
            f"{_e(call['identity'])} <small>{_e(call['kind'])}"
            f"{f' · {retries} attempts' if retries > 1 else ''}</small></span>"
            f"<span class=track>{segments}</span>"
            f"<span class=tdur>{_duration(call['duration_ms'])}</span></a>"
        )
    if not rows:
        rows.append("<p class=empty>No durable calls yet.</p>")
    pager = _pager(calls["page"], calls["pages"], {}, "calls")
    first = (calls["page"] - 1) * calls["per_page"] + 1
    shown_range = (
        f"calls {first:,}&ndash;{first + len(calls['items']) - 1:,} of {calls['total']:,}"
        if calls["items"]
        else ""
    )
    return (
        f"<h2>Timeline <small class=muted>{shown_range} · span "
        f"{_duration(calls['span_ms'])}</small></h2>"
        f"<div class=timeline role=list>{''.join(rows)}</div>{pager}"
    )


def _chat(prompt: list[Any]) -> str:
    parts = []
    for message in prompt:
        if isinstance(message, dict):
            role = str(message.get("role", "message"))
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content, indent=2)
        else:
            role, text = "message", json.dumps(message)
        parts.append(f'<div class="msg r-{_e(role)}"><b>{_e(role)}</b><pre>{_e(text)}</pre></div>')
    return "".join(parts)


def _call_panel(c: dict[str, Any]) -> str:
    attempts = "".join(
        f"<tr><td>{a['attempt']}</td><td>{_badge(a['status'])}</td>"
        f"<td>{_when(a['started_at'])}</td><td>{_duration(a['duration_ms'])}</td>"
        f"<td>{_e(a['failure']['type'] + ': ' + a['failure']['message']) if a['failure'] else ''}"
        "</td></tr>"
        for a in c["attempts"]
    )
    llms = []
    for m in c["llm_calls"]:
        cost = ""
        if m["cost"] is not None:
            paid = " (reused: paid by the replayed execution)" if m.get("cost_reused") else ""
            cost = f"<div><dt>Cost</dt><dd>{_cost(m['cost'])}{paid}</dd></div>"
        facts = (
            f"<div><dt>Model</dt><dd>{_e(m['requested_model'])}</dd></div>"
            f"<div><dt>Alias</dt><dd>{_e(m['alias']) or '—'}</dd></div>"
            f"<div><dt>Resolved</dt><dd>{_e(m['resolved_model'])}</dd></div>"
            f"<div><dt>Key source</dt><dd>{_e(m['credential_source'])}</dd></div>"
            f"<div><dt>Tokens in/out</dt><dd>{_num(m['input_tokens'])} / "
            f"{_num(m['output_tokens'])}</dd></div>"
            f"<div><dt>Latency</dt><dd>{_duration(m['latency_ms'])}</dd></div>{cost}"
        )
        response = (
            f'<div class="msg r-assistant"><b>response</b><pre>{_e(m["response"])}</pre></div>'
            if m["response"] is not None
            else _failure(m["failure"])
        )
        llms.append(
            f"<section class=llm><h4>Model call {_e(m['name'])} (attempt {m['attempt']})</h4>"
            f"<dl class=facts>{facts}</dl><div class=chat>{_chat(m['prompt'])}{response}</div>"
            "</section>"
        )
    logs = "".join(
        f"<div class=logline><span class=muted>{_e(line['timestamp'][11:23])}</span> "
        f"<span class=lvl>{_e(line['level'])}</span> {_e(line['message'])}</div>"
        for line in c["logs"]
    )
    reused = ""
    if c.get("reused_from") or c.get("cached_from"):
        reused = f"<p class=muted>output reused from {_e(c['reused_from'] or c['cached_from'])}</p>"
    output = (
        _json(c["output"])
        if c["output"] is not None
        else f"<p class=muted>{_e(c['output_error'] or 'no output recorded')}</p>"
    )
    parents = ", ".join(_e(p) for p in c["parents"]) or "none"
    arguments = "".join(
        f'<tr data-arg="{_e(a["name"])}"><td>{_e(a["name"])}</td>'
        f"<td><code>{_e(a['preview'] or '<' + str(a['type_name']) + '>')}</code></td></tr>"
        for a in c.get("arguments", [])
    )
    arguments_table = (
        f"<table class='list args'><thead><tr><th>Name</th><th>Value (preview)</th></tr>"
        f"</thead><tbody>{arguments}</tbody></table>"
        if arguments
        else "<p class=muted>no arguments recorded</p>"
    )
    return f"""<section class=panel id=call-panel data-call="{_e(c["identity"])}">
<h2>{_e(c["identity"])} <small>{_e(c["kind"])}</small> {_badge(c["status"])}</h2>
{reused}{_failure(c["failure"])}
<h3>Arguments</h3>{arguments_table}<p class=muted>outputs passed in from calls: {parents}
(the journal keeps a short preview of each argument, not the whole value)</p>
<h3>Output</h3>{output}
<h3>Attempts</h3><table class=list><thead><tr><th>#</th><th>Status</th><th>Started</th>
<th>Duration</th><th>Failure</th></tr></thead><tbody>{attempts}</tbody></table>
{"<h3>Model calls</h3>" + "".join(llms) if llms else ""}
<h3>Logs</h3><div class=logs>{logs or "<p class=muted>nothing printed or logged</p>"}</div>
{"<h3>Metadata</h3>" + _json(c["metadata"]) if c["metadata"] else ""}
</section>"""


def execution_live(d: dict[str, Any], call: dict[str, Any] | None) -> str:
    inputs = _json(d["inputs"])
    if d["has_result"]:
        outcome = "<h3>Result</h3>" + (
            _json(d["result"]) if d["result_error"] is None else _e(d["result_error"])
        )
    elif d["failure"]:
        outcome = "<h3>Failure</h3>" + _failure(d["failure"])
    else:
        outcome = ""
    artifacts = "".join(
        f"<li><span class=mono>{_e(a['name'])}</span> <small>{_e(a['kind'])}, from "
        f"{_e(a['producing_call'])}</small></li>"
        for a in d["artifacts"]
    )
    waits = "".join(
        f"<p class=notice>Waiting at <b>{_e(w['name'])}</b>: {_e(w['question'])} — "
        f'<a href="/executions/{_e(d["exec_id"])}/act">answer it</a></p>'
        for w in d["pending_waits"]
    )
    return f"""{_header(d)}{waits}
<div class=cols><div class=col>{_timeline(d, call["identity"] if call else None)}</div>
<div class=col>{_call_panel(call) if call else "<p class=muted>Select a call to see it.</p>"}
<h3>Flow inputs</h3>{inputs}{outcome}
{"<h3>Metadata</h3>" + _json(d["metadata"]) if d["metadata"] else ""}
{"<h3>Artifacts</h3><ul>" + artifacts + "</ul>" if artifacts else ""}
</div></div>"""


def execution_page(
    d: dict[str, Any], call: dict[str, Any] | None, csrf: str, query: str, notice: str | None
) -> str:
    finished = d["status"] in ("completed", "failed", "cancelled")
    live = "" if finished else f' data-live="/partials/executions/{_e(d["exec_id"])}?{_e(query)}"'
    note = f"<p class=notice role=status>{_e(notice)}</p>" if notice else ""
    body = (
        f"{_tabs(d['exec_id'], 'overview', bool(d['pending_waits']))}{note}"
        f"<div id=live{live} data-interval=1500>{execution_live(d, call)}</div>"
    )
    return _page(f"Execution {d['exec_id']}", body, csrf, "executions")


# --------------------------------------------------------------------------- logs


def logs_live(data: dict[str, Any]) -> str:
    lines = "".join(
        f"<div class=logline><span class=muted>{_e(line['timestamp'][11:23])}</span> "
        f"<span class=ckpt>{_e(line['checkpoint'])}#{line['attempt']}</span> "
        f"<span class=lvl>{_e(line['level'])}</span> {_e(line['message'])}</div>"
        for line in data["items"]
    )
    state = "following while it runs" if data["following"] else f"execution {data['status']}"
    return (
        f"<p class=muted>{len(data['items']):,} lines · {_e(state)}</p>"
        f"<div class=logs id=loglines>{lines or '<p class=muted>No lines.</p>'}</div>"
    )


def logs_page(data: dict[str, Any], csrf: str) -> str:
    exec_id = data["exec_id"]
    options = '<option value="">every checkpoint</option>' + "".join(
        f"<option{' selected' if n == data['checkpoint'] else ''}>{_e(n)}</option>"
        for n in data["checkpoints"]
    )
    query = urlencode({"checkpoint": data["checkpoint"]} if data["checkpoint"] else {})
    live = (
        f' data-live="/partials/executions/{_e(exec_id)}/logs?{_e(query)}"'
        if data["following"]
        else ""
    )
    body = f"""{_tabs(exec_id, "logs", False)}<h1 class=mono>{_e(exec_id)}</h1>
<form class=filters method=get><label>Checkpoint <select name=checkpoint>{options}</select>
</label><button>Filter</button></form>
<div id=live{live} data-interval=1000 data-follow>{logs_live(data)}</div>"""
    return _page(f"Logs {exec_id}", body, csrf, "executions")


# --------------------------------------------------------------------------- act


def _field(field: Field, value: Any, error: str | None, prefix: str) -> str:
    name = _e(field.name)
    ident = f"{prefix}-{name}"
    req = " required" if field.required and field.kind != "bool" else ""
    shown = field.default if value is None else value
    if field.kind == "bool":
        checked = " checked" if shown in (True, "on", "true") else ""
        control = f'<input type=checkbox id="{ident}" name="{name}"{checked}>'
    elif field.kind in ("int", "float"):
        step = "1" if field.kind == "int" else "any"
        control = (
            f'<input type=number step={step} id="{ident}" name="{name}" value="{_e(shown)}"{req}>'
        )
    elif field.kind == "choice":
        control = (
            f'<select id="{ident}" name="{name}"{req}>'
            + "".join(
                f"<option{' selected' if c == shown else ''}>{_e(c)}</option>"
                for c in field.choices
            )
            + "</select>"
        )
    elif field.kind == "json":
        control = (
            f'<textarea id="{ident}" name="{name}" rows=3 data-json{req}>{_e(shown)}</textarea>'
        )
    else:
        control = f'<input type=text id="{ident}" name="{name}" value="{_e(shown)}"{req}>'
    err = f"<span class=field-error role=alert>{_e(error)}</span>" if error else ""
    desc = f"<small class=muted>{_e(field.description)}</small>" if field.description else ""
    return (
        f'<div class="field{" invalid" if error else ""}"><label for="{ident}">'
        f"{_e(field.label)}{' *' if req else ''}</label>{control}{desc}{err}</div>"
    )


def act_page(
    d: dict[str, Any],
    csrf: str,
    *,
    error: str | None = None,
    field_errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    replay_values: dict[str, str] | None = None,
) -> str:
    exec_id = _e(d["exec_id"])
    hidden = f'<input type=hidden name=csrf value="{_e(csrf)}">'
    field_errors = field_errors or {}
    values = values or {}
    alert = f"<p class=error role=alert id=act-error>{_e(error)}</p>" if error else ""
    waits = []
    for w in d["pending_waits"]:
        prefix = f"w-{w['name']}"
        fields = "".join(
            _field(f, values.get(f.name), field_errors.get(f.name), prefix)
            for f in fields_of(w["schema"])
        )
        received = (
            "<p class=muted>Input received; no process runs the execution now: resume it.</p>"
            if w["input_received"]
            else ""
        )
        waits.append(
            f'<form class=card method=post action="/executions/{exec_id}/input" '
            f'data-wait="{_e(w["name"])}">{hidden}'
            f'<input type=hidden name=wait value="{_e(w["name"])}">'
            f"<h3>Wait <span class=mono>{_e(w['name'])}</span></h3>"
            f"<p>{_e(w['question'] or '')}</p>{received}{fields}"
            f"<button type=submit name=action value=answer>Answer</button>"
            f"<button type=submit name=action value=abort class=danger>Abort wait</button></form>"
        )
    status = d["status"]
    buttons = []
    if status in ("running", "waiting"):
        buttons.append(("cancel", "Cancel", "danger"))
    if d["interrupted"] or any(w["input_received"] for w in d["pending_waits"]):
        buttons.append(("resume", "Resume", ""))
    if status == "failed":
        buttons.append(("retry", "Retry", ""))
    lifecycle = (
        "".join(
            f'<form method=post action="/executions/{exec_id}/{action}" class=inline>{hidden}'
            f'<button type=submit class="{cls}" data-action="{action}">{label}</button></form>'
            for action, label, cls in buttons
        )
        or "<p class=muted>No lifecycle action applies to this execution now.</p>"
    )
    replay_values = replay_values or {}
    choices = "".join(
        f"<option{' selected' if c['identity'] == replay_values.get('from') else ''}>"
        f"{_e(c['identity'])}</option>"
        for c in d["calls"]["items"]
    )
    replay = ""
    if status in ("completed", "failed", "cancelled"):
        replay = f"""<form class=card method=post action="/executions/{exec_id}/replay" id=replay>
{hidden}<h3>Replay from a call</h3>
<p class=muted>Calls before the chosen one reuse their recorded outputs. Overrides give
calls' outputs: a JSON object such as {{"checkpoint.NAME": value}}.</p>
<div class=field><label for=replay-from>From call</label>
<select id=replay-from name=from required>{choices}</select></div>
<div class=field><label for=replay-overrides>Overrides (JSON)</label>
<textarea id=replay-overrides name=overrides rows=5 data-json-object>{
            _e(replay_values.get("overrides", "{}"))
        }</textarea>
<span class=field-error role=alert id=overrides-error></span></div>
<button type=submit>Replay</button></form>"""
    body = f"""{_tabs(d["exec_id"], "act", bool(d["pending_waits"]))}
<h1 class=mono>{exec_id}</h1><p>{_badge(status, d["interrupted"])}
<span class=muted>{_e(d["status_reason"] or "")}</span></p>{alert}
{"".join(waits) or "<p class=muted>No pending wait.</p>"}
<h2>Lifecycle</h2><div class=actions>{lifecycle}</div>{replay}"""
    return _page(f"Act {d['exec_id']}", body, csrf, "executions")


# --------------------------------------------------------------------------- flows


def _chart(history: list[dict[str, Any]], key: str) -> str:
    """``key`` ("tokens" or "cost") per execution, oldest to newest, as an SVG of bars."""
    values = [h[key] or 0 for h in history]
    if not any(values):
        return f"<span class=muted>no {'tokens' if key == 'tokens' else 'cost'} recorded</span>"
    top = max(values)
    width = max(1.0, 300 / len(values))

    def label(v: float) -> str:
        return f"{v:,} tokens" if key == "tokens" else f"${v:.6f}"

    bars = "".join(
        f'<rect x="{i * width:.2f}" y="{40 - v / top * 40:.2f}" width="{max(width - 0.5, 0.5):.2f}"'
        f' height="{v / top * 40:.2f}"><title>{_e(h["started_at"])}: {label(v)}</title></rect>'
        for i, (v, h) in enumerate(zip(values, history, strict=True))
    )
    return (
        f'<svg class="chart chart-{key}" data-chart="{key}" viewBox="0 0 300 40" '
        f'preserveAspectRatio="none">{bars}</svg>'
    )


def flows_page(data: dict[str, Any], csrf: str) -> str:
    rows = []
    for f in data["flows"]:
        rate = "—" if f["success_rate"] is None else f"{f['success_rate'] * 100:.1f}%"
        counts = ", ".join(f"{n} {s}" for s, n in sorted(f["by_status"].items()))
        link = "/?" + urlencode({"flow": f["flow_name"]})
        rows.append(
            f'<tr data-flow="{_e(f["flow_name"])}"><td><a href="{_e(link)}">'
            f"{_e(f['flow_name'])}</a></td>"
            f"<td class=n>{f['executions']:,}<br><small class=muted>{_e(counts)}</small></td>"
            f"<td class=n>{rate}</td><td class=n>{_duration(f['p50_duration_ms'])}</td>"
            f"<td class=n>{_duration(f['p95_duration_ms'])}</td>"
            f"<td class=n>{_num(f['tokens'])}</td><td class=n>{_cost(f.get('cost'))}</td>"
            f"<td>{_chart(f['tokens_over_time'], 'tokens')}</td>"
            f"<td>{_chart(f['tokens_over_time'], 'cost')}</td></tr>"
        )
    if not rows:
        rows.append("<tr><td colspan=9 class=empty>No executions yet.</td></tr>")
    body = f"""<h1>Flows</h1><table class=list><thead><tr><th>Flow</th><th class=n>Executions</th>
<th class=n>Success</th><th class=n>p50</th><th class=n>p95</th><th class=n>Tokens</th>
<th class=n>Est. cost</th><th>Tokens over time (latest executions)</th>
<th>Est. cost over time</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>"""
    return _page("Flows", body, csrf, "flows")

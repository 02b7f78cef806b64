"""The dashboard's HTTP side: a real ``kitaru ui`` on 127.0.0.1, asked over HTTP."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import helpers
import pytest
from llm_server import FakeLLMServer
from ui_support import MOCK_REPLY, Dashboard, dashboard, desk_env, desk_in_background, run_desk

import kitaru
from kitaru import KitaruClient, KitaruExecutionError, checkpoint, flow
from tests.ui_flows.desk import answer_ticket, steps

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

SECRET = "sk-test-QWERTYUIOPasdfghjkl0123456789"


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dashboard, dict[str, str]]]:
    """One store holding a finished, a failed and a waiting execution, and its dashboard."""
    root = tmp_path_factory.mktemp("desk")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KITARU_STORE", str(root / "kitaru.db"))
        mp.setenv("KITARU_CONFIG_PATH", str(root / "config"))
        ids = {
            "finished": run_desk("finish"),
            "failed": run_desk("fail"),
            "waiting": run_desk("wait", DESK_WAIT_TIMEOUT="0.5"),
        }
        with dashboard(root) as ui:
            yield ui, ids


def _wait_for(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _raw(ui: Dashboard, method: str, path: str, headers: dict[str, str], body: str = ""):  # type: ignore[no-untyped-def]
    parsed = urllib.parse.urlsplit(ui.base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


class TestAccess:
    """Every request needs the launch's token; actions also need the page's CSRF value."""

    def test_requests_without_the_token_are_refused(self, desk) -> None:  # type: ignore[no-untyped-def]
        """The API, the pages and the static files answer 401 without a token or a wrong one."""
        ui, ids = desk
        for path in ("/api/executions", "/", f"/executions/{ids['finished']}", "/static/ui.js"):
            assert ui.request(path, token=None)[0] == 401, path
            assert ui.request(path, token="not-the-token")[0] == 401, path
        _status, body = ui.request("/api/executions", token=None)
        assert "open the URL that `kitaru ui` printed" in body["error"]

    def test_the_printed_url_sets_a_session_cookie(self, desk) -> None:  # type: ignore[no-untyped-def]
        """Opening ``/?token=`` sets an HttpOnly SameSite cookie and redirects without it."""
        ui, _ = desk
        status, headers, _ = _raw(ui, "GET", "/?token=" + ui.token, {})
        assert status == 303
        assert headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert ui.token in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        name = cookie.split("=", 1)[0]
        status, _, page = _raw(ui, "GET", "/", {"Cookie": f"{name}={ui.token}"})
        assert status == 200
        assert "Executions" in page

    def test_a_post_with_the_cookie_needs_the_csrf_value(self, desk) -> None:  # type: ignore[no-untyped-def]
        """A cookie-carrying POST without the CSRF value, or from another origin, is refused."""
        ui, ids = desk
        _, headers, _ = _raw(ui, "GET", "/?token=" + ui.token, {})
        cookie = headers["set-cookie"].split(";", 1)[0]
        form = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        path = f"/executions/{ids['waiting']}/cancel"
        assert _raw(ui, "POST", path, form, "")[0] == 403
        csrf = ui.request("/api/session")[1]["csrf"]
        evil = {**form, "Origin": "http://evil.example"}
        assert _raw(ui, "POST", path, evil, f"csrf={csrf}")[0] == 403
        assert _raw(ui, "POST", path, form, "csrf=wrong")[0] == 403
        _status, body = ui.request(f"/api/executions/{ids['waiting']}")
        assert body["status"] == "waiting"

    def test_pages_forbid_outside_scripts(self, desk) -> None:  # type: ignore[no-untyped-def]
        """Pages carry a content security policy allowing only this server's scripts."""
        ui, _ = desk
        _, headers, _ = _raw(ui, "GET", "/", {"Authorization": f"Bearer {ui.token}"})
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "same-origin"


class TestExecutionsApi:
    """``/api/executions`` lists executions newest first, filtered and paginated."""

    def test_lists_finished_failed_and_waiting(self, desk) -> None:  # type: ignore[no-untyped-def]
        """Rows carry flow, status, start, duration, calls and tokens, newest first."""
        ui, ids = desk
        status, body = ui.request("/api/executions")
        assert status == 200
        rows = {row["exec_id"]: row for row in body["items"]}
        assert [row["exec_id"] for row in body["items"]] == [
            ids["waiting"],
            ids["failed"],
            ids["finished"],
        ]
        assert rows[ids["finished"]]["status"] == "completed"
        assert rows[ids["finished"]]["calls"] == 2
        assert rows[ids["finished"]]["tokens"] > 0
        assert rows[ids["finished"]]["duration_ms"] > 0
        assert rows[ids["failed"]]["status"] == "failed"
        assert "refund limit exceeded" in rows[ids["failed"]]["failure"]
        assert rows[ids["waiting"]]["status"] == "waiting"
        assert body["flows"] == ["answer_ticket", "escalate", "refund_ticket"]

    def test_filters_by_flow_status_and_id_prefix(self, desk) -> None:  # type: ignore[no-untyped-def]
        """flow=, status= and q= (an id prefix) narrow the list."""
        ui, ids = desk
        by_flow = ui.request("/api/executions?flow=refund_ticket")[1]["items"]
        assert [r["exec_id"] for r in by_flow] == [ids["failed"]]
        by_status = ui.request("/api/executions?status=waiting")[1]["items"]
        assert [r["exec_id"] for r in by_status] == [ids["waiting"]]
        prefix = ids["finished"][:6]
        by_prefix = ui.request(f"/api/executions?q={prefix}")[1]["items"]
        assert [r["exec_id"] for r in by_prefix] == [ids["finished"]]

    def test_a_bad_status_filter_says_what_to_use(self, desk) -> None:  # type: ignore[no-untyped-def]
        """An unknown status is a 400 naming the statuses."""
        ui, _ = desk
        status, body = ui.request("/api/executions?status=done")
        assert status == 400
        assert "running, waiting, completed, failed, cancelled" in body["error"]

    def test_pages_of_executions(self, tmp_path: Path) -> None:
        """30 executions come 25 to a page, newest first, the rest on page 2."""
        made = [answer_ticket.run(f"T-{i}").exec_id for i in range(30)]
        KitaruClient().close()
        with dashboard(tmp_path) as ui:
            first = ui.request("/api/executions")[1]
            second = ui.request("/api/executions?page=2")[1]
        assert (first["total"], first["pages"], len(first["items"])) == (30, 2, 25)
        listed = [r["exec_id"] for r in first["items"] + second["items"]]
        assert listed == list(reversed(made))


@pytest.fixture(autouse=True)
def _mock_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", MOCK_REPLY)


class TestExecutionApi:
    """``/api/executions/{id}`` and its calls: timeline rows, model calls, failures."""

    def test_detail_has_calls_inputs_and_result(self, desk) -> None:  # type: ignore[no-untyped-def]
        """A finished execution shows inputs, result, tokens and its calls with bars."""
        ui, ids = desk
        status, d = ui.request(f"/api/executions/{ids['finished']}")
        assert status == 200
        assert d["inputs"] == {"args": ["T-1"], "kwargs": {}}
        assert d["result"] == f"reply for T-1: billing: {MOCK_REPLY}"
        assert [c["identity"] for c in d["calls"]["items"]] == ["triage", "reply"]
        for call in d["calls"]["items"]:
            assert 0 <= call["bar"]["left"] <= 100
            assert call["bar"]["width"] > 0
            assert call["attempts"][0]["status"] == "completed"

    def test_a_model_call_shows_its_prompt_as_chat(self, desk) -> None:  # type: ignore[no-untyped-def]
        """The call's model call has messages by role, response, models and tokens."""
        ui, ids = desk
        status, call = ui.request(f"/api/executions/{ids['finished']}/calls/reply")
        assert status == 200
        (llm,) = call["llm_calls"]
        assert [m["role"] for m in llm["prompt"]] == ["system", "user"]
        assert llm["response"] == MOCK_REPLY
        assert llm["requested_model"] == llm["resolved_model"] == "openai/gpt-4o-mini"
        assert llm["total_tokens"] == llm["input_tokens"] + llm["output_tokens"] > 0
        assert llm["credential_source"] == "mock"
        assert call["output"] == f"reply for T-1: billing: {MOCK_REPLY}"

    def test_a_call_shows_its_arguments(self, desk) -> None:  # type: ignore[no-untyped-def]
        """Each recorded argument comes by name with its preview; a handle names its call."""
        ui, ids = desk
        triage = ui.request(f"/api/executions/{ids['finished']}/calls/triage")[1]
        assert triage["arguments"] == [{"name": "ticket", "preview": "'T-1'", "type_name": None}]
        reply = ui.request(f"/api/executions/{ids['finished']}/calls/reply")[1]
        assert [(a["name"], a["preview"]) for a in reply["arguments"]] == [
            ("category", "<output of checkpoint 'triage'>")
        ]

    def test_a_failure_shows_traceback_and_origin(self, desk) -> None:  # type: ignore[no-untyped-def]
        """A failed execution carries its exception, traceback, origin and call."""
        ui, ids = desk
        failure = ui.request(f"/api/executions/{ids['failed']}")[1]["failure"]
        assert failure["type"] == "ValueError"
        assert failure["call"] == "refund"
        assert failure["origin"] == "user_code"
        assert "raise ValueError" in failure["traceback"]

    def test_unknown_execution_and_call(self, desk) -> None:  # type: ignore[no-untyped-def]
        """An unknown id is a 404 saying how to list executions; an unknown call a 409."""
        ui, ids = desk
        status, body = ui.request("/api/executions/nope-nope")
        assert status == 404
        assert "kitaru executions list" in body["error"]
        status, body = ui.request(f"/api/executions/{ids['finished']}/calls/nothing")
        assert status == 409
        assert "has no call 'nothing'" in body["error"]

    def test_a_large_execution_comes_a_page_of_calls_at_a_time(self, tmp_path: Path) -> None:
        """450 calls: 200 per page, page 3 holds the last 50, each with its position."""
        exec_id = steps.run(450).exec_id
        KitaruClient().close()
        with dashboard(tmp_path) as ui:
            first = ui.request(f"/api/executions/{exec_id}")[1]["calls"]
            last = ui.request(f"/api/executions/{exec_id}?calls=3")[1]["calls"]
        assert (first["total"], first["pages"], len(first["items"])) == (450, 3, 200)
        assert [c["position"] for c in last["items"]] == list(range(400, 450))

    def test_logs_in_order_and_by_checkpoint(self, tmp_path: Path) -> None:
        """Logs come in order; checkpoint= keeps one checkpoint's lines."""
        exec_id = run_desk("tick", DESK_TICKS="3")
        with dashboard(tmp_path) as ui:
            every = ui.request(f"/api/executions/{exec_id}/logs")[1]
            one = ui.request(f"/api/executions/{exec_id}/logs?checkpoint=tick_2")[1]
        assert [line["message"] for line in every["items"]] == ["tick 0", "tick 1", "tick 2"]
        assert every["following"] is False
        assert [line["message"] for line in one["items"]] == ["tick 1"]


@flow
def priced(i: int) -> str:
    return kitaru.llm(f"Summarise ticket {i}", model="openai/gpt-4o-mini", name="summary")


@checkpoint
def settle(i: int) -> int:
    if i == 3:
        raise ValueError("cannot settle ticket 3")
    time.sleep(0.02 * i)
    return i


@flow
def settle_all(i: int) -> int:
    return settle(i).load()


class TestFlowsApi:
    """``/api/flows``: totals over every execution of a flow, rates and percentiles."""

    def test_totals_count_every_execution_beyond_the_chart(
        self, tmp_path: Path, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """230 priced executions: tokens and cost are the sum of all 230, the charts the
        latest 200, and the page draws cost over time beside tokens."""
        monkeypatch.delenv("KITARU_LLM_MOCK_RESPONSE")
        llm_server.point_providers_here(monkeypatch)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-flows-9z8y7x")
        llm_server.reply_text("ok", input_tokens=1000, output_tokens=100)
        for i in range(230):
            priced.run(i)
        client = KitaruClient()
        every = client.executions.summaries(flow="priced")
        client.close()
        assert len(every) == 230
        assert all(s.tokens == 1100 for s in every)
        assert all(s.cost is not None and s.cost > 0 for s in every)
        with dashboard(tmp_path) as ui:
            (stats,) = ui.request("/api/flows")[1]["flows"]
            _, _, page = _raw(ui, "GET", "/flows", {"Authorization": f"Bearer {ui.token}"})
        assert stats["executions"] == 230
        assert stats["tokens"] == 230 * 1100
        assert stats["cost"] == pytest.approx(sum(s.cost or 0 for s in every))
        history = stats["tokens_over_time"]
        assert len(history) == 200
        assert [h["exec_id"] for h in history] == [s.exec_id for s in reversed(every[:200])]
        assert all(h["cost"] == pytest.approx(every[0].cost) for h in history)
        assert 'data-chart="tokens"' in page
        assert 'data-chart="cost"' in page
        assert "Est. cost over time" in page

    def test_success_rate_and_duration_percentiles(self, tmp_path: Path) -> None:
        """Five executions, one failed: success 4/5; p50 and p95 are the nearest-rank
        durations (the 3rd and 5th shortest of five)."""
        for i in range(5):
            with contextlib.suppress(KitaruExecutionError):
                settle_all.run(i)
        client = KitaruClient()
        every = client.executions.summaries(flow="settle_all")
        client.close()
        durations = sorted((s.ended_ts - s.started_ts) * 1e3 for s in every)  # type: ignore[operator]
        with dashboard(tmp_path) as ui:
            (stats,) = ui.request("/api/flows")[1]["flows"]
        assert stats["by_status"] == {"completed": 4, "failed": 1}
        assert stats["success_rate"] == 0.8
        # Nearest rank: ceil(0.5 * 5) = 3rd, ceil(0.95 * 5) = 5th.
        assert stats["p50_duration_ms"] == pytest.approx(durations[2])
        assert stats["p95_duration_ms"] == pytest.approx(durations[4])
        assert stats["tokens"] == 0
        assert stats["cost"] is None


class TestPostgresStore:
    """The dashboard reads a PostgreSQL store as it reads SQLite, through the client."""

    def test_lists_and_details_executions_on_postgresql(
        self, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two executions recorded on PostgreSQL are listed; one's detail has its calls."""
        monkeypatch.setenv("KITARU_STORE", pg_url)
        finished = run_desk("finish")
        failed = run_desk("fail")
        # The dashboard is pointed at the store by --store alone.
        with dashboard(tmp_path, "--store", pg_url, env={"KITARU_STORE": None}) as ui:
            listed = ui.request("/api/executions")[1]
            detail = ui.request(f"/api/executions/{finished}")[1]
            call = ui.request(f"/api/executions/{finished}/calls/reply")[1]
        assert [(r["exec_id"], r["status"]) for r in listed["items"]] == [
            (failed, "failed"),
            (finished, "completed"),
        ]
        assert listed["items"][1]["calls"] == 2
        assert detail["status"] == "completed"
        assert detail["result"] == f"reply for T-1: billing: {MOCK_REPLY}"
        assert [c["identity"] for c in detail["calls"]["items"]] == ["triage", "reply"]
        assert call["llm_calls"][0]["response"] == MOCK_REPLY


class TestSecrets:
    """No secret value reaches the browser, whatever the journal holds."""

    def test_a_key_in_logs_and_outputs_is_blanked(self, tmp_path: Path) -> None:
        """A provider key printed and returned by a checkpoint is shown as [redacted]."""
        exec_id = run_desk("leak", OPENAI_API_KEY=SECRET)
        with dashboard(tmp_path, env={"OPENAI_API_KEY": SECRET}) as ui:
            bodies = [
                ui.request(f"/api/executions/{exec_id}")[1],
                ui.request(f"/api/executions/{exec_id}/calls/echo_key")[1],
                ui.request(f"/api/executions/{exec_id}/logs")[1],
                ui.request("/api/executions")[1],
            ]
            _, _, page = _raw(
                ui,
                "GET",
                f"/executions/{exec_id}?call=echo_key",
                {"Authorization": f"Bearer {ui.token}"},
            )
        text = json.dumps(bodies) + page
        assert SECRET[:12] not in text
        assert "[redacted]" in json.dumps(bodies[1]["output"])
        (argument,) = bodies[1]["arguments"]
        assert argument["name"] == "key"
        assert "[redacted]" in argument["preview"]
        assert 'data-arg="key"' in page
        assert "[redacted]" in bodies[2]["items"][0]["message"]


class TestActions:
    """Actions are the client's: answer a wait, cancel, replay; bad input is explained."""

    def test_answer_a_wait_and_see_it_complete(self, tmp_path: Path) -> None:
        """A wrong answer is refused with the reason; a right one lets the flow finish."""
        with desk_in_background("wait") as (exec_id, proc), dashboard(tmp_path) as ui:
            _wait_for(lambda: ui.request(f"/api/executions/{exec_id}")[1]["status"] == "waiting")
            path = f"/api/executions/{exec_id}/input"
            status, body = ui.request(path, method="POST", body={"value": {"approved": "x"}})
            assert status == 400, body
            assert "approve" in body["error"]
            status, body = ui.request(
                path, method="POST", body={"value": {"approved": True, "reviewer": "ana"}}
            )
            assert status == 200, body
            assert proc.wait(timeout=30) == 0
            result = ui.request(f"/api/executions/{exec_id}")[1]
        assert result["status"] == "completed"
        assert result["result"] == {"category": "T-3: billing", "approved": True, "by": "ana"}

    def test_cancel_a_running_execution(self, tmp_path: Path) -> None:
        """Cancel stops a running execution at its next call; it ends cancelled."""
        with desk_in_background("tick") as (exec_id, proc), dashboard(tmp_path) as ui:
            status, body = ui.request(f"/api/executions/{exec_id}/cancel", method="POST", body={})
            assert status == 200, body
            proc.wait(timeout=30)
            _wait_for(lambda: ui.request(f"/api/executions/{exec_id}")[1]["status"] == "cancelled")
            again = ui.request(f"/api/executions/{exec_id}/cancel", method="POST", body={})
        assert again[0] == 409
        assert "already cancelled" in again[1]["error"]

    def test_replay_from_a_call_with_overrides(self, tmp_path: Path) -> None:
        """Replay from ``reply`` with its output overridden makes a new execution."""
        source = run_desk("finish")
        with dashboard(tmp_path) as ui:
            status, body = ui.request(
                f"/api/executions/{source}/replay",
                method="POST",
                body={"from": "reply", "overrides": {"checkpoint.reply": "canned answer"}},
            )
            assert status == 200, body
            new = body["execution"]["exec_id"]
            _wait_for(lambda: ui.request(f"/api/executions/{new}")[1]["status"] == "completed")
            replayed = ui.request(f"/api/executions/{new}")[1]
        assert replayed["original_exec_id"] == source
        assert replayed["result"] == "canned answer"

    def test_retry_through_the_form_post_ends_as_the_clients_retry(self, tmp_path: Path) -> None:
        """A failed execution retried by a form POST (cookie and CSRF) runs its failed
        call again and completes, its triage reused, as ``executions.retry`` does."""
        gate = tmp_path / "gate-open"
        exec_id = run_desk("gate", DESK_GATE=str(gate))
        with dashboard(tmp_path, env={"DESK_GATE": str(gate)}) as ui:
            assert ui.request(f"/api/executions/{exec_id}")[1]["status"] == "failed"
            gate.touch()
            status, headers, _ = _form_post(ui, f"/executions/{exec_id}/retry")
            assert status == 303
            assert headers["location"].startswith(f"/executions/{exec_id}?notice=retry")
            _wait_for(lambda: ui.request(f"/api/executions/{exec_id}")[1]["status"] != "failed")
            _wait_for(lambda: ui.request(f"/api/executions/{exec_id}")[1]["status"] == "completed")
            detail = ui.request(f"/api/executions/{exec_id}")[1]
            pay = ui.request(f"/api/executions/{exec_id}/calls/pay")[1]
        assert detail["result"] == "paid T-4"
        assert detail["failure"] is None
        assert [a["status"] for a in pay["attempts"]][-1] == "completed"
        assert len(pay["attempts"]) == 2

    def test_resume_through_the_api_finishes_an_interrupted_execution(self, tmp_path: Path) -> None:
        """A run killed mid-way is resumed by ``POST /api/.../resume``: it completes with
        the result a whole run gives, its finished ticks not run again."""
        with desk_in_background("tick", DESK_TICKS="20") as (exec_id, proc):
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("tick 3"):
                    break
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        with dashboard(tmp_path) as ui:
            before = ui.request(f"/api/executions/{exec_id}")[1]
            assert before["status"] == "running"
            assert before["interrupted"] is True
            csrf = ui.request("/api/session")[1]["csrf"]
            cookie = _cookie(ui)
            status, body = ui.request(
                f"/api/executions/{exec_id}/resume",
                token=None,
                method="POST",
                body={"csrf": csrf},
                headers={"Cookie": cookie},
            )
            assert status == 200, body
            assert body["notice"] == "resumed"
            _wait_for(lambda: ui.request(f"/api/executions/{exec_id}")[1]["status"] == "completed")
            after = ui.request(f"/api/executions/{exec_id}")[1]
            first = ui.request(f"/api/executions/{exec_id}/calls/tick")[1]
        assert after["result"] == sum(range(20))
        assert after["calls"]["total"] == 20
        assert len(first["attempts"]) == 1  # tick 0 finished before the kill: not run again

    def test_overrides_must_be_a_json_object(self, desk) -> None:  # type: ignore[no-untyped-def]
        """Overrides that are not JSON, or not an object, are refused before replaying."""
        ui, ids = desk
        path = f"/api/executions/{ids['finished']}/replay"
        status, body = ui.request(path, method="POST", body={"from": "reply", "overrides": "{x"})
        assert status == 400
        assert "not valid JSON" in body["error"]
        status, body = ui.request(path, method="POST", body={"from": "reply", "overrides": "[1]"})
        assert status == 400
        assert "JSON object" in body["error"]


def _cookie(ui: Dashboard) -> str:
    """The session cookie the printed URL sets, as a ``Cookie`` header value."""
    _, headers, _ = _raw(ui, "GET", "/?token=" + ui.token, {})
    return str(headers["set-cookie"].split(";", 1)[0])


def _form_post(ui: Dashboard, path: str, fields: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """POST a urlencoded form as the page does: with the cookie and the CSRF value."""
    csrf = ui.request("/api/session")[1]["csrf"]
    body = urllib.parse.urlencode({"csrf": csrf, **(fields or {})})
    headers = {"Cookie": _cookie(ui), "Content-Type": "application/x-www-form-urlencoded"}
    return _raw(ui, "POST", path, headers, body)


class TestDetailNotes:
    """Metadata (``kitaru.log``) and artifacts (``kitaru.save``) are in the execution's detail."""

    def test_metadata_and_saved_artifacts_are_shown(self, tmp_path: Path) -> None:
        """The flow's logged metadata and a checkpoint's saved artifact and metadata appear."""
        exec_id = run_desk("notes")
        with dashboard(tmp_path) as ui:
            detail = ui.request(f"/api/executions/{exec_id}")[1]
            call = ui.request(f"/api/executions/{exec_id}/calls/summarise")[1]
            _, _, page = _raw(
                ui, "GET", f"/executions/{exec_id}", {"Authorization": f"Bearer {ui.token}"}
            )
        assert detail["metadata"] == {"priority": "high", "team": {"name": "billing"}}
        saved = [a for a in detail["artifacts"] if a["origin"] == "saved"]
        assert [(a["name"], a["kind"], a["producing_call"]) for a in saved] == [
            ("summary", "context", "summarise")
        ]
        assert call["metadata"] == {"words": 42}
        assert "summary" in [a["name"] for a in call["artifacts"]]
        assert "<h3>Metadata</h3>" in page
        assert "priority" in page
        assert "<span class=mono>summary</span> <small>context, from summarise</small>" in page


class TestCommand:
    """``kitaru ui`` prints one URL line, serves until Ctrl-C, and warns off loopback."""

    def test_prints_the_url_and_stops_cleanly_on_ctrl_c(self, tmp_path: Path) -> None:
        """One line with a tokened URL; SIGINT ends it with exit code 0."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "kitaru", "ui", "--port", "0", "--no-open"],
            cwd=tmp_path,
            env=desk_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("kitaru ui: http://127.0.0.1:")
            assert "/?token=" in line
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert out == ""
        assert "Traceback" not in err

    def test_only_kitaru_ui_loads_the_web_packages(self) -> None:
        """Loading the command line (every command registered) loads neither Starlette
        nor uvicorn."""
        code = "import sys, kitaru.cli; print(sorted({'starlette', 'uvicorn'} & set(sys.modules)))"
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=desk_env(),
            capture_output=True,
            text=True,
            timeout=helpers.TIMEOUT,
            check=True,
        )
        assert result.stdout.strip() == "[]"

    def test_the_ui_extra_brings_the_form_parser(self) -> None:
        """``kitaru[ui]`` requires python-multipart, without which Starlette parses no form."""
        project = tomllib.loads((helpers.REPO / "pyproject.toml").read_text())
        required = project["project"]["optional-dependencies"]["ui"]
        names = {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in required}
        assert {"starlette", "uvicorn", "python-multipart"} <= names

    def test_a_missing_form_parser_is_a_one_line_error_at_start(self, tmp_path: Path) -> None:
        """Without python-multipart, ``kitaru ui`` exits 1 at once naming what to install."""
        # A None entry in sys.modules makes the import fail as if it were not installed.
        code = (
            "import sys; sys.modules['python_multipart'] = None; "
            "sys.argv = ['kitaru', 'ui', '--port', '0', '--no-open']; "
            "from kitaru.cli import main; main()"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=desk_env(),
            capture_output=True,
            text=True,
            timeout=helpers.TIMEOUT,
            check=False,
        )
        helpers.assert_clean_error(
            result, "python-multipart is missing", "pip install 'kitaru[ui]'"
        )
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1

    def test_a_non_loopback_host_prints_a_warning(self, tmp_path: Path) -> None:
        """--host with an outside address warns; one it cannot bind is a one-line error."""
        result = subprocess.run(
            [sys.executable, "-m", "kitaru", "ui", "--host", "192.0.2.1", "--no-open"],
            cwd=tmp_path,
            env=desk_env(),
            capture_output=True,
            text=True,
            timeout=helpers.TIMEOUT,
            check=False,
        )
        helpers.assert_clean_error(result, "Warning: listening on 192.0.2.1", "Cannot listen")

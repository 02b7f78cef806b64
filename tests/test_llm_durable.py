"""``kitaru.llm()`` as users run it: durable across crashes, fully recorded, paid for once.

The real ``openai`` and ``anthropic`` SDKs talk to a fake provider on 127.0.0.1 that
counts every request. Flows from ``tests/llm_flows`` run in their own processes, kill
themselves with SIGKILL, and are continued with the real ``kitaru`` command from a
folder that holds no flow code; the request count shows exactly which model calls were
sent again. The rest drives flows in this process and reads the journal's SQLite file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from helpers import REPO, TIMEOUT, background, child_env, store_file, wait_for_file
from helpers import kitaru as cli
from llm_flows.conversation import question
from llm_server import FakeLLMServer, RecordedRequest

import kitaru
from kitaru import (
    KitaruContextError,
    KitaruStateError,
    KitaruUsageError,
    KitaruUserCodeError,
    checkpoint,
    flow,
)
from kitaru._llm.registry import register_model
from kitaru.cli import main as cli_main
from kitaru.client import Execution, KitaruClient
from kitaru.journal.events import decode_event

KILLED = -9
MODEL = "openai/gpt-4o-mini"
ENV_KEY = "sk-env-canary-31f0c2d9e8b7a6"
SECRET_KEY = "sk-secret-canary-7c4e1b0a9d8f25"
REPLY = "Noted"


# -- the provider ----------------------------------------------------------------------


def _last_content(body: Any) -> str:
    try:
        return str(body["messages"][-1]["content"])
    except (KeyError, IndexError, TypeError):
        return ""


class EchoServer(FakeLLMServer):
    """The fake provider, answering each text request with its reply and the last message.

    Every call thus gets its own answer, and the same request always the same one, so a
    resumed run can be compared with an uninterrupted one.
    """

    def __init__(self) -> None:
        super().__init__()
        # Headers and body leave in two writes; with Nagle's algorithm the second waits
        # for the client's delayed ACK, about 40 ms per call on Linux.
        self._httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]

    def _record(self, request: RecordedRequest) -> Any:
        reply = super()._record(request)
        if reply.kind != "text":
            return reply
        return dataclasses.replace(reply, text=f"{reply.text} (re: {_last_content(request.body)})")

    def new_requests(self, since: int) -> list[RecordedRequest]:
        """The requests received after the first ``since``."""
        return self.requests[since:]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[EchoServer]:
    """A started echo server every provider is aimed at; always stopped after the test."""
    echo = EchoServer().start()
    try:
        echo.point_providers_here(monkeypatch)
        echo.reply_text(REPLY, input_tokens=12, output_tokens=7)
        yield echo
    finally:
        echo.stop()


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """An OpenAI key in the environment (seen by this process and every child)."""
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    return ENV_KEY


def expected_reply(content: str, text: str = REPLY) -> str:
    """What the echo server answers to a request whose last message is ``content``."""
    return f"{text} (re: {content})"


def asked(requests: list[RecordedRequest]) -> list[str]:
    """The last message of each request: which question each call asked."""
    return [_last_content(r.body) for r in requests]


# -- processes ---------------------------------------------------------------------------


def llm_flow(module: str, *args: str) -> list[str]:
    """The command that runs ``tests/llm_flows/<module>.py`` as a package module."""
    return [sys.executable, "-m", f"tests.llm_flows.{module}", *args]


def run_flow(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run an llm flow module from the repository root, to its end or its death."""
    return subprocess.run(
        llm_flow(module, *args),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@dataclasses.dataclass
class Workspace:
    """Where a crash test's processes run."""

    elsewhere: Path
    """A folder with no flow code: resuming processes start here."""

    def resume(self, exec_id: str, env: dict[str, str], verb: str = "resume") -> Any:
        """``kitaru executions resume|retry ID -o json`` from ``elsewhere``."""
        return cli("executions", verb, exec_id, "-o", "json", cwd=self.elsewhere, env=env)

    def get(self, exec_id: str, *, output: str = "json") -> Any:
        """``kitaru executions get ID`` (parsed when JSON)."""
        result = cli(
            "executions", "get", exec_id, "-o", output, cwd=self.elsewhere, env=child_env()
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if output == "json" else result.stdout


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return Workspace(elsewhere=elsewhere)


def only_execution() -> Execution:
    """The one execution in this test's journal."""
    executions = KitaruClient().executions.list()
    assert len(executions) == 1, [e.exec_id for e in executions]
    return executions[0]


def calls_of(execution: Execution) -> dict[str, Any]:
    """The execution's durable calls by identity."""
    return {call.invocation_id: call for call in execution.checkpoints}


def clean_run(module: str, *args: str, tmp_path: Path, **env: str | None) -> Any:
    """The result of an uninterrupted run, journaled apart from the test's own journal."""
    result = run_flow(module, *args, env=child_env(KITARU_STORE=str(tmp_path / "clean.db"), **env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- the journal file --------------------------------------------------------------------


def journal_events(exec_id: str) -> list[tuple[str, Any]]:
    """The execution's events as stored, decoded: ``(type, event)`` in order."""
    with contextlib.closing(sqlite3.connect(store_file())) as conn:
        rows = conn.execute(
            "SELECT type, body FROM events WHERE exec_id = ? ORDER BY seq", (exec_id,)
        ).fetchall()
    return [(str(kind), decode_event(str(kind), bytes(body))) for kind, body in rows]


def payload_rows() -> dict[str, bytes]:
    """Every row of the ``payloads`` table: hash -> stored bytes."""
    with contextlib.closing(sqlite3.connect(store_file())) as conn:
        rows = conn.execute("SELECT hash, bytes FROM payloads").fetchall()
    return {str(digest): bytes(data) for digest, data in rows}


def journal_file_bytes(folder: Path) -> dict[str, bytes]:
    """The raw bytes of every file under ``folder`` (the .db, its -wal and -shm included).

    A child process reads them: closing a file this process opened would drop the POSIX
    locks its own SQLite connections hold on it, and another process could then delete
    the WAL under them.
    """
    contents = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            read = subprocess.run(["cat", str(path)], capture_output=True, check=False)
            contents[str(path.relative_to(folder))] = read.stdout
    return contents


# ======================================================================================
# 1. Resume after SIGKILL: completed flow-body calls are never sent again
# ======================================================================================


class TestResumeAfterSigkill:
    @pytest.mark.slow
    @pytest.mark.parametrize("killed_after", [1, 3])
    def test_completed_calls_are_not_sent_again(
        self, server: EchoServer, env_key: str, ws: Workspace, tmp_path: Path, killed_after: int
    ) -> None:
        """After a SIGKILL, resume sends only the calls after the kill and ends as a clean run."""
        turns = 5
        clean = clean_run("conversation", str(turns), tmp_path=tmp_path)
        assert server.count == turns
        before_crash = server.count

        crashed = run_flow(
            "conversation", str(turns), env=child_env(LLMFLOW_KILL_AFTER=str(killed_after))
        )

        assert crashed.returncode == KILLED, crashed.stderr
        assert server.count - before_crash == killed_after
        execution = only_execution()
        assert execution.interrupted
        recorded = execution.llm_calls
        assert [c.name for c in recorded] == [f"llm_{n}" for n in range(1, killed_after + 1)]
        assert [c.response() for c in recorded] == clean["replies"][:killed_after]
        before_resume = server.count

        result = ws.resume(execution.exec_id, child_env())

        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        data = json.loads(result.stdout)
        assert data["status"] == "completed"
        assert data["result"] == clean
        resent = server.new_requests(before_resume)
        # Only the calls after the kill point reached the provider, once each, in order.
        assert asked(resent) == [question(turn) for turn in range(killed_after + 1, turns + 1)]
        # Their prompts carry the recorded replies of the calls that were not sent again.
        first_live = resent[0].body["messages"]
        assert [m["content"] for m in first_live if m["role"] == "assistant"] == clean["replies"][
            :killed_after
        ]
        final = KitaruClient().executions.get(execution.exec_id)
        assert [c.name for c in final.llm_calls] == [f"llm_{n}" for n in range(1, turns + 1)]
        assert all(c.attempt == 1 for c in final.llm_calls)
        assert all(len(c.attempts) == 1 for c in final.checkpoints)

    @pytest.mark.slow
    def test_repeated_kills_each_keep_what_they_paid_for(
        self, server: EchoServer, env_key: str, ws: Workspace, tmp_path: Path
    ) -> None:
        """A resume that is itself killed keeps its new call; the last resume sends one more."""
        clean = clean_run("conversation", "4", tmp_path=tmp_path)
        start = server.count

        assert run_flow("conversation", "4", env=child_env(LLMFLOW_KILL_AFTER="2")).returncode == (
            KILLED
        )
        exec_id = only_execution().exec_id
        assert server.count - start == 2
        killed_again = ws.resume(exec_id, child_env(LLMFLOW_KILL_AFTER="3"))
        assert killed_again.returncode == KILLED, killed_again.stderr
        assert asked(server.new_requests(start + 2)) == [question(3)]
        finished = ws.resume(exec_id, child_env())

        assert finished.returncode == 0, finished.stderr
        assert json.loads(finished.stdout)["result"] == clean
        assert asked(server.new_requests(start)) == [question(t) for t in range(1, 5)]

    @pytest.mark.slow
    def test_replayed_calls_return_the_recorded_text_not_a_new_answer(
        self, server: EchoServer, env_key: str, ws: Workspace
    ) -> None:
        """A provider that would now answer differently does not change a recorded reply."""
        assert run_flow("conversation", "3", env=child_env(LLMFLOW_KILL_AFTER="2")).returncode == (
            KILLED
        )
        exec_id = only_execution().exec_id
        server.reply_text("Changed")

        result = ws.resume(exec_id, child_env())

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["result"]["replies"] == [
            expected_reply(question(1)),
            expected_reply(question(2)),
            expected_reply(question(3), "Changed"),
        ]


def conversation_result(turns: int, text: str = REPLY) -> dict[str, Any]:
    """What ``tests/llm_flows/conversation.py`` returns when every call was answered."""
    return {
        "turns": turns,
        "replies": [expected_reply(question(t), text) for t in range(1, turns + 1)],
    }


# ======================================================================================
# 2. Calls inside a checkpoint: child events; the checkpoint is the replay boundary
# ======================================================================================


def child_calls(execution: Execution, identity: str) -> list[tuple[str, int]]:
    """``(name, attempt)`` of every model call made inside checkpoint ``identity``."""
    return [(c.name, c.attempt) for c in calls_of(execution)[identity].llm_calls]


class TestCallsInsideCheckpoints:
    @pytest.mark.slow
    def test_crashed_checkpoint_sends_both_calls_again_and_keeps_each_attempt(
        self, server: EchoServer, env_key: str, ws: Workspace, tmp_path: Path
    ) -> None:
        """A checkpoint killed after two calls makes both again; a completed one makes none."""
        clean = clean_run("research", "journals", tmp_path=tmp_path)
        start = server.count
        assert start == 4

        crashed = run_flow("research", "journals", env=child_env(LLMFLOW_KILL="inside:draft"))

        assert crashed.returncode == KILLED, crashed.stderr
        assert server.count - start == 4
        draft_prompts = asked(server.new_requests(start + 2))
        execution = only_execution()
        assert calls_of(execution)["outline"].status == "completed"
        assert calls_of(execution)["draft"].status not in ("completed", "failed")
        assert child_calls(execution, "outline") == [("llm_1", 1), ("llm_2", 1)]
        assert child_calls(execution, "draft") == [("llm_1", 1), ("llm_2", 1)]
        before_resume = server.count

        result = ws.resume(execution.exec_id, child_env())

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["result"] == clean
        # Only draft's two calls were sent again; outline's were replayed with it.
        assert asked(server.new_requests(before_resume)) == draft_prompts
        final = KitaruClient().executions.get(execution.exec_id)
        assert child_calls(final, "outline") == [("llm_1", 1), ("llm_2", 1)]
        assert child_calls(final, "draft") == [
            ("llm_1", 1),
            ("llm_2", 1),
            ("llm_1", 2),
            ("llm_2", 2),
        ]
        draft = calls_of(final)["draft"]
        assert [a.attempt for a in draft.attempts] == [1, 2]
        assert draft.attempts[-1].status == "completed"
        assert all(c.parent == "draft" for c in draft.llm_calls)
        text = ws.get(execution.exec_id, output="text")
        assert "llm llm_2 (attempt 1)" in text
        assert "llm llm_2 (attempt 2)" in text

    @pytest.mark.slow
    def test_a_checkpoint_with_model_calls_is_replayed_whole(
        self, server: EchoServer, env_key: str, ws: Workspace
    ) -> None:
        """A resume after a kill in a later checkpoint leaves an earlier one's calls alone."""
        assert run_flow("research", "x", env=child_env(LLMFLOW_KILL="inside:draft")).returncode == (
            KILLED
        )
        execution = only_execution()
        outline_prompts = asked(server.requests[:2])
        before = server.count

        assert ws.resume(execution.exec_id, child_env()).returncode == 0

        assert not set(asked(server.new_requests(before))) & set(outline_prompts)
        assert server.count - before == 2


# ======================================================================================
# 3. A provider failure in the flow body: recorded, explained, and retried
# ======================================================================================


class TestProviderFailures:
    @pytest.mark.slow
    @pytest.mark.parametrize(
        "case",
        [
            pytest.param((500, 1, "Retry later"), id="server-error"),
            pytest.param((401, 1, "OPENAI_API_KEY"), id="unauthorised"),
        ],
    )
    def test_failed_call_is_recorded_and_retry_calls_the_provider_again(
        self,
        server: EchoServer,
        env_key: str,
        ws: Workspace,
        tmp_path: Path,
        case: tuple[int, int, str],
    ) -> None:
        """A failed call fails the execution with advice; retry sends it and the later ones only."""
        status, sent, advice = case
        gate = tmp_path / "gate"
        gate.mkdir()
        env = child_env(LLMFLOW_GATE=str(gate), LLMFLOW_PAUSE_AFTER="2")
        with background(llm_flow("conversation", "4"), cwd=REPO, env=env) as proc:
            wait_for_file(gate / "ready", proc)
            assert server.count == 2
            # Providers echo keys back in their errors; kitaru must not pass them on.
            server.reply_status(status, f"Incorrect API key provided: {env_key}")
            (gate / "release").touch()
            out, err = proc.communicate(timeout=TIMEOUT)

        assert proc.returncode == 1, err
        exec_id = only_execution().exec_id
        assert server.count == 2 + sent
        assert f"HTTP {status}" in err
        assert advice in err
        assert f"kitaru executions retry {exec_id}" in err
        assert env_key not in out + err
        execution = KitaruClient().executions.get(exec_id)
        assert execution.status == "failed"
        assert execution.failure is not None
        assert execution.failure.call == "llm_3"
        failed = calls_of(execution)["llm_3"]
        assert (failed.kind, failed.status, failed.checkpoint_type) == ("llm", "failed", "llm_call")
        assert failed.failure is not None
        assert failed.failure.exception_type.endswith("ProviderError")
        assert env_key not in failed.failure.message + failed.failure.traceback
        assert [c.invocation_id for c in execution.checkpoints if c.status == "completed"] == [
            "llm_1",
            "llm_2",
        ]
        shown = ws.get(exec_id, output="text")
        assert f"kitaru executions retry {exec_id}" in shown
        assert env_key not in shown + json.dumps(ws.get(exec_id))

        server.reply_text(REPLY, input_tokens=12, output_tokens=7)
        before = server.count
        retried = ws.resume(exec_id, child_env(), verb="retry")

        assert retried.returncode == 0, retried.stderr
        data = json.loads(retried.stdout)
        assert data["status"] == "completed"
        assert data["result"] == conversation_result(4)
        assert asked(server.new_requests(before)) == [question(3), question(4)]
        final = calls_of(KitaruClient().executions.get(exec_id))
        assert [a.status for a in final["llm_3"].attempts] == ["failed", "completed"]
        # The failed request is on record too, with the (blanked) reason it failed.
        requests = final["llm_3"].llm_calls
        assert [(c.name, c.attempt, c.failure is None) for c in requests] == [
            ("llm_3", 1, False),
            ("llm_3", 2, True),
        ]
        assert requests[0].failure is not None
        assert f"HTTP {status}" in requests[0].failure.message
        assert env_key not in requests[0].failure.message
        assert [len(final[f"llm_{n}"].attempts) for n in (1, 2, 4)] == [1, 1, 1]

    def test_a_failure_the_flow_body_catches_is_still_recorded(
        self, server: EchoServer, env_key: str
    ) -> None:
        """A flow that catches a provider error completes; the call is recorded as failed."""
        server.reply_status(401, "bad key")
        handle = catching_flow.run()
        assert handle.wait(timeout=TIMEOUT) == "fallback"
        execution = KitaruClient().executions.get(handle.exec_id)
        assert execution.status == "completed"
        (call,) = execution.checkpoints
        assert (call.kind, call.status) == ("llm", "failed")
        (request,) = execution.llm_calls
        assert request.failure is not None
        assert "HTTP 401" in request.failure.message
        assert (request.input_tokens, request.response()) == (None, "")


@flow
def impatient_flow() -> str:
    return str(kitaru.llm("Write a long essay.", model=MODEL, timeout=0.3).load())


class TestEveryRequestIsRecorded:
    def test_a_timed_out_call_is_sent_once_and_recorded(
        self, server: EchoServer, env_key: str
    ) -> None:
        """A call that times out sends exactly one request; the journal and `get` show it."""
        server.delay_replies(1.0)
        handle = impatient_flow.run()
        with pytest.raises(kitaru.KitaruError, match="did not answer"):
            handle.wait(timeout=TIMEOUT)
        time.sleep(1.2)  # long enough for any resend to have arrived
        assert server.count == 1
        (request,) = KitaruClient().executions.get(handle.exec_id).llm_calls
        assert request.failure is not None
        assert "did not answer" in request.failure.message
        assert (request.provider_attempt, request.reached_provider) == (1, True)
        assert request.timeout == 0.3
        shown = CliRunner().invoke(cli_main, ["executions", "get", handle.exec_id])
        assert "failed after" in shown.output
        assert "(reached the provider)" in shown.output

    def test_refused_requests_are_sent_again_and_each_is_recorded(self, env_key: str) -> None:
        """A provider refusing connections (conftest's dead port) gets 3 tries, all on record."""
        handle = impatient_flow.run()
        with pytest.raises(kitaru.KitaruError, match="Could not connect"):
            handle.wait(timeout=TIMEOUT)
        requests = KitaruClient().executions.get(handle.exec_id).llm_calls
        assert [(r.provider_attempt, r.reached_provider) for r in requests] == [
            (1, False),
            (2, False),
            (3, False),
        ]
        assert all(r.failure is not None for r in requests)
        shown = CliRunner().invoke(cli_main, ["executions", "get", handle.exec_id])
        assert shown.output.count("(never sent)") == 3


@flow
def catching_flow() -> str:
    try:
        return str(kitaru.llm("Say something.", model=MODEL).load())
    except kitaru.KitaruError:
        return "fallback"


# ======================================================================================
# 4. The registry travels with the execution; credentials come from where it runs
# ======================================================================================


@dataclasses.dataclass
class AliasCrash:
    exec_id: str
    empty_config: Path
    sent: int


@pytest.fixture
def alias_crash(server: EchoServer, ws: Workspace, tmp_path: Path) -> AliasCrash:
    """Alias ``fast`` with a linked secret in config dir A; a run of it killed after 2 calls."""
    setup = child_env()
    for args in (
        ("secrets", "set", "openai-creds", f"--OPENAI_API_KEY={SECRET_KEY}"),
        ("model", "register", "fast", "--model", "openai/gpt-5-nano", "--secret", "openai-creds"),
    ):
        done = cli(*args, cwd=ws.elsewhere, env=setup)
        assert done.returncode == 0, done.stderr
    crashed = run_flow("conversation", "4", "fast", env=child_env(LLMFLOW_KILL_AFTER="2"))
    assert crashed.returncode == KILLED, crashed.stderr
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {SECRET_KEY}"] * 2
    assert [r.body["model"] for r in server.requests] == ["gpt-5-nano"] * 2
    empty = tmp_path / "config-b"
    empty.mkdir()
    return AliasCrash(only_execution().exec_id, empty, server.count)


def recorded_models(exec_id: str) -> list[tuple[str | None, str | None, str, str]]:
    """``(requested, alias, resolved, credential source)`` of every recorded call."""
    return [
        (c.requested_model, c.alias, c.resolved_model, c.credential_source)
        for c in KitaruClient().executions.get(exec_id).llm_calls
    ]


class TestRegistryTransport:
    @pytest.mark.slow
    def test_alias_resolves_from_the_snapshot_and_the_key_from_the_environment(
        self, server: EchoServer, ws: Workspace, alias_crash: AliasCrash
    ) -> None:
        """Resumed with an empty config dir, the alias still resolves; the env key is used."""
        env = child_env(KITARU_CONFIG_PATH=str(alias_crash.empty_config), OPENAI_API_KEY=ENV_KEY)

        result = ws.resume(alias_crash.exec_id, env)

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["result"] == conversation_result(4)
        live = server.new_requests(alias_crash.sent)
        assert asked(live) == [question(3), question(4)]
        assert [r.body["model"] for r in live] == ["gpt-5-nano"] * 2
        assert [r.headers["authorization"] for r in live] == [f"Bearer {ENV_KEY}"] * 2
        from_secret = ("fast", "fast", "openai/gpt-5-nano", "secret")
        from_env = ("fast", "fast", "openai/gpt-5-nano", "environment")
        assert recorded_models(alias_crash.exec_id) == [from_secret] * 2 + [from_env] * 2
        assert list(alias_crash.empty_config.iterdir()) == []

    @pytest.mark.slow
    def test_without_a_key_the_error_says_what_to_set_and_a_retry_with_it_completes(
        self, server: EchoServer, ws: Workspace, alias_crash: AliasCrash
    ) -> None:
        """With no key and no secret where it resumes, the error names the variable and secret."""
        env = child_env(KITARU_CONFIG_PATH=str(alias_crash.empty_config))

        result = ws.resume(alias_crash.exec_id, env)

        assert result.returncode == 1, result.stdout
        assert "Traceback" not in result.stderr
        for fragment in (
            "set OPENAI_API_KEY",
            "kitaru secrets set openai-creds --OPENAI_API_KEY=<key>",
            f"kitaru executions retry {alias_crash.exec_id}",
        ):
            assert fragment in result.stderr, (fragment, result.stderr)
        assert SECRET_KEY not in result.stdout + result.stderr
        assert server.count == alias_crash.sent
        failed = calls_of(KitaruClient().executions.get(alias_crash.exec_id))["llm_3"]
        assert failed.failure is not None
        assert failed.failure.exception_type == "kitaru.errors.KitaruUsageError"

        retried = ws.resume(alias_crash.exec_id, dict(env, OPENAI_API_KEY=ENV_KEY), verb="retry")

        assert retried.returncode == 0, retried.stderr
        assert asked(server.new_requests(alias_crash.sent)) == [question(3), question(4)]

    @pytest.mark.slow
    @pytest.mark.parametrize(
        "case",
        [
            pytest.param(
                ("fast", "/v1/messages", "claude-haiku-4-5", "anthropic/claude-haiku-4-5"),
                id="matching-alias-overrides",
            ),
            pytest.param(
                ("other", "/v1/chat/completions", "gpt-5-nano", "openai/gpt-5-nano"),
                id="other-alias-leaves-the-snapshot",
            ),
        ],
    )
    def test_registry_in_the_resuming_environment_overrides_matching_entries(
        self, server: EchoServer, ws: Workspace, alias_crash: AliasCrash, case: tuple[str, ...]
    ) -> None:
        """KITARU_MODEL_REGISTRY where the run resumes wins over the snapshot's same alias."""
        alias, path, model, resolved = case
        override = {"aliases": {alias: {"model": "anthropic/claude-haiku-4-5"}}}
        env = child_env(
            KITARU_CONFIG_PATH=str(alias_crash.empty_config),
            KITARU_MODEL_REGISTRY=json.dumps(override),
            OPENAI_API_KEY=ENV_KEY,
            ANTHROPIC_API_KEY=ENV_KEY,
        )

        result = ws.resume(alias_crash.exec_id, env)

        assert result.returncode == 0, result.stderr
        live = server.new_requests(alias_crash.sent)
        assert [(r.path, r.body["model"]) for r in live] == [(path, model)] * 2
        models = recorded_models(alias_crash.exec_id)
        assert [m[2] for m in models] == ["openai/gpt-5-nano"] * 2 + [resolved] * 2
        assert [m[1] for m in models] == ["fast"] * 4


# ======================================================================================
# 5. KITARU_LLM_MOCK_RESPONSE: no network, still fully recorded
# ======================================================================================


@checkpoint
def summarise(notes: str) -> str:
    return str(kitaru.llm(f"Summarise these notes: {notes}", model="fast", name="summary"))


@flow
def mocked_agent(topic: str) -> str:
    notes = kitaru.llm(f"Research {topic}", model="openai/gpt-4o", system="Be brief.")
    return summarise(notes)  # type: ignore[return-value]


class TestMockResponse:
    def test_mocked_calls_send_nothing_and_are_fully_recorded(
        self, server: EchoServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Mocked calls need no key or network and are recorded like real ones."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "three word answer")
        monkeypatch.setenv(
            "KITARU_MODEL_REGISTRY",
            json.dumps({"aliases": {"fast": {"model": "anthropic/claude-haiku-4-5"}}}),
        )

        handle = mocked_agent.run("journals")

        assert handle.wait(timeout=TIMEOUT) == "three word answer"
        assert server.count == 0
        body, child = KitaruClient().executions.get(handle.exec_id).llm_calls
        assert (body.name, body.parent, child.name, child.parent) == (
            "llm_1",
            None,
            "summary",
            "summarise",
        )
        assert (body.requested_model, body.alias, body.resolved_model) == (
            "openai/gpt-4o",
            None,
            "openai/gpt-4o",
        )
        assert (child.requested_model, child.alias, child.resolved_model) == (
            "fast",
            "fast",
            "anthropic/claude-haiku-4-5",
        )
        assert {body.credential_source, child.credential_source} == {"mock"}
        # The mock counts words: "Be brief." + "Research journals" in, three words out.
        assert (body.input_tokens, body.output_tokens, body.total_tokens) == (4, 3, 7)
        assert body.prompt() == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Research journals"},
        ]
        assert child.prompt() == [
            {"role": "user", "content": "Summarise these notes: three word answer"}
        ]
        assert body.response() == child.response() == "three word answer"
        assert body.latency_ms >= 0
        assert child.latency_ms >= 0


# ======================================================================================
# 6. What is recorded, and what the provider receives
# ======================================================================================


@checkpoint(type="llm_call")
def critique(draft: str) -> str:
    return str(
        kitaru.llm(
            [
                {"role": "user", "content": "Write a haiku about journals."},
                {"role": "assistant", "content": draft},
                {"role": "user", "content": "Critique it in one line."},
            ],
            model="smart",
            max_tokens=300,
            name="critic",
        )
    )


@flow
def recorded_agent() -> str:
    draft = kitaru.llm(
        "Write a haiku about journals.",
        model=MODEL,
        system="You are a poet.",
        temperature=0.7,
        max_tokens=60,
    )
    return critique(draft)  # type: ignore[return-value]


@flow
def options_flow(model: str) -> str:
    plain = kitaru.llm("Plain question.", model=model).load()
    history = [
        {"role": "user", "content": "First question."},
        {"role": "assistant", "content": plain},
        {"role": "user", "content": "Follow-up question."},
    ]
    return str(kitaru.llm(history, model=model, system="Sys.", temperature=0.25, max_tokens=42))


class TestWhatIsRecorded:
    def test_cli_json_client_and_text_show_every_call(
        self, server: EchoServer, env_key: str, ws: Workspace, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """get -o json, the client and the text view all show each call's model, usage and text."""
        monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
        kitaru_register("smart", "anthropic/claude-sonnet-4")
        handle = recorded_agent.run()
        handle.wait(timeout=TIMEOUT)
        draft = expected_reply("Write a haiku about journals.")
        first = {
            "name": "llm_1",
            "parent": None,
            "requested_model": MODEL,
            "alias": None,
            "resolved_model": MODEL,
            "credential_source": "environment",
            "input_tokens": 12,
            "output_tokens": 7,
            "total_tokens": 19,
            "attempt": 1,
            "message_count": 2,
            "prompt": [
                {"role": "system", "content": "You are a poet."},
                {"role": "user", "content": "Write a haiku about journals."},
            ],
            "response": draft,
        }
        second = {
            "name": "critic",
            "parent": "critique",
            "requested_model": "smart",
            "alias": "smart",
            "resolved_model": "anthropic/claude-sonnet-4",
            "credential_source": "environment",
            "input_tokens": 12,
            "output_tokens": 7,
            "total_tokens": 19,
            "attempt": 1,
            "message_count": 3,
            "prompt": [
                {"role": "user", "content": "Write a haiku about journals."},
                {"role": "assistant", "content": draft},
                {"role": "user", "content": "Critique it in one line."},
            ],
            "response": expected_reply("Critique it in one line."),
        }

        data = ws.get(handle.exec_id)

        for shown, expected in zip(data["llm_calls"], (first, second), strict=True):
            assert shown["latency_ms"] > 0
            assert {k: shown[k] for k in expected} == expected
        assert [c["llm_calls"] for c in data["checkpoints"]] == [
            [data["llm_calls"][0]],
            [data["llm_calls"][1]],
        ]
        assert [(c["invocation_id"], c["kind"]) for c in data["checkpoints"]] == [
            ("llm_1", "llm"),
            ("critique", "checkpoint"),
        ]
        client_calls = KitaruClient().executions.get(handle.exec_id).llm_calls
        for call, expected in zip(client_calls, (first, second), strict=True):
            fields = {k: getattr(call, k) for k in expected if k not in ("prompt", "response")}
            assert fields == {k: v for k, v in expected.items() if k not in ("prompt", "response")}
            assert call.prompt() == expected["prompt"]
            assert call.response() == expected["response"]
            assert call.latency_ms > 0
        text = ws.get(handle.exec_id, output="text")
        for fragment in (
            f"llm llm_1 (attempt 1): {MODEL} -> {MODEL}, key from environment",
            "llm critic (attempt 1): smart via alias smart -> anthropic/claude-sonnet-4, "
            "key from environment",
            "12 in / 7 out / 19 total tokens",
            "prompt   (2 messages) user: Write a haiku about journals.",
            "prompt   (3 messages) user: Critique it in one line.",
            f"response {draft}",
        ):
            assert fragment in text, (fragment, text)
        assert " ms" in text

    def test_openai_receives_the_options_as_its_sdk_sends_them(
        self, server: EchoServer, env_key: str
    ) -> None:
        """system=, temperature=, max_tokens= and message lists arrive in OpenAI's request shape."""
        options_flow.run(MODEL).wait(timeout=TIMEOUT)

        plain, full = server.requests
        assert (plain.path, full.path) == ("/v1/chat/completions", "/v1/chat/completions")
        assert plain.headers["authorization"] == f"Bearer {ENV_KEY}"
        assert plain.body == {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Plain question."}],
        }
        assert full.body == {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Sys."},
                {"role": "user", "content": "First question."},
                {"role": "assistant", "content": expected_reply("Plain question.")},
                {"role": "user", "content": "Follow-up question."},
            ],
            "temperature": 0.25,
            "max_completion_tokens": 42,
        }

    def test_anthropic_receives_the_options_as_its_sdk_sends_them(
        self, server: EchoServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """system= becomes Anthropic's system field; max_tokens defaults to 4096 when left out."""
        monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
        options_flow.run("anthropic/claude-sonnet-4").wait(timeout=TIMEOUT)

        plain, full = server.requests
        assert (plain.path, full.path) == ("/v1/messages", "/v1/messages")
        assert ENV_KEY in (plain.headers.get("x-api-key") or plain.headers["authorization"])
        assert plain.body == {
            "model": "claude-sonnet-4",
            "messages": [{"role": "user", "content": "Plain question."}],
            "max_tokens": 4096,
        }
        assert full.body == {
            "model": "claude-sonnet-4",
            "system": "Sys.",
            "messages": [
                {"role": "user", "content": "First question."},
                {"role": "assistant", "content": expected_reply("Plain question.")},
                {"role": "user", "content": "Follow-up question."},
            ],
            "temperature": 0.25,
            "max_tokens": 42,
        }


def kitaru_register(alias: str, model: str, secret: str | None = None) -> None:
    """Register an alias in this test's config dir, as ``kitaru model register`` does."""
    register_model(alias, model, secret=secret)


# ======================================================================================
# 7. Storage: a growing conversation stores each message once
# ======================================================================================


_WORDS = [
    "journal",
    "replay",
    "durable",
    "checkpoint",
    "agent",
    "model",
    "prompt",
    "response",
    "crash",
    "resume",
    "token",
    "sqlite",
    "event",
    "payload",
    "hash",
    "message",
    "conversation",
    "context",
    "latency",
    "provider",
]


def long_message(turn: int) -> str:
    """A user message of 0.5 to 2 KB, different for every turn."""
    size = 500 + (turn * 617) % 1500
    words: list[str] = [f"Turn {turn}:"]
    index = turn
    while sum(len(w) + 1 for w in words) < size:
        index = (index * 31 + 7) % 9973
        words.append(_WORDS[index % len(_WORDS)])
    return " ".join(words)


@flow
def long_chat(turns: int) -> int:
    history: list[dict[str, str]] = []
    for turn in range(turns):
        history.append({"role": "user", "content": long_message(turn)})
        reply = kitaru.llm(history, model=MODEL, system="Answer briefly.").load()
        history.append({"role": "assistant", "content": reply})
    return len(history)


@flow
def same_prompt_twice() -> list[int]:
    prompt = "Tell me about journals. " * 20
    counts = []
    for _ in range(2):
        kitaru.llm(prompt, model=MODEL).load()
        counts.append(len(payload_rows()))
    return counts


def message_store(heads: list[str], rows: dict[str, bytes]) -> tuple[set[str], set[str]]:
    """The node and content rows that the prompts with these head hashes are made of."""
    nodes: set[str] = set()
    contents: set[str] = set()
    for head in heads:
        node: str | None = head
        while node is not None and node not in nodes:
            nodes.add(node)
            parent, _role, content = msgspec.msgpack.decode(rows[node])
            contents.add(content)
            node = parent
    return nodes, contents


class TestStorage:
    def test_growing_conversation_stores_each_message_once(
        self, server: EchoServer, env_key: str
    ) -> None:
        """100 calls resending a growing chat store each message once: at most 1.2x its bytes."""
        turns = 100
        handle = long_chat.run(turns)
        assert handle.wait(timeout=TIMEOUT) == 2 * turns
        assert server.count == turns
        recorded = [e for t, e in journal_events(handle.exec_id) if t == "llm_call"]
        assert len(recorded) == turns
        sent = [m["content"] for r in server.requests for m in r.body["messages"]]
        unique = {*sent, expected_reply(long_message(turns - 1))}  # the last reply is not sent
        assert len(unique) == 1 + 2 * turns  # the system message, the questions, the replies
        unique_bytes = sum(len(text.encode()) for text in unique)
        assert 500 * turns < unique_bytes
        rows = payload_rows()

        nodes, contents = message_store([e.prompt for e in recorded], rows)
        contents |= {e.response.hash for e in recorded if e.response.hash is not None}

        assert len(contents) == len(unique)
        assert len(nodes) == 2 * turns  # one per message of the last prompt: prefixes are shared
        stored = sum(len(rows[h]) for h in nodes | contents)
        assert stored <= 1.2 * unique_bytes, (stored, unique_bytes)
        # Responses, call outputs and flow inputs add nothing: they share those payloads.
        total = sum(len(data) for data in rows.values())
        assert total <= 1.2 * unique_bytes, (total, unique_bytes)
        whole = sum(len(json.dumps(r.body["messages"])) for r in server.requests)
        assert whole > 40 * total  # what storing every prompt whole would have cost

    def test_the_same_prompt_sent_twice_adds_no_payload_rows(
        self, server: EchoServer, env_key: str
    ) -> None:
        """A second identical call, and a second identical execution, store no new payloads."""
        first = same_prompt_twice.run().wait(timeout=TIMEOUT)
        assert first[0] == first[1] > 0
        again = same_prompt_twice.run().wait(timeout=TIMEOUT)
        assert again == [first[1], first[1]]
        assert server.count == 4


# ======================================================================================
# 8. Secrets never reach the journal, outputs, logs or errors
# ======================================================================================


@flow
def secret_flow() -> str:
    return str(kitaru.llm("Hello there.", model="fast").load())


class TestSecrets:
    @pytest.mark.slow
    def test_secret_value_appears_nowhere_but_the_secrets_file(
        self,
        server: EchoServer,
        ws: Workspace,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Journal bytes, CLI outputs, logs and errors of a secret-backed run never hold the key."""
        caplog.set_level(logging.DEBUG, logger="kitaru")
        seen: list[tuple[str, str]] = []
        files: list[dict[str, bytes]] = []

        def run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
            result = cli(*args, cwd=ws.elsewhere, env=env or child_env())
            seen.append((f"kitaru {' '.join(args)}", result.stdout + result.stderr))
            files.append(journal_file_bytes(tmp_path))
            return result

        for output in ("text", "json"):
            run_cli("secrets", "set", "creds", f"--OPENAI_API_KEY={SECRET_KEY}", "-o", output)
            run_cli(
                "model", "register", "fast", "--model", MODEL, "--secret", "creds", "-o", output
            )
            run_cli("model", "list", "-o", output)
            run_cli("secrets", "show", "creds", "-o", output)

        # A run whose second call is refused by a provider that echoes the key back.
        gate = tmp_path / "gate"
        gate.mkdir()
        env = child_env(LLMFLOW_LOG="1", LLMFLOW_GATE=str(gate), LLMFLOW_PAUSE_AFTER="1")
        with background(llm_flow("conversation", "3", "fast"), cwd=REPO, env=env) as proc:
            wait_for_file(gate / "ready", proc)
            files.append(journal_file_bytes(tmp_path))
            server.reply_status(401, f"Incorrect API key provided: {SECRET_KEY}")
            (gate / "release").touch()
            out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 1, err
        assert "llm call completed" in err  # the flow process really logged
        seen.append(("failing run", out + err))
        files.append(journal_file_bytes(tmp_path))
        exec_id = only_execution().exec_id
        for verb in ("get", "list"):
            for output in ("text", "json"):
                run_cli("executions", verb, *([exec_id] if verb == "get" else []), "-o", output)
        server.reply_status(500, f"server fault for {SECRET_KEY}")
        failed_again = run_cli("executions", "retry", exec_id)
        assert failed_again.returncode == 1
        assert "HTTP 500" in failed_again.stderr
        server.reply_text(REPLY)
        assert run_cli("executions", "retry", exec_id, "-o", "json").returncode == 0
        run_cli("executions", "get", exec_id)

        # The same in this process: an error raised to the caller, and the client's view.
        server.reply_status(401, f"Incorrect API key provided: {SECRET_KEY}")
        handle = secret_flow.run()
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=TIMEOUT)
        error = caught.value
        seen.append(("error", f"{error} {error!r} {error.args!r} {vars(error)!r}"))
        seen.append(("cause", f"{error.__cause__} {error.__cause__!r}"))
        for execution in KitaruClient().executions.list():
            seen.append((f"client {execution.exec_id}", repr(execution)))
            seen.append((f"to_dict {execution.exec_id}", json.dumps(execution.to_dict())))
        seen.extend((f"log {r.name}", r.getMessage() + repr(r.__dict__)) for r in caplog.records)
        files.append(journal_file_bytes(tmp_path))

        leaks = [where for where, text in seen if SECRET_KEY in text]
        secrets_file = "kitaru-config/secrets.json"
        leaks += [
            f"file {name}"
            for snapshot in files
            for name, data in snapshot.items()
            if name != secrets_file and SECRET_KEY.encode() in data
        ]
        assert leaks == []
        # The scenario did use the key and did read the journal's files, WAL included.
        assert SECRET_KEY.encode() in files[-1][secrets_file]
        assert any(
            r.headers.get("authorization") == f"Bearer {SECRET_KEY}" for r in server.requests
        )
        assert any(name.endswith("kitaru.db-wal") for snapshot in files for name in snapshot)
        assert sum(1 for where, _ in seen if where.startswith("log ")) > 0


# ======================================================================================
# 9. Context, bad input and call names
# ======================================================================================


_caught: list[str] = []


@flow
def bad_input_flow(kwargs: dict[str, Any]) -> str:
    try:
        kitaru.llm(**kwargs)
    except KitaruUsageError as exc:
        _caught.append(str(exc))
    return str(kitaru.llm("A good call.", model=MODEL).load())


@checkpoint
def bad_input_step(kwargs: dict[str, Any]) -> str:
    try:
        kitaru.llm(**kwargs)
    except KitaruUsageError as exc:
        _caught.append(str(exc))
    return str(kitaru.llm("A good call.", model=MODEL))


@flow
def bad_input_in_checkpoint(kwargs: dict[str, Any]) -> str:
    return bad_input_step(kwargs)  # type: ignore[return-value]


BAD_INPUT = [
    pytest.param({"prompt": ""}, "The prompt is empty", id="empty-prompt"),
    pytest.param({"prompt": []}, "empty message list", id="empty-list"),
    pytest.param({"prompt": [{"role": "user"}]}, "has no 'content' key", id="message-no-content"),
    pytest.param({"prompt": [{"content": "x"}]}, "has no 'role' key", id="message-no-role"),
    pytest.param({"prompt": 42}, "must be a string or a list", id="prompt-not-text"),
    pytest.param({"prompt": "Hi", "system": ""}, "system= is empty", id="empty-system"),
    pytest.param({"prompt": "Hi", "model": "nope/x"}, "unknown provider 'nope'", id="provider"),
    pytest.param({"prompt": "Hi", "model": "/gpt"}, "unknown provider ''", id="no-provider"),
    pytest.param({"prompt": "Hi", "model": "openai/"}, "has no model name", id="no-model-name"),
    pytest.param({"prompt": "Hi", "model": ""}, "model= must be", id="empty-model"),
    pytest.param({"prompt": "Hi", "temperature": -1}, "temperature=", id="temperature"),
    pytest.param({"prompt": "Hi", "max_tokens": 0}, "max_tokens=", id="max-tokens"),
    pytest.param({"prompt": "Hi", "name": ""}, "name= must be", id="empty-name"),
]


@checkpoint(retries=1)
def two_calls_then_fail_once() -> str:
    first = kitaru.llm("Step one.", model=MODEL)
    kitaru.llm("Step two.", model=MODEL)
    _caught.append("attempt")
    if _caught.count("attempt") == 1:
        raise RuntimeError("first attempt fails")
    return str(first)


@flow
def named_calls() -> list[str]:
    kitaru.llm("a", model=MODEL)
    for item in range(3):
        kitaru.llm(f"loop {item}", model=MODEL, name="step")
    kitaru.llm("b", model=MODEL)
    two_calls_then_fail_once()
    kitaru.llm("c", model=MODEL, name="llm_1")
    return [str(kitaru.llm("d", model=MODEL).load())]


@checkpoint
def named_children() -> str:
    kitaru.llm("Ask once.", model=MODEL, name="ask")
    kitaru.llm("Ask again.", model=MODEL, name="ask")
    kitaru.llm("Unnamed.", model=MODEL)
    kitaru.llm("Clash.", model=MODEL, name="llm_1")
    return "done"


@flow
def checkpoint_names() -> str:
    kitaru.llm("Body call.", model=MODEL, name="ask")
    return named_children()  # type: ignore[return-value]


_passes: list[int] = []


@flow(retries=1)
def retried_body() -> list[str]:
    first = kitaru.llm("One.", model=MODEL).load()
    second = kitaru.llm("Two.", model=MODEL).load()
    _passes.append(1)
    if len(_passes) == 1:
        raise RuntimeError("the first pass fails after two calls")
    return [first, second, kitaru.llm("Three.", model=MODEL).load()]


@pytest.fixture(autouse=True)
def _fresh_lists() -> None:
    _caught.clear()
    _passes.clear()


class TestContextInputAndNames:
    def test_outside_a_flow_raises_a_context_error(self, server: EchoServer) -> None:
        """kitaru.llm() outside a flow raises KitaruContextError and sends nothing."""
        with pytest.raises(KitaruContextError, match="inside a @flow"):
            kitaru.llm("Hello", model=MODEL)
        assert isinstance(KitaruContextError("x"), RuntimeError)
        assert server.count == 0

    @pytest.mark.parametrize(("kwargs", "message"), BAD_INPUT)
    def test_bad_input_in_the_flow_body_is_refused_before_it_is_journaled(
        self, server: EchoServer, env_key: str, kwargs: dict[str, Any], message: str
    ) -> None:
        """Bad input raises KitaruUsageError and leaves no trace: the next call is llm_1."""
        kwargs = {"model": MODEL, **kwargs}
        handle = bad_input_flow.run(kwargs)
        handle.wait(timeout=TIMEOUT)
        assert len(_caught) == 1
        assert message in _caught[0]
        assert server.count == 1
        types = [t for t, _ in journal_events(handle.exec_id)]
        assert types == [
            "execution_started",
            "call_started",
            "llm_call",
            "call_completed",
            "execution_completed",
        ]
        (call,) = KitaruClient().executions.get(handle.exec_id).checkpoints
        assert (call.invocation_id, call.position) == ("llm_1", 0)

    @pytest.mark.parametrize(("kwargs", "message"), BAD_INPUT)
    def test_bad_input_in_a_checkpoint_is_refused_before_it_is_recorded(
        self, server: EchoServer, env_key: str, kwargs: dict[str, Any], message: str
    ) -> None:
        """Inside a checkpoint bad input raises too; only the good call is recorded, as llm_1."""
        handle = bad_input_in_checkpoint.run({"model": MODEL, **kwargs})
        handle.wait(timeout=TIMEOUT)
        assert len(_caught) == 1
        assert message in _caught[0]
        assert server.count == 1
        (recorded,) = KitaruClient().executions.get(handle.exec_id).llm_calls
        assert (recorded.name, recorded.parent) == ("llm_1", "bad_input_step")

    def test_names_and_default_names(self, server: EchoServer, env_key: str) -> None:
        """name= gives the identity (repeats get _2, _3); defaults count per body and attempt."""
        handle = named_calls.run()
        handle.wait(timeout=TIMEOUT)
        execution = KitaruClient().executions.get(handle.exec_id)
        assert [(c.invocation_id, c.name, c.kind) for c in execution.checkpoints] == [
            ("llm_1", "llm_1", "llm"),
            ("step", "step", "llm"),
            ("step_2", "step", "llm"),
            ("step_3", "step", "llm"),
            ("llm_2", "llm_2", "llm"),
            ("two_calls_then_fail_once", "two_calls_then_fail_once", "checkpoint"),
            ("llm_1_2", "llm_1", "llm"),
            ("llm_3", "llm_3", "llm"),
        ]
        assert child_calls(execution, "two_calls_then_fail_once") == [
            ("llm_1", 1),
            ("llm_2", 1),
            ("llm_1", 2),
            ("llm_2", 2),
        ]
        assert server.count == 1 + 3 + 1 + 4 + 1 + 1

    def test_names_inside_a_checkpoint_follow_the_flow_body_rules(
        self, server: EchoServer, env_key: str
    ) -> None:
        """In a checkpoint a repeated name gets _2 and named calls take no llm_N number."""
        handle = checkpoint_names.run()
        handle.wait(timeout=TIMEOUT)
        execution = KitaruClient().executions.get(handle.exec_id)
        assert child_calls(execution, "named_children") == [
            ("ask", 1),
            ("ask_2", 1),
            ("llm_1", 1),
            ("llm_1_2", 1),
        ]
        assert [(c.name, c.parent) for c in calls_of(execution)["ask"].llm_calls] == [("ask", None)]

    def test_a_retried_flow_body_replays_its_calls_from_llm_1(
        self, server: EchoServer, env_key: str
    ) -> None:
        """@flow(retries=1) runs the body again: its completed calls are not sent twice."""
        handle = retried_body.run()
        assert handle.wait(timeout=TIMEOUT) == [
            expected_reply(q) for q in ("One.", "Two.", "Three.")
        ]
        assert len(_passes) == 2
        assert asked(server.requests) == ["One.", "Two.", "Three."]
        names = [c.name for c in KitaruClient().executions.get(handle.exec_id).llm_calls]
        assert names == ["llm_1", "llm_2", "llm_3"]


# ======================================================================================
# The example: examples/llm_agent.py, offline and against a provider
# ======================================================================================


class TestLlmAgentExample:
    def run_example(self, tmp_path: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "examples" / "llm_agent.py")],
            cwd=tmp_path,
            env=child_env(**env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    @pytest.mark.slow
    def test_without_a_model_or_key_it_runs_offline_and_says_so(
        self, server: EchoServer, tmp_path: Path
    ) -> None:
        """With nothing configured the example mocks every call, says so, and sends nothing."""
        result = self.run_example(tmp_path)

        assert result.returncode == 0, result.stderr
        assert "Running offline: no model is configured" in result.stdout
        assert result.stdout.count("key from mock") == 3
        assert server.count == 0
        (execution,) = KitaruClient().executions.list()
        assert [(c.name, c.parent) for c in execution.llm_calls] == [
            ("draft", None),
            ("critique", "review"),
            ("rewrite", "review"),
        ]

    @pytest.mark.slow
    def test_with_a_model_and_key_it_calls_the_provider(
        self, server: EchoServer, env_key: str, tmp_path: Path
    ) -> None:
        """KITARU_DEFAULT_MODEL and a key send its three calls and print what they recorded."""
        result = self.run_example(tmp_path, KITARU_DEFAULT_MODEL=MODEL)

        assert result.returncode == 0, result.stderr
        assert "offline" not in result.stdout
        assert server.count == 3
        assert result.stdout.count("12 in / 7 out / 19 tokens") == 3
        assert result.stdout.count("key from environment") == 3
        topic = "why an AI agent should keep a journal of its steps"
        draft = expected_reply(f"Write one short paragraph about {topic}.")
        assert f"Draft:\n  {draft}\n" in result.stdout


@kitaru.flow
def _late_alias_flow() -> str:
    kitaru.wait(timeout=0)
    return kitaru.llm("hi", model="fast").load()


class TestEmptyRegistrySnapshot:
    def test_aliases_registered_after_start_resolve_on_resume(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An alias the snapshot lacks, registered while the run waited, resolves on resume."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "hello")
        handle = _late_alias_flow.run()
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=30)
        register_model("fast", "openai/gpt-4o-mini")
        client = KitaruClient()
        client.executions.input(handle.exec_id, value=None)
        assert client.executions.resume(handle.exec_id).wait(timeout=30) == "hello"
        (call,) = client.executions.get(handle.exec_id).llm_calls
        assert (call.alias, call.resolved_model) == ("fast", "openai/gpt-4o-mini")

    def test_aliases_the_snapshot_holds_keep_their_snapshot_model(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Re-registering an alias the snapshot holds does not change what a resume calls."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "hello")
        register_model("fast", "openai/gpt-4o-mini")
        handle = _late_alias_flow.run()
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=30)
        register_model("fast", "anthropic/claude-haiku-4-5")
        client = KitaruClient()
        client.executions.input(handle.exec_id, value=None)
        assert client.executions.resume(handle.exec_id).wait(timeout=30) == "hello"
        (call,) = client.executions.get(handle.exec_id).llm_calls
        assert call.resolved_model == "openai/gpt-4o-mini"

    def test_the_runtime_environment_registry_still_applies(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """KITARU_MODEL_REGISTRY in the resuming environment adds aliases to the snapshot."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "hello")
        handle = _late_alias_flow.run()
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=30)
        monkeypatch.setenv(
            "KITARU_MODEL_REGISTRY", '{"aliases": {"fast": {"model": "openai/gpt-4o-mini"}}}'
        )
        client = KitaruClient()
        client.executions.input(handle.exec_id, value=None)
        assert client.executions.resume(handle.exec_id).wait(timeout=30) == "hello"


class TestRegisterMissingAliasThenRetry:
    @pytest.mark.slow
    def test_the_error_says_register_and_retry_and_that_works(
        self, server: EchoServer, env_key: str, ws: Workspace
    ) -> None:
        """A flow failing on an unknown alias completes after `model register` and `retry`."""
        # This checkout's kitaru in every process, the `kitaru` command included.
        env = child_env(PYTHONPATH=str(REPO))

        failed = run_flow("conversation", "2", "later", env=env)

        assert failed.returncode == 1, failed.stderr
        exec_id = only_execution().exec_id
        assert server.count == 0
        for fragment in (
            "'later' is neither a registered alias",
            "kitaru model register later --model PROVIDER/MODEL",
            f"then `kitaru executions retry {exec_id}`",
        ):
            assert fragment in failed.stderr, (fragment, failed.stderr)

        registered = cli(
            "model", "register", "later", "--model", "openai/gpt-5-nano", cwd=ws.elsewhere, env=env
        )
        assert registered.returncode == 0, registered.stderr
        retried = ws.resume(exec_id, env, verb="retry")

        assert retried.returncode == 0, retried.stderr
        assert json.loads(retried.stdout)["status"] == "completed"
        assert [r.body["model"] for r in server.requests] == ["gpt-5-nano"] * 2
        assert [m[1:3] for m in recorded_models(exec_id)] == [("later", "openai/gpt-5-nano")] * 2

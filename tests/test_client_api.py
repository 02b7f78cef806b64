"""``kitaru.client`` as Kitaru's documentation uses it: models, statuses and methods.

Each test drives real flows in this process against the test's own journal, then reads
them back through ``KitaruClient`` exactly as the execution-management, replay,
artifacts and logs guides (and Kitaru's example scripts) do.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections import Counter
from typing import Any

import pytest
from helpers import TIMEOUT, store_file

import kitaru
import kitaru.runtime
from kitaru import (
    FailureOrigin,
    KitaruDivergenceError,
    KitaruError,
    KitaruExecutionError,
    KitaruFeatureNotAvailableError,
    KitaruLogRetrievalError,
    KitaruStateError,
    KitaruUsageError,
    KitaruUserCodeError,
    checkpoint,
    flow,
)
from kitaru.client import (
    ArtifactRef,
    Execution,
    ExecutionStatus,
    FailureInfo,
    KitaruClient,
    LogEntry,
)
from kitaru.runtime import _get_current_execution_id

pytestmark = pytest.mark.usefixtures("cancel_leftover_executions")

_runs: Counter[str] = Counter()
_fail: set[str] = set()
_seen_ids: list[tuple[str, str | None]] = []


# -- flows -----------------------------------------------------------------------------


@checkpoint
def research(topic: str) -> str:
    _runs["research"] += 1
    print(f"researching {topic}")
    kitaru.save("research_context", {"topic": topic}, type="context", tags=["notes"])
    return f"notes about {topic}"


@checkpoint
def write_draft(notes: str) -> str:
    _runs["write_draft"] += 1
    if "write_draft" in _fail:
        raise ValueError("the draft could not be written")
    return f"Draft from {notes}"


@checkpoint
def publish(draft: str) -> str:
    return f"PUBLISHED: {draft}"


@flow
def content_pipeline(topic: str) -> str:
    notes = research(topic)
    draft = write_draft(notes)
    return publish(draft)  # type: ignore[return-value]


_drift = [""]


@flow
def drifting(topic: str) -> str:
    notes = research(topic + _drift[0])
    return write_draft(notes)  # type: ignore[return-value]


@flow
def approval(topic: str) -> str:
    draft = research(topic)
    approved = kitaru.wait(name="approve_deploy", schema=bool, question="Ship it?", timeout=0)
    return f"{draft}: {'shipped' if approved else 'held'}"


@flow
def plain_gate() -> str:
    kitaru.wait(name="gate", timeout=0)
    return "through"


@checkpoint
def where_am_i() -> str | None:
    _seen_ids.append(("checkpoint", kitaru.current_execution_id()))
    return _get_current_execution_id()


@flow
def identifies() -> str | None:
    _seen_ids.append(("flow", kitaru.runtime._get_current_execution_id()))
    return where_am_i()  # type: ignore[return-value]


@checkpoint
def unstorable() -> Any:
    return lambda: None


@flow
def returns_unstorable() -> Any:
    return unstorable()


@flow
def tokens() -> str:
    return kitaru.llm("Say hi", model="openai/gpt-4o-mini", name="greet")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _reset() -> None:
    _runs.clear()
    _fail.clear()
    _seen_ids.clear()
    _drift[0] = ""


def finished(handle: Any) -> str:
    handle.wait(timeout=TIMEOUT)
    return str(handle.exec_id)


def parked(topic: str = "deploys") -> str:
    handle = approval.run(topic)
    with pytest.raises(KitaruStateError, match="waiting for input"):
        handle.wait(timeout=TIMEOUT)
    return str(handle.exec_id)


def failed_run() -> str:
    _fail.add("write_draft")
    handle = content_pipeline.run("kitaru")
    with pytest.raises(KitaruUserCodeError):
        handle.wait(timeout=TIMEOUT)
    return str(handle.exec_id)


# -- ExecutionStatus ------------------------------------------------------------------


class TestExecutionStatus:
    def test_status_is_an_enum_that_still_equals_its_text(self) -> None:
        """``execution.status`` is an ``ExecutionStatus`` with ``.value`` and compares as text."""
        exec_id = finished(content_pipeline.run("kitaru"))
        execution = kitaru.KitaruClient().executions.get(exec_id)
        assert isinstance(execution.status, ExecutionStatus)
        assert execution.status == "completed"
        assert execution.status == ExecutionStatus.COMPLETED
        assert execution.status.value == "completed"
        assert f"{execution.status}" == "completed"
        assert execution.status in {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED}

    def test_finished_and_successful(self) -> None:
        """``is_finished`` holds for the three final statuses; ``is_successful`` for completed."""
        finished_ones = {s for s in ExecutionStatus if s.is_finished}
        assert finished_ones == {"completed", "failed", "cancelled"}
        assert [s for s in ExecutionStatus if s.is_successful] == [ExecutionStatus.COMPLETED]

    def test_flow_handle_status_can_be_polled_until_finished(self) -> None:
        """``while not handle.status.is_finished`` ends, and the status then is successful."""
        handle = content_pipeline.run("kitaru")
        deadline = time.monotonic() + TIMEOUT
        while not handle.status.is_finished:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert isinstance(handle.status, ExecutionStatus)
        assert handle.status.is_successful

    def test_calls_and_attempts_carry_statuses_too(self) -> None:
        """Checkpoint calls and their attempts report ``ExecutionStatus`` values."""
        execution = KitaruClient().executions.get(failed_run())
        assert execution.status == ExecutionStatus.FAILED
        draft = next(cp for cp in execution.checkpoints if cp.name == "write_draft")
        assert draft.status is ExecutionStatus.FAILED
        assert [a.status for a in draft.attempts] == [ExecutionStatus.FAILED]

    def test_listing_by_status_accepts_the_enum_and_refuses_unknown_text(self) -> None:
        """``list(status=...)`` takes an ``ExecutionStatus`` or its text; other text is refused."""
        exec_id = finished(content_pipeline.run("kitaru"))
        client = KitaruClient()
        assert [e.exec_id for e in client.executions.list(status=ExecutionStatus.COMPLETED)] == [
            exec_id
        ]
        with pytest.raises(KitaruUsageError, match="not an execution status"):
            client.executions.list(status="done")


# -- Execution ------------------------------------------------------------------------


class TestExecutionDetails:
    def test_the_documented_inspection_block(self) -> None:
        """The guide's first block reads id, flow name, status, pending wait and failure."""
        exec_id = parked()
        client = kitaru.KitaruClient()
        execution = client.executions.get(exec_id)
        assert execution.exec_id == exec_id
        assert execution.flow_name == "approval"
        assert execution.status == "waiting"
        assert execution.pending_wait is not None
        assert (execution.pending_wait.name, execution.pending_wait.question) == (
            "approve_deploy",
            "Ship it?",
        )
        assert execution.failure is None

    def test_flow_id_stack_spec_and_reason(self) -> None:
        """An execution names its flow function, its stack and the run settings it froze."""
        exec_id = finished(content_pipeline.run("kitaru"))
        execution = KitaruClient().executions.get(exec_id)
        assert execution.flow_id == f"{__name__}:content_pipeline"
        assert execution.stack_name == "local"
        spec = execution.frozen_execution_spec
        assert spec is not None
        assert spec.resolved_execution.stack == "local"
        assert execution.status_reason is None
        assert execution.original_exec_id is None

    def test_status_reason_says_why(self) -> None:
        """Failed, waiting and cancelled executions each say why in ``status_reason``."""
        client = KitaruClient()
        failed = client.executions.get(failed_run())
        assert failed.status_reason is not None
        assert "ValueError in write_draft: the draft could not be written" in failed.status_reason
        waiting = client.executions.get(parked())
        assert waiting.status_reason == "waiting for input at 'approve_deploy'"
        cancelled = waiting.cancel()
        assert cancelled.status == "cancelled"
        assert cancelled.status_reason == "cancelled on request"

    def test_artifacts_and_the_list_methods(self) -> None:
        """``artifacts``, ``list_artifacts()`` and ``list_checkpoints()`` give what was recorded."""
        exec_id = finished(content_pipeline.run("kitaru"))
        execution = KitaruClient().executions.get(exec_id)
        names = [a.name for a in execution.list_artifacts()]
        assert names == ["research_context", "research", "write_draft", "publish"]
        assert execution.artifacts == execution.list_artifacts()
        assert [cp.name for cp in execution.list_checkpoints()] == [
            "research",
            "write_draft",
            "publish",
        ]
        assert all(isinstance(a, ArtifactRef) for a in execution.artifacts)

    def test_to_dict_keeps_its_fields_and_adds_the_new_ones(self) -> None:
        """The JSON description still has the old keys, now with the new fields beside them."""
        exec_id = finished(content_pipeline.run("kitaru"))
        data = KitaruClient().executions.get(exec_id).to_dict()
        for key in ("exec_id", "flow_name", "status", "checkpoints", "result", "metadata"):
            assert key in data
        assert data["status"] == "completed"
        assert data["stack_name"] == "local"
        assert data["flow_id"] == f"{__name__}:content_pipeline"
        assert data["artifacts"][0]["name"] == "research_context"
        assert data["checkpoints"][0]["artifacts"][0]["save_type"] == "step_output"
        json.dumps(data)


class TestExecutionMethods:
    def test_refresh_returns_a_new_snapshot(self) -> None:
        """``refresh()`` re-reads the journal; the old snapshot is left as it was."""
        exec_id = parked()
        client = KitaruClient()
        before = client.executions.get(exec_id)
        client.executions.input(exec_id, wait="approve_deploy", value=True)
        resumed = before.resume()
        assert resumed.wait(timeout=TIMEOUT) == "notes about deploys: shipped"
        assert before.status == "waiting"
        assert before.refresh().status == "completed"

    def test_retry_continues_a_failed_execution(self) -> None:
        """``execution.retry()`` runs the failed call again and the execution completes."""
        execution = KitaruClient().executions.get(failed_run())
        _fail.clear()
        retried = execution.retry()
        assert isinstance(retried, Execution)
        assert retried.exec_id == execution.exec_id
        assert retried.wait(timeout=TIMEOUT) == "PUBLISHED: Draft from notes about kitaru"
        assert retried.refresh().status.is_successful
        assert _runs["research"] == 1

    def test_replay_with_overrides_from_the_execution(self) -> None:
        """``execution.replay(from_=, overrides=)`` starts a new execution with the override."""
        source = KitaruClient().executions.get(finished(content_pipeline.run("kitaru")))
        replayed = source.replay(
            from_="write_draft", overrides={"checkpoint.research": "edited notes"}
        )
        assert replayed.exec_id != source.exec_id
        assert replayed.original_exec_id == source.exec_id
        assert replayed.wait(timeout=TIMEOUT) == "PUBLISHED: Draft from edited notes"

    def test_cancel_returns_the_cancelled_execution(self) -> None:
        """``execution.cancel()`` ends a waiting execution and returns it cancelled."""
        execution = KitaruClient().executions.get(parked())
        assert execution.cancel().status == ExecutionStatus.CANCELLED


# -- KitaruClient().executions ----------------------------------------------------------


class TestExecutionsClient:
    def test_replay_returns_an_execution_to_poll_as_the_replay_example_does(self) -> None:
        """Replay by id returns an ``Execution``; polling ``get`` sees it finish, outputs load."""
        source_id = finished(content_pipeline.run("kitaru"))
        client = kitaru.KitaruClient()
        replayed = client.executions.replay(
            source_id,
            from_="write_draft",
            overrides={"checkpoint.research": "edited notes for kitaru"},
        )
        assert isinstance(replayed, Execution)
        assert replayed.original_exec_id == source_id
        deadline = time.time() + TIMEOUT
        while time.time() <= deadline:
            execution = client.executions.get(replayed.exec_id)
            if execution.status in {
                ExecutionStatus.COMPLETED,
                ExecutionStatus.FAILED,
                ExecutionStatus.CANCELLED,
            }:
                break
            time.sleep(0.05)
        assert execution.status == ExecutionStatus.COMPLETED
        publish_cp = next(cp for cp in execution.checkpoints if cp.name == "publish")
        replay_output = str(publish_cp.artifacts[0].load())
        assert replay_output == "PUBLISHED: Draft from edited notes for kitaru"

    def test_replay_takes_changed_flow_inputs(self) -> None:
        """Keyword arguments of ``replay`` change the flow's inputs, as the guide shows."""
        source_id = finished(content_pipeline.run("kitaru"))
        replayed = KitaruClient().executions.replay(
            source_id, from_="research", overrides=None, topic="New topic"
        )
        assert replayed.wait(timeout=TIMEOUT) == "PUBLISHED: Draft from notes about New topic"

    def test_resume_after_input_returns_an_execution(self) -> None:
        """``input`` then ``resume`` (the documented wait flow) returns an ``Execution``."""
        exec_id = parked()
        client = KitaruClient()
        execution = client.executions.input(exec_id, wait="approve_deploy", value=True)
        assert isinstance(execution, Execution)
        resumed = client.executions.resume(exec_id)
        assert isinstance(resumed, Execution)
        assert resumed.wait(timeout=TIMEOUT) == "notes about deploys: shipped"

    def test_pending_waits_lists_each_wait(self) -> None:
        """``pending_waits(id)`` lists name, question and schema of each pending wait."""
        exec_id = parked()
        waits = KitaruClient().executions.pending_waits(exec_id)
        assert [(w.name, w.question, w.schema) for w in waits] == [
            ("approve_deploy", "Ship it?", {"type": "boolean"})
        ]
        assert KitaruClient().executions.pending_waits(finished(content_pipeline.run("x"))) == []

    def test_wait_metadata_is_an_empty_dict_when_unset(self) -> None:
        """A wait given no metadata reports ``{}``, so it can be read like any dict."""
        handle = plain_gate.run()
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        (pending,) = KitaruClient().executions.pending_waits(handle.exec_id)
        assert pending.metadata == {}

    def test_abort_wait_cancels(self) -> None:
        """``abort_wait(id, wait=)`` refuses the wait and the execution ends cancelled."""
        exec_id = parked()
        execution = KitaruClient().executions.abort_wait(exec_id, wait="approve_deploy")
        assert execution.status == "cancelled"

    def test_list_and_latest(self) -> None:
        """``list(flow=, status=, limit=)`` and ``latest(flow=)`` find the executions."""
        first = finished(content_pipeline.run("a"))
        second = finished(content_pipeline.run("b"))
        client = KitaruClient()
        recent = client.executions.list(limit=20)
        assert [e.exec_id for e in recent] == [second, first]
        found = client.executions.list(flow="content_pipeline", status="completed", limit=1)
        assert [e.exec_id for e in found] == [second]
        assert client.executions.latest(flow="content_pipeline").exec_id == second


# -- calls, attempts and artifacts -----------------------------------------------------


class TestCallsAndArtifacts:
    def test_a_call_lists_its_output_first_then_what_it_saved(self) -> None:
        """``CheckpointCall.artifacts`` starts with the output, then the saved artifacts."""
        execution = KitaruClient().executions.get(finished(content_pipeline.run("kitaru")))
        research_cp = execution.checkpoints[0]
        assert [(a.name, a.save_type) for a in research_cp.artifacts] == [
            ("research", "step_output"),
            ("research_context", "manual"),
        ]
        assert research_cp.artifacts[0].load() == "notes about kitaru"
        assert research_cp.checkpoint_type is None
        assert research_cp.original_call_id is None

    def test_replayed_calls_name_the_call_they_reused(self) -> None:
        """A call a replay reused points at the source execution's call by ``original_call_id``."""
        client = KitaruClient()
        source = client.executions.get(finished(content_pipeline.run("kitaru")))
        replayed = client.executions.replay(source.exec_id, from_="publish")
        replayed.wait(timeout=TIMEOUT)
        calls = replayed.refresh().checkpoints
        assert [cp.original_call_id for cp in calls] == [
            source.checkpoints[0].call_id,
            source.checkpoints[1].call_id,
            None,
        ]

    def test_attempts_have_ids_and_metadata(self) -> None:
        """Each attempt has an ``attempt_id`` of its own and metadata with its duration."""
        execution = KitaruClient().executions.get(failed_run())
        _fail.clear()
        execution.retry().wait(timeout=TIMEOUT)
        draft = next(cp for cp in execution.refresh().checkpoints if cp.name == "write_draft")
        ids = [a.attempt_id for a in draft.attempts]
        assert len(ids) == 2
        assert len(set(ids)) == 2
        assert all(isinstance(a.metadata["duration_ms"], float) for a in draft.attempts)

    def test_attempt_metadata_counts_model_usage(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An attempt that called a model reports its calls and token counts."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "hello there")
        execution = KitaruClient().executions.get(finished(tokens.run()))
        (greet,) = execution.checkpoints
        assert greet.checkpoint_type == "llm_call"
        assert greet.attempts[0].metadata["llm_usage"] == {
            "calls": 1,
            "input_tokens": 2,
            "output_tokens": 2,
            "total_tokens": 4,
        }

    def test_artifacts_list_filters_as_documented(self) -> None:
        """``artifacts.list`` filters by kind, producing call and name, with a limit."""
        exec_id = finished(content_pipeline.run("kitaru"))
        client = KitaruClient()
        for artifact in client.artifacts.list(exec_id):
            assert isinstance(artifact.save_type, str)
        (context,) = client.artifacts.list(exec_id, kind="context")
        assert (context.name, context.producing_call, context.save_type) == (
            "research_context",
            "research",
            "manual",
        )
        assert context.metadata["tags"] == ["notes"]
        assert context.metadata["kitaru_artifact_type"] == "context"
        by_call = client.artifacts.list(exec_id, producing_call="research")
        assert sorted(a.name for a in by_call) == ["research", "research_context"]
        limited = client.artifacts.list(exec_id, name="research_context", limit=1)
        assert [a.load() for a in limited] == [{"topic": "kitaru"}]
        assert client.artifacts.get(context.artifact_id).load() == {"topic": "kitaru"}
        with pytest.raises(KitaruUsageError, match="limit"):
            client.artifacts.list(exec_id, limit=0)


# -- failures -------------------------------------------------------------------------


class TestFailureOrigin:
    def test_user_code_failures(self) -> None:
        """A checkpoint that raised is a ``user_code`` failure, on the record and the error."""
        _fail.add("write_draft")
        handle = content_pipeline.run("kitaru")
        with pytest.raises(KitaruExecutionError) as raised:
            handle.wait(timeout=TIMEOUT)
        assert raised.value.failure_origin is FailureOrigin.USER_CODE
        failure = KitaruClient().executions.get(handle.exec_id).failure
        assert isinstance(failure, FailureInfo)
        assert failure.origin is FailureOrigin.USER_CODE
        assert (failure.origin, failure.message) == ("user_code", "the draft could not be written")

    def test_what_kitaru_refused_is_a_runtime_failure(self) -> None:
        """An output kitaru cannot store fails the execution with origin ``runtime``."""
        handle = returns_unstorable.run()
        with pytest.raises(KitaruExecutionError) as raised:
            handle.wait(timeout=TIMEOUT)
        assert raised.value.failure_origin is FailureOrigin.RUNTIME
        failure = KitaruClient().executions.get(handle.exec_id).failure
        assert failure is not None
        assert failure.origin is FailureOrigin.RUNTIME

    def test_a_diverged_retry_is_a_divergence_failure(self) -> None:
        """Code changed before a retry: the record's origin and the error's are ``divergence``."""
        _fail.add("write_draft")
        handle = drifting.run("kitaru")
        with pytest.raises(KitaruUserCodeError):
            handle.wait(timeout=TIMEOUT)
        _fail.clear()
        _drift[0] = " (changed)"
        retried = KitaruClient().executions.retry(handle.exec_id)
        with pytest.raises(KitaruDivergenceError) as raised:
            retried.wait(timeout=TIMEOUT)
        assert raised.value.failure_origin is FailureOrigin.DIVERGENCE
        latest = retried.refresh()
        assert latest.failure is not None
        assert latest.failure.origin == kitaru.FailureOrigin.DIVERGENCE

    def test_attempt_history_reads_as_the_error_guide_shows(self) -> None:
        """Every attempt has an id and a status; a failed one has the exception's type."""
        execution = KitaruClient().executions.get(failed_run())
        seen = [
            (attempt.attempt_id, attempt.status, attempt.failure)
            for checkpoint in execution.checkpoints
            for attempt in checkpoint.attempts
        ]
        assert [status for _, status, _ in seen] == ["completed", "failed"]
        failure = seen[-1][2]
        assert failure is not None
        assert (failure.exception_type, failure.message) == (
            "ValueError",
            "the draft could not be written",
        )

    def test_the_enum_has_kitarus_values(self) -> None:
        """``FailureOrigin`` offers user_code, runtime, backend, divergence and unknown."""
        assert [o.value for o in FailureOrigin] == [
            "user_code",
            "runtime",
            "backend",
            "divergence",
            "unknown",
        ]


# -- logs ------------------------------------------------------------------------------


class TestLogs:
    def test_the_documented_logs_loop(self) -> None:
        """``logs(id, checkpoint=, limit=)`` entries have Kitaru's fields."""
        exec_id = finished(content_pipeline.run("kitaru"))
        client = KitaruClient()
        entries = client.executions.logs(exec_id, checkpoint="research", limit=100)
        assert len(entries) == 1
        entry = entries[0]
        assert isinstance(entry, LogEntry)
        assert (entry.message, entry.level, entry.checkpoint_name, entry.source) == (
            "researching kitaru",
            "INFO",
            "research",
            "stdout",
        )
        assert (entry.module, entry.filename, entry.lineno) == (None, None, None)
        assert entry.timestamp is not None

    def test_limit_keeps_the_first_entries(self) -> None:
        """``limit`` keeps the first entries in time order; below 1 it is refused."""
        first = finished(content_pipeline.run("a"))
        client = KitaruClient()
        assert [e.message for e in client.executions.logs(first, limit=1)] == ["researching a"]
        with pytest.raises(KitaruUsageError, match="limit"):
            client.executions.logs(first, limit=0)

    def test_runner_logs_are_not_kept_here(self) -> None:
        """``source='runner'`` says runner logs are not kept, and what to read instead."""
        exec_id = finished(content_pipeline.run("kitaru"))
        with pytest.raises(KitaruFeatureNotAvailableError, match="source='step'") as raised:
            KitaruClient().executions.logs(exec_id, source="runner")
        # Kitaru's logs guide catches this case as a retrieval error.
        assert isinstance(raised.value, KitaruLogRetrievalError)
        with pytest.raises(KitaruUsageError, match="not a log source"):
            KitaruClient().executions.logs(exec_id, source="stdout")

    def test_an_unreadable_journal_is_a_log_retrieval_error(self) -> None:
        """Logs of an execution whose journal is damaged raise ``KitaruLogRetrievalError``."""
        exec_id = finished(content_pipeline.run("kitaru"))
        with contextlib.closing(sqlite3.connect(store_file())) as db, db:
            # Damage on disk, as a failing disk would: past the journal's own guard.
            db.execute("DROP TRIGGER events_refuse_update")
            db.execute("UPDATE events SET body = x'00ff' WHERE exec_id = ?", (exec_id,))
        with pytest.raises(KitaruLogRetrievalError, match=f"logs of execution {exec_id}") as raised:
            KitaruClient().executions.logs(exec_id)
        assert isinstance(raised.value, KitaruError)


# -- the client itself and the current execution ---------------------------------------


class TestClientAndContext:
    @pytest.mark.parametrize(
        "options",
        [{"server_url": "https://kitaru.example"}, {"auth_token": "t"}, {"project": "p"}],
    )
    def test_server_options_are_not_available(self, options: dict[str, str]) -> None:
        """A server connection option raises ``KitaruFeatureNotAvailableError`` naming the store."""
        with pytest.raises(KitaruFeatureNotAvailableError, match="KITARU_STORE"):
            KitaruClient(**options)  # type: ignore[arg-type]

    def test_current_execution_id_in_flow_and_checkpoint(self) -> None:
        """Both spellings give the running execution's id in the body and in checkpoints."""
        handle = identifies.run()
        assert handle.wait(timeout=TIMEOUT) == handle.exec_id
        assert _seen_ids == [("flow", handle.exec_id), ("checkpoint", handle.exec_id)]

    def test_no_current_execution_outside_a_flow(self) -> None:
        """Outside any flow there is no current execution."""
        assert kitaru.current_execution_id() is None
        assert _get_current_execution_id() is None

    def test_errors_are_exported(self) -> None:
        """The documented errors and ``FailureOrigin`` are importable from ``kitaru``."""
        assert issubclass(kitaru.KitaruFeatureNotAvailableError, kitaru.KitaruError)
        assert issubclass(kitaru.KitaruLogRetrievalError, kitaru.KitaruBackendError)
        assert kitaru.FailureOrigin.USER_CODE == "user_code"

"""Reading executions back: what ``get``, ``list`` and ``retry`` read from the journal.

Executions are recorded by real flows into the test's journal. What the read path
reads is counted by a real store (a ``SqliteStore`` subclass that counts what passes
through it) or by tracing the statements the command's store runs.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import TIMEOUT, store_file

import kitaru
from kitaru import KitaruStateError, KitaruUserCodeError
from kitaru._stores import open_store
from kitaru.cli import main
from kitaru.client import ExecutionsClient, ExecutionStatus, KitaruClient
from kitaru.client._views import ExecutionStatus as RecordsExecutionStatus
from kitaru.journal.events import CallKind, Event
from kitaru.journal.read_model import status_change
from kitaru.journal.sqlite import SqliteStore
from kitaru.journal.store import StoredEvent
from kitaru.replay.state import SUMMARY_EVENTS, fold, fold_summary


class CountingStore(SqliteStore):
    """The SQLite store, counting the events and payloads it hands out."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.events_read = 0
        self.full_reads = 0
        self.payload_reads = 0

    def read_events(self, exec_id: str, after_seq: int = 0, **options: Any) -> list[StoredEvent]:
        events = super().read_events(exec_id, after_seq, **options)
        self.events_read += len(events)
        if after_seq == 0 and not options:
            self.full_reads += 1
        return events

    def stream_events(self, exec_id: str) -> Generator[tuple[int, float, Event], None, None]:
        self.full_reads += 1
        for stored in super().stream_events(exec_id):
            self.events_read += 1
            yield stored

    def read_payload(self, digest: str) -> bytes:
        self.payload_reads += 1
        return super().read_payload(digest)


FAIL_AT: dict[str, int | None] = {"input": None}


@kitaru.checkpoint
def step(i: int) -> int:
    if i == FAIL_AT["input"]:
        raise RuntimeError(f"step failed at {i}")
    return i + 1


@kitaru.flow
def chain(n: int) -> Any:
    value: Any = 0
    for _ in range(n):
        value = step(value)
    return value


@kitaru.checkpoint
def draft(topic: str) -> str:
    return f"notes on {topic}: " + "lorem ipsum " * 40  # stored as a payload


@kitaru.checkpoint
def ask(notes: str) -> str:
    kitaru.save("notes", notes)
    return kitaru.llm(f"Summarise: {notes}", model="openai/gpt-4o-mini")


@kitaru.flow
def report(topic: str) -> dict[str, Any]:
    summary = ask(draft(topic))
    return {"topic": topic, "summary": summary.load(), "body": "x" * 600}


@kitaru.flow
def gated() -> str:
    kitaru.log(stage="before")
    step(1)
    approved = kitaru.wait(name="approve", question="Ship it?", timeout=0)
    return f"approved={approved}"


@pytest.fixture
def mocked_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "a short summary")


def parked() -> str:
    """Record ``gated()`` up to its wait, where its body stops; return its id."""
    handle = gated.run()
    with pytest.raises(KitaruStateError, match="waiting for input"):
        handle.wait(timeout=TIMEOUT)
    return handle.exec_id


def failed_chain(n: int) -> str:
    """Record ``chain(n)`` whose last call failed; return its id."""
    FAIL_AT["input"] = n - 1
    try:
        handle = chain.run(n)
        with pytest.raises(KitaruUserCodeError):
            handle.wait(timeout=TIMEOUT)
    finally:
        FAIL_AT["input"] = None
    return handle.exec_id


class TestListReadsNoPayload:
    @pytest.mark.usefixtures("mocked_model")
    def test_list_json_runs_no_statement_on_payloads(self) -> None:
        """``executions list -o json`` reads no payload: no prompt, response, output or result."""
        for topic in ("tides", "waves"):
            report.run(topic).wait(timeout=TIMEOUT)
        statements: list[str] = []
        # The command opens the same store (one per journal per process) on this thread.
        open_store()._conn().set_trace_callback(statements.append)
        try:
            result = CliRunner().invoke(main, ["executions", "list", "-o", "json"])
        finally:
            open_store()._conn().set_trace_callback(None)
        assert result.exit_code == 0, result.output
        listed = json.loads(result.stdout)
        assert [e["status"] for e in listed] == ["completed", "completed"]
        assert [sql for sql in statements if "FROM payloads" in sql] == []
        # What needs a payload is left out, and said to be.
        assert all(e["result_omitted"] is True and "result" not in e for e in listed)
        (llm_call,) = listed[0]["llm_calls"]
        assert "prompt" not in llm_call
        assert "response" not in llm_call
        assert llm_call["resolved_model"] == "openai/gpt-4o-mini"
        assert [c["invocation_id"] for c in listed[0]["checkpoints"]] == ["draft", "ask"]

    @pytest.mark.usefixtures("mocked_model")
    def test_client_list_and_to_dict_without_payloads_read_none(self) -> None:
        """``list()`` and ``to_dict(payloads=False)`` pass no payload through the store."""
        report.run("tides").wait(timeout=TIMEOUT)
        store = CountingStore(store_file())
        found = ExecutionsClient(store).list()
        json.dumps([execution.to_dict(payloads=False) for execution in found])
        assert store.payload_reads == 0

    @pytest.mark.usefixtures("mocked_model")
    def test_get_json_still_shows_every_value(self) -> None:
        """``executions get -o json`` still loads the result, prompts and responses."""
        handle = report.run("tides")
        handle.wait(timeout=TIMEOUT)
        result = CliRunner().invoke(main, ["executions", "get", handle.exec_id, "-o", "json"])
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        assert shown["result"]["body"] == "x" * 600
        (llm_call,) = shown["llm_calls"]
        assert llm_call["response"] == "a short summary"
        assert llm_call["prompt"][0]["content"].startswith("Summarise: notes on tides")


class TestGetReadsASummary:
    def test_get_reads_a_few_events_however_many_calls(self) -> None:
        """``get`` of a 60-call execution reads a handful of events and no payload."""
        exec_id = failed_chain(60)
        store = CountingStore(store_file())
        execution = ExecutionsClient(store).get(exec_id)
        assert execution.status == "failed"
        assert execution.failure is not None
        assert execution.failure.call == "step_60"
        assert store.events_read <= 3
        assert store.payload_reads == 0

    def test_calls_are_read_on_first_access_and_complete(self) -> None:
        """``checkpoints`` of a ``get`` snapshot are read on first use, all of them."""
        exec_id = failed_chain(60)
        store = CountingStore(store_file())
        execution = ExecutionsClient(store).get(exec_id)
        calls = execution.checkpoints
        assert store.full_reads == 1
        assert len(calls) == 60
        assert [c.status for c in calls[-2:]] == [ExecutionStatus.COMPLETED, "failed"]
        assert execution.checkpoints is calls  # read once per snapshot
        assert store.full_reads == 1
        assert [a.name for a in execution.artifacts][:2] == ["step", "step_2"]

    def test_a_snapshot_keeps_its_point_in_time(self) -> None:
        """Calls read after the execution moved on still show it as it was at ``get``."""
        exec_id = parked()
        client = KitaruClient()
        execution = client.executions.get(exec_id)
        assert execution.status == "waiting"
        assert execution.metadata == {"stage": "before"}
        client.executions.input(exec_id, wait="approve", value=True)
        assert client.executions.resume(exec_id).wait(timeout=TIMEOUT) == "approved=True"
        # Read now, after the wait was answered and the execution completed.
        assert [c.invocation_id for c in execution.checkpoints] == ["step", "approve"]
        assert execution.checkpoints[1].status == "waiting"
        assert execution.pending_wait is not None
        assert execution.pending_wait.name == "approve"
        assert client.executions.get(exec_id).checkpoints[1].status == "completed"


class TestSummaryMatchesTheFullFold:
    @pytest.mark.usefixtures("mocked_model")
    def test_summary_and_fold_agree_on_every_execution(self) -> None:
        """Status, result, failure, waits, metadata and last seq agree with the full fold."""
        report.run("tides").wait(timeout=TIMEOUT)
        failed_chain(3)
        retried = failed_chain(4)
        assert KitaruClient().executions.retry(retried).wait(timeout=TIMEOUT) == 4
        parked()
        store = open_store()
        rows = store.list_executions()
        assert len(rows) == 4
        for row in rows:
            full = fold(row.exec_id, store.read_events(row.exec_id))
            summary = fold_summary(row.exec_id, store.read_events(row.exec_id, only=SUMMARY_EVENTS))
            assert not summary.complete
            assert full.complete
            for name in ("status", "started_at", "ended_at", "result", "failure", "cancelled"):
                assert getattr(summary, name) == getattr(full, name), name
            assert summary.metadata == full.metadata
            assert summary.pending_waits == full.pending_waits
            assert summary.last_seq == full.last_seq
            assert summary.retry_epoch == full.retry_epoch
            # The executions table follows the same status rules.
            assert row.status == full.status


class TestRetryReadsTheJournalOnce:
    def test_retry_reads_the_whole_journal_once_and_no_payload(self) -> None:
        """A retry to its result reads the journal once in full, and reads no payload."""
        exec_id = failed_chain(40)
        store = CountingStore(store_file())
        assert ExecutionsClient(store).retry(exec_id).wait(timeout=TIMEOUT) == 40
        assert store.full_reads == 1
        assert store.payload_reads == 0

    def test_resume_returns_a_snapshot_without_reading_it_again(self) -> None:
        """``resume(background=True)`` returns what it took on, from the state it folded."""
        exec_id = parked()
        KitaruClient().executions.input(exec_id, wait="approve", value=False)
        store = CountingStore(store_file())
        resumed = ExecutionsClient(store).resume(exec_id, background=True)
        assert resumed.wait(timeout=TIMEOUT) == "approved=False"
        assert [c.invocation_id for c in resumed.checkpoints] == ["step", "approve"]
        assert store.full_reads == 1


class TestOneStatusVocabulary:
    def test_the_client_enum_is_the_one_everywhere(self) -> None:
        """``kitaru.client.ExecutionStatus`` is the enum the records and the journal use."""
        assert ExecutionStatus is RecordsExecutionStatus
        assert kitaru.client.ExecutionStatus is ExecutionStatus
        assert [str(s) for s in ExecutionStatus if s.is_finished] == [
            "completed",
            "failed",
            "cancelled",
        ]

    def test_statuses_and_kinds_compare_as_their_text(self) -> None:
        """Statuses and call kinds are enum members that still equal their text."""
        exec_id = failed_chain(2)
        execution = KitaruClient().executions.get(exec_id)
        assert execution.status is ExecutionStatus.FAILED
        assert execution.status == "failed"
        call = execution.checkpoints[0]
        assert call.status is ExecutionStatus.COMPLETED
        assert call.status == "completed"
        assert call.kind == CallKind.CHECKPOINT
        assert call.kind == "checkpoint"
        assert json.loads(json.dumps(execution.to_dict()))["status"] == "failed"

    def test_status_change_gives_enum_members(self) -> None:
        """The status rules speak the enum: every change names an ``ExecutionStatus``."""
        store = open_store()
        failed_chain(2)
        (row,) = store.list_executions()
        changes = [status_change(e.event) for e in store.read_events(row.exec_id)]
        moved = [c.status for c in changes if c is not None]
        assert moved == [ExecutionStatus.FAILED]
        assert all(isinstance(status, ExecutionStatus) for status in moved)

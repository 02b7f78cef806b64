"""The call index: one page of an execution's calls is read from its own events.

``execution_calls`` keeps, per call, its position, the seqs of its first start and its
latest event, and its end, in the transaction that appends the events. The dashboard's
execution page (its header, the calls count, the timeline's extent and one page of
calls) is built from it and from the events of that page's calls, and shows exactly
what folding the whole journal shows. ``kitaru store check`` proves the index.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_backends import Owned, StoreBackend

import kitaru
from kitaru._store_check import check_store
from kitaru._stores import new_store
from kitaru.client import ExecutionsClient, KitaruClient
from kitaru.client._views import Execution, execution_from_state
from kitaru.journal.conversation import store_prompt
from kitaru.journal.events import (
    ArtifactSaved,
    CallCompleted,
    CallFailed,
    CallStarted,
    ErrorInfo,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    FlowRef,
    LlmCallRecorded,
    LlmUsage,
    LogEntry,
    LogsCaptured,
    MetadataLogged,
    ValueRef,
    WaitRequested,
    WaitResolved,
)
from kitaru.journal.sqlite import SqliteStore
from kitaru.journal.store import Store, StoredEvent
from kitaru.replay.state import fold
from kitaru.ui._data import CALLS_PER_PAGE, Snapshots, call_detail, execution_detail

# -- generated journals ------------------------------------------------------------------

PROMPT_PAYLOADS: dict[str, bytes] = {}
PROMPT = store_prompt([{"role": "user", "content": "Summarise the notes"}], PROMPT_PAYLOADS)

_ACTIONS = (
    "start",
    "start",
    "complete",
    "complete",
    "fail",
    "restart",
    "logs",
    "artifact",
    "llm",
    "metadata",
    "wait",
    "answer",
    "resume",
)


class _Builder:
    """Events of one execution, as a runner would write them, drawn step by step."""

    def __init__(self, draw: Any):
        self.draw = draw
        self.events: list[Event] = [
            ExecutionStarted(
                flow_name="agent",
                flow=FlowRef(module="app", qualname="agent"),
                inputs=ValueRef(inline=b"\x90"),
                kitaru_version="0.1.0",
            )
        ]
        self.positions: dict[str, int] = {}
        self.kinds: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.running: list[str] = []
        """Calls with an attempt started and not ended."""
        self.retryable: list[str] = []
        """Calls whose last attempt failed (not for good) or was left running."""
        self.failed: list[str] = []
        self.pending: list[str] = []

    def pick(self, names: Sequence[str]) -> str:
        return str(self.draw(st.sampled_from(list(names))))

    def started(self, identity: str, parents: Sequence[str] = ()) -> CallStarted:
        return CallStarted(
            position=self.positions[identity],
            identity=identity,
            kind=self.kinds[identity],
            name=identity.rstrip("0123456789_"),
            call_id=f"id-{identity}",
            attempt=self.attempts[identity],
            inputs_from=tuple(parents),
        )

    def start(self) -> None:
        identity = f"{self.pick(['step', 'ask'])}_{len(self.positions)}"
        parents = self.draw(st.lists(st.sampled_from([*self.positions, "gone"]), max_size=2))
        self.positions[identity] = len(self.positions)
        self.kinds[identity] = "llm" if identity.startswith("ask") else "checkpoint"
        self.attempts[identity] = 1
        self.events.append(self.started(identity, parents))
        self.running.append(identity)

    def complete(self) -> None:
        identity = self.pick(self.running)
        self.running.remove(identity)
        self.events.append(
            CallCompleted(
                position=self.positions[identity],
                identity=identity,
                call_id=f"id-{identity}",
                output=ValueRef(inline=identity.encode()),
                attempt=self.attempts[identity],
                duration_ms=self.draw(st.floats(0, 50)),
            )
        )

    def fail(self) -> None:
        identity = self.pick(self.running)
        self.running.remove(identity)
        final = self.draw(st.booleans())
        (self.failed if final else self.retryable).append(identity)
        self.events.append(
            CallFailed(
                position=self.positions[identity],
                identity=identity,
                call_id=f"id-{identity}",
                error=ErrorInfo(type="ValueError", message=f"{identity} broke"),
                attempt=self.attempts[identity],
                final=final,
            )
        )

    def restart(self, identity: str) -> None:
        self.attempts[identity] += 1
        self.running.append(identity)
        self.events.append(self.started(identity))

    def step(self, action: str) -> None:
        anyone = [i for i in self.positions if self.kinds[i] != "wait"]
        if action == "start":
            self.start()
        elif action == "complete" and self.running:
            self.complete()
        elif action == "fail" and self.running:
            self.fail()
        elif action == "restart" and self.retryable:
            identity = self.pick(self.retryable)
            self.retryable.remove(identity)
            self.restart(identity)
        elif action == "logs" and anyone:
            identity = self.pick(anyone)
            entry = LogEntry(at=1.0, level="INFO", source="stdout", message=f"in {identity}")
            self.events.append(LogsCaptured(identity, self.attempts[identity], (entry,)))
        elif action == "artifact":
            identity = self.pick([*anyone, ""])
            self.events.append(
                ArtifactSaved(
                    call=identity,
                    attempt=self.attempts.get(identity, 1),
                    name=f"note_{len(self.events)}",
                    kind="context",
                    value=ValueRef(inline=b"\xa1x"),
                )
            )
        elif action == "llm" and anyone:
            identity = self.pick(anyone)
            in_body = self.kinds[identity] == "llm" and self.draw(st.booleans())
            self.events.append(
                LlmCallRecorded(
                    name=identity if in_body else f"llm_{len(self.events)}",
                    parent=None if in_body else identity,
                    prompt=PROMPT,
                    message_count=1,
                    response=ValueRef(inline=b"\xa2ok"),
                    usage=LlmUsage(10, 5, self.draw(st.none() | st.just(15))),
                    latency_ms=3.0,
                    requested_model=None,
                    alias=None,
                    resolved_model="openai/gpt-4o-mini",
                    credential_source="environment",
                    attempt=self.attempts[identity],
                    estimated_cost=self.draw(st.none() | st.just(0.25)),
                )
            )
        elif action == "metadata":
            call = self.draw(st.none() | st.sampled_from(anyone)) if anyone else None
            self.events.append(MetadataLogged(values={"k": len(self.events)}, call=call))
        elif action == "wait":
            identity = f"approve_{len(self.positions)}"
            self.kinds[identity], self.attempts[identity] = "wait", 1
            self.positions[identity] = len(self.positions)
            self.pending.append(identity)
            self.events.append(
                WaitRequested(
                    position=self.positions[identity],
                    identity=identity,
                    name="approve",
                    call_id=f"id-{identity}",
                )
            )
        elif action == "answer" and self.pending:
            identity = self.pick(self.pending)
            self.pending.remove(identity)
            self.events.append(
                WaitResolved(
                    position=self.positions[identity],
                    identity=identity,
                    call_id=f"id-{identity}",
                    value=ValueRef(inline=b"\xc3"),
                    aborted=self.draw(st.booleans()),
                )
            )
        elif action == "resume":
            # The process died: what ran is interrupted, and runs again.
            self.retryable.extend(self.running)
            self.running.clear()
            self.events.append(ExecutionResumed(mode="resume", owner="tests/2"))

    def end(self, how: str) -> None:
        if how == "completed":
            self.events.append(ExecutionCompleted(result=ValueRef(inline=b"\xc3")))
        elif how == "cancelled":
            self.events.append(ExecutionCancelled(reason="enough"))
        elif how in ("failed", "retried"):
            self.events.append(ExecutionFailed(error=ErrorInfo(type="ValueError", message="no")))
        if how == "retried":
            self.events.append(ExecutionResumed(mode="retry", owner="tests/3"))
            again = [*self.failed, *self.retryable, *self.running]
            self.running.clear()
            for identity in again:
                self.restart(identity)
                self.complete()


@st.composite
def journals(draw: Any) -> list[Event]:
    """A well-formed journal of one execution: calls started, completed, failed and
    retried, interleaved, with logs, artifacts, model calls, metadata and waits, and
    resumes between; it ends running, completed, failed, retried or cancelled."""
    builder = _Builder(draw)
    for action in draw(st.lists(st.sampled_from(_ACTIONS), max_size=40)):
        builder.step(action)
    builder.end(draw(st.sampled_from(["running", "completed", "failed", "retried", "cancelled"])))
    return builder.events


def record(store: Store, exec_id: str, events: list[Event], cuts: list[int]) -> None:
    """Append ``events`` in batches split at ``cuts``, as one runner would."""
    owned = Owned(store)
    bounds = [0, *sorted({c % (len(events) + 1) for c in cuts}), len(events)]
    for first, stop in itertools.pairwise(bounds):
        if first < stop:
            batch = [(event, 1000.0 + i) for i, event in enumerate(events[first:stop], first)]
            owned.append(exec_id, first + 1, batch, PROMPT_PAYLOADS if first == 0 else None)


def folded(store: Store, exec_id: str) -> Execution:
    """The execution built from a fold of its whole journal."""
    return execution_from_state(fold(exec_id, store.read_events(exec_id)), store)


def assert_pages_match(store: Store, exec_id: str, per_page: int) -> None:
    """Every page, every call, the count, the last end and the saved artifacts read
    through the index equal those of the whole fold."""
    whole = folded(store, exec_id)
    calls = whole.checkpoints
    executions = ExecutionsClient(store)
    assert executions.get(exec_id).call_count == len(calls)
    assert executions.get(exec_id).last_call_ended_at == whole.last_call_ended_at
    assert executions.get(exec_id).saved_artifacts == whole.saved_artifacts
    for start in range(0, len(calls) + per_page, per_page):
        page = executions.get(exec_id).checkpoints_between(start, start + per_page)
        assert page == calls[start : start + per_page]
    for call in calls:
        assert executions.get(exec_id).find_checkpoint(call.invocation_id) == call
        logs = whole.call_logs(call.invocation_id)
        assert executions.get(exec_id).call_logs(call.invocation_id) == logs


class TestAPageEqualsTheWholeFold:
    @settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        events=journals(), cuts=st.lists(st.integers(0, 200), max_size=6), size=st.integers(1, 4)
    )
    def test_generated_journals_read_through_the_index_as_folded(
        self,
        store_backend: StoreBackend,
        tmp_path_factory: pytest.TempPathFactory,
        events: list[Event],
        cuts: list[int],
        size: int,
    ) -> None:
        """Pages of any size, single calls, the count, the last end and the saved
        artifacts of a generated journal equal the whole fold's, and the store check
        finds the index sound."""
        store = new_store(store_backend.location(tmp_path_factory.mktemp("store")))
        try:
            record(store, "exec-1", events, cuts)
            assert_pages_match(store, "exec-1", size)
            assert check_store(store).problems == []
        finally:
            store.close()


@kitaru.checkpoint
def step(value: int, i: int) -> int:
    if i % 97 == 5:
        kitaru.save(f"note_{i}", i)
        print(f"step {i}")
    return value + 1


step_failures: dict[int, int] = {}


@kitaru.checkpoint(retries=1)
def wobbly(value: int, i: int) -> int:
    if step_failures.setdefault(i, 0) == 0:
        step_failures[i] = 1
        raise ConnectionError("hiccup")
    return value


@kitaru.flow
def chain(n: int) -> Any:
    value: Any = 0
    for i in range(n):
        value = wobbly(value, i) if i % 50 == 0 else step(value, i)
    return value


def client_on(store: Store) -> KitaruClient:
    """A client reading through ``store`` itself (not one opened by URL)."""
    client = KitaruClient.__new__(KitaruClient)
    client.executions = ExecutionsClient(store)
    return client


class TestTheExecutionPageIsTheFoldedOne:
    def test_every_page_of_a_real_execution_shows_what_the_fold_shows(
        self, store_backend: StoreBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The dashboard's data for each page of calls of a 450-call execution equals
        the data it gives once the whole journal is folded."""
        location = store_backend.location(tmp_path / "store")
        monkeypatch.setenv("KITARU_STORE", location)
        step_failures.clear()
        handle = chain.run(450)
        handle.wait(timeout=120)
        snapshots = Snapshots(KitaruClient(location))
        pages = [execution_detail(snapshots, handle.exec_id, call_page=p) for p in (1, 2, 3)]
        opened = [call_detail(snapshots, handle.exec_id, i) for i in ("step_5", "wobbly_3")]
        assert pages[0]["calls"]["total"] == 450
        assert pages[0]["artifacts"]
        assert [line["message"] for line in opened[0]["logs"]] == ["step 5"]
        assert len(opened[1]["attempts"]) == 2
        # The kept snapshot folds its whole journal; the pages then come from that fold.
        assert len(snapshots.execution(handle.exec_id).checkpoints) == 450
        for number, page in enumerate(pages, 1):
            assert execution_detail(snapshots, handle.exec_id, call_page=number) == page
        for identity, call in zip(("step_5", "wobbly_3"), opened, strict=True):
            assert call_detail(snapshots, handle.exec_id, identity) == call


class TestAReplayPageNamesTheCallsItReused:
    def test_pages_of_a_replay_name_the_original_calls_as_the_fold_does(
        self, store_backend: StoreBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A replay's reused calls name their originals (found through the original
        execution's index) exactly as the whole fold names them."""
        location = store_backend.location(tmp_path / "store")
        monkeypatch.setenv("KITARU_STORE", location)
        step_failures.clear()
        handle = chain.run(160)
        handle.wait(timeout=120)
        replayed = KitaruClient().executions.replay(
            handle.exec_id, from_="step_120", background=False
        )
        store = new_store(location)
        try:
            page = ExecutionsClient(store).get(replayed.exec_id).checkpoints_between(0, 3)
            original = ExecutionsClient(store).get(handle.exec_id).checkpoints_between(0, 3)
            assert [c.original_call_id for c in page] == [c.call_id for c in original]
            assert_pages_match(store, replayed.exec_id, 64)
        finally:
            store.close()


class CountingStore(SqliteStore):
    """The SQLite store, counting the events it hands out."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.events_read = 0

    def read_events(self, exec_id: str, after_seq: int = 0, **options: Any) -> list[StoredEvent]:
        events = super().read_events(exec_id, after_seq, **options)
        self.events_read += len(events)
        return events

    def read_event_ranges(
        self, exec_id: str, ranges: Sequence[tuple[int, int]]
    ) -> list[StoredEvent]:
        events = super().read_event_ranges(exec_id, ranges)
        self.events_read += len(events)
        return events


class TestTheExecutionPageReadsOnePage:
    def test_a_large_execution_page_reads_the_events_of_its_page_of_calls(
        self, tmp_path: Path
    ) -> None:
        """Showing the first page of a 1,000-call execution (and one of its calls) reads
        a few hundred of its 2,000-odd events, not the whole journal."""
        step_failures.clear()
        handle = chain.run(1000)
        handle.wait(timeout=120)
        store = CountingStore(tmp_path / "kitaru.db")
        snapshots = Snapshots(client_on(store))
        try:
            detail = execution_detail(snapshots, handle.exec_id, call_page=1)
            assert len(detail["calls"]["items"]) == CALLS_PER_PAGE
            assert store.events_read < 3 * CALLS_PER_PAGE
            read = store.events_read
            execution = snapshots.execution(handle.exec_id)
            assert execution.find_checkpoint("step_700") is not None
            assert store.events_read - read < 50
        finally:
            store.close()


def _forget_index_sqlite(location: str) -> None:
    path = location.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX execution_calls_position")
        for column in ("position", "first_seq", "last_seq", "ended_at"):
            conn.execute(f"ALTER TABLE execution_calls DROP COLUMN {column}")
        conn.execute("PRAGMA user_version=7")


def _forget_index_postgres(location: str) -> None:
    import psycopg

    from kitaru.journal.postgres import PostgresStore

    store = PostgresStore(location)
    schema = store._s
    store.close()
    with psycopg.connect(location.partition("&kitaru_schema=")[0], autocommit=True) as conn:
        conn.execute(
            f"ALTER TABLE {schema}.execution_calls DROP COLUMN position, DROP COLUMN first_seq, "
            "DROP COLUMN last_seq, DROP COLUMN ended_at"
        )
        conn.execute(f"UPDATE {schema}.meta SET value = '3' WHERE key = 'schema_version'")


class TestOlderJournalsGetTheirIndex:
    def test_opening_a_journal_from_before_the_index_fills_it_as_appends_keep_it(
        self, store_backend: StoreBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The migration indexes every call as the appends had, leaves the call counts
        alone, and pages read through the filled index equal the whole fold."""
        location = store_backend.location(tmp_path / "store")
        monkeypatch.setenv("KITARU_STORE", location)
        step_failures.clear()
        handle = chain.run(120)
        handle.wait(timeout=120)
        store = new_store(location)
        try:
            kept = store.call_rows(handle.exec_id)
            count = store.get_execution(handle.exec_id).calls  # type: ignore[union-attr]
        finally:
            store.close()
        forget = {"sqlite": _forget_index_sqlite, "postgresql": _forget_index_postgres}
        forget[store_backend.name](location)
        reopened = new_store(location)
        try:
            assert reopened.call_rows(handle.exec_id) == kept
            assert reopened.get_execution(handle.exec_id).calls == count  # type: ignore[union-attr]
            assert_pages_match(reopened, handle.exec_id, 50)
            assert check_store(reopened).problems == []
        finally:
            reopened.close()


class TestTheCheckProvesTheIndex:
    def test_a_call_index_row_that_disagrees_with_the_events_is_reported(
        self, tmp_path: Path
    ) -> None:
        """``kitaru store check`` names the call whose kept position, seqs or end differ
        from what its events say."""
        step_failures.clear()
        handle = chain.run(3)
        handle.wait(timeout=120)
        with sqlite3.connect(tmp_path / "kitaru.db") as conn:
            changed = conn.execute(
                "UPDATE execution_calls SET last_seq = last_seq + 1 WHERE exec_id = ? "
                "AND identity = 'step_2'",
                (handle.exec_id,),
            )
            assert changed.rowcount == 1
        problems = KitaruClient().check_store().problems
        assert len(problems) == 1
        assert "call index for 'step_2'" in problems[0]

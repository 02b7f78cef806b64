"""Durable memory: scopes and defaults, versions and tombstones, durable calls, crashes.

Flows here run in this process unless a crash is needed; then ``tests/flows/
memory_agent.py`` runs in its own process, SIGKILLs itself (or is killed), and the real
``kitaru`` command resumes it from a folder with no flow code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, background, child_env, flow_command, kitaru, run_flow, store_file

from kitaru import (
    KitaruClient,
    KitaruContextError,
    KitaruDivergenceError,
    KitaruFeatureNotAvailableError,
    KitaruLeaseLostError,
    KitaruStateError,
    KitaruUsageError,
    KitaruUserCodeError,
    checkpoint,
    flow,
    memory,
)
from kitaru._stores import open_store
from kitaru.journal.migrations import SCHEMA_VERSION
from kitaru.journal.store import MemoryWrite
from kitaru.runtime.values import encode_value

KILLED = -9


@dataclass(frozen=True)
class Preference:
    theme: str
    since: dt.date


@pytest.fixture(autouse=True)
def _no_process_scope() -> Iterator[None]:
    """Each test starts without a scope configured outside a flow, as a new process does."""
    before = memory._process.scope
    memory._process.scope = None
    yield
    memory._process.scope = before


def raw_versions(scope: str, key: str) -> list[tuple[int, int]]:
    """(version, deleted) of a key's rows as stored, read with plain SQLite."""
    open_store().memory_latest()  # the journal exists (and is migrated) before it is read
    with contextlib.closing(sqlite3.connect(store_file())) as conn:
        rows = conn.execute(
            "SELECT version, deleted FROM memories WHERE scope = ? AND key = ? ORDER BY version",
            (scope, key),
        ).fetchall()
    return [(int(v), int(d)) for v, d in rows]


# -- flows used in this process ------------------------------------------------------


@checkpoint
def increment_runs(previous_runs: int | None) -> int:
    return (previous_runs or 0) + 1


@flow
def research_agent(topic: str) -> dict[str, Any]:
    previous_runs = memory.get("stats/run_count")
    updated_runs = increment_runs(previous_runs)
    memory.set("stats/run_count", updated_runs)
    memory.set("last_topic", topic)
    return {"previous": previous_runs, "keys": [e.key for e in memory.list()]}


@flow
def scoped_agent(kind: str) -> list[tuple[str, str]]:
    if kind == "namespace":
        memory.configure(scope="customer/42", scope_type="namespace")
    elif kind == "bare":
        memory.configure(scope="customer/42")
    else:
        memory.configure(scope_type=kind)  # type: ignore[arg-type]
    memory.set("note", kind)
    return [(e.scope, e.scope_type) for e in memory.list()]


@flow
def default_scope_agent() -> list[tuple[str, str]]:
    memory.set("note", "x")
    return [(e.scope, e.scope_type) for e in memory.history("note")]


@checkpoint
def reads_memory_inside() -> str:
    try:
        memory.get("anything")
    except KitaruContextError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "allowed"


@checkpoint
def writes_memory_inside() -> None:
    memory.set("anything", 1)


@flow
def checkpoint_reader() -> str:
    return reads_memory_inside().load()


@flow
def checkpoint_writer() -> None:
    writes_memory_inside()


@checkpoint
def finish(runs: int) -> int:
    return runs


@flow
def counting_agent() -> int:
    runs = increment_runs(None)
    memory.configure(scope="counts")
    memory.set("runs", runs)
    return finish(runs).load()


def memory_value(scope: str, key: str) -> Any:
    return KitaruClient().memories.value(key, scope=scope, scope_type="namespace")


FAIL_ONCE = threading.Event()


@checkpoint
def fails_the_first_time() -> None:
    if not FAIL_ONCE.is_set():
        FAIL_ONCE.set()
        raise RuntimeError("first attempt fails")


@flow
def seeded_reader() -> Any:
    value = memory.get("note")
    fails_the_first_time()
    return value


WRITTEN = {"value": "first"}


@flow
def value_writer() -> None:
    memory.configure(scope="written")
    memory.set("k", WRITTEN["value"])
    fails_the_first_time()


GATE = threading.Event()
REACHED = threading.Event()


@flow
def gated_writer() -> None:
    REACHED.set()
    GATE.wait(30)
    memory.configure(scope="fenced", scope_type="namespace")
    memory.set("key", "must not be written")


# -- tests -----------------------------------------------------------------------------


class TestDefaultsAndScopes:
    def test_the_documented_flow_counts_its_runs_in_the_flow_scope(self) -> None:
        """With no configure, a flow body uses a flow scope named after the flow."""
        first = research_agent.run("a").wait()
        second = research_agent.run("b").wait()
        assert first == {"previous": None, "keys": ["last_topic", "stats/run_count"]}
        assert second["previous"] == 1
        client = KitaruClient()
        entry = client.memories.get("stats/run_count", scope="research_agent", scope_type="flow")
        assert entry is not None
        assert (entry.version, entry.flow_name, entry.scope_type) == (2, "research_agent", "flow")
        assert client.artifacts.get(entry.artifact_id).load() == 2

    @pytest.mark.parametrize(
        ("kind", "expected_type"),
        [("namespace", "namespace"), ("bare", "namespace"), ("flow", "flow")],
    )
    def test_configure_in_a_flow_body_picks_the_scope(self, kind: str, expected_type: str) -> None:
        """configure(scope=...) is a namespace unless typed; scope_type='flow' is the flow name."""
        result = scoped_agent.run(kind).wait()
        expected_scope = "scoped_agent" if kind == "flow" else "customer/42"
        assert result == [(expected_scope, expected_type)]

    def test_execution_scope_is_the_execution_id(self) -> None:
        """configure(scope_type='execution') in a flow body scopes memory to that execution."""
        handle = scoped_agent.run("execution")
        assert handle.wait() == [(handle.exec_id, "execution")]
        entry = KitaruClient().memories.get("note", scope=handle.exec_id, scope_type="execution")
        assert entry is not None
        assert entry.execution_id == handle.exec_id

    def test_a_scope_configured_outside_seeds_later_flows(self) -> None:
        """A process-wide configure() is used outside flows and by flows that set none."""
        memory.configure(scope="seeded", scope_type="namespace")
        memory.set("note", "outside")
        assert default_scope_agent.run().wait() == [("seeded", "namespace")] * 2

    def test_outside_a_flow_without_configure_says_what_to_do(self) -> None:
        """Memory outside a flow needs an explicit scope, and the error says how."""
        with pytest.raises(KitaruStateError, match=r"configure\(scope=\.\.\.\) first"):
            memory.get("x")

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({}, KitaruUsageError),
            ({"scope_type": "namespace"}, KitaruUsageError),
            ({"scope_type": "flow"}, KitaruContextError),
            ({"scope": "a:b"}, KitaruUsageError),
            ({"scope": "x", "scope_type": "project"}, KitaruUsageError),
        ],
    )
    def test_bad_configure_is_refused(self, kwargs: dict[str, Any], error: type) -> None:
        """configure() without a usable scope raises a clear error and changes nothing."""
        with pytest.raises(error):
            memory.configure(**kwargs)
        assert memory._process.scope is None

    @pytest.mark.parametrize("key", ["", "  ", "a:b", "_compaction/log", "spaces in key"])
    def test_bad_keys_are_refused(self, key: str) -> None:
        """Keys with colons, spaces, the reserved prefix or nothing in them are refused."""
        memory.configure(scope="keys")
        with pytest.raises(KitaruUsageError):
            memory.set(key, 1)

    def test_a_retry_without_the_seeded_scope_diverges_instead_of_switching(self) -> None:
        """A flow that ran with a process-wide scope, retried without it, reports a divergence."""
        FAIL_ONCE.clear()
        memory.configure(scope="seeded", scope_type="namespace")
        with pytest.raises(KitaruUserCodeError):
            seeded_reader.run().wait()
        exec_id = KitaruClient().executions.list()[0].exec_id
        memory._process.scope = None  # as in another process
        with pytest.raises(KitaruDivergenceError, match=r"memory 'memory\.get:flow:seeded_reader"):
            KitaruClient().executions.retry(exec_id).wait()

    def test_a_retry_that_writes_another_value_diverges(self) -> None:
        """A completed write resumed with a different value is a divergence, not a skip."""
        FAIL_ONCE.clear()
        WRITTEN["value"] = "first"
        with pytest.raises(KitaruUserCodeError):
            value_writer.run().wait()
        exec_id = KitaruClient().executions.list()[0].exec_id
        WRITTEN["value"] = "second"
        with pytest.raises(KitaruDivergenceError, match="value"):
            KitaruClient().executions.retry(exec_id).wait()
        assert raw_versions("written", "k") == [(1, 0)]


class TestVersionsAndSoftDeletes:
    def test_each_write_adds_a_version(self) -> None:
        """set() twice keeps both versions; get() gives the newest, get(version=) any."""
        memory.configure(scope="repo_docs", scope_type="namespace")
        memory.set("status", "draft")
        memory.set("status", "approved")
        assert memory.get("status") == "approved"
        assert memory.get("status", version=1) == "draft"
        assert [e.version for e in memory.history("status")] == [2, 1]

    def test_delete_writes_a_tombstone_and_keeps_history(self) -> None:
        """A deleted key reads None and leaves list(), but history() still shows every version."""
        memory.configure(scope="repo_docs", scope_type="namespace")
        memory.set("draft/status", "draft")
        memory.set("draft/status", "approved")
        memory.set("other", 1)
        tombstone = memory.delete("draft/status")
        assert tombstone is not None
        assert (tombstone.is_deleted, tombstone.version) == (True, 3)
        assert memory.get("draft/status") is None
        assert [e.key for e in memory.list()] == ["other"]
        history = memory.history("draft/status")
        assert [(e.version, e.is_deleted) for e in history] == [(3, True), (2, False), (1, False)]
        assert raw_versions("repo_docs", "draft/status") == [(1, 0), (2, 0), (3, 1)]

    def test_deleting_again_or_a_missing_key_writes_nothing(self) -> None:
        """delete() of a deleted key returns its tombstone; of a missing key None."""
        memory.configure(scope="repo_docs")
        memory.set("k", 1)
        first = memory.delete("k")
        again = memory.delete("k")
        assert first == again
        assert memory.delete("never") is None
        assert raw_versions("repo_docs", "k") == [(1, 0), (2, 1)]

    def test_stored_rows_cannot_be_rewritten(self) -> None:
        """Versions are append-only in the journal: an UPDATE is refused by the database."""
        memory.configure(scope="repo_docs")
        memory.set("k", 1)
        with (
            contextlib.closing(sqlite3.connect(store_file())) as conn,
            pytest.raises(sqlite3.IntegrityError, match="append-only"),
        ):
            conn.execute("UPDATE memories SET value = NULL")

    def test_values_come_back_with_their_types(self) -> None:
        """Values use checkpoint-output encoding: dataclasses, dates, tuples survive as such."""
        memory.configure(scope="typed")
        value = {"pref": Preference("dark", dt.date(2024, 1, 2)), "pair": (1, 2)}
        memory.set("prefs", value)
        assert memory.get("prefs") == value
        assert memory.history("prefs")[0].value_type == "dict"
        row = open_store().read_memory("namespace", "typed", "prefs")
        assert row is not None
        assert row.value == encode_value(value)

    def test_a_value_that_cannot_be_stored_is_refused_before_writing(self) -> None:
        """An unencodable value raises KitaruUsageError and adds no version."""
        memory.configure(scope="typed")
        with pytest.raises(KitaruUsageError, match="cannot be stored"):
            memory.set("bad", threading.Lock())
        assert raw_versions("typed", "bad") == []


class TestFlowBodyCalls:
    def test_memory_operations_are_durable_calls_of_the_flow(self) -> None:
        """Each memory operation in a flow body is journaled as a completed 'memory' call."""
        handle = research_agent.run("a")
        handle.wait()
        calls = KitaruClient().executions.get(handle.exec_id).checkpoints
        assert [(c.kind, c.status) for c in calls] == [
            ("memory", "completed"),
            ("checkpoint", "completed"),
            ("memory", "completed"),
            ("memory", "completed"),
            ("memory", "completed"),
        ]
        assert calls[0].invocation_id == "memory.get:flow:research_agent:stats/run_count"

    def test_reading_inside_a_checkpoint_raises_kitarus_context_error(self) -> None:
        """Inside a checkpoint, memory raises KitaruContextError with Kitaru's message."""
        assert checkpoint_reader.run().wait() == (
            "KitaruContextError: kitaru.memory.get() cannot be called inside a @checkpoint. "
            "Move memory operations to the flow body."
        )

    def test_writing_inside_a_checkpoint_fails_the_execution_and_writes_nothing(self) -> None:
        """An uncaught memory write in a checkpoint fails the run with KitaruContextError."""
        with pytest.raises(KitaruUserCodeError) as caught:
            checkpoint_writer.run().wait()
        assert caught.value.error_type.endswith("KitaruContextError")
        assert KitaruClient().memories.scopes() == []

    def test_a_write_after_the_lease_was_lost_is_refused(self) -> None:
        """A flow body whose lease another process took cannot write memory (fencing)."""
        GATE.clear()
        REACHED.clear()
        handle = gated_writer.run(background=True)
        try:
            assert REACHED.wait(30)
            with contextlib.closing(sqlite3.connect(store_file())) as conn:
                conn.execute(
                    "UPDATE leases SET owner = 'another/1' WHERE exec_id = ?", (handle.exec_id,)
                )
                conn.commit()
        finally:
            GATE.set()
        with pytest.raises(KitaruLeaseLostError):
            handle.wait()
        assert raw_versions("fenced", "key") == []

    def test_the_store_refuses_a_flow_write_without_the_lease(self) -> None:
        """write_memory for an execution is refused unless the writer holds its lease."""
        store = open_store()
        write = MemoryWrite(
            "namespace", "s", "k", encode_value(1), "int", exec_id="e1", call_key="c"
        )
        with pytest.raises(KitaruLeaseLostError):
            store.write_memory(write, owner="nobody")
        assert raw_versions("s", "k") == []


def _seed_conventions() -> None:
    client = KitaruClient()
    client.memories.set("conventions/test_runner", "pytest", scope="repo", scope_type="namespace")
    client.memories.set(
        "conventions/test_runner", "pytest -x", scope="repo", scope_type="namespace"
    )
    client.memories.set("conventions/python", "3.11", scope="repo", scope_type="namespace")
    client.memories.set("conventions/old", "gone", scope="repo", scope_type="namespace")
    client.memories.delete("conventions/old", scope="repo", scope_type="namespace")


class TestCompaction:
    @pytest.fixture(autouse=True)
    def _mock_model(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every model call is answered by the mock provider with a fixed summary."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "SUMMARY")
        monkeypatch.setenv("KITARU_DEFAULT_MODEL", "openai/gpt-5-nano")

    def test_single_key_compaction_writes_the_summary_back_and_logs_it(self) -> None:
        """compact(key=...) writes the summary as the key's next version and records it."""
        _seed_conventions()
        client = KitaruClient()
        result = client.memories.compact(
            scope="repo", scope_type="namespace", key="conventions/test_runner"
        )
        assert (result.entry.key, result.entry.version, result.sources_read) == (
            "conventions/test_runner",
            3,
            1,
        )
        assert client.artifacts.get(result.entry.artifact_id).load() == "SUMMARY"
        (record,) = client.memories.compaction_log(scope="repo", scope_type="namespace")
        assert record == result.compaction_record
        assert (record.operation, record.source_versions, record.target_version) == (
            "compact",
            [2],
            3,
        )
        assert record.source_mode == "current"
        assert record.model is not None

    def test_history_mode_reads_every_live_version(self) -> None:
        """source_mode='history' summarises each non-deleted version of the key."""
        _seed_conventions()
        result = KitaruClient().memories.compact(
            scope="repo",
            scope_type="namespace",
            key="conventions/test_runner",
            source_mode="history",
        )
        assert result.sources_read == 2
        assert result.compaction_record.source_versions == [2, 1]

    def test_multi_key_compaction_needs_a_target_and_skips_deleted_keys(self) -> None:
        """compact(keys=...) writes to target_key; deleted keys are not read; sources stay."""
        _seed_conventions()
        client = KitaruClient()
        keys = ["conventions/test_runner", "conventions/python", "conventions/old"]
        with pytest.raises(KitaruUsageError, match="target_key"):
            client.memories.compact(scope="repo", scope_type="namespace", keys=keys)
        result = client.memories.compact(
            scope="repo", scope_type="namespace", keys=keys, target_key="summaries/conventions"
        )
        assert result.sources_read == 2
        assert result.entry.key == "summaries/conventions"
        assert memory_value("repo", "conventions/python") == "3.11"

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"key": "a", "keys": ["b"]},
            {"key": "nope"},
            {"key": "conventions/old"},
            {"keys": ["x"], "target_key": "t", "source_mode": "history"},
            {"key": "conventions/python", "source_mode": "newest"},
        ],
    )
    def test_bad_requests_are_refused_before_any_model_call(self, kwargs: dict[str, Any]) -> None:
        """Missing, deleted or ambiguous sources raise KitaruUsageError and write nothing."""
        _seed_conventions()
        client = KitaruClient()
        with pytest.raises(KitaruUsageError):
            client.memories.compact(scope="repo", scope_type="namespace", **kwargs)
        assert client.memories.compaction_log(scope="repo", scope_type="namespace") == []

    def test_purges_are_logged_and_scope_purges_keep_the_log(self) -> None:
        """purge adds an audit record; purge_scope never removes the audit log."""
        _seed_conventions()
        client = KitaruClient()
        client.memories.purge(
            "conventions/test_runner", scope="repo", scope_type="namespace", keep=1
        )
        client.memories.purge_scope(scope="repo", scope_type="namespace", include_deleted=True)
        log = client.memories.compaction_log(scope="repo", scope_type="namespace")
        assert [(r.operation, r.versions_deleted, r.keep) for r in log] == [
            ("purge", 4, None),
            ("purge", 1, 1),
        ]
        assert log[1].source_keys == ["conventions/test_runner"]


class TestCompactionThroughAProvider:
    def test_the_prompt_carries_the_values_and_the_instruction(
        self, llm_server: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The real OpenAI SDK sends the instruction and every source value to the model."""
        llm_server.point_providers_here(monkeypatch)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-compaction")
        llm_server.reply_text("tests run with pytest -x on 3.11")
        _seed_conventions()
        result = KitaruClient().memories.compact(
            scope="repo",
            scope_type="namespace",
            keys=["conventions/test_runner", "conventions/python"],
            target_key="summaries/conventions",
            instruction="Summarize in one line.",
            model="openai/gpt-5-nano",
        )
        prompt = json.dumps(llm_server.last_request.body)
        for fragment in ("Summarize in one line.", "pytest -x", "3.11", "conventions/python"):
            assert fragment in prompt
        assert memory_value("repo", "summaries/conventions") == "tests run with pytest -x on 3.11"
        assert result.compaction_record.model == "openai/gpt-5-nano"


class TestReplay:
    def test_calls_before_the_replay_point_are_reused_and_later_ones_run(self) -> None:
        """A replay reuses the recorded read, and writes a new version only after from_."""
        source = research_agent.run("a")
        source.wait()
        replay = research_agent.replay(source.exec_id, from_="increment_runs")
        # The read before the replay point returns what the source read (nothing yet),
        # though the counter holds 1 now; the write after it runs again.
        assert replay.wait()["previous"] is None
        client = KitaruClient()
        history = client.memories.history(
            "stats/run_count", scope="research_agent", scope_type="flow"
        )
        assert [(e.version, e.execution_id) for e in history] == [
            (2, replay.exec_id),
            (1, source.exec_id),
        ]
        assert (
            client.memories.value("stats/run_count", scope="research_agent", scope_type="flow") == 1
        )

    def test_an_overridden_output_reaches_the_write_that_stores_it(self) -> None:
        """A write of an overridden checkpoint output runs again with the new value."""
        source = counting_agent.run()
        source.wait()
        replay = counting_agent.replay(
            source.exec_id, from_="finish", overrides={"checkpoint.increment_runs": 7}
        )
        assert replay.wait() == 7
        history = KitaruClient().memories.history("runs", scope="counts", scope_type="namespace")
        assert [e.execution_id for e in history] == [replay.exec_id, source.exec_id]
        assert memory_value("counts", "runs") == 7


class TestOlderJournals:
    def test_a_journal_from_before_memory_gains_it_and_keeps_its_executions(self) -> None:
        """Opening a schema-1 journal migrates it: memory works and old executions still read."""
        shutil.copyfile(REPO / "tests" / "golden" / "completed_v1.journal", store_file())
        client = KitaruClient()
        (execution,) = client.executions.list()
        client.memories.set("k", "v", scope="old", scope_type="namespace")
        assert client.memories.value("k", scope="old", scope_type="namespace") == "v"
        assert client.executions.get(execution.exec_id).status == "completed"
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _child_env(**changes: str | None) -> dict[str, str]:
    """A child's environment with this worktree's kitaru importable."""
    return child_env(PYTHONPATH=str(REPO), **changes)


def _resume(exec_id: str, cwd: Path) -> dict[str, Any]:
    result = kitaru("executions", "resume", exec_id, "-o", "json", cwd=cwd, env=_child_env())
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _only_exec_id() -> str:
    executions = KitaruClient().executions.list()
    assert len(executions) == 1
    return executions[0].exec_id


class TestCrashAndResume:
    @pytest.mark.slow
    def test_a_write_completed_before_a_kill_is_not_written_again(self, tmp_path: Path) -> None:
        """Killed right after memory.set, the resumed run keeps exactly one version of it."""
        first = run_flow("memory_agent", "t1", env=_child_env(MEMORY_KILL="after:set"))
        assert first.returncode == KILLED, first.stderr
        exec_id = _only_exec_id()
        assert raw_versions("agent", "counter") == [(1, 0)]

        _resume(exec_id, tmp_path)

        assert raw_versions("agent", "counter") == [(1, 0)]
        assert raw_versions("agent", "last_tag") == [(1, 0)]
        history = KitaruClient().memories.history("counter", scope="agent", scope_type="namespace")
        assert [e.execution_id for e in history] == [exec_id]

    @pytest.mark.slow
    def test_a_resumed_read_returns_what_it_read_before_the_kill(self, tmp_path: Path) -> None:
        """A completed read returns its recorded value on resume, though the entry changed."""
        client = KitaruClient()
        client.memories.set("counter", 41, scope="agent", scope_type="namespace")
        first = run_flow("memory_agent", "t1", env=_child_env(MEMORY_KILL="after:get"))
        assert first.returncode == KILLED, first.stderr
        exec_id = _only_exec_id()
        client.memories.set("counter", 1000, scope="agent", scope_type="namespace")

        _resume(exec_id, tmp_path)

        info = kitaru("executions", "get", exec_id, "-o", "json", cwd=tmp_path, env=_child_env())
        assert json.loads(info.stdout)["result"] == {"seen": 41, "counter": 42}
        assert client.memories.value("counter", scope="agent", scope_type="namespace") == 42

    @pytest.mark.slow
    def test_a_write_committed_but_not_journaled_is_found_on_resume(self, tmp_path: Path) -> None:
        """Killed after the version is stored but before its call completes: still one version."""
        KitaruClient().executions.list()  # creates the journal's tables
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            # The completion of the counter write takes seconds (a large join in a
            # trigger), which opens a window to kill the process after the memory row
            # was committed and before the call's completion is.
            conn.execute("CREATE TABLE slow(x)")
            conn.executemany("INSERT INTO slow VALUES (?)", [(i,) for i in range(8000)])
            conn.execute(
                "CREATE TRIGGER slow_completion BEFORE INSERT ON events "
                "WHEN NEW.type IN ('call_completed', 'call_started_and_completed') AND "
                "instr(NEW.body, CAST('memory.set:namespace:agent:counter' AS BLOB)) > 0 "
                "BEGIN SELECT count(*) FROM slow a, slow b WHERE a.x + b.x < 0; END"
            )
            conn.commit()
        with background(flow_command("memory_agent", "t1"), cwd=REPO, env=_child_env()) as proc:
            deadline = time.monotonic() + 30
            while raw_versions("agent", "counter") == [] and time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.01)
            proc.kill()
            proc.wait()
        exec_id = _only_exec_id()
        calls = KitaruClient().executions.get(exec_id).checkpoints
        counter_write = [c for c in calls if c.invocation_id.startswith("memory.set:")]
        assert all(c.status != "completed" for c in counter_write)
        assert raw_versions("agent", "counter") == [(1, 0)]
        with contextlib.closing(sqlite3.connect(store_file())) as conn:
            conn.execute("DROP TRIGGER slow_completion")
            conn.commit()

        _resume(exec_id, tmp_path)

        assert raw_versions("agent", "counter") == [(1, 0)]
        assert KitaruClient().executions.get(exec_id).status == "completed"


class TestClientMemories:
    def test_explicit_scope_round_trip(self) -> None:
        """client.memories set/get/list/history/delete/scopes work on an explicit scope."""
        client = KitaruClient()
        created = client.memories.set(
            "team/default_model", {"alias": "fast"}, scope="repo_docs", scope_type="namespace"
        )
        assert (created.version, created.execution_id, created.value_type) == (1, None, "dict")
        client.memories.set("team/other", 1, scope="repo_docs", scope_type="namespace")
        client.memories.set("x", 1, scope="research_agent", scope_type="flow")
        latest = client.memories.get(
            "team/default_model", scope="repo_docs", scope_type="namespace"
        )
        assert latest == created
        assert client.artifacts.get(created.artifact_id).load() == {"alias": "fast"}
        listed = client.memories.list(scope="repo_docs", scope_type="namespace", prefix="team/d")
        assert [e.key for e in listed] == ["team/default_model"]
        assert client.memories.delete("team/other", scope="repo_docs", scope_type="namespace")
        assert [(s.scope, s.scope_type, s.entry_count) for s in client.memories.scopes()] == [
            ("repo_docs", "namespace", 1),
            ("research_agent", "flow", 1),
        ]
        history = client.memories.history("team/other", scope="repo_docs", scope_type="namespace")
        assert [e.is_deleted for e in history] == [True, False]
        assert created.model_dump(mode="json")["created_at"] == created.created_at.isoformat()

    def test_the_same_key_in_another_scope_type_is_another_entry(self) -> None:
        """Scope type is part of an entry's identity: namespace 'x' and flow 'x' differ."""
        client = KitaruClient()
        client.memories.set("k", "ns", scope="x", scope_type="namespace")
        client.memories.set("k", "fl", scope="x", scope_type="flow")
        assert client.memories.value("k", scope="x", scope_type="namespace") == "ns"
        assert client.memories.value("k", scope="x", scope_type="flow") == "fl"

    def test_a_detached_write_into_an_execution_scope_names_its_flow(self) -> None:
        """A write into a finished execution's scope is detached but knows the owning flow."""
        handle = research_agent.run("a")
        handle.wait()
        entry = KitaruClient().memories.set(
            "execution/notes", {"status": "reviewed"}, scope=handle.exec_id, scope_type="execution"
        )
        assert (entry.execution_id, entry.flow_name) == (None, "research_agent")

    def test_purge_removes_old_versions_physically(self) -> None:
        """purge(keep=1) deletes all but the newest version; keep=None deletes them all."""
        client = KitaruClient()
        for value in range(4):
            client.memories.set("k", value, scope="p", scope_type="namespace")
        result = client.memories.purge("k", scope="p", scope_type="namespace", keep=1)
        assert (result.versions_deleted, result.keys_affected) == (3, 1)
        assert raw_versions("p", "k") == [(4, 0)]
        assert client.memories.value("k", scope="p", scope_type="namespace") == 3
        result = client.memories.purge("k", scope="p", scope_type="namespace")
        assert result.versions_deleted == 1
        assert raw_versions("p", "k") == []
        assert client.memories.history("k", scope="p", scope_type="namespace") == []

    def test_purge_scope_skips_deleted_keys_unless_asked(self) -> None:
        """purge_scope trims live keys; tombstoned keys go only with include_deleted."""
        client = KitaruClient()
        for value in range(3):
            client.memories.set("live", value, scope="p", scope_type="namespace")
            client.memories.set("gone", value, scope="p", scope_type="namespace")
        client.memories.delete("gone", scope="p", scope_type="namespace")
        result = client.memories.purge_scope(scope="p", scope_type="namespace", keep=1)
        assert (result.versions_deleted, result.keys_affected) == (2, 1)
        assert raw_versions("p", "gone") == [(1, 0), (2, 0), (3, 0), (4, 1)]
        result = client.memories.purge_scope(
            scope="p", scope_type="namespace", keep=1, include_deleted=True
        )
        assert (result.versions_deleted, result.keys_affected) == (4, 1)
        assert raw_versions("p", "gone") == []
        assert raw_versions("p", "live") == [(3, 0)]

    def test_a_negative_keep_is_refused(self) -> None:
        """purge(keep=-1) is a usage error, and nothing is deleted."""
        client = KitaruClient()
        client.memories.set("k", 1, scope="p", scope_type="namespace")
        with pytest.raises(KitaruUsageError, match="keep"):
            client.memories.purge("k", scope="p", scope_type="namespace", keep=-1)
        assert raw_versions("p", "k") == [(1, 0)]

    def test_reindex_says_it_is_not_needed_and_what_to_use(self) -> None:
        """reindex() raises KitaruFeatureNotAvailableError naming what to use instead."""
        with pytest.raises(KitaruFeatureNotAvailableError, match=r"memories\.scopes\(\)"):
            KitaruClient().memories.reindex(apply=True)

    def test_a_bad_scope_type_is_refused(self) -> None:
        """An unknown scope_type raises KitaruUsageError naming the allowed ones."""
        with pytest.raises(KitaruUsageError, match="'namespace', 'flow' or 'execution'"):
            KitaruClient().memories.list(scope="p", scope_type="project")  # type: ignore[arg-type]

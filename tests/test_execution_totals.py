"""The executions table keeps each execution's calls, tokens and estimated cost.

A listing (``executions.summaries()``, the dashboard's executions page) shows them for
every row without reading the execution's journal; the append that writes the events
moves them in the same transaction, so they always say what folding the journal says.
Journals written before the table kept them get them when the store is opened.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from helpers import TIMEOUT
from llm_server import FakeLLMServer
from store_backends import StoreBackend

import kitaru
from kitaru import checkpoint, flow
from kitaru._store_check import check_store
from kitaru._stores import new_store
from kitaru.client import CostTotal, KitaruClient
from kitaru.errors import KitaruStateError
from kitaru.ui._data import Snapshots, execution_rows

PRICED = "openai/gpt-4o"
UNPRICED = "openai/kitaru-unlisted-model"
"""A model the price table does not list: its requests have tokens but no cost."""

_failures: Counter[str] = Counter()


@checkpoint(retries=1)
def flaky(text: str) -> str:
    if _failures["flaky"] == 0:
        _failures["flaky"] += 1
        raise ConnectionError("the service hiccuped")
    return text.upper()


@checkpoint
def ask(topic: str, model: str) -> str:
    return str(kitaru.llm(f"Tell me about {topic}", model=model))


@flow
def busy(model: str) -> str:
    plan = kitaru.llm("Plan the work", model=model)
    notes = [ask(topic, model).load() for topic in ("tides", "winds")]
    approved = kitaru.wait(schema=bool, name="approve", timeout=0)
    return flaky(f"{plan} {' '.join(notes)} {approved}")  # type: ignore[return-value]


@pytest.fixture
def server(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """The fake provider, answering with 1,000 input and 100 output tokens."""
    llm_server.point_providers_here(monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-totals-9f8e7d")
    llm_server.reply_text("an answer", input_tokens=1000, output_tokens=100)
    return llm_server


def folded(exec_id: str) -> tuple[int, int | None, float | None]:
    """Calls, tokens and cost as the client makes them from the folded journal."""
    execution = KitaruClient().executions.get(exec_id)
    known = [c.total_tokens for c in execution.llm_calls if c.total_tokens is not None]
    cost = CostTotal.of(execution.llm_calls).estimated_usd
    return len(execution.checkpoints), (sum(known) if known else None), cost


def kept(exec_id: str) -> tuple[int, int | None, float | None]:
    """Calls, tokens and cost as the executions table keeps them."""
    (summary,) = [s for s in KitaruClient().executions.summaries() if s.exec_id == exec_id]
    return summary.calls, summary.tokens, summary.cost


def run_everything() -> list[str]:
    """Executions with retries, a wait requested again after a resume, model calls in a
    checkpoint and in the flow body, priced and unpriced, and a replay that reuses
    requests it did not pay for; return their ids."""
    _failures.clear()
    client = KitaruClient()
    ids = []
    for model in (PRICED, UNPRICED):
        handle = busy.run(model)
        with pytest.raises(KitaruStateError, match="waiting for input"):
            handle.wait(timeout=TIMEOUT)
        # Resumed with no input yet: the wait is requested a second time.
        with pytest.raises(KitaruStateError, match="waiting for input"):
            client.executions.resume(handle.exec_id).wait(timeout=TIMEOUT)
        client.executions.input(handle.exec_id, value=True)
        client.executions.resume(handle.exec_id).wait(timeout=TIMEOUT)
        ids.append(handle.exec_id)
        _failures.clear()
    replayed = client.executions.replay(ids[0], from_="flaky", background=False)
    ids.append(replayed.exec_id)
    return ids


class TestTotalsAgreeWithTheFoldedJournal:
    def test_every_execution_lists_what_its_folded_journal_says(
        self,
        server: FakeLLMServer,
        store_backend: StoreBackend,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Calls, tokens and cost of each listed execution equal those of its fold."""
        monkeypatch.setenv("KITARU_STORE", store_backend.location(tmp_path / "store"))
        ids = run_everything()
        for exec_id in ids:
            assert kept(exec_id) == folded(exec_id)
        store = new_store(store_backend.location(tmp_path / "store"))
        try:
            assert check_store(store).problems == []
        finally:
            store.close()
        priced, unpriced, replay = (kept(exec_id) for exec_id in ids)
        # Three requests of 1,100 tokens each; a flaky call with two attempts counts once.
        assert priced == (5, 3300, pytest.approx(3 * 0.0035))
        assert unpriced == (5, 3300, None)
        # The replay copied the flow body's request: its tokens, not its cost.
        assert replay == (5, 1100, None)


def _forget_totals_sqlite(location: str) -> None:
    path = location.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE execution_calls")
        for column in ("calls", "tokens", "cost"):
            conn.execute(f"ALTER TABLE executions DROP COLUMN {column}")
        conn.execute("PRAGMA user_version=6")


def _forget_totals_postgres(location: str) -> None:
    import psycopg

    from kitaru.journal.postgres import PostgresStore

    store = PostgresStore(location)
    schema = store._s
    store.close()
    with psycopg.connect(location.partition("&kitaru_schema=")[0], autocommit=True) as conn:
        conn.execute(f"DROP TABLE {schema}.execution_calls")
        conn.execute(
            f"ALTER TABLE {schema}.executions DROP COLUMN calls, DROP COLUMN tokens, "
            "DROP COLUMN cost"
        )
        conn.execute(f"UPDATE {schema}.meta SET value = '2' WHERE key = 'schema_version'")


class TestOlderJournalsGetTheirTotals:
    def test_opening_a_journal_from_before_the_totals_sums_them_once(
        self,
        server: FakeLLMServer,
        store_backend: StoreBackend,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The migration fills each execution's totals with what its fold says, and later
        appends go on from there."""
        location = store_backend.location(tmp_path / "store")
        monkeypatch.setenv("KITARU_STORE", location)
        ids = run_everything()
        before = {exec_id: kept(exec_id) for exec_id in ids}
        forget = {"sqlite": _forget_totals_sqlite, "postgresql": _forget_totals_postgres}
        forget[store_backend.name](location)
        reopened = new_store(location)
        try:
            rows = {row.exec_id: row for row in reopened.list_executions()}
        finally:
            reopened.close()
        assert {e: (rows[e].calls, rows[e].tokens, rows[e].cost) for e in ids} == before
        # The noted identities came back too: a new run adds to the sums, and its
        # retried call still counts once.
        monkeypatch.setenv("KITARU_STORE", location)
        _failures.clear()
        more = KitaruClient().executions.replay(ids[0], from_="ask_2", background=False)
        assert kept(more.exec_id) == folded(more.exec_id)


class TestTheListingReadsNoJournal:
    def test_the_executions_page_shows_totals_of_a_journal_it_cannot_read(
        self, server: FakeLLMServer, kitaru_env: Path, tmp_path: Path
    ) -> None:
        """The dashboard's rows come from the table: removing an execution's later
        events (which folding would need) leaves its row's totals as they were."""
        (exec_id, *_) = run_everything()
        totals = kept(exec_id)
        with sqlite3.connect(tmp_path / "kitaru.db") as conn:
            conn.execute("DROP TRIGGER events_refuse_delete")
            conn.execute("DELETE FROM events WHERE exec_id = ? AND seq > 1", (exec_id,))
        page = execution_rows(
            Snapshots(KitaruClient()), flow=None, status=None, id_prefix=exec_id, page=1
        )
        (row,) = page["items"]
        assert (row["calls"], row["tokens"], row["cost"]) == totals

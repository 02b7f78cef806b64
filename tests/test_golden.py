"""Journals written by earlier versions must stay readable and resumable.

The ``tests/golden/*.journal`` files were written by kitaru itself (see
``tests/golden/make_golden.py``) and are committed; every run replays them with the
code in ``tests/golden/golden_flows.py``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from kitaru import KitaruDivergenceError
from kitaru.client import KitaruClient

GOLDEN = Path(__file__).parent / "golden"
EXPECTED_RESULT = {"order": ["kitaru/b", "kitaru/a"], "count": 2, "tags": {"golden"}}


@pytest.fixture
def golden_flows(monkeypatch: pytest.MonkeyPatch) -> object:
    """Import the flows the golden journals were recorded with."""
    monkeypatch.syspath_prepend(str(GOLDEN))
    import golden_flows

    return golden_flows


@pytest.fixture
def side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "side-effects.log"
    log.touch()
    monkeypatch.setenv("GOLDEN_SIDE_EFFECTS", str(log))
    return log


def _use(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Copy a golden journal into place as the store; return its only execution id."""
    store = tmp_path / f"{name}.db"
    shutil.copyfile(GOLDEN / f"{name}.journal", store)
    monkeypatch.setenv("KITARU_STORE", str(store))
    (exec_id,) = sqlite3.connect(store).execute("SELECT exec_id FROM executions").fetchone()
    return str(exec_id)


def _events(tmp_path: Path, name: str) -> list[tuple[int, str, bytes]]:
    conn = sqlite3.connect(tmp_path / f"{name}.db")
    return conn.execute("SELECT seq, type, body FROM events ORDER BY position").fetchall()


class TestCompletedJournal:
    def test_result_reads_back_with_its_types(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, golden_flows: object
    ) -> None:
        """A completed golden execution reports its result, calls and timings."""
        exec_id = _use("completed_v1", tmp_path, monkeypatch)
        execution = KitaruClient().executions.get(exec_id)
        assert execution.status == "completed"
        assert execution.result() == EXPECTED_RESULT
        assert [c.invocation_id for c in execution.checkpoints] == ["gather", "rank", "publish"]
        assert all(c.status == "completed" for c in execution.checkpoints)
        assert execution.checkpoints[0].checkpoint_type == "tool_call"


class TestInterruptedJournal:
    def test_resume_finishes_without_redoing_recorded_calls(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        golden_flows: object,
        side_effects: Path,
    ) -> None:
        """Resuming the interrupted golden journal replays gather and rank and runs publish."""
        exec_id = _use("interrupted_v1", tmp_path, monkeypatch)
        before = KitaruClient().executions.get(exec_id)
        assert before.status == "running"
        assert before.interrupted
        assert [c.status for c in before.checkpoints] == ["completed", "completed", "interrupted"]

        result = KitaruClient().executions.resume(exec_id).wait(timeout=30)

        assert result == EXPECTED_RESULT
        assert side_effects.read_text().split() == ["publish"]
        publish = KitaruClient().executions.get(exec_id).checkpoints[2]
        assert [a.status for a in publish.attempts] == ["interrupted", "completed"]

    def test_renamed_checkpoint_diverges_and_leaves_journal_intact(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        golden_flows: object,
        side_effects: Path,
    ) -> None:
        """Code that renamed a recorded checkpoint stops with a divergence naming both calls."""
        exec_id = _use("interrupted_v1", tmp_path, monkeypatch)
        recorded = _events(tmp_path, "interrupted_v1")
        monkeypatch.setenv("GOLDEN_RENAMED", "1")

        with pytest.raises(KitaruDivergenceError) as caught:
            KitaruClient().executions.resume(exec_id).wait(timeout=30)

        error = caught.value
        assert error.position == 1
        assert error.expected == "checkpoint 'rank'"
        assert error.actual == "checkpoint 'rank_v2'"
        assert side_effects.read_text().split() == []
        after = _events(tmp_path, "interrupted_v1")
        assert after[: len(recorded)] == recorded
        assert [t for _, t, _ in after[len(recorded) :]] == [
            "execution_resumed",
            "execution_failed",
        ]


class TestFailedJournal:
    def test_retry_runs_the_failed_call_again(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        golden_flows: object,
        side_effects: Path,
    ) -> None:
        """Retrying the failed golden execution runs only publish again, and completes."""
        exec_id = _use("failed_v1", tmp_path, monkeypatch)
        failed = KitaruClient().executions.get(exec_id)
        assert failed.status == "failed"
        assert failed.failure is not None
        assert failed.failure.exception_type == "ConnectionError"
        assert failed.failure.call == "publish"
        assert len(failed.checkpoints[2].attempts) == 2

        result = KitaruClient().executions.retry(exec_id).wait(timeout=30)

        assert result == EXPECTED_RESULT
        assert side_effects.read_text().split() == ["publish"]


def test_golden_values_keep_their_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, golden_flows: object
) -> None:
    """Recorded dataclasses, dates and tuples decode to the same types as when written."""
    from kitaru._stores import open_store
    from kitaru.runtime.runner import load_state
    from kitaru.runtime.values import decode_value

    exec_id = _use("completed_v1", tmp_path, monkeypatch)
    store = open_store()
    state = load_state(store, exec_id)
    gather = state.calls["gather"].output
    assert gather is not None
    data = gather.inline if gather.inline is not None else store.read_payload(gather.hash or "")
    findings = decode_value(data)
    finding_type = sys.modules["golden_flows"].Finding
    assert findings[0] == finding_type("kitaru/a", 0.5, dt.date(2026, 1, 2))

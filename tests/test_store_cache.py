"""The process-wide store cache holds every journal it opened open until it is told to
forget it; the test suite forgets each test's journals when the test ends, so the number
of open files stays flat over a run of thousands of tests.

The connections a finished flow thread opened close when the garbage collector frees
them (a ``sqlite3.Connection`` is in a reference cycle with its statement cache), so the
counts below are taken after a collection.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from helpers import cached_stores, forget_stores_opened_since, open_fds

from kitaru import checkpoint, flow


@checkpoint
def double(x: int) -> int:
    return 2 * x


@flow
def doubling(x: int) -> int:
    return double(x).load()


class TestForgettingCachedJournals:
    def test_a_cached_journal_keeps_files_open_until_forgotten(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Running a flow leaves its journal open in the cache; forgetting it closes them."""
        monkeypatch.setenv("KITARU_STORE", str(tmp_path / "one.db"))
        gc.collect()
        before_stores, before_fds = cached_stores(), open_fds()
        assert doubling.run(3).wait() == 6
        gc.collect()
        assert open_fds() > before_fds, "the cache holds the journal's files open"
        forget_stores_opened_since(before_stores)
        assert cached_stores() == before_stores
        gc.collect()
        assert open_fds() == before_fds

    def test_many_journals_forgotten_in_turn_leave_the_open_file_count_flat(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Ten journals, each forgotten after its flow ran, leave no file open behind."""
        gc.collect()
        before_fds = open_fds()
        for n in range(10):
            before_stores = cached_stores()
            monkeypatch.setenv("KITARU_STORE", str(tmp_path / f"journal-{n}.db"))
            assert doubling.run(n).wait() == 2 * n
            forget_stores_opened_since(before_stores)
        gc.collect()
        assert open_fds() == before_fds

"""``kitaru store copy``: journals move between stores whole, verified, never overwriting."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, TIMEOUT, assert_clean_error, child_env, kitaru, side_effects

from kitaru._stores import new_store
from kitaru.journal.store import Lease, Store
from kitaru.runtime.ownership import this_host

KINDS = ("finish", "fail", "wait", "crash")


def _run(kind: str, store: str, side: Path, scope: str = "") -> None:
    subprocess.run(
        [sys.executable, "-m", "tests.flows.graduating", kind],
        cwd=REPO,
        env=child_env(
            KITARU_STORE=store,
            GRADUATING_SIDE=str(side),
            GRADUATING_KILL="1",
            GRADUATING_SCOPE=scope,
        ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _fill(source: str, side: Path, kinds: tuple[str, ...] = KINDS) -> dict[str, str]:
    """Run one execution of each kind into ``source``; return their ids by kind."""
    ids: dict[str, str] = {}
    for kind in kinds:
        store = new_store(source)
        before = set(store.all_exec_ids())
        store.close()
        _run(kind, source, side)
        store = new_store(source)
        (ids[kind],) = set(store.all_exec_ids()) - before
        store.close()
    return ids


def _copy(source: str, destination: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return kitaru("store", "copy", source, destination, *extra, cwd=REPO, env=child_env())


def _journal(url: str) -> dict[str, object]:
    """Everything a copy must carry over, read back through the store protocol."""
    store: Store = new_store(url)
    try:
        ids = store.all_exec_ids()
        memories = [
            row
            for newest in store.memory_latest()
            for row in store.memory_history(newest.scope_type, newest.scope, newest.key)
        ]
        return {
            "events": {i: store.read_events(i) for i in ids},
            "executions": {i: store.get_execution(i) for i in ids},
            "payloads": sorted(store.all_payloads()),
            "memories": sorted(
                ((m.scope, m.key, m.version, m.value, m.created_at, m.call_key) for m in memories),
                key=repr,
            ),
        }
    finally:
        store.close()


def _copy_file(source: str, destination: str) -> None:
    """Copy a SQLite journal file (its writers have exited, so it is whole)."""
    shutil.copyfile(source.removeprefix("sqlite:///"), destination.removeprefix("sqlite:///"))


@pytest.fixture
def source(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'source.db'}"


@pytest.mark.slow
class TestGraduateToPostgres:
    def test_every_kind_of_execution_arrives_whole_and_resumes_there(
        self, source: str, pg_url: str, tmp_path: Path
    ) -> None:
        """A SQLite journal copied to PostgreSQL reads back the same, and the interrupted
        execution resumes there without re-running its completed checkpoint."""
        side = tmp_path / "side.txt"
        ids = _fill(source, side)
        assert side_effects(side)["fetch:crash"] == 1
        statuses = {k: new_store(source).get_execution(i).status for k, i in ids.items()}  # type: ignore[union-attr]
        assert statuses == {
            "finish": "completed",
            "fail": "failed",
            "wait": "waiting",
            "crash": "running",
        }

        done = _copy(source, pg_url, "-o", "json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["copied"] == sorted(ids.values())
        assert report["skipped"] == []
        assert report["payloads"] >= 1
        assert report["memory_versions"] == 4
        before = _journal(source)
        assert _journal(pg_url) == before
        assert before["payloads"]
        assert before["memories"]

        resumed = kitaru(
            "executions", "resume", ids["crash"], cwd=REPO,
            env=child_env(KITARU_STORE=pg_url, GRADUATING_SIDE=str(side)),
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        destination = new_store(pg_url)
        try:
            row = destination.get_execution(ids["crash"])
            assert row is not None
            assert row.status == "completed"
            # The memory write the crashed run made before its death kept its call key in
            # the copy, so the resumed run found it instead of writing a second version.
            assert len(destination.memory_history("namespace", "crash", "fetched")) == 1
        finally:
            destination.close()
        effects = side_effects(side)
        assert effects["fetch:crash"] == 1  # recorded before the copy: replayed, not run
        assert effects["finish"] == 2  # the finished execution's, then the resumed one's
        assert _journal(source) == before  # the source is only read


@pytest.mark.slow
class TestExistingExecutions:
    def test_existing_ids_stop_the_copy_before_anything_is_written(
        self, source: str, pg_url: str, tmp_path: Path
    ) -> None:
        """A copy into a store that already holds one of the executions exits 1 naming it,
        and writes nothing, not even the executions that were new."""
        ids = _fill(source, tmp_path / "side.txt", kinds=("finish", "crash"))
        first = f"sqlite:///{tmp_path / 'first.db'}"
        _run("finish", first, tmp_path / "other.txt", scope="first-")
        assert _copy(first, pg_url).returncode == 0
        # The same execution id in both sources: copy the first one's journal in.
        taken = new_store(first).all_exec_ids()[0]
        clash = f"sqlite:///{tmp_path / 'clash.db'}"
        _copy_file(source, clash)
        assert _copy(first, clash).returncode == 0
        before = _journal(pg_url)

        refused = _copy(clash, pg_url)
        assert_clean_error(refused, taken, "--skip-existing", "Nothing was copied")
        assert _journal(pg_url) == before
        for exec_id in ids.values():
            assert exec_id not in refused.stderr

    def test_skip_existing_copies_only_the_others(
        self, source: str, pg_url: str, tmp_path: Path
    ) -> None:
        """With ``--skip-existing`` the executions already there are left as they are and
        the others are copied."""
        ids = _fill(source, tmp_path / "side.txt", kinds=("finish", "wait"))
        assert _copy(source, pg_url).returncode == 0
        more = f"sqlite:///{tmp_path / 'more.db'}"
        _copy_file(source, more)
        _run("finish", more, tmp_path / "other.txt", scope="more-")
        new = set(new_store(more).all_exec_ids()) - set(ids.values())

        done = _copy(more, pg_url, "--skip-existing", "-o", "json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["copied"] == sorted(new)
        assert report["skipped"] == sorted(ids.values())
        assert _journal(pg_url) == _journal(more)


class TestRunningExecutions:
    def test_an_execution_running_in_the_source_is_refused(
        self, source: str, tmp_path: Path
    ) -> None:
        """An execution whose lease is live in the source stops the copy with exit 1 naming
        it, and the destination gets nothing."""
        ids = _fill(source, tmp_path / "side.txt", kinds=("crash",))
        store = new_store(source)
        owner = "tests/running"
        lease = Lease(ids["crash"], owner, this_host(), os.getpid(), "", time.time() + 60)
        assert store.claim(lease) is None  # held by this process: alive
        destination = f"sqlite:///{tmp_path / 'destination.db'}"
        try:
            refused = _copy(source, destination)
        finally:
            store.release(ids["crash"], owner)
            store.close()
        assert_clean_error(refused, ids["crash"], "running", "Nothing was copied")
        assert new_store(destination).all_exec_ids() == []


class TestDamage:
    def test_a_damaged_event_stops_the_copy_naming_it(
        self, source: str, pg_url: str, tmp_path: Path
    ) -> None:
        """A flipped byte in one event of the SQLite source stops the copy with exit 1,
        naming the execution and the event, and nothing reaches the destination."""
        ids = _fill(source, tmp_path / "side.txt", kinds=("finish",))
        path = source.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            (body,) = conn.execute(
                "SELECT body FROM events WHERE exec_id = ? AND seq = 2", (ids["finish"],)
            ).fetchone()
            flipped = bytes([body[0] ^ 0x01]) + bytes(body[1:])
            triggers = [
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
                )
            ]
            for name in triggers:
                conn.execute(f'DROP TRIGGER "{name}"')
            conn.execute(
                "UPDATE events SET body = ? WHERE exec_id = ? AND seq = 2",
                (flipped, ids["finish"]),
            )

        refused = _copy(source, pg_url)
        assert_clean_error(refused, ids["finish"], "Event 2", "damaged")
        assert new_store(pg_url).all_exec_ids() == []

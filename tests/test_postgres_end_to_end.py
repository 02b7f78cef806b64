"""What works on SQLite works unchanged on a PostgreSQL journal: the real ``kitaru``
command and the Python API, run as a user would against the session's PostgreSQL server
(a fresh database per test; a local stack, no workers)."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from helpers import (
    REPO,
    TIMEOUT,
    assert_clean_error,
    background,
    child_env,
    kitaru,
    kitaru_command,
    run_flow,
    side_effects,
    started,
)

import kitaru as kt
from kitaru import KitaruClient, checkpoint, flow, memory
from kitaru.journal.postgres import PostgresStore


@pytest.fixture
def store(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's journal is a fresh PostgreSQL database, for this process and its children."""
    monkeypatch.setenv("KITARU_STORE", pg_url)
    return pg_url


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the repository for the commands to start in."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


def only_execution() -> str:
    (execution,) = KitaruClient().executions.list()
    return execution.exec_id


PIPELINE_RESULT = {
    "numbers": [1, 2, 3],
    "squares": [1, 4, 9],
    "shifted": [[11, 14, 19]],
    "summary": {"total": 45, "count": 3},
}


def run_pipeline(side: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_flow("pipeline", "3", env=child_env(PIPELINE_SIDE=str(side), **env))


# -- resume: a TCP URL, and a stack ------------------------------------------------------


class TestResumeOverTcp:
    def test_a_flow_killed_mid_checkpoint_resumes_through_a_user_host_port_url(
        self, pg_server: Any, pg_url: str, tmp_path: Path, elsewhere: Path, monkeypatch: Any
    ) -> None:
        """With ``postgresql://USER@127.0.0.1:PORT/DB``, a SIGKILLed run resumes from its
        journal: only the killed checkpoint runs again."""
        url = pg_server.tcp_url(database_of(pg_url))
        assert urlsplit(url).port == pg_server.port
        assert "host=" not in url
        monkeypatch.setenv("KITARU_STORE", url)
        side = tmp_path / "side.txt"
        killed = run_pipeline(side, PIPELINE_KILL="inside:offset")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        exec_id = only_execution()
        assert KitaruClient().executions.get(exec_id).interrupted
        resumed = kitaru(
            "executions", "resume", exec_id, cwd=elsewhere, env=child_env(PIPELINE_SIDE=str(side))
        )
        assert resumed.returncode == 0, resumed.stderr
        execution = KitaruClient().executions.get(exec_id)
        assert (execution.status, execution.result()) == ("completed", PIPELINE_RESULT)
        assert side_effects(side) == Counter(
            {
                "load_numbers": 1,
                "square:1": 1,
                "square:2": 1,
                "square:3": 1,
                "offset": 2,
                "summarise": 1,
            }
        )


class TestStack:
    def test_a_created_and_selected_stack_records_on_postgresql(
        self, pg_url: str, tmp_path: Path, elsewhere: Path, monkeypatch: Any
    ) -> None:
        """``stack create team --store URL`` then ``stack use team``: flows and commands
        use that database with no KITARU_STORE."""
        env = child_env(KITARU_STORE=None)
        created = kitaru("stack", "create", "team", "--store", pg_url, cwd=elsewhere, env=env)
        assert created.returncode == 0, created.stderr
        assert kitaru("stack", "use", "team", cwd=elsewhere, env=env).returncode == 0
        side = tmp_path / "side.txt"
        ran = run_flow("pipeline", "3", env=child_env(KITARU_STORE=None, PIPELINE_SIDE=str(side)))
        assert ran.returncode == 0, ran.stderr
        listed = as_json(kitaru("executions", "list", "-o", "json", cwd=elsewhere, env=env))
        assert [(e["flow_name"], e["status"]) for e in listed] == [("pipeline", "completed")]
        assert not (tmp_path / "kitaru.db").exists()
        monkeypatch.setenv("KITARU_STORE", pg_url)
        assert KitaruClient().executions.get(listed[0]["exec_id"]).result() == PIPELINE_RESULT

    def test_a_malformed_url_is_refused_when_the_stack_is_created(
        self, pg_url: str, elsewhere: Path
    ) -> None:
        """``stack create --store`` with a URL that cannot be parsed: one line, exit 1, and
        no stack is kept."""
        env = child_env(KITARU_STORE=None)
        bad = pg_url.replace("kitaru@/", "kitaru@[::1/", 1)
        created = kitaru("stack", "create", "team", "--store", bad, cwd=elsewhere, env=env)
        assert_clean_error(created, "is not a valid PostgreSQL URL", "postgresql://USER@HOST")
        assert len(created.stderr.strip().splitlines()) == 1, created.stderr
        listed = kitaru("stack", "list", cwd=elsewhere, env=env)
        assert "team" not in listed.stdout


class TestInit:
    def test_init_creates_the_tables_once_then_leaves_them(
        self, pg_url: str, tmp_path: Path, elsewhere: Path
    ) -> None:
        """``kitaru init`` on a PostgreSQL store creates the journal's tables; run again
        (or after a flow), it finds them and counts the executions, changing nothing."""
        env = child_env(KITARU_STORE=pg_url, KITARU_CONFIG_PATH=str(tmp_path / "config"))
        first = as_json(kitaru("init", "-o", "json", cwd=elsewhere, env=env))
        assert first["journal_created"] is True
        assert first["config_dir_created"] is True
        assert first["executions"] == 0
        assert first["journal"].startswith("postgresql://")
        side = str(tmp_path / "side.txt")
        ran = run_flow("pipeline", "3", env=child_env(KITARU_STORE=pg_url, PIPELINE_SIDE=side))
        assert ran.returncode == 0, ran.stderr
        again = kitaru("init", cwd=elsewhere, env=env)
        assert again.returncode == 0, again.stderr
        assert "already exists (1 executions); left as it is." in again.stdout
        second = as_json(kitaru("init", "-o", "json", cwd=elsewhere, env=env))
        assert (second["journal_created"], second["executions"]) == (False, 1)


# -- retry and replay ---------------------------------------------------------------------


class TestRetry:
    def test_a_failed_execution_is_retried_from_the_command(
        self, store: str, tmp_path: Path, elsewhere: Path
    ) -> None:
        """``executions retry`` runs the failed checkpoint again and reuses the one before it."""
        side, marker = tmp_path / "side.txt", tmp_path / "fixed"
        env = child_env(FLAKY_SIDE=str(side), FLAKY_MARKER=str(marker))
        failed = run_flow("flaky", env=env)
        assert failed.returncode == 1
        exec_id = only_execution()
        assert f"kitaru executions retry {exec_id}" in failed.stderr
        marker.touch()
        retried = kitaru("executions", "retry", exec_id, cwd=elsewhere, env=env)
        assert retried.returncode == 0, retried.stderr
        shown = as_json(kitaru("executions", "get", exec_id, "-o", "json", cwd=elsewhere))
        assert (shown["status"], shown["result"]) == ("completed", {"answer": 42})
        assert side_effects(side) == Counter({"prepare": 1, "call_service": 2, "finish": 1})


class TestReplay:
    def test_replay_from_a_checkpoint_with_overrides_and_args(
        self, store: str, tmp_path: Path, elsewhere: Path
    ) -> None:
        """``executions replay --from`` reuses the calls before it; ``--overrides`` stands in
        for a checkpoint, ``--args`` changes an input of what runs again."""
        side = tmp_path / "side.txt"
        env = child_env(PIPELINE_SIDE=str(side))
        assert run_pipeline(side).returncode == 0
        source = only_execution()
        overridden = as_json(
            kitaru(
                "executions",
                "replay",
                source,
                "--from",
                "offset",
                "--overrides",
                json.dumps({"checkpoint.offset": [100, 200, 300]}),
                "-o",
                "json",
                cwd=elsewhere,
                env=env,
            )
        )
        assert overridden["original_exec_id"] == source
        assert overridden["result"]["summary"] == {"total": 601, "count": 3}
        changed = as_json(
            kitaru(
                "executions",
                "replay",
                source,
                "--from",
                "summarise",
                "--args",
                json.dumps({"n": 3, "by": 10}),
                "-o",
                "json",
                cwd=elsewhere,
                env=env,
            )
        )
        assert changed["result"] == PIPELINE_RESULT
        reused = {c["name"] for c in changed["checkpoints"] if c["reused_from"] == source}
        assert reused == {"load_numbers", "square", "offset"}
        assert side_effects(side) == Counter(
            {
                "load_numbers": 1,
                "square:1": 1,
                "square:2": 1,
                "square:3": 1,
                "offset": 1,
                "summarise": 3,
            }
        )
        assert len(KitaruClient().executions.list()) == 3


# -- logs, artifacts and the client ---------------------------------------------------------


@checkpoint
def research(topic: str) -> str:
    print(f"reading about {topic}")
    logging.getLogger("agent").warning("source %s is slow", topic)
    kt.save("sources", ["tides.org", "moon.net"], type="context", tags=["web"])
    return f"summary of {topic}"


@checkpoint
def review(draft: str) -> str:
    print("reviewing")
    return draft.upper()


@flow
def study(topic: str) -> str:
    return review(research(topic))  # type: ignore[return-value]


class TestLogsArtifactsAndClient:
    def test_the_client_lists_gets_logs_and_artifacts(self, store: str) -> None:
        """KitaruClient reads executions, their logs and their artifacts from PostgreSQL."""
        handle = study.run("tides")
        assert handle.wait(timeout=TIMEOUT) == "SUMMARY OF TIDES"
        client = KitaruClient()
        assert [e.exec_id for e in client.executions.list(flow="study")] == [handle.exec_id]
        execution = client.executions.get(handle.exec_id)
        assert execution.status == "completed"
        assert [c.name for c in execution.checkpoints] == ["research", "review"]
        assert [line.message for line in client.executions.logs(handle.exec_id)] == [
            "reading about tides",
            "source tides is slow",
            "reviewing",
        ]
        refs = client.artifacts.list(handle.exec_id)
        assert [(r.name, r.origin, r.producing_call) for r in refs] == [
            ("sources", "saved", "research"),
            ("research", "checkpoint_output", "research"),
            ("review", "checkpoint_output", "review"),
        ]
        assert refs[0].tags == ("web",)
        assert refs[0].load() == ["tides.org", "moon.net"]
        assert client.artifacts.get(refs[0].artifact_id).load() == ["tides.org", "moon.net"]
        assert kt.load(handle.exec_id, "review") == "SUMMARY OF TIDES"

    def test_the_command_prints_the_logs_and_the_artifacts(
        self, store: str, elsewhere: Path
    ) -> None:
        """``executions logs`` and ``executions get`` of another process read the same journal."""
        handle = study.run("tides")
        handle.wait(timeout=TIMEOUT)
        logs = kitaru(
            "executions", "logs", handle.exec_id, "--checkpoint", "research", cwd=elsewhere
        )
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout.splitlines() == ["reading about tides", "source tides is slow"]
        shown = as_json(kitaru("executions", "get", handle.exec_id, "-o", "json", cwd=elsewhere))
        assert [a["name"] for a in shown["artifacts"]] == ["sources", "research", "review"]

    def test_follow_streams_every_line_once_until_the_execution_ends(
        self, store: str, elsewhere: Path
    ) -> None:
        """``logs --follow`` in another process prints each line of a running flow once and
        exits when it ends."""
        with background(
            [sys.executable, "-m", "tests.mgmt_flows.ticker", "4"],
            cwd=REPO,
            env=child_env(TICK_PAUSE="0.2"),
        ) as runner:
            exec_id = started(runner)
            with background(
                kitaru_command("executions", "logs", exec_id, "--follow"),
                cwd=elsewhere,
                env=child_env(),
            ) as follower:
                out, err = follower.communicate(timeout=TIMEOUT)
                assert follower.returncode == 0, err
            assert runner.wait(timeout=TIMEOUT) == 0
        expected = [line for i in range(4) for line in (f"tick {i}", f"logged {i}")]
        assert out.splitlines() == expected


# -- memory ---------------------------------------------------------------------------------


@pytest.fixture
def _no_process_scope() -> Iterator[None]:
    """The process-wide memory scope a test configures ends with it."""
    before = memory._process.scope
    memory._process.scope = None
    yield
    memory._process.scope = before


class TestMemory:
    @pytest.mark.usefixtures("_no_process_scope")
    def test_the_memory_api_in_a_flow_and_outside(self, store: str) -> None:
        """Flows read and write memory on PostgreSQL; set, get, list, history and delete
        outside a flow see the same versions."""
        from tests.flows.memory_agent import memory_agent

        first = memory_agent.run("first").wait(timeout=TIMEOUT)
        second = memory_agent.run("second").wait(timeout=TIMEOUT)
        assert (first, second) == ({"seen": None, "counter": 1}, {"seen": 1, "counter": 2})
        memory.configure(scope="agent")
        assert memory.get("counter") == 2
        memory.set("note", {"tone": "concise"})
        assert memory.get("note") == {"tone": "concise"}
        assert [e.version for e in memory.history("counter")] == [2, 1]
        tombstone = memory.delete("counter")
        assert tombstone is not None
        assert tombstone.is_deleted
        assert sorted(e.key for e in memory.list()) == ["last_tag", "note"]
        assert memory.get("counter") is None
        assert memory.get("counter", version=1) == 1

    def test_a_flow_killed_after_a_memory_write_resumes_without_writing_it_again(
        self, store: str, elsewhere: Path
    ) -> None:
        """The resume of a run SIGKILLed right after ``memory.set`` reuses the recorded
        write: the key keeps one version."""
        killed = run_flow("memory_agent", "first", env=child_env(MEMORY_KILL="after:set"))
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        exec_id = only_execution()
        resumed = kitaru("executions", "resume", exec_id, cwd=elsewhere)
        assert resumed.returncode == 0, resumed.stderr
        assert KitaruClient().executions.get(exec_id).result() == {"seen": None, "counter": 1}
        history = as_json(
            kitaru(
                "memory",
                "history",
                "counter",
                "--scope",
                "agent",
                "--scope-type",
                "namespace",
                "-o",
                "json",
                cwd=elsewhere,
            )
        )
        assert [(e["version"], e["execution_id"]) for e in history] == [(1, exec_id)]

    @pytest.mark.slow
    def test_the_memory_command(self, store: str, elsewhere: Path) -> None:
        """``kitaru memory set/get/list/history/delete`` work on PostgreSQL as on SQLite."""
        scope = ("--scope", "repo_docs", "--scope-type", "namespace")

        def run(*args: str) -> Any:
            return as_json(kitaru("memory", *args, *scope, "-o", "json", cwd=elsewhere))

        assert run("set", "k", '{"v": 1}')["version"] == 1
        assert run("set", "k", "2")["version"] == 2
        assert run("get", "k")["value"] == 2
        tombstone = run("delete", "k")
        assert (tombstone["version"], tombstone["is_deleted"]) == (3, True)
        history = run("history", "k")
        assert [(e["version"], e["is_deleted"]) for e in history] == [
            (3, True),
            (2, False),
            (1, False),
        ]
        assert run("list") == []


# -- store check ----------------------------------------------------------------------------


class TestStoreCheck:
    def test_a_sound_journal_passes(self, store: str, tmp_path: Path, elsewhere: Path) -> None:
        """``kitaru store check`` reads every execution of the database and finds nothing."""
        assert run_pipeline(tmp_path / "side.txt").returncode == 0
        checked = kitaru("store", "check", cwd=elsewhere)
        assert checked.returncode == 0, checked.stderr
        assert "OK: no problems found." in checked.stdout
        report = as_json(kitaru("store", "check", "-o", "json", cwd=elsewhere))
        assert (report["ok"], report["executions"], report["problems"]) == (True, 1, [])

    def test_a_removed_event_is_reported(
        self, store: str, pg_server: Any, tmp_path: Path, elsewhere: Path
    ) -> None:
        """An event deleted behind the triggers' back is a gap: exit 1, naming the execution."""
        assert run_pipeline(tmp_path / "side.txt").returncode == 0
        exec_id = only_execution()
        pg_server.psql(
            "SET session_replication_role = replica; "
            f"DELETE FROM kitaru.events WHERE exec_id = '{exec_id}' AND seq = 2",
            database=database_of(store),
        )
        checked = kitaru("store", "check", cwd=elsewhere)
        assert checked.returncode == 1, (checked.stdout, checked.stderr)
        assert exec_id in checked.stdout
        assert "Traceback" not in checked.stderr


# -- waits and cancel -----------------------------------------------------------------------


def approval(side: Path, **env: str) -> Any:
    return background(
        [sys.executable, "-m", "tests.mgmt_flows.approval"],
        cwd=REPO,
        env=child_env(MGMT_SIDE=str(side), **env),
    )


def until(check: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {TIMEOUT} s"
        time.sleep(0.02)


@contextmanager
def ticking(side: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A ticker flow running in another process, two ticks in: its process and execution."""
    with background(
        [sys.executable, "-m", "tests.mgmt_flows.ticker", "10000"],
        cwd=REPO,
        env=child_env(MGMT_SIDE=str(side)),
    ) as proc:
        exec_id = started(proc)
        until(lambda: sum(side_effects(side).values()) >= 2, "two ticks")
        yield proc, exec_id


class TestWaitsAndCancel:
    def test_an_answer_from_the_command_lets_the_parked_flow_resume(
        self, store: str, tmp_path: Path, elsewhere: Path
    ) -> None:
        """``executions input --value`` answers a parked wait; the resume uses the answer."""
        side = tmp_path / "side.txt"
        with approval(side, APPROVAL_TIMEOUT="0") as proc:
            exec_id = started(proc)
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err
        assert json.loads(out.splitlines()[-1]) == {"status": "waiting"}
        answered = kitaru("executions", "input", exec_id, "--value", "true", cwd=elsewhere)
        assert answered.returncode == 0, answered.stderr
        again = kitaru("executions", "input", exec_id, "--value", "false", cwd=elsewhere)
        assert_clean_error(again, "already has an answer")
        resumed = kitaru(
            "executions", "resume", exec_id, cwd=elsewhere, env=child_env(MGMT_SIDE=str(side))
        )
        assert resumed.returncode == 0, resumed.stderr
        execution = KitaruClient().executions.get(exec_id)
        assert execution.status == "completed"
        assert execution.result()["approved"] is True
        assert side_effects(side) == Counter({"prepare": 1, "publish": 1})

    def test_an_answer_from_the_command_reaches_a_flow_waiting_in_its_process(
        self, store: str, tmp_path: Path, elsewhere: Path
    ) -> None:
        """A flow process waiting for input continues with the answer another process gives."""
        side = tmp_path / "side.txt"
        with approval(side) as proc:
            exec_id = started(proc)
            until(lambda: KitaruClient().executions.get(exec_id).status == "waiting", "the wait")
            answered = kitaru("executions", "input", exec_id, "--value", "true", cwd=elsewhere)
            assert answered.returncode == 0, answered.stderr
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err
        outcome = json.loads(out.splitlines()[-1])
        assert (outcome["status"], outcome["result"]["approved"]) == ("completed", True)
        assert side_effects(side) == Counter({"prepare": 1, "publish": 1})

    def test_the_command_cancels_a_flow_waiting_in_another_process(
        self, store: str, tmp_path: Path, elsewhere: Path
    ) -> None:
        """``executions cancel`` reaches a flow process waiting for input; the step after the
        wait never runs."""
        side = tmp_path / "side.txt"
        with approval(side) as proc:
            exec_id = started(proc)
            until(lambda: KitaruClient().executions.get(exec_id).status == "waiting", "the wait")
            cancelled = kitaru("executions", "cancel", exec_id, cwd=elsewhere)
            assert cancelled.returncode == 0, cancelled.stderr
            out, _ = proc.communicate(timeout=TIMEOUT)
        assert json.loads(out.splitlines()[-1])["status"] == "cancelled"
        assert KitaruClient().executions.get(exec_id).status == "cancelled"
        assert side_effects(side) == Counter({"prepare": 1})

    def test_the_command_cancels_a_running_flow_of_another_process(
        self, store: str, tmp_path: Path, elsewhere: Path
    ) -> None:
        """A flow running in another process stops cancelled at its next durable call."""
        side = tmp_path / "side.txt"
        with ticking(side) as (proc, exec_id):
            cancelled = kitaru("executions", "cancel", exec_id, cwd=elsewhere)
            assert cancelled.returncode == 0, cancelled.stderr
            assert "stops at its next durable call" in cancelled.stdout
            proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 1
        assert KitaruClient().executions.get(exec_id).status == "cancelled"
        assert sum(side_effects(side).values()) < 10_000

    def test_a_killed_flow_is_cancelled_at_once(
        self, store: str, tmp_path: Path, elsewhere: Path
    ) -> None:
        """With its process SIGKILLed (its database session gone), an execution has no live
        owner: cancel ends it at once, and it cannot be resumed."""
        side = tmp_path / "side.txt"
        with ticking(side) as (proc, exec_id):
            proc.kill()
            proc.wait(timeout=TIMEOUT)
        assert KitaruClient().executions.get(exec_id).interrupted
        cancelled = kitaru("executions", "cancel", exec_id, cwd=elsewhere)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.strip() == f"Cancelled {exec_id}."
        resumed = kitaru("executions", "resume", exec_id, cwd=elsewhere)
        assert_clean_error(resumed, "cannot be resumed: it was cancelled")


# -- store URLs: the forms that work, and a server or URL that is wrong -----------------------


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class TestStoreUrls:
    @pytest.mark.parametrize(
        ("case", "fragment"),
        [
            ("database", 'database "no_such_db" does not exist'),
            ("user", 'role "nobody" does not exist'),
            ("port", "Connection refused"),
            ("bracket", "is not a valid PostgreSQL URL (Invalid IPv6 URL)"),
            ("port-text", 'invalid integer value "eighty"'),
        ],
    )
    def test_a_wrong_url_is_one_line_saying_what_to_do(
        self, case: str, fragment: str, pg_server: Any, pg_url: str, elsewhere: Path
    ) -> None:
        """A wrong database, user, port or a malformed URL: exit 1, one line, no traceback,
        naming the cause and the next step."""
        database = database_of(pg_url)
        url = {
            "database": pg_server.url("no_such_db"),
            "user": pg_server.url(database).replace("kitaru@", "nobody@", 1),
            "port": f"postgresql://kitaru@127.0.0.1:{_unused_port()}/{database}",
            "bracket": f"postgresql://kitaru@[::1/{database}",
            "port-text": f"postgresql://kitaru@127.0.0.1:eighty/{database}",
        }[case]
        for command in (("executions", "list"), ("store", "check")):
            result = kitaru(*command, cwd=elsewhere, env=child_env(KITARU_STORE=url))
            assert_clean_error(result, fragment, "KITARU_STORE")
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    @pytest.mark.parametrize("scheme", ["postgres", "postgresql+psycopg"])
    def test_every_accepted_scheme_opens_the_journal(
        self, scheme: str, pg_url: str, elsewhere: Path
    ) -> None:
        """The ``postgres://`` and ``postgresql+psycopg://`` spellings kitaru accepts reach
        the same database."""
        url = pg_url.replace("postgresql://", f"{scheme}://", 1)
        result = kitaru("store", "check", cwd=elsewhere, env=child_env(KITARU_STORE=url))
        assert result.returncode == 0, result.stderr
        assert "OK: no problems found." in result.stdout

    def test_a_socket_url_with_no_user_or_host_works(
        self, pg_server: Any, pg_url: str, elsewhere: Path
    ) -> None:
        """``postgresql:///DB?host=/socket/dir&user=USER`` (libpq's form with everything in
        the query) opens the journal."""
        url = pg_url.replace("kitaru@/", "/", 1) + "&user=kitaru"
        assert url.startswith("postgresql:///")
        result = kitaru("store", "check", cwd=elsewhere, env=child_env(KITARU_STORE=url))
        assert result.returncode == 0, result.stderr
        schema = f"{url}&kitaru_schema=other"
        result = kitaru("executions", "list", cwd=elsewhere, env=child_env(KITARU_STORE=schema))
        assert result.returncode == 0, result.stderr
        assert PostgresStore(schema).all_exec_ids() == []

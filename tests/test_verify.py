"""``kitaru executions verify``: today's code checked against recorded executions, with
nothing live and nothing written.

Executions are recorded by real processes (``tests/flows/drift.py``,
``tests/flows/pipeline.py``), killed with SIGKILL where an interrupted one is needed,
and checked by the real ``kitaru`` command and by ``KitaruClient``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers import (
    REPO,
    TIMEOUT,
    assert_clean_error,
    background,
    child_env,
    flow_command,
    journal_rows,
    kitaru,
    only_exec_id,
    run_flow,
    side_effects,
    wait_for_file,
)

from kitaru import checkpoint, flow
from kitaru.client import KitaruClient

KILLED = -9
NAMES = ["ada", "bob", "cyd", "dee", "eve", "fay"]


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder with no flow code in it, where the checking command runs."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _verify(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return kitaru("executions", "verify", *args, cwd=cwd, env=child_env(**env))


def _killed_swapped() -> str:
    first = run_flow("drift", "swapped", "k", env=child_env(DRIFT_KILL_AFTER="1"))
    assert first.returncode == KILLED, first.stderr
    return only_exec_id()


class TestInterruptedExecution:
    @pytest.mark.slow
    def test_unchanged_code_matches_up_to_the_end_of_the_record(self, elsewhere: Path) -> None:
        """The recorded call matches; the check stops at the first unrecorded call, unrun,
        and the journal is byte-identical afterwards."""
        exec_id = _killed_swapped()
        rows = journal_rows(exec_id)

        result = _verify(exec_id, "-o", "json", cwd=elsewhere)

        assert result.returncode == 0, result.stderr
        (found,) = json.loads(result.stdout)
        assert found["outcome"] == "matched"
        assert found["ok"] is True
        assert found["calls_matched"] == 1
        assert found["execution_status"] == "running"
        assert "checkpoint 'fetch_2' at position 1" in found["stopped_at"]
        assert journal_rows(exec_id) == rows
        assert KitaruClient().executions.get(exec_id).interrupted

    @pytest.mark.slow
    def test_swapped_calls_are_reported_with_position_and_both_calls(self, elsewhere: Path) -> None:
        """Code that swapped two same-named calls diverges: exit 1, position, recorded call,
        call made; nothing written."""
        exec_id = _killed_swapped()
        rows = journal_rows(exec_id)

        result = _verify(exec_id, "-o", "json", cwd=elsewhere, DRIFT_SWAP="1")

        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        (found,) = json.loads(result.stdout)
        assert found["outcome"] == "diverged"
        assert found["position"] == 0
        assert found["expected"] == "checkpoint 'fetch' (tests.flows.drift_web.fetch)"
        assert found["actual"] == "checkpoint 'fetch' (tests.flows.drift_db.fetch)"
        assert journal_rows(exec_id) == rows

    @pytest.mark.slow
    def test_a_changed_argument_is_named_in_the_text_report(self, elsewhere: Path) -> None:
        """A set iterated under another hash seed: the report names the argument and both
        values."""
        first = run_flow(
            "drift", "lookups", *NAMES, env=child_env(DRIFT_KILL_AFTER="2", PYTHONHASHSEED="1")
        )
        assert first.returncode == KILLED, first.stderr
        exec_id = only_exec_id()
        same = _verify(exec_id, cwd=elsewhere, PYTHONHASHSEED="1")
        assert same.returncode == 0, same.stdout + same.stderr
        assert "MATCHED" in same.stdout

        for seed in range(2, 40):
            changed = _verify(exec_id, cwd=elsewhere, PYTHONHASHSEED=str(seed))
            if changed.returncode == 1:
                break
        else:
            pytest.fail("no hash seed changed the order of the names")
        assert "DIVERGED" in changed.stdout
        assert "recorded: checkpoint 'lookup" in changed.stdout
        assert "argument name: recorded '" in changed.stdout
        assert "0 of 1 execution(s) match today's code" in changed.stdout


class TestRunningExecutionWithALiveOwner:
    @pytest.mark.slow
    def test_verify_neither_waits_for_nor_disturbs_the_owner(
        self, tmp_path: Path, elsewhere: Path
    ) -> None:
        """While its process runs a checkpoint, verify checks the execution at once, runs no
        body, and the owner goes on to complete it."""
        side, block = tmp_path / "side.txt", tmp_path / "block"
        block.mkdir()
        env = child_env(PIPELINE_SIDE=str(side), PIPELINE_BLOCK=str(block))
        with background(flow_command("pipeline", "5"), cwd=REPO, env=env) as runner:
            wait_for_file(block / "ready", runner)
            exec_id = only_exec_id()
            _wait_until_started(exec_id, "offset")
            rows = journal_rows(exec_id)
            effects = side_effects(side)

            result = _verify(exec_id, "-o", "json", cwd=elsewhere, PIPELINE_SIDE=str(side))

            assert result.returncode == 0, result.stdout + result.stderr
            (found,) = json.loads(result.stdout)
            assert found["outcome"] == "matched"
            assert found["calls_matched"] == 6
            assert "checkpoint 'offset' at position 6" in found["stopped_at"]
            assert journal_rows(exec_id) == rows
            assert side_effects(side) == effects
            (block / "release").touch()
            _out, err = runner.communicate(timeout=TIMEOUT)
            assert runner.returncode == 0, err
        assert KitaruClient().executions.get(exec_id).status == "completed"
        assert side_effects(side)["offset"] == 1


def _wait_until_started(exec_id: str, identity: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        calls = KitaruClient().executions.get(exec_id).checkpoints
        if any(c.invocation_id == identity for c in calls):
            return
        time.sleep(0.02)
    pytest.fail(f"{identity} never started")


# -- in this process: completed and failed executions ----------------------------------


class Switch:
    fail = True
    greeting = "hello"
    suffix = ""
    bodies: ClassVar[Counter[str]] = Counter()


@checkpoint
def greet(who: str) -> str:
    Switch.bodies["greet"] += 1
    return f"{Switch.greeting} {who}"


@checkpoint
def fragile() -> str:
    Switch.bodies["fragile"] += 1
    if Switch.fail:
        raise RuntimeError("fragile broke")
    return "ok"


@flow
def greeter(who: str) -> list[str]:
    import kitaru

    kitaru.log(step="greeting")  # flow-body metadata: dropped, never written, when verifying
    return [greet(who + Switch.suffix).load(), fragile().load()]


@pytest.fixture
def switch() -> type[Switch]:
    Switch.fail, Switch.greeting, Switch.suffix, Switch.bodies = True, "hello", "", Counter()
    return Switch


def _events(exec_id: str) -> list[tuple[int, str, bytes]]:
    return journal_rows(exec_id)


class TestFinishedExecutions:
    def test_a_completed_execution_matches_without_running_any_body(
        self, switch: type[Switch]
    ) -> None:
        """Every recorded call replays; no body runs; the journal is byte-identical."""
        switch.fail = False
        handle = greeter.run("ada")
        assert handle.wait(timeout=TIMEOUT) == ["hello ada", "ok"]
        rows, bodies = _events(handle.exec_id), Counter(switch.bodies)

        (found,) = KitaruClient().executions.verify(handle.exec_id)

        assert found.ok
        assert found.calls_matched == 2
        assert found.stopped_at == "the end of the flow body"
        assert switch.bodies == bodies
        assert _events(handle.exec_id) == rows

    def test_a_failed_execution_matches_when_the_code_raises_as_recorded(
        self, switch: type[Switch]
    ) -> None:
        """The recorded failure is raised again, not run again, and counts as a match."""
        handle = greeter.run("bob")
        with pytest.raises(Exception, match="fragile broke"):
            handle.wait(timeout=TIMEOUT)
        rows, bodies = _events(handle.exec_id), Counter(switch.bodies)

        (found,) = KitaruClient().executions.verify(handle.exec_id)

        assert found.ok, found
        assert found.execution_status == "failed"
        assert "RuntimeError, as recorded" in found.stopped_at
        assert switch.bodies == bodies
        assert _events(handle.exec_id) == rows

    def test_a_changed_argument_diverges_with_the_argument_named(
        self, switch: type[Switch]
    ) -> None:
        """Code that now greets someone else at the same position diverges on ``who``."""
        switch.fail = False
        handle = greeter.run("cyd")
        handle.wait(timeout=TIMEOUT)
        switch.suffix = "!"

        (found,) = KitaruClient().executions.verify(handle.exec_id)

        assert not found.ok
        assert found.outcome == "diverged"
        assert (found.position, found.argument) == (0, "who")
        assert (found.recorded_argument, found.current_argument) == ("'cyd'", "'cyd!'")

    def test_all_checks_every_execution_and_the_client_needs_an_id(
        self, switch: type[Switch]
    ) -> None:
        """``verify_all`` covers every execution, oldest first; ``verify()`` wants an id."""
        switch.fail = False
        first = greeter.run("dee")
        first.wait(timeout=TIMEOUT)
        second = greeter.run("eve")
        second.wait(timeout=TIMEOUT)
        found = KitaruClient().executions.verify_all()
        assert [f.exec_id for f in found] == [first.exec_id, second.exec_id]
        assert all(f.ok for f in found)
        with pytest.raises(ValueError, match="at least one execution id"):
            KitaruClient().executions.verify()


@flow
def chatty() -> list[str]:
    import kitaru

    first = kitaru.llm("one", model="openai/gpt-4o-mini").load()
    answer = kitaru.wait(schema=str, name="gate", question="go on?", timeout=0)
    second = kitaru.llm(f"two {answer}", model="openai/gpt-4o-mini").load()
    return [first, answer, second]


class TestNothingLive:
    def test_no_model_request_and_no_wait_beyond_the_record(
        self, llm_server: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A recorded model call replays without a request; the check stops at a wait the
        journal holds no answer for, even with input posted, and leaves that input for the
        real resume."""
        llm_server.point_providers_here(monkeypatch)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-verify")
        llm_server.reply_text("hi")
        handle = chatty.run()
        deadline = time.monotonic() + TIMEOUT
        while handle.status != "waiting" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert handle.status == "waiting"
        assert llm_server.count == 1
        client = KitaruClient()
        client.executions.input(handle.exec_id, value="yes")
        rows = journal_rows(handle.exec_id)

        (found,) = client.executions.verify(handle.exec_id)

        assert found.ok, found
        assert found.calls_matched == 1
        assert "wait 'gate' at position 1" in found.stopped_at
        assert llm_server.count == 1
        assert journal_rows(handle.exec_id) == rows
        result = client.executions.resume(handle.exec_id).wait(timeout=TIMEOUT)
        assert result == ["hi", "yes", "hi"]
        assert llm_server.count == 2


class TestCommandLine:
    @pytest.mark.slow
    def test_all_and_ids_together_are_refused(self, elsewhere: Path) -> None:
        """Ids and --all are exclusive: one line, exit 1."""
        assert_clean_error(_verify("abc", "--all", cwd=elsewhere), "or --all (not both)")
        assert_clean_error(_verify(cwd=elsewhere), "or --all (not both)")

    @pytest.mark.slow
    def test_an_unknown_id_is_one_line(self, elsewhere: Path) -> None:
        """An id the journal does not hold: exit 1, no traceback."""
        assert_clean_error(_verify("nope", cwd=elsewhere), "No execution nope")

    @pytest.mark.slow
    def test_all_reports_every_execution_and_exits_1_on_any_divergence(
        self, elsewhere: Path
    ) -> None:
        """``--all`` checks each execution; one divergence makes the exit code 1."""
        exec_id = _killed_swapped()
        done = run_flow("drift", "notes", env=child_env())
        assert done.returncode == 0, done.stderr
        swapped = _verify("--all", cwd=elsewhere, DRIFT_SWAP="1")
        assert swapped.returncode == 1
        assert f"{exec_id}  swapped  (running): DIVERGED" in swapped.stdout
        assert "1 of 2 execution(s) match today's code" in swapped.stdout
        same = _verify("--all", "-o", "json", cwd=elsewhere)
        assert same.returncode == 0, same.stdout + same.stderr
        assert [f["outcome"] for f in json.loads(same.stdout)] == ["matched", "matched"]

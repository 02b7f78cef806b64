"""Crash, resume, retry and replay of flows as users run them.

Flows from ``tests/flows`` run in their own processes and SIGKILL themselves at chosen
points. ``kitaru executions resume`` then continues them from another process, started
in another folder, that has never imported the flow: it must find the flow through
what the journal recorded. Side-effect files show which checkpoint bodies ran.

The second half drives the in-process API: handles, identities, retries, failures.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    REPO,
    assert_clean_error,
    background,
    child_env,
    completed_calls,
    flow_command,
    journal_rows,
    kitaru,
    only_exec_id,
    run_flow,
    side_effects,
)

from kitaru import (
    KitaruDivergenceError,
    KitaruStateError,
    KitaruTimeoutError,
    KitaruUserCodeError,
    checkpoint,
    flow,
)
from kitaru._flow_handle import FlowHandle
from kitaru.client import KitaruClient
from kitaru.journal.events import ExecutionFailed, decode_event

KILLED = -9

PIPELINE_RESULT = {
    "numbers": [1, 2, 3, 4, 5],
    "squares": [1, 4, 9, 16, 25],
    "shifted": [[11, 14, 19, 26, 35]],
    "summary": {"total": 106, "count": 5},
}
PIPELINE_TAGS = ("load_numbers", *(f"square:{x}" for x in range(1, 6)), "offset", "summarise")
ALL_SQUARES = {"square", "square_2", "square_3", "square_4", "square_5"}


def identity(tag: str) -> str:
    """The call identity of a pipeline trace tag (``square:3`` is the third map call)."""
    name, _, item = tag.partition(":")
    if not item or item == "1":
        return name
    return f"{name}_{item}"


@dataclass
class Workspace:
    """Files and folders of one crash test."""

    side: Path
    elsewhere: Path
    """Where resuming processes start: a folder with no flow code in it."""
    launch: Path
    """Where scripts are started from (not the repository)."""

    def env(self, **changes: str | None) -> dict[str, str]:
        return child_env(PIPELINE_SIDE=str(self.side), **changes)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    elsewhere, launch = tmp_path / "elsewhere", tmp_path / "launch"
    elsewhere.mkdir()
    launch.mkdir()
    return Workspace(side=tmp_path / "side-effects.txt", elsewhere=elsewhere, launch=launch)


def resume(ws: Workspace, exec_id: str, **env: str | None) -> Any:
    """``kitaru executions resume ID -o json`` from a folder that holds no flow code."""
    return kitaru(
        "executions", "resume", exec_id, "-o", "json", cwd=ws.elsewhere, env=ws.env(**env)
    )


def get_json(ws: Workspace, exec_id: str) -> dict[str, Any]:
    result = kitaru("executions", "get", exec_id, "-o", "json", cwd=ws.elsewhere, env=ws.env())
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def assert_resumed_correctly(
    ws: Workspace, exec_id: str, before: Counter[str], done_before: set[str], result: Any
) -> None:
    """Resume exited 0; completed calls did not run again; the others ran exactly once more."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    after = side_effects(ws.side)
    for tag in PIPELINE_TAGS:
        if identity(tag) in done_before:
            assert after[tag] == before[tag] >= 1, (tag, before, after)
        else:
            assert after[tag] == before[tag] + 1, (tag, before, after)
    info = get_json(ws, exec_id)
    assert info["status"] == "completed"
    assert info["result"] == PIPELINE_RESULT
    # Importing the flow again started nothing new (a script's main block stays off).
    assert [e.exec_id for e in KitaruClient().executions.list()] == [exec_id]


class TestUninterruptedRun:
    @pytest.mark.slow
    def test_pipeline_runs_to_its_result_with_every_body_once(self, ws: Workspace) -> None:
        """A run that is never killed prints the expected result and runs each body once."""
        result = run_flow("pipeline", "5", env=ws.env())
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["result"] == PIPELINE_RESULT
        assert side_effects(ws.side) == Counter(PIPELINE_TAGS)


# (kill point, calls completed at the kill, trace lines written before the kill)
_ALL_BUT_SUMMARY = {"load_numbers", *ALL_SQUARES, "offset"}
KILL_POINTS = [
    pytest.param("before:load_numbers", set(), [], id="before-first-checkpoint"),
    pytest.param("inside:load_numbers", set(), ["load_numbers"], id="inside-first-checkpoint"),
    pytest.param(
        "after:load_numbers", {"load_numbers"}, ["load_numbers"], id="after-load-of-completed"
    ),
    pytest.param(
        "inside:offset",
        {"load_numbers", *ALL_SQUARES},
        ["load_numbers", *PIPELINE_TAGS[1:6], "offset"],
        id="inside-submitted-checkpoint",
    ),
    pytest.param(
        "before:summarise", _ALL_BUT_SUMMARY, list(PIPELINE_TAGS[:7]), id="before-last-checkpoint"
    ),
    pytest.param(
        "inside:summarise", _ALL_BUT_SUMMARY, list(PIPELINE_TAGS), id="inside-last-checkpoint"
    ),
]


class TestResumeAfterSigkill:
    @pytest.mark.slow
    @pytest.mark.parametrize(("kill", "done", "traces"), KILL_POINTS)
    def test_resume_from_another_process_finishes_the_run(
        self, ws: Workspace, kill: str, done: set[str], traces: list[str]
    ) -> None:
        """After a SIGKILL, resume elsewhere reruns only unfinished calls and gets the result."""
        first = run_flow("pipeline", "5", env=ws.env(PIPELINE_KILL=kill))
        assert first.returncode == KILLED, first.stderr
        exec_id = only_exec_id()
        assert KitaruClient().executions.get(exec_id).flow_module == "tests.flows.pipeline"
        assert completed_calls(exec_id) == done
        before = side_effects(ws.side)
        assert before == Counter(traces)

        result = resume(ws, exec_id)

        assert_resumed_correctly(ws, exec_id, before, done, result)

    def test_kill_in_the_middle_of_a_map_fan_out(self, ws: Workspace) -> None:
        """A kill while one mapped call runs keeps its finished siblings; only it runs again."""
        first = run_flow("pipeline", "5", env=ws.env(PIPELINE_KILL="square:3"))
        assert first.returncode == KILLED, first.stderr
        exec_id = only_exec_id()
        done = completed_calls(exec_id)
        assert "load_numbers" in done
        assert "square_3" not in done
        assert done & (ALL_SQUARES - {"square_3"}), "no sibling finished before the kill"
        before = side_effects(ws.side)
        assert before["square:3"] == 1

        result = resume(ws, exec_id)

        assert_resumed_correctly(ws, exec_id, before, done, result)
        assert side_effects(ws.side)["square:3"] == 2

    @pytest.mark.slow
    def test_repeated_kills_of_the_resuming_process(self, ws: Workspace) -> None:
        """Resumes killed in turn each keep what they finished; a last resume completes."""
        first = run_flow("pipeline", "5", env=ws.env(PIPELINE_KILL="after:load_numbers"))
        assert first.returncode == KILLED
        exec_id = only_exec_id()

        for kill in ("square:3", "inside:summarise"):
            before, done = side_effects(ws.side), completed_calls(exec_id)
            killed = resume(ws, exec_id, PIPELINE_KILL=kill)
            assert killed.returncode == KILLED, killed.stderr
            after = side_effects(ws.side)
            assert all(after[t] == before[t] for t in PIPELINE_TAGS if identity(t) in done)
            assert completed_calls(exec_id) >= done

        before, done = side_effects(ws.side), completed_calls(exec_id)
        assert done == _ALL_BUT_SUMMARY
        assert_resumed_correctly(ws, exec_id, before, done, resume(ws, exec_id))
        final = side_effects(ws.side)
        assert final["load_numbers"] == 1
        assert final["offset"] == 1
        assert final["square:3"] == 2
        assert final["summarise"] == 2

    @pytest.mark.slow
    def test_a_module_found_through_pythonpath_resumes_without_it(self, ws: Workspace) -> None:
        """A flow imported via PYTHONPATH by a launcher resumes from a shell without it."""
        launcher = ws.launch / "launch_agent.py"
        launcher.write_text(
            "from tests.flows.pipeline import pipeline\nprint(pipeline.run(5).wait())\n"
        )
        first = subprocess.run(
            [sys.executable, str(launcher)],
            cwd=ws.launch,
            env=ws.env(PYTHONPATH=str(REPO), PIPELINE_KILL="inside:offset"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert first.returncode == KILLED, first.stderr
        exec_id = only_exec_id()
        done = completed_calls(exec_id)
        before = side_effects(ws.side)

        result = resume(ws, exec_id)  # no PYTHONPATH, started in another folder

        assert_resumed_correctly(ws, exec_id, before, done, result)

    @pytest.mark.slow
    def test_resume_of_a_completed_execution_is_refused(self, ws: Workspace) -> None:
        """Resuming an execution that already completed exits 1 and runs nothing."""
        assert run_flow("pipeline", "5", env=ws.env()).returncode == 0
        exec_id = only_exec_id()
        rows = journal_rows(exec_id)
        result = resume(ws, exec_id)
        assert_clean_error(result, "already completed")
        assert journal_rows(exec_id) == rows
        assert side_effects(ws.side) == Counter(PIPELINE_TAGS)


class TestSigkillFromOutsideAtAnyMoment:
    @pytest.mark.slow
    @pytest.mark.parametrize(
        ("traces", "delay"),
        [(1, 0.0), (1, 0.04), (3, 0.02), (6, 0.0), (6, 0.045), (7, 0.02), (8, 0.0), (8, 0.03)],
    )
    def test_resume_after_an_outside_kill(self, ws: Workspace, traces: int, delay: float) -> None:
        """A kill from outside at any moment loses no completed call; resume finishes the run."""
        env = ws.env(PIPELINE_PAUSE="0.05")
        with background(flow_command("pipeline", "5"), cwd=REPO, env=env) as runner:
            deadline = time.monotonic() + 30
            while sum(side_effects(ws.side).values()) < traces and runner.poll() is None:
                assert time.monotonic() < deadline, "the pipeline made no progress"
                time.sleep(0.002)
            time.sleep(delay)
            runner.send_signal(signal.SIGKILL)
            runner.wait(timeout=30)
        exec_id = only_exec_id()
        if KitaruClient().executions.get(exec_id).status == "completed":
            # The run was recorded complete before the signal landed.
            assert get_json(ws, exec_id)["result"] == PIPELINE_RESULT
            assert side_effects(ws.side) == Counter(PIPELINE_TAGS)
            return
        assert runner.returncode == KILLED
        before, done = side_effects(ws.side), completed_calls(exec_id)
        assert_resumed_correctly(ws, exec_id, before, done, resume(ws, exec_id))


class TestFlowsDefinedInScripts:
    @pytest.mark.slow
    @pytest.mark.parametrize(
        ("kill", "done"),
        [
            ("after:load_numbers", {"load_numbers"}),
            ("inside:offset", {"load_numbers", *ALL_SQUARES}),
        ],
    )
    def test_script_run_as_main_resumes_from_the_cli(
        self, ws: Workspace, kill: str, done: set[str]
    ) -> None:
        """A flow in a script run as ``python path/script.py`` resumes from another folder."""
        first = run_flow(
            "pipeline", "5", env=ws.env(PIPELINE_KILL=kill), mode="script", cwd=ws.launch
        )
        assert first.returncode == KILLED, first.stderr
        exec_id = only_exec_id()
        execution = KitaruClient().executions.get(exec_id)
        assert execution.flow_module == "__main__"
        assert completed_calls(exec_id) == done
        before = side_effects(ws.side)

        result = resume(ws, exec_id)

        assert_resumed_correctly(ws, exec_id, before, done, result)

    @pytest.mark.slow
    def test_script_map_fan_out_kill_resumes(self, ws: Workspace) -> None:
        """A script killed in the middle of a fan-out resumes with only the killed call rerun."""
        first = run_flow(
            "pipeline", "5", env=ws.env(PIPELINE_KILL="square:3"), mode="script", cwd=ws.launch
        )
        assert first.returncode == KILLED
        exec_id = only_exec_id()
        done = completed_calls(exec_id)
        before = side_effects(ws.side)
        assert_resumed_correctly(ws, exec_id, before, done, resume(ws, exec_id))


class TestRetryOfFailedExecutions:
    @pytest.fixture
    def flaky(self, tmp_path: Path) -> dict[str, Any]:
        marker, side = tmp_path / "service-is-up", tmp_path / "flaky-side.txt"
        env = child_env(FLAKY_MARKER=str(marker), FLAKY_SIDE=str(side))
        failed = run_flow("flaky", env=env)
        assert failed.returncode == 1, failed.stderr
        assert "kitaru executions retry" in failed.stderr
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        return {"marker": marker, "side": side, "env": env, "cwd": elsewhere, "id": only_exec_id()}

    @pytest.mark.slow
    def test_retry_reruns_only_the_failed_checkpoint(self, flaky: dict[str, Any]) -> None:
        """Retry of a failed execution skips completed calls and runs the failed one again."""
        exec_id = flaky["id"]
        assert KitaruClient().executions.get(exec_id).status == "failed"
        flaky["marker"].touch()

        result = kitaru(
            "executions", "retry", exec_id, "-o", "json", cwd=flaky["cwd"], env=flaky["env"]
        )

        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["status"] == "completed"
        assert data["result"] == {"answer": 42}
        assert side_effects(flaky["side"]) == Counter(
            {"prepare": 1, "call_service": 2, "finish": 1}
        )
        service = next(c for c in data["checkpoints"] if c["invocation_id"] == "call_service")
        assert [a["status"] for a in service["attempts"]] == ["failed", "completed"]
        assert service["attempts"][0]["failure"]["exception_type"] == "ConnectionError"

    @pytest.mark.slow
    def test_retry_that_fails_again_exits_1_and_stays_retryable(
        self, flaky: dict[str, Any]
    ) -> None:
        """A retry whose call fails again exits 1; a later retry can still finish it."""
        again = kitaru("executions", "retry", flaky["id"], cwd=flaky["cwd"], env=flaky["env"])
        assert_clean_error(again, "service unavailable", f"kitaru executions retry {flaky['id']}")
        flaky["marker"].touch()
        done = kitaru("executions", "retry", flaky["id"], cwd=flaky["cwd"], env=flaky["env"])
        assert done.returncode == 0, done.stderr
        assert side_effects(flaky["side"]) == Counter(
            {"prepare": 1, "call_service": 3, "finish": 1}
        )

    @pytest.mark.slow
    def test_resume_of_a_failed_execution_says_to_retry(self, flaky: dict[str, Any]) -> None:
        """``resume`` on a failed execution exits 1, runs nothing and points to ``retry``."""
        rows = journal_rows(flaky["id"])
        result = kitaru("executions", "resume", flaky["id"], cwd=flaky["cwd"], env=flaky["env"])
        assert_clean_error(result, f"kitaru executions retry {flaky['id']}")
        assert journal_rows(flaky["id"]) == rows
        assert side_effects(flaky["side"]) == Counter({"prepare": 1, "call_service": 1})

    @pytest.mark.slow
    def test_retry_of_a_completed_execution_is_refused(self, flaky: dict[str, Any]) -> None:
        """``retry`` on a completed execution exits 1 and records nothing."""
        flaky["marker"].touch()
        ok = kitaru("executions", "retry", flaky["id"], cwd=flaky["cwd"], env=flaky["env"])
        assert ok.returncode == 0, ok.stderr
        rows = journal_rows(flaky["id"])
        again = kitaru("executions", "retry", flaky["id"], cwd=flaky["cwd"], env=flaky["env"])
        assert_clean_error(again, "cannot be retried", "already completed")
        assert journal_rows(flaky["id"]) == rows


# (code shape on resume, position, recorded call, call the code made)
DIVERGENCES = [
    pytest.param("renamed", 1, "research", "research_v2", id="renamed"),
    pytest.param("added", 1, "research", "extra", id="added"),
    pytest.param("removed", 0, "plan", "research", id="removed"),
    pytest.param("reordered", 0, "plan", "research", id="reordered"),
]


class TestDivergence:
    @pytest.fixture
    def crashed(self, tmp_path: Path) -> dict[str, Any]:
        side = tmp_path / "shapes-side.txt"
        first = run_flow("shapes", env=child_env(SHAPES_SIDE=str(side), SHAPES_KILL="1"))
        assert first.returncode == KILLED, first.stderr
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        exec_id = only_exec_id()
        assert completed_calls(exec_id) == {"plan", "research"}
        return {"id": exec_id, "side": side, "cwd": elsewhere}

    @pytest.mark.slow
    @pytest.mark.parametrize(("shape", "position", "expected", "actual"), DIVERGENCES)
    def test_changed_code_stops_with_a_divergence_and_keeps_the_journal(
        self, crashed: dict[str, Any], shape: str, position: int, expected: str, actual: str
    ) -> None:
        """Resume with changed calls fails naming position, recorded and made call; nothing lost."""
        exec_id, side = crashed["id"], crashed["side"]
        rows = journal_rows(exec_id)
        traces = side_effects(side)
        env = child_env(SHAPES_SIDE=str(side), SHAPES_CODE=shape)

        result = kitaru("executions", "resume", exec_id, cwd=crashed["cwd"], env=env)

        assert_clean_error(
            result,
            f"position {position}",
            f"checkpoint '{expected}'",
            f"checkpoint '{actual}'",
            f"kitaru executions retry {exec_id}",
        )
        assert side_effects(side) == traces  # no checkpoint body ran
        # Every recorded event is unchanged, byte for byte; the resume appended exactly
        # its takeover and the divergence failure.
        after = journal_rows(exec_id)
        assert after[: len(rows)] == rows
        assert [kind for _, kind, _ in after[len(rows) :]] == [
            "execution_resumed",
            "execution_failed",
        ]
        failed = decode_event("execution_failed", after[-1][2])
        assert isinstance(failed, ExecutionFailed)
        assert failed.divergence
        assert failed.position == position
        assert failed.expected == f"checkpoint '{expected}'"
        assert failed.actual == f"checkpoint '{actual}'"

        with pytest.raises(KitaruDivergenceError) as caught:
            FlowHandle(exec_id).get()
        assert caught.value.position == position
        assert caught.value.expected == f"checkpoint '{expected}'"
        assert caught.value.actual == f"checkpoint '{actual}'"
        execution = KitaruClient().executions.get(exec_id)
        assert execution.status == "failed"
        assert execution.failure is not None
        assert execution.failure.origin == "divergence"
        assert execution.failure.exception_type == "kitaru.errors.KitaruDivergenceError"

    @pytest.mark.slow
    def test_a_flow_that_returns_before_recorded_calls_diverges(
        self, crashed: dict[str, Any]
    ) -> None:
        """Code that returns without making recorded calls fails naming the first one missed."""
        exec_id, side = crashed["id"], crashed["side"]
        rows = journal_rows(exec_id)
        env = child_env(SHAPES_SIDE=str(side), SHAPES_CODE="truncated")

        result = kitaru("executions", "resume", exec_id, cwd=crashed["cwd"], env=env)

        assert_clean_error(
            result, "checkpoint 'research' at position 1", "returned without making it"
        )
        after = journal_rows(exec_id)
        assert after[: len(rows)] == rows
        assert [kind for _, kind, _ in after[len(rows) :]] == [
            "execution_resumed",
            "execution_failed",
        ]
        with pytest.raises(KitaruDivergenceError) as caught:
            FlowHandle(exec_id).get()
        assert (caught.value.position, caught.value.actual) == (1, None)
        assert caught.value.expected == "checkpoint 'research'"

    @pytest.mark.slow
    def test_retry_with_the_code_restored_completes(self, crashed: dict[str, Any]) -> None:
        """After a divergence, restoring the code and retrying finishes without rerunning calls."""
        exec_id, side = crashed["id"], crashed["side"]
        changed = child_env(SHAPES_SIDE=str(side), SHAPES_CODE="reordered")
        diverged = kitaru("executions", "resume", exec_id, cwd=crashed["cwd"], env=changed)
        assert diverged.returncode == 1

        restored = child_env(SHAPES_SIDE=str(side))
        result = kitaru(
            "executions", "retry", exec_id, "-o", "json", cwd=crashed["cwd"], env=restored
        )

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["result"] == "plan for durability / notes on durability"
        assert side_effects(side) == Counter({"plan": 1, "research": 1, "write": 2})


class TestValuesRoundTripThroughAResume:
    @pytest.mark.slow
    @pytest.mark.parametrize("mode", ["module", "script"])
    def test_typed_values_come_back_with_their_types(self, tmp_path: Path, mode: str) -> None:
        """Dataclass, Struct, pydantic, tuple, datetime and set values survive a resume."""
        first = run_flow("typed", env=child_env(TYPED_KILL="1"), mode=mode, cwd=tmp_path)
        assert first.returncode == KILLED, first.stderr
        exec_id = only_exec_id()
        assert completed_calls(exec_id) == {"make_values"}
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()

        result = kitaru("executions", "resume", exec_id, "-o", "json", cwd=elsewhere)

        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout)["result"]
        assert seen["types"] == {
            "point": "Point",
            "tag": "Tag",
            "profile": "Profile",
            "pair": "tuple",
            "when": "datetime",
            "labels": "set",
        }
        assert seen["equal"] is True
        assert seen["arg_types"] == ["Point", "datetime"]
        assert seen["args_equal"] is True

    @pytest.mark.slow
    @pytest.mark.parametrize("mode", ["module", "script"])
    def test_replay_in_the_first_process_gives_its_own_classes(
        self, tmp_path: Path, mode: str
    ) -> None:
        """A flow retry in the process that started the run decodes values to its own classes."""
        result = run_flow("typed", env=child_env(TYPED_FAIL_ONCE="1"), mode=mode, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        printed = json.loads(result.stdout)
        assert printed["passes"] == 2
        assert printed["result"]["equal"] is True
        assert printed["result"]["args_equal"] is True


# -- in-process API -------------------------------------------------------------------

_gate = threading.Event()
_runs: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh_globals() -> Any:
    _gate.clear()
    _runs.clear()
    yield
    _gate.set()  # never leave a flow thread blocked


@checkpoint
def gated(x: int) -> int:
    assert _gate.wait(30), "the test never opened the gate"
    return x


@flow
def gated_flow(x: int) -> int:
    return gated(x)  # type: ignore[return-value]


@checkpoint
def double(x: int) -> int:
    _runs[f"double:{x}"] += 1
    return 2 * x


@checkpoint
def combine(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@flow
def fan_out(items: list[int]) -> dict[str, Any]:
    mapped = double.map(items)
    one = double.submit(100)
    named = double(5, id="special")
    plain = double(6)
    return {"mapped": mapped, "one": one, "named": named, "plain": plain, "loaded": mapped.load()}


@flow
def nesting() -> dict[str, Any]:
    a, b = double(1), double(2)
    merged = combine({"list": [a, b], "dict": {"a": a}, "tuple": (b,)})
    return {"merged": merged, "raw": [a, {"b": b}], "pair": (a, b)}


@checkpoint(retries=2, type="tool_call")
def shaky() -> int:
    _runs["shaky"] += 1
    if _runs["shaky"] < 3:
        raise ValueError(f"attempt {_runs['shaky']} failed")
    return _runs["shaky"]


@flow
def shaky_flow() -> int:
    return shaky()  # type: ignore[return-value]


@checkpoint(retries=1)
def hopeless() -> int:
    _runs["hopeless"] += 1
    raise ValueError("never works")


@flow
def hopeless_flow() -> int:
    double(1)
    return hopeless()  # type: ignore[return-value]


class BodyError(Exception):
    """Raised by a flow body in tests."""


@flow
def failing_body(x: int) -> int:
    double(x)
    raise BodyError(f"bad input {x}")


@flow(retries=1)
def body_retried() -> list[Any]:
    first = double(1)
    _runs["body"] += 1
    if _runs["body"] == 1:
        raise RuntimeError("the first pass fails")
    return [first, double(2)]


_healed = threading.Event()


@checkpoint
def picky(x: int) -> int:
    _runs[f"picky:{x}"] += 1
    if x == 2 and not _healed.is_set():
        raise LookupError(f"item {x} is not ready")
    return x * 10


@flow
def picky_map(items: list[int]) -> list[int]:
    return picky.map(items).load()


class TestInProcessRetry:
    @pytest.fixture(autouse=True)
    def _sick(self) -> Any:
        _healed.clear()
        yield
        _healed.clear()

    def test_retry_of_a_failed_fan_out_reruns_only_the_failed_item(self) -> None:
        """After one mapped call failed, ``executions.retry`` reruns it alone and completes."""
        handle = picky_map.run([1, 2, 3])
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=30)
        assert caught.value.call == "picky_2"
        assert completed_calls(handle.exec_id) == {"picky", "picky_3"}
        _healed.set()

        retried = KitaruClient().executions.retry(handle.exec_id)

        assert retried.exec_id == handle.exec_id
        assert retried.wait(timeout=30) == [10, 20, 30]
        assert _runs == Counter({"picky:1": 1, "picky:2": 2, "picky:3": 1})
        assert handle.status == "completed"

    def test_a_retry_gives_checkpoint_retries_a_fresh_budget(self) -> None:
        """A retried execution runs a checkpoint with ``retries=1`` up to twice more."""
        handle = hopeless_flow.run()
        with pytest.raises(KitaruUserCodeError):
            handle.wait(timeout=30)
        with pytest.raises(KitaruUserCodeError):
            KitaruClient().executions.retry(handle.exec_id).wait(timeout=30)
        assert _runs["hopeless"] == 4
        assert _runs["double:1"] == 1
        call = KitaruClient().executions.get(handle.exec_id).checkpoints[-1]
        assert [(a.attempt, a.status) for a in call.attempts] == [
            (1, "failed"),
            (2, "failed"),
            (3, "failed"),
            (4, "failed"),
        ]

    @pytest.mark.slow
    def test_resume_of_an_execution_this_process_is_running_is_refused(self) -> None:
        """Resuming an execution that this very process still runs raises KitaruStateError."""
        handle = gated_flow.run(5, background=True)
        with pytest.raises(KitaruStateError, match="already running in this process"):
            KitaruClient().executions.resume(handle.exec_id)
        with pytest.raises(KitaruStateError, match="did not fail"):
            KitaruClient().executions.retry(handle.exec_id)
        _gate.set()
        assert handle.wait(timeout=30) == 5


class TestFlowHandle:
    def test_status_goes_from_running_to_completed(self) -> None:
        """A handle reports running while the body runs and completed once it returned."""
        handle = gated_flow.run(7, background=True)
        assert handle.status == "running"
        _gate.set()
        assert handle.wait(timeout=30) == 7
        assert handle.status == "completed"

    def test_wait_with_a_timeout_raises_and_the_run_goes_on(self) -> None:
        """``wait(timeout=...)`` raises KitaruTimeoutError; the execution still completes."""
        handle = gated_flow.run(3, background=True)
        with pytest.raises(KitaruTimeoutError) as caught:
            handle.wait(timeout=0.1)
        assert caught.value.exec_id == handle.exec_id
        assert caught.value.last_status == "running"
        assert isinstance(caught.value, KitaruStateError)
        _gate.set()
        assert handle.wait(timeout=30) == 3

    def test_get_before_the_end_raises_a_state_error(self) -> None:
        """``get()`` on a running execution raises KitaruStateError instead of blocking."""
        handle = gated_flow.run(1, background=True)
        with pytest.raises(KitaruStateError, match="has not finished") as caught:
            handle.get()
        assert caught.value.status == "running"
        _gate.set()
        handle.wait(timeout=30)
        assert handle.get() == 1

    def test_a_fresh_handle_reads_the_result_from_the_journal(self) -> None:
        """A FlowHandle made from an id alone returns the recorded result."""
        _gate.set()
        exec_id = gated_flow.run(9).exec_id
        FlowHandle(exec_id).wait(timeout=30)
        fresh = FlowHandle(exec_id)
        assert fresh.status == "completed"
        assert fresh.get() == 9


class TestSubmitMapAndIdentities:
    def test_results_and_call_identities(self) -> None:
        """map, submit, ``id=`` and plain calls give values and name, name_2, ... identities."""
        result = fan_out.run([1, 2, 3])
        assert result.wait(timeout=30) == {
            "mapped": [2, 4, 6],
            "one": 200,
            "named": 10,
            "plain": 12,
            "loaded": [2, 4, 6],
        }
        calls = KitaruClient().executions.get(result.exec_id).checkpoints
        assert [c.invocation_id for c in calls] == [
            "double",
            "double_2",
            "double_3",
            "double_4",
            "special",
            "double_5",
        ]
        assert [c.position for c in calls] == list(range(6))
        assert {c.name for c in calls} == {"double"}
        assert len({c.call_id for c in calls}) == 6

    def test_handles_nested_in_containers_arrive_as_values(self) -> None:
        """Handles inside lists, dicts and tuples reach checkpoints and the caller as values."""
        handle = nesting.run()
        assert handle.wait(timeout=30) == {
            "merged": {"list": [2, 4], "dict": {"a": 2}, "tuple": (4,)},
            "raw": [2, {"b": 4}],
            "pair": (2, 4),
        }
        calls = KitaruClient().executions.get(handle.exec_id).checkpoints
        assert calls[-1].invocation_id == "combine"
        assert calls[-1].parent_identities == ("double", "double_2")
        by_identity = {c.invocation_id: c.call_id for c in calls}
        assert calls[-1].parent_call_ids == (by_identity["double"], by_identity["double_2"])


class TestCheckpointRetries:
    def test_every_attempt_is_journaled(self) -> None:
        """``retries=2`` reruns a failing body; each attempt shows with status and timing."""
        handle = shaky_flow.run()
        assert handle.wait(timeout=30) == 3
        (call,) = KitaruClient().executions.get(handle.exec_id).checkpoints
        assert call.checkpoint_type == "tool_call"
        assert call.status == "completed"
        assert [(a.attempt, a.status) for a in call.attempts] == [
            (1, "failed"),
            (2, "failed"),
            (3, "completed"),
        ]
        assert [a.failure.message for a in call.attempts if a.failure] == [
            "attempt 1 failed",
            "attempt 2 failed",
        ]
        for attempt in call.attempts:
            assert attempt.duration_ms is not None
            assert attempt.started_at is not None
            assert attempt.ended_at is not None
            assert attempt.started_at <= attempt.ended_at

    def test_exhausted_retries_fail_the_execution(self) -> None:
        """A body that fails on every attempt fails the flow after 1 + retries attempts."""
        handle = hopeless_flow.run()
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=30)
        assert _runs["hopeless"] == 2
        assert caught.value.call == "hopeless"
        assert caught.value.error_type == "ValueError"
        assert isinstance(caught.value.__cause__, ValueError)
        calls = KitaruClient().executions.get(handle.exec_id).checkpoints
        assert [a.status for a in calls[-1].attempts] == ["failed", "failed"]


class TestFailingFlows:
    def test_failure_names_the_retry_command_and_keeps_the_cause(self) -> None:
        """A flow body that raises gives KitaruUserCodeError with the retry command and cause."""
        handle = failing_body.run(4)
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=30)
        error = caught.value
        assert f"kitaru executions retry {handle.exec_id}" in str(error)
        assert "BodyError" in str(error)
        assert "bad input 4" in str(error)
        assert isinstance(error.__cause__, BodyError)
        assert str(error.__cause__) == "bad input 4"
        assert error.exec_id == handle.exec_id
        assert error.status == "failed"
        assert handle.status == "failed"
        with pytest.raises(KitaruUserCodeError, match="retry"):
            FlowHandle(handle.exec_id).get()

    def test_flow_retries_rerun_the_body_and_replay_completed_calls(self) -> None:
        """``@flow(retries=1)`` runs the body again; checkpoints that completed are not rerun."""
        handle = body_retried.run()
        assert handle.wait(timeout=30) == [2, 4]
        assert _runs["body"] == 2
        assert _runs["double:1"] == 1
        assert _runs["double:2"] == 1
        kinds = [kind for _, kind, _ in journal_rows(handle.exec_id)]
        assert kinds.count("execution_resumed") == 1
        assert kinds[-1] == "execution_completed"

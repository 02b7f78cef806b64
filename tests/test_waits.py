"""``kitaru.wait()``: pausing a flow until a person or a program answers.

In-process flows pin the schemas, the validation of input, the recorded input on
retry and replay, aborts and misuse. ``tests/mgmt_flows/approval.py`` runs in its own
process to be answered by the installed ``kitaru`` command while it is alive, and
after it gave up waiting and exited (then resumed from the command line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest
from click.testing import CliRunner, Result
from helpers import (
    REPO,
    TIMEOUT,
    assert_clean_error,
    background,
    child_env,
    journal_rows,
    kitaru,
    side_effects,
    started,
)

import kitaru as kt
from kitaru import (
    KitaruContextError,
    KitaruExecutionError,
    KitaruStateError,
    KitaruUsageError,
    KitaruUserCodeError,
    KitaruWaitValidationError,
    checkpoint,
    flow,
)
from kitaru.cli import main
from kitaru.client import KitaruClient
from kitaru.journal.events import WaitRequested, WaitResolved
from kitaru.journal.store import StoredEvent

pytestmark = pytest.mark.usefixtures("cancel_leftover_executions")

KILLED = -9
LIVE_WAIT = 10.0
"""Seconds a live wait holds its thread: long enough to answer, short if a test fails."""


@dataclass
class Approval:
    approved: bool
    reviewer: str
    note: str = ""


class Plan(msgspec.Struct):
    steps: list[str]
    budget: int


class Ticket(pydantic.BaseModel):
    title: str
    priority: int


SCHEMAS: dict[str, Any] = {
    "bool": bool,
    "str": str,
    "int": int,
    "dataclass": Approval,
    "struct": Plan,
    "pydantic": Ticket,
    "gate": None,
}

_runs: Counter[str] = Counter()
_fail_after_wait = {"on": False}


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    _runs.clear()
    _fail_after_wait["on"] = False


@checkpoint
def prepare() -> str:
    _runs["prepare"] += 1
    return "draft"


@checkpoint
def use(value: Any) -> str:
    _runs["use"] += 1
    if _fail_after_wait["on"]:
        raise ConnectionError("the publishing service is down")
    return f"used {value!r}"


@flow
def asks(kind: str, timeout: float) -> dict[str, Any]:
    draft = prepare()
    answer = kt.wait(
        schema=SCHEMAS[kind],
        name="answer",
        question=f"What {kind}?",
        timeout=timeout,
        metadata={"kind": kind, "draft": "v1"},
    )
    return {"draft": draft, "answer": answer, "used": use(answer)}


def wait_until(handle: kt.FlowHandle, status: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while handle.status != status:
        assert time.monotonic() < deadline, f"{handle.exec_id} never became {status}"
        time.sleep(0.01)


def parked(kind: str) -> str:
    """An execution of ``asks`` left waiting, with no process running it."""
    handle = asks.run(kind, 0)
    with pytest.raises(KitaruStateError, match="waiting for input"):
        handle.wait(timeout=TIMEOUT)
    assert handle.status == "waiting"
    return handle.exec_id


def events_of(exec_id: str) -> list[StoredEvent]:
    return KitaruClient()._store.read_events(exec_id)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


class TestPendingWait:
    def test_a_waiting_execution_describes_its_wait(self) -> None:
        """Status ``waiting``; the pending wait carries name, question, JSON schema, metadata."""
        handle = asks.run("dataclass", LIVE_WAIT)
        wait_until(handle, "waiting")
        execution = KitaruClient().executions.get(handle.exec_id)
        assert execution.status == "waiting"
        pending = execution.pending_wait
        assert pending is not None
        assert execution.pending_waits == [pending]
        assert pending.name == "answer"
        assert pending.question == "What dataclass?"
        assert pending.schema == msgspec.json.schema(Approval)
        assert pending.schema_type == "test_waits:Approval"
        assert pending.metadata == {"kind": "dataclass", "draft": "v1"}
        assert pending.input_received is False
        assert pending.entered_waiting_at is not None
        wait_call = next(c for c in execution.checkpoints if c.kind == "wait")
        assert pending.wait_id == wait_call.call_id
        KitaruClient().executions.input(handle.exec_id, value={"approved": True, "reviewer": "ann"})
        assert handle.wait(timeout=TIMEOUT)["answer"] == Approval(True, "ann")

    def test_a_pydantic_schema_is_described_by_pydantic(self) -> None:
        """A pydantic model's wait carries the model's own JSON schema."""
        exec_id = parked("pydantic")
        pending = KitaruClient().executions.get(exec_id).pending_wait
        assert pending is not None
        assert pending.schema == Ticket.model_json_schema()

    def test_a_plain_gate_has_no_schema_and_a_default_name(self) -> None:
        """``wait()`` with no arguments is a gate named ``wait`` that accepts any value."""
        handle = gate.run()
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        pending = KitaruClient().executions.get(handle.exec_id).pending_wait
        assert pending is not None
        assert (pending.name, pending.question, pending.schema) == ("wait", None, None)
        KitaruClient().executions.input(handle.exec_id, value=None)
        assert KitaruClient().executions.resume(handle.exec_id).wait(timeout=TIMEOUT) is None

    def test_get_shows_the_wait_and_the_command_that_answers_it(self) -> None:
        """``executions get`` prints the question, the expected shape and how to answer."""
        exec_id = parked("bool")
        text = cli("executions", "get", exec_id)
        assert text.exit_code == 0, text.stderr
        assert "Status     waiting" in text.stdout
        assert 'Waiting    answer \'What bool?\', expects {"type": "boolean"}' in text.stdout
        store = os.environ["KITARU_STORE"]  # not the default: the command must name it
        assert f"KITARU_STORE={store} kitaru executions input {exec_id} --value true" in text.stdout
        data = json.loads(cli("executions", "get", exec_id, "-o", "json").stdout)
        assert data["pending_wait"]["schema"] == {"type": "boolean"}
        assert data["pending_wait"]["name"] == "answer"


VALID = [
    pytest.param("bool", True, True, id="bool"),
    pytest.param("str", "ship it", "ship it", id="str"),
    pytest.param("int", 3, 3, id="int"),
    pytest.param(
        "dataclass", {"approved": False, "reviewer": "bo"}, Approval(False, "bo"), id="dataclass"
    ),
    pytest.param(
        "struct", {"steps": ["a", "b"], "budget": 5}, Plan(["a", "b"], 5), id="msgspec-struct"
    ),
    pytest.param(
        "pydantic", {"title": "fix", "priority": 1}, Ticket(title="fix", priority=1), id="pydantic"
    ),
    pytest.param("gate", {"anything": [1]}, {"anything": [1]}, id="gate"),
]

INVALID = [
    pytest.param("bool", "yes", id="bool-given-str"),
    pytest.param("bool", 1, id="bool-given-int"),
    pytest.param("str", 5, id="str-given-int"),
    pytest.param("int", "3", id="int-given-str"),
    pytest.param("int", 2.5, id="int-given-float"),
    pytest.param("int", None, id="int-given-null"),
    pytest.param("dataclass", {"approved": "yes", "reviewer": "bo"}, id="dataclass-bad-field"),
    pytest.param("dataclass", {"approved": True}, id="dataclass-missing-field"),
    pytest.param("dataclass", [True, "bo"], id="dataclass-given-list"),
    pytest.param("struct", {"steps": "a", "budget": 5}, id="struct-bad-field"),
    pytest.param("pydantic", {"title": "fix"}, id="pydantic-missing-field"),
    pytest.param("pydantic", {"title": "fix", "priority": "high"}, id="pydantic-bad-field"),
]


class TestSchemas:
    @pytest.mark.parametrize(("kind", "given", "expected"), VALID)
    def test_a_live_wait_returns_the_input_as_the_schema_type(
        self, kind: str, given: Any, expected: Any
    ) -> None:
        """A waiting flow body gets the input converted to its schema's type."""
        handle = asks.run(kind, LIVE_WAIT)
        wait_until(handle, "waiting")
        KitaruClient().executions.input(handle.exec_id, value=given)
        result = handle.wait(timeout=TIMEOUT)
        assert result["answer"] == expected
        assert type(result["answer"]) is type(expected)
        assert result["used"] == f"used {expected!r}"

    @pytest.mark.parametrize(("kind", "given"), INVALID)
    def test_input_that_does_not_fit_is_refused_and_changes_nothing(
        self, kind: str, given: Any
    ) -> None:
        """Input of the wrong shape raises KitaruWaitValidationError; the wait stays open."""
        exec_id = parked(kind)
        before = journal_rows(exec_id)
        with pytest.raises(KitaruWaitValidationError) as caught:
            KitaruClient().executions.input(exec_id, value=given)
        error = caught.value
        assert (error.exec_id, error.wait) == (exec_id, "answer")
        assert "does not fit wait 'answer'" in str(error)
        assert "Send a value of that shape" in str(error)
        assert journal_rows(exec_id) == before
        pending = KitaruClient().executions.get(exec_id).pending_wait
        assert pending is not None
        assert pending.input_received is False

    def test_a_refused_input_can_be_followed_by_a_good_one(self) -> None:
        """After a refused input the same wait still takes a correct one."""
        handle = asks.run("int", LIVE_WAIT)
        wait_until(handle, "waiting")
        with pytest.raises(KitaruWaitValidationError):
            KitaruClient().executions.input(handle.exec_id, value="seven")
        KitaruClient().executions.input(handle.exec_id, value=7)
        assert handle.wait(timeout=TIMEOUT)["answer"] == 7

    def test_a_gate_refuses_a_value_that_cannot_be_stored(self) -> None:
        """A gate takes any value the journal can store, and refuses others."""
        handle = gate.run()
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        with pytest.raises(KitaruUsageError, match="cannot be stored"):
            KitaruClient().executions.input(handle.exec_id, value=object())


class TestAnsweredWhileTheProcessWaits:
    def test_a_live_wait_picks_up_input_at_once(self) -> None:
        """Input given while the flow body waits is taken within a fraction of a second."""
        handle = asks.run("bool", LIVE_WAIT)
        wait_until(handle, "waiting")
        answered = time.monotonic()
        KitaruClient().executions.input(handle.exec_id, value=True)
        assert handle.wait(timeout=TIMEOUT)["answer"] is True
        assert time.monotonic() - answered < 2.0
        assert _runs == Counter({"prepare": 1, "use": 1})
        types = [type(s.event) for s in events_of(handle.exec_id)]
        assert types.count(WaitRequested) == 1
        assert types.count(WaitResolved) == 1

    def test_input_names_its_wait_by_name_or_id(self) -> None:
        """``wait=`` picks the wait by its name or its call id; an unknown one is refused."""
        exec_id = parked("int")
        pending = KitaruClient().executions.get(exec_id).pending_wait
        assert pending is not None
        with pytest.raises(KitaruStateError, match="no pending wait 'other'; pending: answer"):
            KitaruClient().executions.input(exec_id, wait="other", value=1)
        KitaruClient().executions.input(exec_id, wait=pending.wait_id, value=1)
        with pytest.raises(KitaruStateError, match="already has an answer"):
            KitaruClient().executions.input(exec_id, wait="answer", value=2)
        result = KitaruClient().executions.resume(exec_id).wait(timeout=TIMEOUT)
        assert result["answer"] == 1, "the first answer stands; a second one is refused"


class TestAnsweredAfterTheProcessGaveUp:
    def test_input_is_kept_until_resume(self) -> None:
        """Input to an execution no process runs waits in the mailbox; resume continues."""
        exec_id = parked("str")
        execution = KitaruClient().executions.input(exec_id, value="later")
        assert execution.status == "waiting"
        assert execution.pending_wait is not None
        assert execution.pending_wait.input_received is True
        text = cli("executions", "get", exec_id).stdout
        assert "(input received; resume to continue)" in text
        assert _runs["use"] == 0
        result = KitaruClient().executions.resume(exec_id).wait(timeout=TIMEOUT)
        assert result["answer"] == "later"
        assert _runs == Counter({"prepare": 1, "use": 1})

    def test_resume_without_input_waits_again(self) -> None:
        """Resuming before any input arrives parks the execution ``waiting`` again."""
        exec_id = parked("bool")
        for _ in range(2):
            resumed = KitaruClient().executions.resume(exec_id)
            with pytest.raises(KitaruStateError, match="waiting for input"):
                resumed.wait(timeout=TIMEOUT)
            execution = KitaruClient().executions.get(exec_id)
            assert execution.status == "waiting"
            assert not execution.interrupted
            assert execution.pending_wait is not None
            assert resumed.refresh().status == "waiting"
        assert _runs["prepare"] == 1
        recovered = cli("executions", "resume", "--all")
        assert "Recovered 0 interrupted execution(s)" in recovered.stdout
        check = cli("store", "check")
        assert check.exit_code == 0, check.stdout
        KitaruClient().executions.input(exec_id, value=True)
        assert KitaruClient().executions.resume(exec_id).wait(timeout=TIMEOUT)["answer"] is True


class TestRecordedInput:
    def test_retry_returns_the_recorded_input_without_waiting(self) -> None:
        """A retried execution gets the input its wait already recorded; nothing new is asked."""
        _fail_after_wait["on"] = True
        exec_id = parked("int")
        KitaruClient().executions.input(exec_id, value=5)
        with pytest.raises(KitaruUserCodeError, match="publishing service is down"):
            KitaruClient().executions.resume(exec_id).wait(timeout=TIMEOUT)
        _fail_after_wait["on"] = False

        # The wait's timeout is 0: had it waited again, the retry would park at once.
        result = KitaruClient().executions.retry(exec_id).wait(timeout=TIMEOUT)

        assert result["answer"] == 5
        types = [type(s.event) for s in events_of(exec_id)]
        assert types.count(WaitRequested) == 1
        assert types.count(WaitResolved) == 1
        assert _runs == Counter({"prepare": 1, "use": 2})

    def test_replay_after_the_wait_reuses_its_input(self) -> None:
        """A replay from a call after the wait returns the recorded input without waiting."""
        exec_id = parked("dataclass")
        KitaruClient().executions.input(exec_id, value={"approved": True, "reviewer": "cy"})
        KitaruClient().executions.resume(exec_id).wait(timeout=TIMEOUT)
        _runs.clear()

        replayed = asks.replay(exec_id, from_="use")

        result = replayed.wait(timeout=TIMEOUT)
        assert result["answer"] == Approval(True, "cy")
        assert _runs == Counter({"use": 1})
        assert KitaruClient().executions.get(replayed.exec_id).pending_wait is None

    def test_replay_from_before_the_wait_asks_again(self) -> None:
        """A replay from a call before the wait runs the wait live: it waits for new input."""
        exec_id = parked("int")
        KitaruClient().executions.input(exec_id, value=1)
        KitaruClient().executions.resume(exec_id).wait(timeout=TIMEOUT)

        replayed = asks.replay(exec_id, from_="prepare")

        with pytest.raises(KitaruStateError, match="waiting for input"):
            replayed.wait(timeout=TIMEOUT)
        KitaruClient().executions.input(replayed.exec_id, value=2)
        result = KitaruClient().executions.resume(replayed.exec_id).wait(timeout=TIMEOUT)
        assert result["answer"] == 2


class TestAbort:
    def test_aborting_a_live_wait_cancels_the_execution(self) -> None:
        """``abort_wait`` on a waiting flow body ends the execution ``cancelled``."""
        handle = asks.run("bool", LIVE_WAIT)
        wait_until(handle, "waiting")
        KitaruClient().executions.abort_wait(handle.exec_id)
        with pytest.raises(KitaruExecutionError) as caught:
            handle.wait(timeout=TIMEOUT)
        assert caught.value.status == "cancelled"
        assert "wait 'answer' was aborted" in str(caught.value)
        execution = KitaruClient().executions.get(handle.exec_id)
        assert execution.status == "cancelled"
        assert execution.pending_wait is None
        assert _runs["use"] == 0

    def test_aborting_a_parked_wait_cancels_at_once(self) -> None:
        """With no process running it, the execution is cancelled by the abort itself."""
        exec_id = parked("bool")
        execution = KitaruClient().executions.abort_wait(exec_id)
        assert execution.status == "cancelled"
        assert execution.pending_wait is None
        with pytest.raises(KitaruStateError, match="cannot be resumed: it was cancelled"):
            KitaruClient().executions.resume(exec_id)

    def test_a_cancelled_execution_takes_no_input(self) -> None:
        """Input or an abort for an execution that was cancelled while waiting is refused."""
        exec_id = parked("bool")
        KitaruClient().executions.cancel(exec_id)
        before = journal_rows(exec_id)
        with pytest.raises(KitaruStateError, match=r"not waiting for input \(status: cancelled\)"):
            KitaruClient().executions.input(exec_id, value=True)
        with pytest.raises(KitaruStateError, match="not waiting for input"):
            KitaruClient().executions.abort_wait(exec_id)
        assert journal_rows(exec_id) == before
        assert KitaruClient().executions.get(exec_id).pending_wait is None

    def test_input_for_an_execution_that_does_not_wait_is_refused(self) -> None:
        """A completed execution has no wait to answer or abort."""
        handle = gate.run()
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        KitaruClient().executions.input(handle.exec_id, value=None)
        KitaruClient().executions.resume(handle.exec_id).wait(timeout=TIMEOUT)
        with pytest.raises(KitaruStateError, match=r"status: completed"):
            KitaruClient().executions.input(handle.exec_id, value=None)
        with pytest.raises(KitaruStateError, match=r"status: completed"):
            KitaruClient().executions.abort_wait(handle.exec_id)


class TestWaitOnlyInTheFlowBody:
    def test_outside_a_flow(self) -> None:
        """``kitaru.wait()`` outside a flow raises KitaruContextError."""
        with pytest.raises(KitaruContextError, match="can only run inside a @flow"):
            kt.wait(schema=bool)

    def test_inside_a_checkpoint(self) -> None:
        """``kitaru.wait()`` inside a checkpoint raises KitaruContextError there."""
        assert waits_in_checkpoint.run().wait(timeout=TIMEOUT) == (
            "KitaruContextError: kitaru.wait() cannot run inside a checkpoint; "
            "call it from the flow body instead."
        )

    @pytest.mark.parametrize(
        ("case", "fragment"),
        [
            ("negative-timeout", "timeout= must be a number"),
            ("text-timeout", "timeout= must be a number"),
            ("bool-timeout", "timeout= must be a number"),
            ("nan-timeout", "timeout= must be a number"),
            ("empty-name", "name= must be a non-empty string"),
            ("int-name", "name= must be a non-empty string"),
            ("metadata", "metadata= must be JSON-serialisable"),
            ("schema-dict", "schema=dict is not supported"),
            ("schema-not-a-type", "schema= must be a type"),
            ("schema-generic", "schema= must be a type"),
        ],
    )
    def test_bad_arguments_fail_the_flow_before_anything_is_recorded(
        self, case: str, fragment: str
    ) -> None:
        """Bad arguments to ``wait()`` raise KitaruUsageError in the flow body; no wait is made."""
        handle = bad_wait.run(case)
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=TIMEOUT)
        assert caught.value.error_type.endswith("KitaruUsageError")
        assert fragment in caught.value.error_message
        assert not any(isinstance(s.event, WaitRequested) for s in events_of(handle.exec_id))


class TestInputCommandRefusals:
    """Every refused ``kitaru executions input`` exits 1 and leaves the execution as it was."""

    @pytest.mark.parametrize(
        ("kind", "options", "fragment"),
        [
            pytest.param("bool", ["--value", "yes"], "--value is not valid JSON", id="not-json"),
            pytest.param("bool", ["--value", ""], "--value is not valid JSON", id="empty-value"),
            pytest.param("bool", ["--value", '"yes"'], "does not fit wait 'answer'", id="bool"),
            pytest.param("bool", ["--value", "[true]"], "expects bool", id="bool-given-list"),
            pytest.param(
                "dataclass",
                ["--value", '{"approved": "yes", "reviewer": "x"}'],
                "expects Approval",
                id="dataclass-wrong-field",
            ),
            pytest.param("dataclass", ["--value", "true"], "expects Approval", id="dataclass"),
            pytest.param("pydantic", ["--value", "{}"], "expects Ticket", id="pydantic"),
            pytest.param("bool", [], "Give exactly one of --value JSON or --abort", id="neither"),
            pytest.param(
                "bool", ["--value", "true", "--abort"], "exactly one of", id="value-and-abort"
            ),
            pytest.param(
                "bool", ["--value", "true", "--wait", "nope"], "no pending wait 'nope'", id="wait"
            ),
        ],
    )
    def test_refused_input(self, kind: str, options: list[str], fragment: str) -> None:
        """Bad JSON, a wrong shape or a bad option combination is one error line."""
        exec_id = parked(kind)
        before = journal_rows(exec_id)
        result = cli("executions", "input", exec_id, *options)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("Error: ")
        assert fragment in result.stderr
        assert result.stdout == ""
        assert journal_rows(exec_id) == before
        execution = KitaruClient().executions.get(exec_id)
        assert execution.status == "waiting"
        assert execution.pending_wait is not None
        assert execution.pending_wait.input_received is False

    def test_input_for_an_unknown_or_finished_execution(self) -> None:
        """An unknown id or an execution that is not waiting is a clean error."""
        unknown = cli("executions", "input", "no-such-id", "--value", "true")
        assert unknown.exit_code == 1
        assert "No execution no-such-id" in unknown.stderr
        exec_id = parked("bool")
        assert cli("executions", "input", exec_id, "--abort").exit_code == 0
        again = cli("executions", "input", exec_id, "--value", "true")
        assert again.exit_code == 1
        assert "is not waiting for input (status: cancelled)" in again.stderr


# -- in another process ---------------------------------------------------------------


@pytest.fixture
def side(tmp_path: Path) -> Path:
    return tmp_path / "side.txt"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def approval_process(side: Path, **env: str) -> Any:
    return background(
        [sys.executable, "-m", "tests.mgmt_flows.approval", "2.0"],
        cwd=REPO,
        env=child_env(MGMT_SIDE=str(side), **env),
    )


def waiting_exec_id(proc: subprocess.Popen[str]) -> str:
    """The id the approval process printed, once its execution is waiting."""
    exec_id = started(proc)
    deadline = time.monotonic() + TIMEOUT
    while KitaruClient().executions.get(exec_id).status != "waiting":
        if proc.poll() is not None:
            pytest.fail(f"the flow process ended ({proc.returncode}) before it waited")
        assert time.monotonic() < deadline, "the flow never waited"
        time.sleep(0.02)
    return exec_id


def last_json(proc: subprocess.Popen[str]) -> Any:
    out, err = proc.communicate(timeout=TIMEOUT)
    assert "Traceback" not in err, err
    return json.loads(out.splitlines()[-1])


DECISION = '{"approved": true, "reviewer": "ann", "note": "ship it"}'


class TestAnsweredFromAnotherProcess:
    @pytest.mark.slow
    def test_the_command_answers_a_flow_waiting_in_its_process(
        self, side: Path, elsewhere: Path
    ) -> None:
        """``kitaru executions input`` from another process wakes the waiting flow process."""
        with approval_process(side, APPROVAL_SCHEMA="decision") as proc:
            exec_id = waiting_exec_id(proc)
            answered = time.monotonic()
            result = kitaru("executions", "input", exec_id, "--value", DECISION, cwd=elsewhere)
            assert result.returncode == 0, result.stderr
            assert f"Input recorded for {exec_id}." in result.stdout
            ended = last_json(proc)
            assert time.monotonic() - answered < TIMEOUT / 2
            assert proc.returncode == 0
        assert ended == {
            "status": "completed",
            "result": {
                "answer_type": "Decision",
                "approved": True,
                "outcome": "published (release notes for 2.0, reviewed by ann)",
            },
        }
        assert side_effects(side) == Counter({"prepare": 1, "publish": 1})

    @pytest.mark.slow
    def test_the_client_answers_a_flow_waiting_in_another_process(self, side: Path) -> None:
        """``KitaruClient().executions.input`` here wakes a flow waiting in a child process."""
        with approval_process(side) as proc:
            exec_id = waiting_exec_id(proc)
            execution = KitaruClient().executions.input(exec_id, value=False)
            assert execution.exec_id == exec_id
            ended = last_json(proc)
        assert ended["result"]["outcome"] == "withdrawn"
        assert ended["result"]["answer_type"] == "bool"

    @pytest.mark.slow
    def test_a_wrong_shape_from_the_command_is_refused(self, side: Path, elsewhere: Path) -> None:
        """The command checks input against a dataclass schema it imports from the journal."""
        with approval_process(side, APPROVAL_SCHEMA="decision") as proc:
            exec_id = waiting_exec_id(proc)
            before = journal_rows(exec_id)
            bad = kitaru(
                "executions", "input", exec_id, "--value", '{"approved": "maybe"}', cwd=elsewhere
            )
            assert_clean_error(bad, "does not fit wait 'approve'", "expects Decision")
            assert journal_rows(exec_id) == before
            assert proc.poll() is None, "the flow process still waits"
            good = kitaru("executions", "input", exec_id, "--value", DECISION, cwd=elsewhere)
            assert good.returncode == 0, good.stderr
            assert last_json(proc)["status"] == "completed"

    @pytest.mark.slow
    def test_abort_from_the_command_cancels_the_waiting_process(
        self, side: Path, elsewhere: Path
    ) -> None:
        """``--abort`` ends the execution ``cancelled``; the flow process stops."""
        with approval_process(side) as proc:
            exec_id = waiting_exec_id(proc)
            result = kitaru("executions", "input", exec_id, "--abort", cwd=elsewhere)
            assert result.returncode == 0, result.stderr
            ended = last_json(proc)
            assert proc.returncode == 1
        assert ended["status"] == "cancelled"
        assert KitaruClient().executions.get(exec_id).status == "cancelled"
        assert side_effects(side) == Counter({"prepare": 1})


class TestAnsweredAfterTheProcessExited:
    @pytest.mark.slow
    def test_input_then_resume_from_the_command_line(self, side: Path, elsewhere: Path) -> None:
        """The flow process gives up and exits; input is kept; ``resume`` finishes the run."""
        with approval_process(side, APPROVAL_SCHEMA="decision", APPROVAL_TIMEOUT="0.2") as proc:
            exec_id = started(proc)
            assert last_json(proc) == {"status": "waiting"}
            assert proc.returncode == 0

        answered = kitaru("executions", "input", exec_id, "--value", DECISION, cwd=elsewhere)
        assert answered.returncode == 0, answered.stderr
        assert f"continue it with `kitaru executions resume {exec_id}`" in answered.stdout
        shown = kitaru("executions", "get", exec_id, cwd=elsewhere)
        assert "(input received; resume to continue)" in shown.stdout

        resumed = kitaru(
            "executions", "resume", exec_id, "-o", "json",
            cwd=elsewhere,
            env=child_env(MGMT_SIDE=str(side), APPROVAL_SCHEMA="decision", APPROVAL_TIMEOUT="0"),
        )  # fmt: skip

        assert resumed.returncode == 0, resumed.stderr
        data = json.loads(resumed.stdout)
        assert data["status"] == "completed"
        assert data["pending_wait"] is None
        assert data["result"]["approved"] is True
        assert data["result"]["answer_type"] == "Decision"
        assert side_effects(side) == Counter({"prepare": 1, "publish": 1})

    @pytest.mark.slow
    def test_resume_of_a_killed_run_reuses_the_recorded_input(
        self, side: Path, elsewhere: Path
    ) -> None:
        """A run killed after its wait was answered resumes with that input; no new wait."""
        with approval_process(side, APPROVAL_KILL="publish") as proc:
            exec_id = waiting_exec_id(proc)
            KitaruClient().executions.input(exec_id, value=True)
            proc.wait(timeout=TIMEOUT)
            assert proc.returncode == KILLED

        resumed = kitaru(
            "executions", "resume", exec_id, "-o", "json",
            cwd=elsewhere, env=child_env(MGMT_SIDE=str(side), APPROVAL_TIMEOUT="0"),
        )  # fmt: skip

        assert resumed.returncode == 0, resumed.stderr
        data = json.loads(resumed.stdout)
        assert data["status"] == "completed"
        assert data["result"]["approved"] is True
        assert side_effects(side) == Counter({"prepare": 1, "publish": 2})

    @pytest.mark.slow
    def test_abort_after_the_process_exited_cancels_at_once(
        self, side: Path, elsewhere: Path
    ) -> None:
        """With no process waiting, ``--abort`` cancels the execution itself."""
        with approval_process(side, APPROVAL_TIMEOUT="0") as proc:
            exec_id = started(proc)
            assert last_json(proc) == {"status": "waiting"}
        result = kitaru("executions", "input", exec_id, "--abort", "-o", "json", cwd=elsewhere)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["status"] == "cancelled"


class TestApprovalExample:
    @pytest.mark.slow
    def test_the_approval_example_runs_offline(self, tmp_path: Path) -> None:
        """``examples/approval_wait.py`` answers its own waits from a second process, exits 0."""
        with background(
            [sys.executable, str(REPO / "examples" / "approval_wait.py")],
            cwd=tmp_path,
            env=child_env(),
        ) as proc:
            out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, out + err
        assert "Traceback" not in err
        assert "kitaru executions input" in out
        assert "published" in out


# -- flows used above -------------------------------------------------------------------


@flow
def gate() -> Any:
    return kt.wait(timeout=0)


@checkpoint
def tries_to_wait() -> str:
    try:
        kt.wait(schema=bool)
    except KitaruContextError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


@flow
def waits_in_checkpoint() -> str:
    return tries_to_wait()  # type: ignore[return-value]


BAD_WAIT_ARGUMENTS: dict[str, dict[str, Any]] = {
    "negative-timeout": {"timeout": -1},
    "text-timeout": {"timeout": "soon"},
    "bool-timeout": {"timeout": True},
    "nan-timeout": {"timeout": float("nan")},
    "empty-name": {"name": " "},
    "int-name": {"name": 3},
    "metadata": {"metadata": {"x": object()}},
    "schema-dict": {"schema": dict},
    "schema-not-a-type": {"schema": 5},
    "schema-generic": {"schema": list[int]},
}


@flow
def bad_wait(case: str) -> Any:
    return kt.wait(**BAD_WAIT_ARGUMENTS[case])

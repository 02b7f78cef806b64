"""Values and failures that used to break a run come back exactly, or fail it cleanly."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, child_env, kitaru, run_flow
from hypothesis import given
from hypothesis import strategies as st
from strategies import assert_same_value, costly, storable_values

from kitaru import KitaruUserCodeError, checkpoint, flow
from kitaru.client import KitaruClient
from kitaru.journal.events import ErrorInfo, ExecutionFailed, decode_event, encode_event
from kitaru.runtime.failures import error_info, rebuild_exception
from kitaru.runtime.values import UnencodableValueError, encode_value

CUT_EMOJI = "tool said: \ud83d"
"""The first half of a surrogate pair: what a tool returns when it cuts an emoji in two."""

attempts: Counter[str] = Counter()


@checkpoint
def truncated_text() -> str:
    return CUT_EMOJI


@checkpoint(retries=2)
def fails_with_cut_emoji() -> str:
    attempts["fails_with_cut_emoji"] += 1
    raise ValueError(f"could not parse {CUT_EMOJI}")


@checkpoint
def logs_cut_emoji() -> int:
    logging.getLogger("agent.tools").warning("partial reply %s", CUT_EMOJI)
    return 1


@checkpoint(retries=2)
def returns_a_lock() -> Any:
    attempts["returns_a_lock"] += 1
    return {"handle": threading.Lock()}


@checkpoint
def returns_a_cycle() -> Any:
    state: dict[str, Any] = {"name": "agent"}
    state["self"] = state
    return state


@flow
def surrogate_result() -> str:
    return truncated_text()  # type: ignore[return-value]


@flow
def surrogate_failure() -> str:
    return fails_with_cut_emoji()  # type: ignore[return-value]


@flow
def surrogate_log() -> int:
    return logs_cut_emoji()  # type: ignore[return-value]


@flow
def lock_result() -> Any:
    return returns_a_lock()


@flow
def cycle_result() -> Any:
    return returns_a_cycle()


@pytest.fixture(autouse=True)
def _reset_attempts() -> None:
    attempts.clear()


class TestLoneSurrogates:
    def test_a_checkpoint_result_with_a_cut_emoji_completes_and_resumes_exactly(self) -> None:
        """A result holding a lone surrogate is stored and comes back exactly."""
        handle = surrogate_result.run()
        assert handle.wait(timeout=30) == CUT_EMOJI
        execution = KitaruClient().executions.get(handle.exec_id)
        assert execution.status == "completed"
        assert execution.result() == CUT_EMOJI

    def test_an_exception_message_with_a_cut_emoji_fails_the_run_after_its_retries(
        self,
    ) -> None:
        """The failure is recorded (escaped), retries= is honoured, and the run ends failed."""
        handle = surrogate_failure.run()
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=30)
        assert attempts["fails_with_cut_emoji"] == 3
        assert "could not parse" in str(caught.value)
        execution = KitaruClient().executions.get(handle.exec_id)
        assert execution.status == "failed"
        assert execution.failure is not None
        assert "\\ud83d" in execution.failure.message
        assert KitaruClient().executions.list()[0].status == "failed"

    def test_a_logged_line_with_a_cut_emoji_is_recorded(self) -> None:
        """A captured log line with a lone surrogate is journaled with it escaped."""
        handle = surrogate_log.run()
        assert handle.wait(timeout=30) == 1
        lines = [line.message for line in KitaruClient().executions.logs(handle.exec_id)]
        assert "partial reply tool said: \\ud83d" in lines

    def test_no_event_body_fails_to_encode_because_of_its_text(self) -> None:
        """Every str field of an event may hold lone surrogates; they are escaped."""
        event = ExecutionFailed(
            error=ErrorInfo(type="ValueError", message=CUT_EMOJI, traceback=CUT_EMOJI),
            call="step\udc80",
        )
        decoded = decode_event("execution_failed", encode_event(event))
        assert isinstance(decoded, ExecutionFailed)
        assert decoded.error.message == "tool said: \\ud83d"
        assert decoded.call == "step\\udc80"


class TestUnstorableOutputs:
    def test_an_unstorable_output_fails_each_attempt_and_honours_retries(self) -> None:
        """The body runs 1 + retries times, then the run fails naming call, path and type."""
        handle = lock_result.run()
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=30)
        assert attempts["returns_a_lock"] == 3
        message = str(caught.value)
        assert "returns_a_lock" in message
        assert "['handle']" in message
        assert "_thread.lock" in message
        assert KitaruClient().executions.get(handle.exec_id).status == "failed"
        refusal = caught.value.__cause__.__cause__ if caught.value.__cause__ else None
        assert isinstance(refusal, UnencodableValueError)
        assert (refusal.call, refusal.where, refusal.type_name) == (
            "returns_a_lock",
            "['handle']",
            "_thread.lock",
        )

    def test_a_self_referencing_output_is_refused_clearly(self) -> None:
        """A value that contains itself fails the run with the path to the cycle."""
        handle = cycle_result.run()
        with pytest.raises(KitaruUserCodeError) as caught:
            handle.wait(timeout=30)
        message = str(caught.value)
        assert "returns_a_cycle" in message
        assert "['self']" in message
        assert "contains itself" in message


class TestExceptionArguments:
    def test_unstorable_arguments_are_kept_as_their_repr(self) -> None:
        """Type and message survive; an argument that cannot be stored comes back as repr."""
        lock = threading.Lock()
        original = ValueError("connection dropped", lock)
        info = error_info(original)
        rebuilt = rebuild_exception(info)
        assert type(rebuilt) is ValueError
        assert rebuilt.args == ("connection dropped", repr(lock))
        assert info.message == str(original)


class TestLiveResumeReplay:
    @pytest.mark.slow
    @given(values=st.lists(storable_values(max_leaves=6), min_size=1, max_size=3))
    @costly(0.1)
    def test_a_checkpoint_output_is_the_same_live_after_resume_and_after_replay(
        self, values: list[Any], tmp_path: Path
    ) -> None:
        """The flow result is the same value, type and state, in all three ways of running."""
        work = tmp_path / os.urandom(4).hex()
        work.mkdir()
        values_file = work / "values.hex"
        values_file.write_text(encode_value(values).hex(), encoding="ascii")
        marker = work / "killed"
        env = child_env(PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))

        killed = run_flow("exact_values", str(values_file), str(marker), env=env)
        assert killed.returncode == -9, killed.stderr
        live_id, resumed_id = killed.stdout.split()
        resumed = kitaru("executions", "resume", resumed_id, cwd=REPO, env=env)
        assert resumed.returncode == 0, resumed.stderr
        # Through the client, which imports the flow as the journal recorded it
        # (tests.flows.exact_values): the same module and names the calls were made by.
        replayed = KitaruClient().executions.replay(resumed_id, from_="halt").wait(timeout=60)

        client = KitaruClient()
        assert_same_value(client.executions.get(live_id).result(), values)
        assert_same_value(client.executions.get(resumed_id).result(), values)
        assert_same_value(replayed, values)
